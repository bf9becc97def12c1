"""Installs ``gradmix_plugin``: GradMix and open-set recognition for
mmpretrain."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    with open(os.path.join(HERE, 'gradmix_plugin', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def mmcv_requirement() -> str:
    """``mmcv-lite`` unless the full ``mmcv`` is already installed.

    Both provide the ``mmcv`` module that mmpretrain imports; a user with a
    compiled ``mmcv`` keeps it. ``GRADMIX_MMCV=full`` forces the full one.
    """
    if os.environ.get('GRADMIX_MMCV') == 'full':
        return 'mmcv>=2.0.0,<2.4.0'
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            version('mmcv')
            return 'mmcv>=2.0.0,<2.4.0'
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    return 'mmcv-lite>=2.0.0,<2.4.0'


with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='gradmix-plugin',
    version=read_version(),
    description='GradMix attribution-guided augmentation and open-set '
    'recognition for mmpretrain',
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['gradmix_plugin', 'gradmix_plugin.*']),
    install_requires=[
        'torch>=2.0',
        # mmpretrain imports torchvision without declaring it.
        'torchvision',
        'mmengine>=0.10.0,<0.11.0',
        'mmpretrain>=1.2.0,<1.3.0',
        mmcv_requirement(),
        'faiss-cpu>=1.7.4',
        'scikit-learn>=1.0',
        'matplotlib',
        'numpy',
        # mmengine needs pkg_resources for ``mmpretrain::`` bases.
        'setuptools<82',
    ],
    extras_require={
        'gpu': ['faiss-gpu-cu12'],
        'tests': [
            'pytest>=7',
            'pytorch-metric-learning>=2.0',
            'grad-cam>=1.5',
        ],
        'dev': ['ruff', 'pre-commit'],
    },
    zip_safe=False,
)

"""Installs ``gradmix_plugin``: GradMix and open-set recognition for
mmpretrain."""
import os
import re
import subprocess
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    with open(os.path.join(HERE, 'gradmix_plugin', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def installed(dist: str) -> bool:
    """Whether ``dist`` is installed in the environment being installed into.

    Runs in a subprocess without pip's build-isolation paths, which hide the
    target environment from this script.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHONPATH', 'PYTHONNOUSERSITE')
    }
    code = f'import importlib.metadata as m; m.version({dist!r})'
    return subprocess.run([sys.executable, '-c', code],
                          env=env,
                          capture_output=True).returncode == 0


def mmcv_requirement() -> str:
    """``mmcv-lite`` unless the full ``mmcv`` is already installed.

    Both provide the ``mmcv`` module that mmpretrain imports; a compiled
    ``mmcv`` (CUDA ops) already in the environment is kept, never replaced.
    """
    if installed('mmcv'):
        return 'mmcv>=2.0.0,<2.4.0'
    return 'mmcv-lite>=2.0.0,<2.4.0'


def faiss_requirement() -> str:
    """``faiss-cpu`` unless the GPU build ``faiss-gpu`` is installed.

    Both provide the ``faiss`` module: install ``faiss-gpu`` before the
    plugin so that only the GPU build is present.
    """
    if installed('faiss-gpu'):
        return 'faiss-gpu>=1.7.4'
    return 'faiss-cpu>=1.7.4'


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
    # The Semantic Shift Benchmark split lists (datasets/ssb.py).
    package_data={'gradmix_plugin.datasets': ['ssb_splits/*.json']},
    install_requires=[
        'torch>=2.0',
        # mmpretrain imports torchvision without declaring it.
        'torchvision',
        'mmengine>=0.10.0,<0.11.0',
        'mmpretrain>=1.2.0,<1.3.0',
        mmcv_requirement(),
        faiss_requirement(),
        'scikit-learn>=1.0',
        'matplotlib',
        'numpy',
        # mmengine needs pkg_resources for ``mmpretrain::`` bases.
        'setuptools<82',
    ],
    extras_require={
        'gpu': ['faiss-gpu>=1.7.4'],
        # ImageNet-C corruptions; the maintained fork of imagecorruptions
        # (same import name: never install both).
        'robustness': ['imagecorruptions-imaug>=1.1.5'],
        'timm': ['timm>=0.9'],
        'tests': [
            'pytest>=7',
            'pytorch-metric-learning>=2.0',
            'grad-cam>=1.5',
            'imagecorruptions-imaug>=1.1.5',
            'timm>=0.9',
        ],
        'dev': ['ruff', 'pre-commit'],
    },
    zip_safe=False,
)

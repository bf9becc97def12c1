"""GradMix for mmpretrain: attribution-guided augmentation and open-set
recognition.

Importing this package registers every component into mmpretrain's
registries, so that a config can use it with::

    custom_imports = dict(imports=['gradmix_plugin'],
                          allow_failed_imports=False)
"""
import warnings

# mmengine re-imports pkg_resources every time it resolves an
# ``mmpretrain::`` config base, and setuptools warns each time: one line per
# config read, in every log. Only that warning is silenced.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

# ``utils`` also allow-lists the globals of mmengine checkpoints for
# ``torch.load(weights_only=True)``.
from . import attribution, datasets, engine, evaluation, models, utils  # noqa
from .version import __version__  # noqa: E402

__all__ = ['__version__']

"""GradMix for mmpretrain: attribution-guided augmentation and open-set
recognition.

Importing this package registers every component into mmpretrain's
registries, so that a config can use it with::

    custom_imports = dict(imports=['gradmix_plugin'],
                          allow_failed_imports=False)
"""
from . import utils  # noqa: F401  (first: checkpoint allow-list, mmcv)
from . import attribution, datasets, engine, evaluation, models  # noqa: F401
from .version import __version__

__all__ = ['__version__']

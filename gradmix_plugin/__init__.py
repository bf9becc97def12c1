"""GradMix for mmpretrain: attribution-guided augmentation and open-set
recognition.

Importing this package registers every component into mmpretrain's
registries, so that a config can use it with::

    custom_imports = dict(imports=['gradmix_plugin'],
                          allow_failed_imports=False)

Importing registers and does nothing else: no warning filter, checkpoint
loader or allow-list of the process changes (the runner and the tools load
checkpoints safely where they load them).
"""
import warnings

with warnings.catch_warnings():
    # mmpretrain.models, imported here first, imports mmcv, and mmcv-lite
    # warns that it lacks MultiScaleDeformableAttention (a CUDA op nothing
    # here uses). Only that message, only during this import.
    warnings.filterwarnings(
        'ignore',
        message='Fail to import ``MultiScaleDeformableAttention``',
        category=UserWarning)
    from . import (  # noqa: F401
        apis,
        attribution,
        datasets,
        engine,
        evaluation,
        models,
        utils,
    )
from .version import __version__

__all__ = ['__version__']

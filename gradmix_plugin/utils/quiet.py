"""Warnings of other libraries that the plugin's own code triggers,
filtered where it triggers them (never process-wide)."""
import warnings
from typing import Any

from mmengine.config import Config

#: setuptools' deprecation warning, raised each time mmengine resolves an
#: ``mmpretrain::`` config base (it imports ``pkg_resources`` for that).
PKG_RESOURCES_DEPRECATION = 'pkg_resources is deprecated as an API'
#: mmcv-lite's warning, raised when ``mmpretrain.models`` is first imported
#: (a CUDA op, multi-scale deformable attention, that nothing here uses).
MMCV_LITE_WARNING = 'Fail to import ``MultiScaleDeformableAttention``'


def read_config(path: str, **kwargs: Any) -> Config:
    """``Config.fromfile`` without setuptools' ``pkg_resources``
    deprecation warning (one per ``mmpretrain::`` base read).

    Args:
        path (str): The config file.
        **kwargs: Passed to ``Config.fromfile``.

    Returns:
        Config: The config.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message=PKG_RESOURCES_DEPRECATION,
            category=UserWarning)
        return Config.fromfile(path, **kwargs)

from .corrupt import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    ImageCorruption,
    check_corruption,
    corruption_seed,
)

__all__ = [
    'CORRUPTIONS', 'EXTRA_CORRUPTIONS', 'SEVERITIES', 'ImageCorruption',
    'check_corruption', 'corruption_seed'
]

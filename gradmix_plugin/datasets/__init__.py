from .digits import DigitsDataset
from .osr import UNKNOWN_LABEL, OSRDataset
from .osr_splits import OSR_PROTOCOLS, get_osr_protocol, get_osr_split
from .tiny_imagenet import TinyImageNet

__all__ = [
    'UNKNOWN_LABEL', 'OSR_PROTOCOLS', 'DigitsDataset', 'OSRDataset',
    'TinyImageNet', 'get_osr_protocol', 'get_osr_split'
]

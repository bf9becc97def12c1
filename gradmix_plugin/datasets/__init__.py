from .aircraft import Aircraft
from .cars import Cars
from .cifar_c import CIFAR10C, CIFAR100C, TinyImageNetC
from .cub import CUB2011
from .digits import DigitsDataset
from .ood import OODDataset
from .openood_imglist import OpenOODImglist
from .osr import UNKNOWN_LABEL, OSRDataset
from .osr_splits import OSR_PROTOCOLS, get_osr_protocol, get_osr_split
from .ssb import SSB_DIFFICULTIES, load_ssb_split
from .tiny_imagenet import TinyImageNet

__all__ = [
    'CIFAR10C', 'CIFAR100C', 'TinyImageNetC', 'UNKNOWN_LABEL',
    'OSR_PROTOCOLS', 'DigitsDataset', 'OODDataset', 'OSRDataset',
    'OpenOODImglist',
    'Aircraft', 'Cars', 'CUB2011', 'SSB_DIFFICULTIES', 'load_ssb_split',
    'TinyImageNet', 'get_osr_protocol', 'get_osr_split'
]

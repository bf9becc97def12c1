from .bias_free_linear_head import BiasFreeLinearClsHead
from .osr_linear_head import OSRLinearClsHead

__all__ = ['BiasFreeLinearClsHead', 'OSRLinearClsHead']

from .osr_linear_head import OSRLinearClsHead

__all__ = ['OSRLinearClsHead']

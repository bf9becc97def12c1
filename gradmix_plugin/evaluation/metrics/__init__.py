from ..functional import OSR_SCORES
from .osr_metric import OSRMetric

__all__ = ['OSRMetric', 'OSR_SCORES']

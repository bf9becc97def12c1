from .osr_metric import OSR_SCORES, OSRMetric

__all__ = ['OSRMetric', 'OSR_SCORES']

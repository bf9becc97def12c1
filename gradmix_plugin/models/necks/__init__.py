from .projection_neck import ProjectionNeck
from .sequential_neck import SequentialNeck

__all__ = ['ProjectionNeck', 'SequentialNeck']

from .projection_neck import ProjectionNeck

__all__ = ['ProjectionNeck']

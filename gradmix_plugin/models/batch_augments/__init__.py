from .gradmix import GradMix

__all__ = ['GradMix']

from .contrastive_classifier import ContrastiveClassifier

__all__ = ['ContrastiveClassifier']

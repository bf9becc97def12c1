"""Inference with trained open-set models: the detector, the inferencer
and the plugin's entries in mmpretrain's model hub (registered on
import)."""
from .detector import (
    DetectorFileError,
    DetectorMismatchError,
    OSRDetector,
    threshold_at_tpr,
)
from .model_hub import register_model_index
from .osr_inferencer import (
    EmptyInputError,
    OSRInferencer,
    UnreadableImageError,
    find_test_pipeline,
    list_images,
)

register_model_index()

__all__ = [
    'DetectorFileError', 'DetectorMismatchError', 'EmptyInputError',
    'OSRDetector', 'OSRInferencer', 'UnreadableImageError',
    'find_test_pipeline', 'list_images', 'register_model_index',
    'threshold_at_tpr'
]

from .layercam import (
                       AttributionLayer,
                       AttributionLayerError,
                       LayerCAM,
                       layercam_maps,
                       parse_attribution_layers,
)

__all__ = [
    'AttributionLayer', 'AttributionLayerError', 'LayerCAM', 'layercam_maps',
    'parse_attribution_layers'
]

from .layercam import LayerCAM, layercam_maps

__all__ = ['LayerCAM', 'layercam_maps']

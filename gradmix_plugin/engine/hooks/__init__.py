from .rng_state_hook import RNGStateHook  # noqa: F401
from .layercam_hook import LayerCAMHook  # noqa: F401

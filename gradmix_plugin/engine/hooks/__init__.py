from .layercam_hook import LayerCAMHook  # noqa: F401
from .osr_bank_hook import OSRBankHook  # noqa: F401
from .provenance_hook import ProvenanceHook  # noqa: F401
from .require_load_from_hook import RequireLoadFromHook  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401

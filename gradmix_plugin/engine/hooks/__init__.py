from .atomic_checkpoint_hook import AtomicCheckpointHook  # noqa: F401
from .fail_fast_hook import FailFastHook  # noqa: F401
from .gradmix_model_hook import GradMixModelHook, LayerCAMHook  # noqa: F401
from .non_finite_check_hook import NonFiniteCheckHook  # noqa: F401
from .osr_bank_hook import OSRBankHook  # noqa: F401
from .osr_report_hook import OSRReportHook  # noqa: F401
from .provenance_hook import ProvenanceHook  # noqa: F401
from .require_load_from_hook import RequireLoadFromHook  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401

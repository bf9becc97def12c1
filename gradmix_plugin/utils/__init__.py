from .checkpoint import (
                         UnsafeCheckpointError,
                         check_checkpoint_fits,
                         load_from_local_safely,
                         register_checkpoint_loader,
                         register_safe_globals,
)
from .setup_env import iter_dicts, prepare_config, setup_distributed
from .worker_seed import resumable_worker_init_fn

register_checkpoint_loader()

__all__ = [
    'UnsafeCheckpointError', 'check_checkpoint_fits', 'iter_dicts',
    'load_from_local_safely', 'register_checkpoint_loader',
    'register_safe_globals', 'prepare_config', 'setup_distributed',
    'resumable_worker_init_fn'
]

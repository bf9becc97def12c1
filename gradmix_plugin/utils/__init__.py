from .checkpoint import (
    UnsafeCheckpointError,
    check_checkpoint_fits,
    load_from_local_safely,
    register_checkpoint_loader,
    register_safe_globals,
)
from .setup_env import (
    add_runner_args,
    build_runner,
    iter_dicts,
    parse_runner_args,
    prepare_config,
    setup_distributed,
)
from .worker_seed import resumable_worker_init_fn

register_checkpoint_loader()

__all__ = [
    'UnsafeCheckpointError', 'add_runner_args', 'build_runner',
    'check_checkpoint_fits', 'iter_dicts', 'load_from_local_safely',
    'parse_runner_args', 'prepare_config', 'register_checkpoint_loader',
    'register_safe_globals', 'resumable_worker_init_fn', 'setup_distributed'
]

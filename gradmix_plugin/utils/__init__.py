from .checkpoint import (
                         UnsafeCheckpointError,
                         load_from_local_safely,
                         register_checkpoint_loader,
                         register_safe_globals,
)
from .setup_env import prepare_config, setup_distributed

register_checkpoint_loader()

__all__ = [
    'UnsafeCheckpointError', 'load_from_local_safely',
    'register_checkpoint_loader', 'register_safe_globals', 'prepare_config',
    'setup_distributed'
]

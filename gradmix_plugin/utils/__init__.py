from .checkpoint import (
    DamagedCheckpointError,
    UnsafeCheckpointError,
    check_checkpoint_fits,
    load_checkpoint_file,
    load_from_local_safely,
    register_checkpoint_loader,
    register_safe_globals,
    safe_checkpoint_loading,
    verify_checkpoint_file,
)
from .config_rules import (
    ConfigConflictError,
    ConfigVariableError,
    add_read_keys,
    apply_config_rules,
    check_config_variables,
    check_osr_evaluator,
    iter_dicts,
    merge_data_preprocessor,
    merge_options,
)
from .provenance import (
    ProvenanceMismatchError,
    check_provenance,
    collect_provenance,
    dataset_provenance,
    file_sha256,
    library_versions,
    recorded_provenance,
)
from .quiet import read_config
from .setup_env import (
    add_custom_hook,
    add_runner_args,
    fix_persistent_workers,
    free_port,
    make_workers_resumable,
    merge_test_args,
    merge_tool_args,
    parse_runner_args,
    prepare_config,
    setup_distributed,
)
from .smoke import apply_smoke
from .worker_seed import resumable_worker_init_fn

__all__ = [
    'ConfigConflictError', 'ConfigVariableError', 'add_read_keys',
    'apply_config_rules', 'check_config_variables',
    'fix_persistent_workers', 'make_workers_resumable',
    'DamagedCheckpointError',
    'ProvenanceMismatchError', 'UnsafeCheckpointError',
    'add_custom_hook', 'add_runner_args', 'apply_smoke',
    'check_checkpoint_fits', 'check_osr_evaluator', 'check_provenance',
    'collect_provenance', 'dataset_provenance',
    'file_sha256', 'free_port', 'iter_dicts', 'library_versions',
    'load_checkpoint_file', 'load_from_local_safely',
    'merge_data_preprocessor', 'merge_options', 'merge_test_args',
    'merge_tool_args', 'parse_runner_args', 'prepare_config', 'read_config',
    'recorded_provenance',
    'register_checkpoint_loader', 'register_safe_globals',
    'resumable_worker_init_fn', 'safe_checkpoint_loading',
    'setup_distributed', 'verify_checkpoint_file'
]

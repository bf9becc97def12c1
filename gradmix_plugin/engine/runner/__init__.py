from .osr_runner import (
    RUNNER_LINE,
    OSRRunner,
    teardown_distributed,
    warn_if_plain_runner,
)

__all__ = [
    'OSRRunner', 'RUNNER_LINE', 'teardown_distributed',
    'warn_if_plain_runner'
]

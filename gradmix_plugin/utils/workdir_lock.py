"""One run per work dir: an exclusive lock held while the run lives."""
import fcntl
import os
import os.path as osp
from typing import Dict, List

#: The lock file inside a work dir.
LOCK_FILE = '.gradmix_plugin.lock'


class WorkDirLockedError(RuntimeError):
    """Another process runs in the same work dir."""


_HELD: Dict[str, List[int]] = {}  # real path -> [file descriptor, count]


def acquire_work_dir(work_dir: str) -> str:
    """Take the exclusive lock of ``work_dir`` for this process.

    The lock is an ``fcntl.flock`` on ``<work_dir>/.gradmix_plugin.lock``,
    which names the holder's PID. The operating system releases it when
    the process ends, also when it is killed (SIGKILL), so a stale lock
    never blocks a rerun. Within one process the lock is re-entrant
    (counted): sequential runs in one interpreter (a notebook, the tests)
    and a runner that trains then tests take it again freely.

    Args:
        work_dir (str): The work dir (created if missing).

    Returns:
        str: The lock file's path.

    Raises:
        WorkDirLockedError: Another process holds the lock; the message
            names its PID.
    """
    os.makedirs(work_dir, exist_ok=True)
    path = osp.realpath(osp.join(work_dir, LOCK_FILE))
    if path in _HELD:
        _HELD[path][1] += 1
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors='replace').strip() or '?'
        os.close(fd)
        raise WorkDirLockedError(
            f'work dir {osp.abspath(work_dir)} is in use by another run '
            f'(PID {holder}, lock file {path}): two runs in one work dir '
            'mix their checkpoints, config copies and logs. Wait for it to '
            'end (or stop it), or give this run another work dir '
            '(--work-dir).') from None
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()}\n'.encode())
    os.fsync(fd)
    _HELD[path] = [fd, 1]
    return path


def release_work_dir(work_dir: str) -> None:
    """Release one hold of :func:`acquire_work_dir` (the lock itself when
    the last hold of this process is released).

    Args:
        work_dir (str): The work dir.
    """
    path = osp.realpath(osp.join(work_dir, LOCK_FILE))
    held = _HELD.get(path)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[path]
        fcntl.flock(held[0], fcntl.LOCK_UN)
        os.close(held[0])


def lock_work_dir(cfg: dict) -> bool:
    """Take the lock of ``cfg.work_dir`` on the process of global rank 0
    (the one that writes checkpoints and the config copy).

    The rank is read from the launcher's environment (``RANK`` of torchrun,
    ``SLURM_PROCID``, ``OMPI_COMM_WORLD_RANK``), since the process group
    may not exist yet when the runner is built.

    Args:
        cfg (dict): The config, with ``work_dir`` and ``launcher``.

    Returns:
        bool: Whether this process took the lock (release it with
        :func:`release_work_dir`).

    Raises:
        WorkDirLockedError: Another process holds it.
    """
    if cfg.get('work_dir', None) is None:
        return False
    if cfg.get('launcher', 'none') != 'none':
        for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
            if key in os.environ:
                if int(os.environ[key]) != 0:
                    return False
                break
    acquire_work_dir(cfg['work_dir'])
    return True

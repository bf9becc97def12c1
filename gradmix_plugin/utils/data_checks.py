"""Clear errors for broken data folders."""
import contextlib
import errno
import os
import os.path as osp
from typing import Iterator, Optional, Tuple


class SymlinkLoopError(OSError):
    """A data folder holds a symbolic link to a folder that contains it."""


def find_symlink_loop(path: str) -> Optional[Tuple[str, str]]:
    """The first symbolic link on ``path`` that points to one of its own
    parent folders.

    Args:
        path (str): A path that raised ``ELOOP`` (e.g. ``a/loop/loop/...``).

    Returns:
        tuple[str, str] or None: The link and its target, or None.
    """
    parts = osp.abspath(path).split(os.sep)
    for end in range(2, len(parts) + 1):
        prefix = os.sep.join(parts[:end]) or os.sep
        if not osp.islink(prefix):
            continue
        try:
            target = osp.realpath(osp.join(osp.dirname(prefix),
                                           os.readlink(prefix)))
        except OSError:
            continue
        parent = osp.realpath(osp.dirname(prefix))
        if parent == target or parent.startswith(target + os.sep):
            return prefix, target
    return None


@contextlib.contextmanager
def explain_symlink_loops() -> Iterator[None]:
    """Turn an ``ELOOP`` ``OSError`` raised inside (a data folder scanned
    through a symbolic link loop) into a :class:`SymlinkLoopError` naming
    the link, instead of a bare error with a path of hundreds of repeated
    components."""
    try:
        yield
    except SymlinkLoopError:
        raise
    except OSError as err:
        if err.errno != errno.ELOOP or not err.filename:
            raise
        found = find_symlink_loop(str(err.filename))
        where = (f'{found[0]} is a symbolic link to {found[1]}, a folder '
                 'that contains it' if found else
                 f'a symbolic link loop under {str(err.filename)[:200]}')
        raise SymlinkLoopError(
            errno.ELOOP,
            f'a data folder holds a symbolic link loop: {where}, so listing '
            'the folder never ends. Remove the link or make it point '
            'elsewhere.') from None

"""Helpers shared by tests in several folders (``tests/`` is on
``sys.path`` through its ``conftest.py``)."""
import contextlib
import importlib.util
import logging
import os
import os.path as osp
import subprocess
from types import ModuleType
from typing import Iterator, List, Optional, Sequence

from mmengine.logging import MMLogger

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The environment of a tool started by a test: one thread per process.
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def mmpretrain_tool(name: str) -> str:
    """The path of mmpretrain's installed ``tools/<name>.py`` (what
    ``mim train mmpretrain`` runs)."""
    import mmpretrain
    return osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', f'{name}.py')


def run_tool(args: Sequence[str],
             env: Optional[dict] = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the repository root with :data:`ENV`.

    Args:
        args (Sequence[str]): The command.
        env (dict, optional): Instead of :data:`ENV`.
        check (bool): Assert exit code 0 (with the output's tail).

    Returns:
        subprocess.CompletedProcess: With ``stdout`` and ``stderr`` text.
    """
    result = subprocess.run(
        list(args), cwd=REPO, env=env or ENV, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, (result.stdout[-3000:] +
                                        result.stderr[-3000:])
    return result


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (the tools are scripts, not a
    package)."""
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def logged_messages() -> Iterator[List[str]]:
    """The messages mmengine's current logger logs inside."""
    logger = MMLogger.get_current_instance()
    messages: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)

"""Helpers shared by tests in several folders (``tests/`` is on
``sys.path`` through its ``conftest.py``)."""
import contextlib
import importlib.util
import logging
import os.path as osp
from types import ModuleType
from typing import Iterator, List

from mmengine.logging import MMLogger

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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

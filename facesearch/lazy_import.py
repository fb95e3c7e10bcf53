"""Heavy third-party modules bound at import time but loaded on first use.

Commands that need no model and no index (``list``, ``remove``, ``rename``, ``--help``, errors
about arguments) must start in a fraction of a second, yet the modules they import also serve the
paths that do need numpy, Pillow, OpenCV, FAISS or the download stack. Binding those through
:func:`lazy_module` keeps ``faiss.IndexFlatIP`` style code unchanged while the cost is paid by the
first attribute access only.

The standard library's ``importlib.util.LazyLoader`` is not used: before Python 3.12 a second
thread touching the module while the first one executes it sees a half-empty module (MTCNN's
P-Net thread met ``cv2`` without ``resize``). Here the first access goes through the ordinary,
locked import, and a second thread waits for it.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


class _Deferred(ModuleType):
    """Stands for a module that is not imported yet; the first attribute missing here imports it
    and copies its namespace, so later lookups cost what a module's own do."""

    def __getattr__(self, attr: str):
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, imported on its first attribute access (the module itself if already
    imported). Safe to touch from several threads at once.

    Raises ModuleNotFoundError now, not on first use, when the module is not installed.
    """
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return _Deferred(name)

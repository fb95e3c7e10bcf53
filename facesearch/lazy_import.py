"""Heavy third-party modules bound at import time but loaded on first use.

Commands that need no model and no index (``list``, ``remove``, ``rename``, ``--help``, errors
about arguments) must start in a fraction of a second, yet the modules they import also serve the
paths that do need OpenCV, FAISS or the download stack. Binding those through
:func:`lazy_module` keeps ``faiss.IndexFlatIP`` style code unchanged while the cost is paid by the
first attribute access only (the standard library's :class:`importlib.util.LazyLoader`).
"""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, executed on its first attribute access (at once if already imported).

    Raises ModuleNotFoundError now, not on first use, when the module is not installed.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

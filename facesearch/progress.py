"""How long library calls report their progress, without knowing who draws it.

A call that processes many photos takes a :data:`ProgressFactory`: given a description of a
phase ("embedding (dlib)"), it returns a context manager yielding ``(on_total, update)``; the
call reports the phase's total once with ``on_total(n)`` and each finished batch with
``update(k)``. The CLI draws a bar (a count and a rate); the server could stream it.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

Callbacks = tuple[Callable[[int], None], Callable[[int], None]]
ProgressFactory = Callable[[str], ContextManager[Callbacks]]


@contextlib.contextmanager
def no_progress(desc: str) -> Iterator[Callbacks]:
    """The factory for callers that want no report."""
    yield (lambda n: None), (lambda n: None)

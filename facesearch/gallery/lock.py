"""One writer at a time: a lock file that every process writing a gallery holds while it writes.

Readers never take it: the database's transactions and the index files' atomic replacement
keep what they see whole. A second writer waits (saying so once) or, asked not to wait, fails
in one line.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from facesearch.errors import GalleryError
from facesearch.permissions import PRIVATE_DIR, make_dirs

log = logging.getLogger(__name__)

LOCK_FILE = "writer.lock"


class WriterLock:
    """The gallery's writer lock, reentrant within one process.

    Args:
        path: the lock file (created on first use).
        wait: wait for another writer (default) or fail at once with :class:`GalleryError`.
        on_wait: called once, with a one-line message, the first time this process has to wait
            (default: a log warning).
    """

    def __init__(self, path: str | os.PathLike, *, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.wait = wait
        self.on_wait = on_wait or log.warning
        self._lock: FileLock | None = None
        self._said = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the duration of the block."""
        try:
            if self._lock is None:
                make_dirs(self.path.parent, PRIVATE_DIR)  # index/ holds biometric data: 0700
                self._lock = FileLock(self.path, mode=0o600)
            self._lock.acquire(timeout=0)
        except Timeout:
            message = f"{self.path.parent.parent}: waiting for another process writing this gallery"
            if not self.wait:
                raise GalleryError(f"{self.path.parent.parent}: another process is writing this gallery "
                                   "(and --no-wait was given)") from None
            if not self._said:
                self._said = True
                self.on_wait(message)
            self._lock.acquire()
        except OSError as exc:
            raise GalleryError(f"{self.path.parent.parent}: cannot write this gallery "
                               f"({exc.strerror or exc}: {exc.filename or self.path})") from None
        try:
            yield
        finally:
            self._lock.release()

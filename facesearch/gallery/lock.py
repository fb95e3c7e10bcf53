"""One writer at a time: a lock that every process writing a gallery holds while it writes.

An embedded gallery's lock is a file beside its index; a gallery in PostgreSQL uses the
server's advisory lock instead (:class:`AdvisoryLock`), so writers on several machines exclude
each other and a killed writer's lock goes with its connection.

Readers never take it: the database's transactions and the index files' atomic replacement
keep what they see whole. A second writer waits (saying so once) or, asked not to wait, fails
in one line.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from facesearch.errors import GalleryError, one_line
from facesearch.lazy_import import lazy_module
from facesearch.permissions import PRIVATE_DIR, make_dirs

# Loaded by the first writer only: filelock imports asyncio and ssl, a readers' command pays nothing.
filelock = lazy_module("filelock")

log = logging.getLogger(__name__)

LOCK_FILE = "writer.lock"
#: The PostgreSQL advisory lock key of a gallery's writers (one gallery per database).
WRITER_LOCK_KEY = 0x66616365_7302


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
        self._lock: filelock.FileLock | None = None
        self._said = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the duration of the block."""
        try:
            if self._lock is None:
                make_dirs(self.path.parent, PRIVATE_DIR)  # index/ holds biometric data: 0700
                self._lock = filelock.FileLock(self.path, mode=0o600)
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
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


class AdvisoryLock:
    """The writer lock of a gallery kept in PostgreSQL: a session-level advisory lock, held on a
    connection of its own for the duration of a write, reentrant within one thread (threads of
    one process exclude each other, as the lock file's do).

    Args:
        engine: the gallery's database engine.
        where: the database as messages name it (its URL without password).
        wait, on_wait: as for :class:`WriterLock`.
    """

    def __init__(self, engine: Engine, where: str, *, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.where = where
        self.wait = wait
        self.on_wait = on_wait or log.warning
        self._said = False
        self._local = threading.local()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the duration of the block."""
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        connection = self._acquire()
        local.depth = 1
        try:
            yield
        finally:
            local.depth = 0
            try:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({WRITER_LOCK_KEY})")
            except SQLAlchemyError:
                connection.invalidate()  # a closed session holds no lock
            finally:
                connection.close()

    def _acquire(self):
        try:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            raise GalleryError(f"{self.where}: cannot lock the gallery for writing: "
                               f"{one_line(getattr(exc, 'orig', None) or exc)}") from None
        try:
            if connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({WRITER_LOCK_KEY})").scalar():
                return connection
            if not self.wait:
                raise GalleryError(f"{self.where}: another process is writing this gallery (and --no-wait was given)")
            if not self._said:
                self._said = True
                self.on_wait(f"{self.where}: waiting for another process writing this gallery")
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({WRITER_LOCK_KEY})")
            return connection
        except SQLAlchemyError as exc:
            connection.close()
            raise GalleryError(f"{self.where}: cannot lock the gallery for writing: "
                               f"{one_line(getattr(exc, 'orig', None) or exc)}") from None
        except BaseException:
            connection.close()
            raise

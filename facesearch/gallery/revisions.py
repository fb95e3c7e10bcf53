"""The gallery schema's revision: create it, upgrade it in place, refuse one from a newer release.

The revisions are Alembic scripts in ``migrations/versions/``. Opening a gallery compares the
database's revision (Alembic's ``alembic_version`` table) with the newest script:

- no tables at all: a new gallery, created by running every revision;
- the tables of facesearch 0.1.0 but no ``alembic_version``: that release's schema, which is
  revision ``0001``; it is stamped so and upgraded like any other;
- an older revision: upgraded in place, in one transaction where the database allows it;
- a revision no script knows: made by a newer facesearch, refused in one line (nothing written).

Writers of a SQLite gallery hold a lock file beside it while they upgrade, so two processes
opening a new gallery at once do not both create its tables.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from filelock import FileLock
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from facesearch.errors import GalleryError
from facesearch.permissions import PRIVATE_FILE

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The revision that describes facesearch 0.1.0's tables, which predate Alembic.
BASELINE = "0001"
#: PostgreSQL advisory lock key taken while a schema is created or upgraded (any constant that
#: other applications sharing the database are unlikely to use).
UPGRADE_LOCK_KEY = 0x66616365_7301


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this release knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def recorded(connection: Connection) -> str | None:
    """The revision Alembic recorded in the database, ``None`` if none was."""
    return MigrationContext.configure(connection).get_current_revision()


def current(connection: Connection) -> str | None:
    """The database's schema: ``None`` for an empty database, :data:`BASELINE` for a 0.1.0 gallery
    (its tables, no recorded revision), else the recorded revision."""
    revision = recorded(connection)
    if revision is None and inspect(connection).has_table("gallery_state"):
        return BASELINE
    return revision


@contextlib.contextmanager
def _writer_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with FileLock(f"{database}.lock", mode=PRIVATE_FILE):
        yield


def check(engine: Engine, where: str) -> None:
    """For a gallery that cannot be written: fail in one line unless it is at :func:`head`."""
    target = head()
    with engine.connect() as connection:
        found = current(connection)
    if found != target:
        raise GalleryError(f"{where}: this read-only gallery has schema revision {found}, not {target}; "
                           "open it once with write access (or with the facesearch that made it)")


def upgrade(engine: Engine, where: str) -> str:
    """Bring the database of ``engine`` to :func:`head`; returns the revision it had before
    (``None`` for a new gallery). ``where`` names the gallery in messages (its URL without password).

    Raises:
        GalleryError: the gallery was made by a newer facesearch.
    """
    target = head()
    scripts = ScriptDirectory.from_config(_config())
    with engine.connect() as connection:
        if recorded(connection) == target:
            return target
        before = current(connection)
    if before is not None and not _known(scripts, before):
        raise GalleryError(f"{where}: this gallery was made by a newer facesearch (schema revision {before}; "
                           f"this release knows up to {target}); upgrade facesearch to open it")
    with _writer_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # PostgreSQL's own lock, held until this transaction ends: no lock file for a server.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK_KEY})")
        # Again, under the lock: another process may have upgraded it meanwhile.
        if recorded(connection) == target:
            return target
        before = current(connection)
        config = _config(connection)
        if before == BASELINE and recorded(connection) is None:
            command.stamp(config, BASELINE)
        log.info("%s: upgrading the gallery schema from %s to %s", where, before or "nothing", target)
        command.upgrade(config, target)
    return before


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except (RevisionError, CommandError):  # unknown or malformed id
        return False

"""Schema revisions: a gallery made by 0.1.0 opens and is upgraded in place, a newer one is refused,
and the Alembic scripts build exactly the tables the code expects."""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

from facesearch.gallery import revisions
from facesearch.gallery.schema import Base

from conftest import QUERIES

OLD_GALLERY = Path(__file__).resolve().parent / "data" / "gallery-schema-1" / "gallery.sqlite"
#: The tables of facesearch 0.1.0 (revision 0001); later revisions add others.
BASELINE_TABLES = ("gallery_state", "identities", "images", "faces")


def _baseline_metadata() -> MetaData:
    metadata = MetaData()
    for name in BASELINE_TABLES:
        Base.metadata.tables[name].to_metadata(metadata)
    return metadata


def _old_gallery(tmp_path: Path) -> Path:
    home = tmp_path / "old"
    (home / "db").mkdir(parents=True)
    shutil.copy(OLD_GALLERY, home / "db" / "gallery.sqlite")
    return home


def _revision(home: Path) -> str | None:
    with sqlite3.connect(home / "db" / "gallery.sqlite") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0] if "alembic_version" in tables else None


def test_a_gallery_made_by_0_1_0_is_upgraded_in_place_and_answers_as_before(tmp_path, cli):
    home = _old_gallery(tmp_path)
    assert _revision(home) is None  # 0.1.0 had no migrations

    listed = cli("--home", home, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {r["name"]: (r["faces"], r["images"]) for r in json.loads(listed.output)} == {
        "alex_lacamoire": (1, 1), "biden": (2, 2), "kit_harington": (2, 2), "obama": (2, 2), "rose_leslie": (2, 2)}
    assert _revision(home) == revisions.head()

    # The answers 0.1.0 gave on this gallery (recorded when the file was made).
    result = cli("--home", home, "query", QUERIES / "obama_and_biden.jpg", "--json")
    assert result.exit_code == 0, result.output
    faces = json.loads(result.output)["results"][0]["faces"]
    assert [(f["identity"], f["similarity"]) for f in faces] == [("obama", 0.7143), ("biden", 0.7769), (None, 0.2168)]

    # And it keeps working as a current gallery: a write bumps the generation it had (1).
    assert cli("--home", home, "rename", "kit_harington", "jon_snow").exit_code == 0
    with sqlite3.connect(home / "db" / "gallery.sqlite") as db:
        assert db.execute("SELECT generation FROM gallery_state").fetchone()[0] == 2


def test_a_gallery_from_a_newer_release_is_refused_in_one_line_and_left_alone(tmp_path, cli):
    home = _old_gallery(tmp_path)
    db_file = home / "db" / "gallery.sqlite"
    assert cli("--home", home, "list").exit_code == 0
    with sqlite3.connect(db_file) as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    before = hashlib.sha256(db_file.read_bytes()).hexdigest()

    result = cli("--home", home, "list")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "newer facesearch" in lines[0] and "f00dfeed" in lines[0] and str(db_file) in lines[0]
    assert hashlib.sha256(db_file.read_bytes()).hexdigest() == before


def test_the_scripts_build_the_tables_the_code_maps(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert revisions.upgrade(engine, "new.sqlite") is None  # nothing there before
    with engine.connect() as connection:
        assert revisions.recorded(connection) == revisions.head()
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_the_old_schema_is_the_baseline_revision(tmp_path):
    engine = create_engine(f"sqlite:///{_old_gallery(tmp_path) / 'db' / 'gallery.sqlite'}")
    with engine.connect() as connection:
        assert revisions.current(connection) == revisions.BASELINE
        assert revisions.recorded(connection) is None
        # 0.1.0's tables are exactly what the baseline revision creates.
        assert compare_metadata(MigrationContext.configure(connection), _baseline_metadata()) == []
    engine.dispose()


@pytest.mark.parametrize("url, shown, reason", [
    ("sqlite:////nonexistent-folder/x/gallery.sqlite", "sqlite:////nonexistent-folder/x/gallery.sqlite",
     "cannot open the gallery database"),
    ("postgresql+psycopg2://alice:s3cr3t-pw@127.0.0.1:9/gallery", "alice:***@127.0.0.1:9/gallery", ""),
    ("nosuchengine://alice:s3cr3t-pw@host/db", "alice:***@host/db", "not a database URL"),
])
def test_database_failures_are_one_line_without_the_password(tmp_path, cli, url, shown, reason):
    result = cli("--home", tmp_path, "--db-url", url, "list")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and shown in lines[0] and reason in lines[0]
    assert "s3cr3t" not in result.output

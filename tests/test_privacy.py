"""Galleries and the face cache are private (0700 folders, 0600 files) whatever the umask, and
removing a person leaves none of their embeddings behind: not in the database file, its
write-ahead log, nor the per-photo face cache."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from conftest import KNOWN

# The models folder of the suite's cache: linked into each private cache so that no test
# converts the weights again.
MODELS = Path(os.environ["FACESEARCH_CACHE"]) / "models"


@pytest.fixture(scope="module")
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _private_cache(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "models").symlink_to(MODELS.resolve(), target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, umask_022, cli):
    """``(home, cache)``: fixtures/known enrolled by the CLI into a new gallery, with a cache of its own."""
    root = tmp_path_factory.mktemp("private")
    cache = _private_cache(root / "cache")
    home = root / "gallery"  # facesearch creates it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACESEARCH_CACHE", str(cache))
        res = cli("--home", home, "enroll", "-q", KNOWN)
    assert res.exit_code == 0, res.output
    return home, cache


@pytest.fixture(scope="module")
def cli(analysis):
    # Module-scoped twin of conftest's ``cli``, for the module-scoped gallery above.
    from click.testing import CliRunner

    from facesearch.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and of everything under it (links not followed), by relative path."""
    out = {".": stat.S_IMODE(root.lstat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _loose(root: Path) -> dict[str, str]:
    return {name: oct(mode) for name, mode in _modes(root).items()
            if mode != (0o700 if (root / name).is_dir() else 0o600)}


def test_new_gallery_and_face_cache_are_private(enrolled, analysis):
    from facesearch.gallery import Gallery

    home, cache = enrolled
    # An open gallery has SQLite's write-ahead log and shared-memory files beside the database.
    with Gallery(home, analysis=analysis) as g:
        assert g.names()
        db = home / "db" / "gallery.sqlite"
        assert Path(f"{db}-wal").exists() and Path(f"{db}-shm").exists()
        assert _loose(home) == {}
    files = {p.name for p in home.rglob("*") if p.is_file()}
    assert {"gallery.sqlite", "gallery.sqlite.lock", "faces.faiss", "identities.faiss", "manifest.json"} <= files
    entries = list((cache / "faces").rglob("*.npz"))
    assert len(entries) == 9  # one per enrolled photo
    assert _loose(cache / "faces") == {}
    assert stat.S_IMODE(cache.stat().st_mode) == 0o755  # made before: the cache's other folders stay as they are


def test_an_older_looser_gallery_is_tightened_when_opened(enrolled, analysis, tmp_path):
    from facesearch.gallery import Gallery

    home = tmp_path / "old"
    shutil.copytree(enrolled[0], home)
    for path in [home, *home.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    Gallery(home, analysis=analysis).close()
    assert _loose(home) == {".": "0o755"}  # home itself is the user's folder: left alone


def test_sqlite_runs_with_secure_delete(known_gallery):
    with known_gallery.store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def _chunks(vector: np.ndarray) -> list[bytes]:
    """Four 64-byte pieces of an embedding's float32 bytes, as the database stores them."""
    raw = np.asarray(vector, dtype="<f4").tobytes()
    return [raw[i:i + 64] for i in (0, 512, 1024, len(raw) - 64)]


def _holds(path: Path, vector: np.ndarray) -> bool:
    data = path.read_bytes() if path.exists() else b""
    return any(chunk in data for chunk in _chunks(vector))


def _vectors(g, name: str) -> np.ndarray:
    names, vectors = g.embeddings()
    return vectors[[n == name for n in names]]


def test_remove_deletes_the_persons_rows_and_cache_entries(enrolled, analysis, cli, tmp_path, monkeypatch):
    from facesearch.gallery import Gallery
    from facesearch.imaging.decode import image_sha256

    home, cache = tmp_path / "gallery", tmp_path / "cache"
    shutil.copytree(enrolled[0], home)
    shutil.copytree(enrolled[1], cache, symlinks=True)
    monkeypatch.setenv("FACESEARCH_CACHE", str(cache))
    db = home / "db" / "gallery.sqlite"
    with Gallery(home, analysis=analysis) as g:
        removed, kept = _vectors(g, "obama"), _vectors(g, "biden")
    assert len(removed) == 2 and len(kept) == 2
    assert all(_holds(db, v) for v in removed)  # the search finds what is there

    def entries(person: str) -> list[Path]:
        shas = [image_sha256(p) for p in sorted((KNOWN / person).iterdir())]
        return [p for p in (cache / "faces").rglob("*.npz") if p.stem in shas]

    assert len(entries("obama")) == 2 and len(entries("biden")) == 2

    res = cli("--home", home, "remove", "obama")
    assert res.exit_code == 0, res.output
    assert entries("obama") == []
    assert len(entries("biden")) == 2
    assert len(list((cache / "faces").rglob("*.npz"))) == 7
    for path in (db, Path(f"{db}-wal")):
        assert not any(_holds(path, v) for v in removed), path
    assert all(_holds(db, v) for v in kept)


def test_removal_leaves_nothing_in_the_write_ahead_log(enrolled, analysis, tmp_path):
    """Enrolled and removed by one open gallery: the log held the enrolment's pages."""
    from facesearch.gallery import Gallery

    home, faces = tmp_path / "gallery", tmp_path / "faces"
    shutil.copytree(enrolled[1] / "faces", faces)
    db = home / "db" / "gallery.sqlite"
    with Gallery(home, analysis=analysis, cache=faces) as g:
        g.enroll([KNOWN])
        removed = _vectors(g, "obama")
        assert any(_holds(db, v) or _holds(Path(f"{db}-wal"), v) for v in removed)
        g.remove("obama")
        for path in (db, Path(f"{db}-wal")):
            assert not any(_holds(path, v) for v in removed), path


def test_uploads_are_private_and_removal_deletes_every_copy(enrolled, analysis, tmp_path):
    """Photos received as bytes (the server's uploads) are kept privately; removing one face, then
    the person, leaves neither their vectors (database, log, index files) nor their photos nor
    their cached faces."""
    from facesearch.gallery import Gallery

    home, faces = tmp_path / "gallery", tmp_path / "faces"
    shutil.copytree(enrolled[1] / "faces", faces)
    photos = [(p.name, p.read_bytes()) for p in sorted((KNOWN / "obama").iterdir())]
    db = home / "db" / "gallery.sqlite"
    with Gallery(home, analysis=analysis, cache=faces) as g:
        g.enroll([KNOWN / "biden"], "biden")
        report = g.enroll_uploads(photos, "obama")
        assert len(report.enrolled) == 2
        assert _loose(home) == {}
        kept = sorted((home / "uploads").iterdir())
        assert len(kept) == 2
        first, second = g.faces("obama")
        vectors = _vectors(g, "obama")
        cached = len(list(faces.rglob("*.npz")))

        assert g.remove_face(first["id"]) == {"removed_face": first["id"], "identity": "obama", "faces_left": 1}
        assert len(list((home / "uploads").iterdir())) == 1
        assert len(list(faces.rglob("*.npz"))) == cached - 1
        gone = [v for v in vectors if not any(np.array_equal(v, w) for w in _vectors(g, "obama"))]
        assert len(gone) == 1

        g.remove("obama")
        assert not list((home / "uploads").iterdir())
        assert len(list(faces.rglob("*.npz"))) == cached - 2
        index_files = [p for p in (home / "index").rglob("*") if p.is_file()]
        for path in (db, Path(f"{db}-wal"), *index_files):
            assert not any(_holds(path, v) for v in vectors), path
        assert g.names() == ["biden"]


def test_the_first_write_makes_a_private_index_folder(tmp_path, umask_022, analysis):
    """The writer lock, the first thing a write takes, creates index/: 0700 from the start,
    not only once the gallery is opened again."""
    from facesearch.gallery import Gallery

    vectors = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    with Gallery(tmp_path / "g", analysis=analysis) as g:
        g.add_embeddings(["a", "b", "c"], vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        assert _loose(tmp_path / "g") == {}

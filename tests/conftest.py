"""Shared fixtures: real photos from ../shared/data, real weights, galleries in tmp folders."""
from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
KNOWN = DATA / "fixtures" / "known"
QUERIES = DATA / "fixtures" / "queries"
CELEB = DATA / "5celeb"

# Weights and per-photo faces are cached inside the checkout (git-ignored), so a second run of
# the suite, and every test after the first in one run, skips conversion and re-embedding.
os.environ.setdefault("FACESEARCH_CACHE", str(REPO / ".cache" / "facesearch"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Commands whose data folders default to $FACESEARCH_DATA (bench, the demo) find the shared data.
os.environ.setdefault("FACESEARCH_DATA", str(DATA))


def pytest_sessionstart(session):
    if not DATA.is_dir():
        raise pytest.UsageError(f"{DATA}: shared test data not found (expected ../shared/data beside the checkout)")
    _prepare_models()


def _prepare_models() -> None:
    """Convert the weights (a cold cache) in a child process, as a user's first command would.

    Converting imports TensorFlow, whose logging then holds on to the stderr pytest was capturing
    at that moment; gRPC's (Milvus Lite's) later writes to it, after pytest closed it, kill the
    run. Tests that need TensorFlow itself import it later, with the weights already converted.
    """
    import subprocess
    import sys

    code = ("from facesearch.imaging.decode import load_image; from facesearch.models.analysis import FaceAnalysis; "
            f"FaceAnalysis().get(load_image({str(QUERIES / 'obama1.jpg')!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise pytest.UsageError(f"preparing the models failed: {done.stderr.strip().splitlines()[-1:]}")


@pytest.fixture(scope="session")
def analysis():
    from facesearch.models.analysis import FaceAnalysis

    return FaceAnalysis()


@pytest.fixture(scope="session")
def known_gallery_template(tmp_path_factory, analysis):
    """A gallery with fixtures/known enrolled, built once; copy it with ``known_gallery``."""
    from facesearch.gallery import Gallery

    home = tmp_path_factory.mktemp("known-template")
    with Gallery(home, analysis=analysis) as g:
        report = g.enroll([KNOWN])
    assert not report.errors, report.errors
    return home


@pytest.fixture
def known_gallery(tmp_path, known_gallery_template, analysis):
    """A private copy of the fixtures/known gallery (tests may change it)."""
    from facesearch.gallery import Gallery

    home = tmp_path / "gallery"
    shutil.copytree(known_gallery_template, home)
    g = Gallery(home, analysis=analysis)
    yield g
    g.close()


@pytest.fixture
def cli(analysis):
    """Run the real CLI in-process: ``cli("--home", h, "query", ...)`` -> click Result."""
    from click.testing import CliRunner

    from facesearch.cli import main

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


def wait_ready(url: str, timeout: float = 300) -> None:
    """Until the server at ``url`` says its models are loaded (``/api/v1/health/ready`` answers 200)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health/ready", timeout=30) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}: not ready after {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def server(known_gallery):
    """``(base URL, gallery)`` of a ready ``facesearch`` server, on 127.0.0.1 and a free port, over a
    private copy of the fixtures/known gallery."""
    from facesearch.server.app import create_app
    from facesearch.server.serving import BackgroundServer

    with BackgroundServer(create_app(known_gallery)) as url:
        wait_ready(url)
        yield url, known_gallery


# -- storage backends: real engines started by the tests ------------------------------------------

@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A real PostgreSQL 16 + pgvector server (the pgserver wheel) in a temporary folder, listening on
    a Unix socket there; stopped at the end of the session."""
    import pgserver

    folder = tmp_path_factory.mktemp("pg")
    server = pgserver.get_server(folder, cleanup_mode="stop")  # stopped when this process exits
    yield folder
    del server


_databases = iter(range(1, 1_000_000))


def pg_admin(socket_dir: Path):
    """An AUTOCOMMIT SQLAlchemy engine on the server's ``postgres`` database, as its superuser."""
    from sqlalchemy import create_engine

    return create_engine(f"postgresql+psycopg://postgres@/postgres?host={socket_dir}", isolation_level="AUTOCOMMIT")


@pytest.fixture
def pg_url(pg_server):
    """The URL of a new, empty database on the test server (one per test)."""
    name = f"gallery_{next(_databases)}"
    engine = pg_admin(pg_server)
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return f"postgresql+psycopg://postgres@/{name}?host={pg_server}"


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """``HOST:PORT`` of a real Milvus gRPC server: Milvus Lite's own (``python -m milvus_lite server``),
    on 127.0.0.1 and a free port, its data in a temporary folder; stopped at the end of the session."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("milvus-server")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder / "data"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=open(folder / "server.log", "w"))
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the Milvus Lite server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


_collections = iter(range(1, 1_000_000))

#: embedded (SQLite + FAISS), PostgreSQL + pgvector, Milvus Lite in a file, and a Milvus server over TCP.
BACKENDS = ["embedded", "postgres", "milvus", "milvus-server"]


class Backend:
    """Where a test gallery keeps its data: ``embedded`` (SQLite + FAISS files), ``postgres``
    (PostgreSQL + pgvector) or ``milvus`` (SQLite metadata, vectors in a Milvus Lite file)."""

    def __init__(self, name: str, home: Path, db_url: str | None = None, vectors: str | None = None) -> None:
        self.name, self.home, self.db_url, self.vectors = name, home, db_url, vectors

    def args(self) -> list[str]:
        """The CLI's global options naming this gallery."""
        out = ["--home", str(self.home)]
        if self.db_url:
            out += ["--db-url", self.db_url]
        if self.vectors:
            out += ["--vectors", self.vectors]
        return out

    def open(self, analysis=None, **kwargs):
        from facesearch.gallery import Gallery

        return Gallery(self.home, db_url=self.db_url, vectors=self.vectors, analysis=analysis, **kwargs)

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """An empty gallery on each backend in turn."""
    if request.param == "postgres":
        return Backend("postgres", tmp_path / "home", db_url=request.getfixturevalue("pg_url"))
    if request.param == "milvus":
        return Backend("milvus", tmp_path / "home", vectors=str(tmp_path / "vectors.db"))
    if request.param == "milvus-server":
        address = request.getfixturevalue("milvus_server")
        return Backend("milvus-server", tmp_path / "home",
                       vectors=f"milvus://{address}?collection=gallery{next(_collections)}")
    return Backend("embedded", tmp_path / "home")

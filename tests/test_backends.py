"""Every storage backend behaves like the embedded one: SQLite + FAISS files, PostgreSQL + pgvector
and Milvus Lite, each a real engine started by the tests. Enroll, query every fixture, duplicates,
remove, rename, merge, remove one face, reindex, concurrent writers, a killed enrollment, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKENDS, CELEB, KNOWN, QUERIES, REPO, Backend, pg_admin


@pytest.fixture(scope="module")
def probe_faces(analysis):
    """Every face of every fixture photo (queries and enrolled ones), detected and embedded once."""
    from facesearch.imaging.decode import load_image

    photos = sorted(QUERIES.iterdir()) + sorted(KNOWN.rglob("*.*"))
    return [(p.name, analysis.get(load_image(p))) for p in photos]


def _answers(g, probe_faces) -> list:
    """What both matchers say about every fixture face: identity, similarity and candidates."""
    out = []
    for name, faces in probe_faces:
        for matcher in ("knn", "centroid"):
            for fm in g.match_faces(faces, matcher=matcher):
                m = fm.match
                out.append((name, matcher, m.identity, float(m.similarity),
                            [(c.identity, float(c.similarity)) for c in m.candidates]))
    return out


def _same(a: list, b: list) -> None:
    """Same identities and candidates in the same order; similarities equal up to float32 rounding."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[:3] == y[:3], (x, y)
        assert [c for c, _ in x[4]] == [c for c, _ in y[4]], (x, y)
        assert np.allclose([x[3]] + [s for _, s in x[4]], [y[3]] + [s for _, s in y[4]], atol=1e-5, equal_nan=True)


def _vector_ids(g) -> tuple[list[int], list[int]]:
    """The face ids and identity ids the gallery's vectors answer with, whatever holds them."""
    kind = type(g.vectors).__name__
    if g.vectors is None:
        index = g._load_index()
        out = []
        for layered in (index.faces, index.identities):
            base = set(layered.base.ids().tolist()) - set(layered.hidden.tolist())
            out.append(sorted(base | set(layered.delta.ids().tolist())))
        return out[0], out[1]
    if kind == "PgvectorStore":
        from facesearch.search.pgvector_index import FACE_VECTORS, IDENTITY_VECTORS
        from sqlalchemy import select

        with g.store.session() as s:
            return (sorted(s.scalars(select(FACE_VECTORS.c.face_id))),
                    sorted(s.scalars(select(IDENTITY_VECTORS.c.identity_id))))
    store = g.vectors.current()
    return tuple(sorted(int(r["id"]) for r in store.client.query(c.name, filter="id >= 0", output_fields=["id"]))
                 for c in (store.faces, store.identities))


def _consistent(g) -> None:
    """The vectors hold exactly the database's faces and one average per identity."""
    ids, owners, _ = g.store.embeddings()
    faces, identities = _vector_ids(g)
    assert faces == sorted(ids.tolist())
    assert identities == sorted(set(owners.tolist()))
    assert len(g.vectors.current().faces) == len(ids) if g.vectors is not None else True


def _kind(backend: Backend) -> str | None:
    return {"embedded": None, "postgres": "PgvectorStore", "milvus": "MilvusStore",
            "milvus-server": "MilvusStore"}[backend.name]


def test_enroll_and_query_every_fixture_answer_like_embedded(backend, cli, analysis, known_gallery, probe_faces):
    res = cli(*backend.args(), "enroll", "--json", KNOWN)
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["enrolled"]) == 9
    with backend.open(analysis) as g:
        assert (type(g.vectors).__name__ if g.vectors is not None else None) == _kind(backend)
        _consistent(g)
        _same(_answers(g, probe_faces), _answers(known_gallery, probe_faces))
        generation = g.generation()
    # Enrolling the same photos again stores nothing and changes nothing.
    res = cli(*backend.args(), "enroll", "--json", KNOWN)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["enrolled"] == [] and len(report["duplicates"]) == 9
    with backend.open(analysis) as g:
        assert g.generation() == generation
    # The CLI's query answers as the embedded gallery's does.
    photo = QUERIES / "obama_and_biden.jpg"
    here = json.loads(cli(*backend.args(), "query", "--json", photo).stdout)
    there = json.loads(cli("--home", known_gallery.home, "query", "--json", photo).stdout)
    assert here == there


def test_remove_rename_merge_remove_face_reindex_answer_like_embedded(backend, cli, analysis, known_gallery,
                                                                      probe_faces):
    embedded = known_gallery
    with backend.open(analysis) as g:
        assert not g.enroll([KNOWN]).errors
        steps = [
            ("remove", lambda x: x.remove("biden")),
            ("rename", lambda x: x.rename("kit_harington", "jon_snow")),
            ("merge", lambda x: x.rename("rose_leslie", "jon_snow")),
            ("remove_face", lambda x: x.remove_face(x.faces("obama")[0]["id"])),
            ("reindex", lambda x: x.reindex()),
        ]
        for name, step in steps:
            step(g)
            step(embedded)
            _consistent(g)
            assert g.identities() == embedded.identities(), name
            _same(_answers(g, probe_faces), _answers(embedded, probe_faces))
    # Another process (the CLI) opens it and agrees.
    listed = json.loads(cli(*backend.args(), "list", "--json").stdout)
    assert listed == embedded.identities()
    res = cli(*backend.args(), "reindex", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["faces"] == sum(r["faces"] for r in listed) == 6


def _copy_people(names: list[str], dest: Path) -> Path:
    import shutil

    dest.mkdir(parents=True)
    for name in names:
        shutil.copytree(CELEB / "train" / name, dest / name)
    return dest


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


# Not "milvus-server": Milvus Lite's gRPC server has answered pymilvus's keepalive pings with GOAWAY
# (too_many_pings) under this load, and the next connection then failed; a real Milvus server is
# the multi-writer engine, and Lite's server is tested with one writer at a time.
@pytest.mark.parametrize("backend", ["postgres", "milvus"], indirect=True)
def test_concurrent_enrollers_on_every_backend_all_succeed(backend, tmp_path):
    people = sorted(p.name for p in (CELEB / "train").iterdir())
    folders = [_copy_people([people[(w + i) % 5] for i in range(3)], tmp_path / f"w{w}") for w in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "facesearch", *backend.args(), "enroll", "-q", "--json", str(f)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in folders]
    results = [(p.wait(timeout=900), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    reports = [json.loads(out) for _, out, _ in results]
    enrolled = [e["path"] for rep in reports for e in rep["enrolled"]]
    used = sorted({p.name for f in folders for p in f.iterdir()})
    no_face = {Path(p).parent.name for rep in reports for p in rep["no_face"]}
    with backend.open() as g:
        stored = {r["name"]: r["images"] for r in g.identities()}
        for name in used:
            assert stored[name] == len(list((CELEB / "train" / name).iterdir())) - (name in no_face), name
        assert len(enrolled) == sum(stored.values())
        _consistent(g)


def _count_faces(backend: Backend) -> int:
    from sqlalchemy import create_engine, text

    url = backend.db_url or f"sqlite:///{backend.home / 'db' / 'gallery.sqlite'}"
    if not backend.db_url and not (backend.home / "db" / "gallery.sqlite").exists():
        return 0
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM faces")).scalar())
    except Exception:  # not created yet
        return 0
    finally:
        engine.dispose()


# Not "milvus-server" either, for the same reason: the enrolling process and this one's polling
# are two clients; it passed run alone, and failed to reconnect in a loaded CI run.
@pytest.mark.parametrize("backend", ["postgres", "milvus"], indirect=True)
def test_killed_enrollment_leaves_a_consistent_gallery_on_every_backend(backend, tmp_path):
    """SIGKILL an enrollment once it has committed some faces: the gallery opens, its vectors agree with
    its database, and a second enrollment completes it."""
    cold = tmp_path / "cold-cache"
    cold.mkdir()
    os.symlink(Path(os.environ["FACESEARCH_CACHE"]) / "models", cold / "models")
    proc = subprocess.Popen([sys.executable, "-m", "facesearch", *backend.args(), "enroll", "-q", str(CELEB / "train")],
                            env=_env(FACESEARCH_CACHE=str(cold)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    faces = 0
    while time.time() < deadline and proc.poll() is None and not faces:
        time.sleep(0.5)
        faces = _count_faces(backend)
    assert proc.poll() is None, f"enrollment ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert faces > 0
    with backend.open() as g:
        n = g.store.count_faces()
        assert 0 < n < 93
        _consistent(g)
        report = g.enroll([CELEB / "train"])
        assert len(report.duplicates) == n
        assert g.store.count_faces() == n + len(report.enrolled) == 93
        _consistent(g)


def test_a_second_postgres_writer_waits_and_says_so_once(pg_url, tmp_path, analysis):
    from facesearch.gallery.lock import AdvisoryLock

    backend = Backend("postgres", tmp_path / "home", db_url=pg_url)
    with backend.open(analysis) as g:
        g.enroll([KNOWN / "obama"], "obama")
        lock = AdvisoryLock(g.store.engine, g.store.where)
        with lock.held():
            proc = subprocess.Popen([sys.executable, "-m", "facesearch", *backend.args(), "rename", "obama", "barack"],
                                    env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(8)
            assert proc.poll() is None, proc.communicate()  # still waiting for us
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert err.count("waiting for another process writing this gallery") == 1
        assert "barack" in g.names()
        assert "@/gallery_" in err and "postgresql+psycopg://postgres" in err

        with lock.held():
            result = subprocess.run([sys.executable, "-m", "facesearch", *backend.args(), "--no-wait", "rename",
                                     "barack", "obama"], env=_env(), capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
        assert "another process is writing this gallery (and --no-wait was given)" in result.stderr
        assert "barack" in g.names()


# -- bad input ----------------------------------------------------------------------------------

def _one_line_error(res, *, names: str, reason: str, secret: str | None = None) -> None:
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert names in lines[0] and reason in lines[0], lines[0]
    assert "Traceback" not in res.output
    if secret:
        assert secret not in res.output


def test_unreachable_postgres_server(cli, tmp_path):
    url = "postgresql+psycopg://someone:s3cret@127.0.0.1:9/gallery?connect_timeout=3"
    res = cli("--home", tmp_path, "--db-url", url, "list")
    _one_line_error(res, names="postgresql+psycopg://someone:***@127.0.0.1:9/gallery", reason="connect",
                    secret="s3cret")


def _until_passwords_are_checked(url: str, timeout: float = 60) -> None:
    """The server reloads pg_hba.conf on its own time after pg_reload_conf(): until then it trusts anyone."""
    import psycopg
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            psycopg.connect(dbname="postgres", user=parts.username, password=parts.password,
                            host=parts.query["host"]).close()
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return
        time.sleep(0.2)
    raise TimeoutError("the server did not start checking passwords")


def test_wrong_postgres_password(cli, pg_server, pg_url, tmp_path):
    engine = pg_admin(pg_server)
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE ROLE guarded LOGIN PASSWORD 'right-one'")
    engine.dispose()
    hba = pg_server / "pg_hba.conf"
    hba.write_text("local all guarded scram-sha-256\n" + hba.read_text())
    with pg_admin(pg_server).connect() as connection:
        connection.exec_driver_sql("SELECT pg_reload_conf()")
    url = pg_url.replace("postgres@", "guarded:wrong-one@")
    _until_passwords_are_checked(url)
    res = cli("--home", tmp_path, "--db-url", url, "enroll", "--name", "obama", KNOWN / "obama")
    from facesearch.gallery.store import masked_url

    _one_line_error(res, names=masked_url(url), reason="password authentication failed",
                    secret="wrong-one")


def test_missing_pgvector_extension(cli, pg_server, pg_url, tmp_path):
    """A role that may create tables but not the pgvector extension: one line, and no table written."""
    from sqlalchemy import create_engine, inspect

    from sqlalchemy.engine import make_url

    database = make_url(pg_url).database
    engine = pg_admin(pg_server)
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE ROLE plain LOGIN")
        connection.exec_driver_sql(f"ALTER DATABASE {database} OWNER TO plain")
    engine.dispose()
    with create_engine(pg_url).begin() as connection:
        connection.exec_driver_sql("ALTER SCHEMA public OWNER TO plain")
    url = pg_url.replace("postgres@", "plain@")
    res = cli("--home", tmp_path, "--db-url", url, "enroll", "--name", "obama", KNOWN / "obama")
    from facesearch.gallery.store import masked_url

    _one_line_error(res, names=masked_url(url), reason='permission denied to create extension "vector"')
    engine = create_engine(pg_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_milvus_collection_of_another_dimension(cli, tmp_path):
    from pymilvus import DataType, MilvusClient

    path = tmp_path / "vectors.db"
    client = MilvusClient(str(path))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=128)
    client.create_collection("facesearch_faces", schema=schema)
    client.create_collection("facesearch_identities", schema=schema)
    client.close()
    res = cli("--home", tmp_path / "home", "--vectors", path, "enroll", "--name", "obama", KNOWN / "obama")
    _one_line_error(res, names=str(path), reason="(128-d) vectors, not")
    from facesearch.gallery import Gallery

    with Gallery(tmp_path / "home") as g:  # the database kept nothing
        assert g.is_empty()


def test_unusable_vectors_option(cli, tmp_path):
    """One line each, and nothing written: no gallery folder, no database file."""
    home = tmp_path / "home"
    res = cli("--home", home, "--vectors", tmp_path / "missing" / "v.db", "enroll", "--name", "obama", KNOWN / "obama")
    _one_line_error(res, names=str(tmp_path / "missing" / "v.db"), reason="folder does not exist")
    assert not home.exists()
    res = cli("--home", home, "--vectors", "milvus://someone:s3cret@127.0.0.1:9", "enroll", "--name", "obama",
              KNOWN / "obama")
    _one_line_error(res, names="milvus://someone:***@127.0.0.1:9", reason="cannot reach Milvus", secret="s3cret")
    assert not home.exists()
    res = cli("--home", home, "--vectors", "faiss://nowhere", "list")
    assert res.exit_code == 2 and "not a Milvus URL" in res.output
    assert not home.exists()


# -- moving a gallery between backends ------------------------------------------------------------

def test_migrate_to_postgres_to_milvus_and_back_keeps_everything(cli, known_gallery, pg_url, tmp_path, analysis,
                                                                 probe_faces):
    from facesearch.gallery import Gallery

    key = known_gallery.create_key("read", "phone")["key"]
    known_gallery.revoke_key(known_gallery.create_key("write", "old")["id"])
    expected = _answers(known_gallery, probe_faces)
    hops = [
        (["--home", known_gallery.home], ["--to", pg_url], Backend("postgres", known_gallery.home, db_url=pg_url)),
        (["--home", known_gallery.home, "--db-url", pg_url],
         ["--to", tmp_path / "milvus-home", "--to-vectors", tmp_path / "v.db"],
         Backend("milvus", tmp_path / "milvus-home", vectors=str(tmp_path / "v.db"))),
        (["--home", tmp_path / "milvus-home", "--vectors", tmp_path / "v.db"], ["--to", tmp_path / "back"],
         Backend("embedded", tmp_path / "back")),
    ]
    for source_args, to_args, dest in hops:
        res = cli(*source_args, "migrate", "--json", *to_args)
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        assert (report["identities"], report["photos"], report["faces"], report["api_keys"]) == (5, 9, 9, 2)
        assert report["same_answers"] and report["checked_faces"] == 9
        with dest.open(analysis) as g:
            assert g.identities() == known_gallery.identities()
            _consistent(g)
            _same(_answers(g, probe_faces), expected)
            assert g.check_key(key) == "read"
            assert [(k["name"], k["revoked_at"] is not None) for k in g.api_keys()] == [("phone", False), ("old", True)]
            assert [f["photo"] for f in g.faces()] == [f["photo"] for f in known_gallery.faces()]


def test_migrate_into_a_gallery_that_is_not_empty_writes_nothing(cli, known_gallery, pg_url, tmp_path):
    res = cli("--home", known_gallery.home, "migrate", "--to", pg_url)
    assert res.exit_code == 0, res.output
    from facesearch.gallery import Gallery

    with Gallery(tmp_path, db_url=pg_url) as g:
        generation = g.generation()
    res = cli("--home", known_gallery.home, "migrate", "--to", pg_url)
    from facesearch.gallery.store import masked_url

    _one_line_error(res, names=masked_url(pg_url), reason="already holds a gallery")
    with Gallery(tmp_path, db_url=pg_url) as g:
        assert g.generation() == generation and len(g.faces()) == 9
    res = cli("--home", known_gallery.home, "migrate", "--to", "postgresql+psycopg://me:pw@127.0.0.1:9/x")
    _one_line_error(res, names="postgresql+psycopg://me:***@127.0.0.1:9/x", reason="connect", secret=":pw@")


def test_milvus_collections_behind_their_database_are_caught_up(tmp_path, analysis):
    """A writer that died between its database commit and the collections' update leaves them behind:
    the next process to open the gallery brings them up to date from the changes the database
    recorded, and answers like an embedded gallery that saw the same writes."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40, analysis.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = [f"p{i % 6}" for i in range(40)]
    milvus = Backend("milvus", tmp_path / "m", vectors=str(tmp_path / "v.db"))
    embedded = Backend("embedded", tmp_path / "e")
    for backend in (milvus, embedded):
        with backend.open(analysis) as g:
            g.add_embeddings(names[:30], vectors[:30])
            # What the dead writer committed: straight to the database, the vectors not told.
            g.store.add_vectors(names[30:], vectors[30:])
            g.store.remove_identity("p1")
            g.store.rename_identity("p2", "p3")
    with milvus.open(analysis) as g, embedded.open(analysis) as e:
        _consistent(g)
        for matcher in ("knn", "centroid"):
            a = [(m.identity, [c.identity for c in m.candidates]) for m in g.matcher(matcher).identify(vectors)]
            b = [(m.identity, [c.identity for c in m.candidates]) for m in e.matcher(matcher).identify(vectors)]
            assert a == b


def test_a_postgres_gallery_from_before_pgvector_is_upgraded_and_answers_the_same(pg_url, tmp_path, analysis,
                                                                                  known_gallery, probe_faces):
    """Revision 0005 on a PostgreSQL gallery that already holds faces: its vectors are copied in."""
    from alembic import command
    from sqlalchemy import create_engine

    from facesearch.gallery import revisions

    backend = Backend("postgres", tmp_path / "home", db_url=pg_url)
    with backend.open(analysis) as g:
        g.enroll([KNOWN])
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        command.downgrade(revisions._config(connection), "0003")
        assert not connection.dialect.has_table(connection, "face_vectors")
    engine.dispose()
    with backend.open(analysis) as g:
        _consistent(g)
        _same(_answers(g, probe_faces), _answers(known_gallery, probe_faces))


@pytest.mark.parametrize("backend", ["postgres", "milvus"], indirect=True)
def test_the_server_on_every_backend_answers_like_embedded_under_concurrent_requests_and_a_writer(
        backend, analysis, cli, known_gallery):
    """The HTTP server's threads share one gallery: identify answers like the embedded gallery while
    four clients query and one enrolls and removes."""
    import urllib.request

    from facesearch.bench.http_load import load
    from facesearch.server.app import create_app
    from facesearch.server.serving import BackgroundServer

    from conftest import wait_ready

    photo = QUERIES / "obama_and_biden.jpg"
    expected = json.loads(cli("--home", known_gallery.home, "query", "--json", photo).stdout)["results"][0]["faces"]
    with backend.open(analysis) as g:
        g.enroll([KNOWN])
        with BackgroundServer(create_app(g)) as url:
            wait_ready(url)
            row = load(url, QUERIES / "obama1.jpg", clients=4, requests=2, enroll_photo=QUERIES / "alex_lacamoire1.jpg",
                       name="test")
            assert (row["ok"], row["errors"], row["write_errors"]) == (8, 0, 0), row["error_messages"]
            # The writer's enroll and removal moved the identity count by more than recalibration
            # waits for, then back by less: calibrate for today's count, as the embedded gallery is.
            g.calibrate()
            boundary = "facesearch-test"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{photo.name}\"\r\n"
                    f"Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(url + "/api/v1/identify", data=body, method="POST",
                                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            with urllib.request.urlopen(request, timeout=300) as response:
                answer = json.loads(response.read())
        assert answer["results"][0]["faces"] == expected
        _consistent(g)


# Not "milvus-server": several commands in a row against Milvus Lite's gRPC server failed to
# reconnect once in a loaded CI run ("cannot reach Milvus"; it passed run alone), see above.
@pytest.mark.parametrize("backend", ["embedded", "postgres", "milvus"], indirect=True)
def test_scan_name_query_and_undo_on_every_backend(backend, cli, analysis):
    """The people commands through SQLAlchemy on each backend: a named candidate person is found by
    ``query`` (its faces reach the backend's vectors), and undoing the naming takes them out again."""
    res = cli(*backend.args(), "scan", "-q", "--json", CELEB / "train" / "jerry_seinfeld", CELEB / "train" / "madonna")
    assert res.exit_code == 0, res.output
    with backend.open(analysis) as g:
        assert g.is_empty()                       # unknown faces are not gallery faces
        biggest = g.people.list()["clusters"][0]
        person = Path(g.people.show(biggest["id"])["faces"][0]["path"]).parent.name
        assert g.people.name(biggest["id"], person)["named"] == biggest["faces"]
        _consistent(g)
    probe = sorted((CELEB / "val" / person).glob("*.jpg"))[0]
    answer = json.loads(cli(*backend.args(), "query", "--json", probe).stdout)
    assert answer["results"][0]["faces"][0]["identity"] == person
    with backend.open(analysis) as g:
        assert g.people.undo()["kind"] == "name"
        assert g.is_empty() and len(g.people.show(biggest["id"])["faces"]) == biggest["faces"]
        _consistent(g)


# -- the backends side by side --------------------------------------------------------------------

@pytest.mark.slow  # starts a PostgreSQL server and Milvus Lite of its own
def test_bench_scale_compares_the_three_backends(cli, tmp_path):
    res = cli("bench", "scale", "--backend", "embedded,postgres,milvus", "--sizes", "300", "--kinds", "faces",
              "--queries", "10", "--query-budget", "1", "--live-faces", "100", "--work", tmp_path, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert [r["backend"] for r in rows] == ["embedded", "postgres", "milvus"]
    assert [r["index_kind"] for r in rows] == ["flat", "pgvector-hnsw", "milvus"]
    for r in rows:
        assert r["size"] == 300 and r["queries"] == 10
        assert r["recall_at_1"] == 1.0  # 300 faces: every backend finds each probe's original
        assert 0 < r["query_p50_ms"] <= r["query_p95_ms"]
        assert r["bulk_faces_per_s"] > 0 and r["live_faces_per_s"] > 0
        assert r["disk_mb"] > 0 and r["bytes_per_face"] > 2048  # at least the float32 vector itself
    assert rows[1]["disk"]["postgres_mb"] > 0 and rows[2]["disk"]["milvus_mb"] > 0
    assert rows[1]["ivfflat_build_s"] > 0 and rows[1]["hnsw_build_s"] > 0
    assert list(tmp_path.iterdir()) == []  # without --keep, nothing is left behind


def test_bench_scale_refuses_an_unknown_backend(cli):
    res = cli("bench", "scale", "--backend", "embedded,faiss", "--sizes", "300")
    assert res.exit_code == 2 and "unknown backend(s) faiss" in res.output


def test_a_read_only_postgres_connection_answers_queries_and_refuses_writes(cli, pg_url, tmp_path):
    """What a query server pointed at a read replica gets: a hot standby runs every transaction read-only
    (here, ``default_transaction_read_only`` on the session); queries answer as on the primary, a write
    fails in one line and changes nothing."""
    primary = ("--home", tmp_path / "a", "--db-url", pg_url)
    assert cli(*primary, "enroll", KNOWN).exit_code == 0
    replica = ("--home", tmp_path / "b", "--db-url", pg_url + "&options=-c%20default_transaction_read_only%3Don")
    for args in (primary, replica):  # the same answers from both
        res = cli(*args, "query", QUERIES / "obama1.jpg", "--json")
        assert res.exit_code == 0, res.output
    assert json.loads(cli(*replica, "query", QUERIES / "obama1.jpg", "--json").stdout) == \
        json.loads(cli(*primary, "query", QUERIES / "obama1.jpg", "--json").stdout)
    assert json.loads(cli(*replica, "list", "--json").stdout) == json.loads(cli(*primary, "list", "--json").stdout)
    res = cli(*replica, "remove", "obama")
    _one_line_error(res, names="postgresql+psycopg://postgres@", reason="read-only transaction")
    assert "obama" in {i["name"] for i in json.loads(cli(*primary, "list", "--json").stdout)}


def test_migrate_refuses_a_scanned_library_it_cannot_copy_unless_told(cli, known_gallery, tmp_path):
    """The scanned photo library is not copied yet: migrate says so in one line and creates nothing,
    and copies everything else when told to leave it behind (the source keeps it)."""
    import shutil

    home = tmp_path / "source"
    shutil.copytree(known_gallery.home, home)
    assert cli("--home", home, "scan", "-q", QUERIES / "two_people.jpg").exit_code == 0
    target = tmp_path / "copy.sqlite"
    res = cli("--home", home, "migrate", "--to", f"sqlite:///{target}")
    _one_line_error(res, names=str(home), reason="--without-people")
    assert not target.exists()
    res = cli("--home", home, "migrate", "--to", f"sqlite:///{target}", "--without-people", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["faces"] == 9


def test_a_postgres_bulk_load_builds_its_index_in_parallel_workers_and_finds_every_face(pg_url, tmp_path, analysis,
                                                                                        monkeypatch):
    """PostgreSQL plans no workers for a table whose vectors sit in TOAST, so the backend sets the
    table's parallel_workers before the build (here from the first byte, not 64 MB, to stay small);
    the vectors copied in by binary COPY come back bit for bit and each finds itself first."""
    from sqlalchemy import create_engine, text

    from facesearch.search import pgvector_index

    monkeypatch.setattr(pgvector_index, "PARALLEL_BUILD_BYTES", 0)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((300, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Backend("postgres", tmp_path / "home", db_url=pg_url).open(analysis) as g:
        with g.vectors.bulk_load():
            g.add_embeddings([f"p{i % 40}" for i in range(len(vectors))], vectors, update_index=False)
        _, found = g.search_faces(vectors[:20], 1)
        _, stored = g.embeddings()
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        options = connection.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'face_vectors'"))
        ids, copied = zip(*connection.execute(text("SELECT face_id, embedding::text FROM face_vectors "
                                                   "ORDER BY face_id")).all())
    engine.dispose()
    assert options == ["parallel_workers=2"]  # PostgreSQL's default max_parallel_maintenance_workers
    assert np.array_equal(stored, vectors)
    assert np.array_equal(np.array([json.loads(v) for v in copied], np.float32), vectors)
    assert np.asarray(found)[:, 0].tolist() == list(ids[:20])

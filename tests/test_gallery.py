"""The gallery's storage: duplicates, remove/rename/reindex, other processes, crashes, bad input."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conftest import CELEB, KNOWN, QUERIES, REPO


def _consistent(g) -> None:
    """The FAISS files agree with the database: same face ids, one centroid per identity."""
    from facesearch.search.faiss_index import GalleryIndex

    ids, owners, vectors = g.store.embeddings()
    idx = GalleryIndex.load(g.index_dir, model_id=g.model_id, mmap=False)
    assert idx is not None, "saved index is missing or unreadable"
    # A small gallery rewrites its files after every write, so they are current, not just catchable-up.
    assert idx.generation == g.generation()
    assert sorted(idx.faces.base.ids().tolist()) == sorted(ids.tolist())
    assert sorted(idx.identities.base.ids().tolist()) == sorted(set(owners.tolist()))
    assert len(g.identities()) == len(idx.identities)


def _live_ids(layered) -> list[int]:
    """The ids a layered index answers with: its base's minus the hidden ones, plus its delta's."""
    base = set(layered.base.ids().tolist()) - set(layered.hidden.tolist())
    return sorted(base | set(layered.delta.ids().tolist()))


def _reads_agree(g) -> None:
    """What a reader searches (files plus the changes since, in memory) matches the database."""
    ids, owners, _ = g.store.embeddings()
    index = g._load_index()
    assert _live_ids(index.faces) == sorted(ids.tolist())
    assert _live_ids(index.identities) == sorted(set(owners.tolist()))


def test_enroll_summary(known_gallery):
    names = [r["name"] for r in known_gallery.identities()]
    assert names == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    assert sum(r["faces"] for r in known_gallery.identities()) == 9
    _consistent(known_gallery)


def test_reenrolling_is_a_noop(cli, known_gallery):
    gen = known_gallery.store.generation()
    res = cli("--home", known_gallery.home, "enroll", "--json", KNOWN)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["enrolled"] == [] and len(report["duplicates"]) == 9
    assert known_gallery.store.generation() == gen
    # The same photo under another name is a duplicate too: it is reported with its owner.
    res = cli("--home", known_gallery.home, "enroll", "--json", "--name", "someone", KNOWN / "obama" / "obama.jpg")
    assert json.loads(res.stdout)["duplicates"] == [{"path": str(KNOWN / "obama" / "obama.jpg"), "identity": "obama"}]


def test_list_json_and_text(cli, known_gallery):
    res = cli("--home", known_gallery.home, "list", "--json")
    rows = json.loads(res.stdout)
    counts = {"alex_lacamoire": 1, "biden": 2, "kit_harington": 2, "obama": 2, "rose_leslie": 2}
    assert rows == [{"name": name, "faces": n, "images": n} for name, n in counts.items()]
    lines = cli("--home", known_gallery.home, "list").stdout.splitlines()
    table, threshold = lines[:len(counts) + 1], lines[len(counts) + 1:]
    assert [line.split() for line in table] == (
        [["identity", "faces", "photos"]] + [[name, str(n), str(n)] for name, n in counts.items()])
    # Then the threshold queries use and where it comes from (tests/test_calibration.py).
    assert threshold[0].startswith("threshold 0.") and "calibrated for FPIR 1% at 5 identities" in threshold[0]


def test_remove_rename_reindex_keep_index_and_db_in_agreement(cli, known_gallery):
    home = known_gallery.home
    assert cli("--home", home, "remove", "biden").exit_code == 0
    _consistent(known_gallery)
    res = cli("--home", home, "query", "--json", QUERIES / "two_people.jpg")
    ids = sorted(str(f["identity"]) for f in json.loads(res.stdout)["results"][0]["faces"])
    assert ids == ["None", "obama"]

    assert cli("--home", home, "rename", "kit_harington", "jon_snow").exit_code == 0
    _consistent(known_gallery)
    res = cli("--home", home, "query", "--json", QUERIES / "johnsnow_test1.jpg")
    assert json.loads(res.stdout)["results"][0]["faces"][0]["identity"] == "jon_snow"

    # Renaming onto an existing name merges the two identities.
    assert cli("--home", home, "rename", "rose_leslie", "jon_snow").exit_code == 0
    _consistent(known_gallery)
    assert {r["name"]: r["faces"] for r in known_gallery.identities()}["jon_snow"] == 4

    for f in (home / "index").iterdir():
        f.unlink()
    res = cli("--home", home, "reindex", "--json")
    assert json.loads(res.stdout)["faces"] == 7
    _consistent(known_gallery)

    res = cli("--home", home, "remove", "nobody")
    assert res.exit_code != 0 and "nobody" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_stale_or_torn_index_is_rebuilt(known_gallery):
    faces = known_gallery.home / "index" / "faces.faiss"
    torn = faces.read_bytes()[:100]
    faces.write_bytes(torn)
    from facesearch.gallery import Gallery

    with Gallery(known_gallery.home, analysis=known_gallery.analysis) as g:
        # The manifest still names the current generation, but the file is torn: load fails and the
        # reader builds the index in memory from the database, answering as before...
        assert g.query(QUERIES / "obama1.jpg").faces[0].match.identity == "obama"
        # ...without writing anything (a query never writes)...
        assert faces.read_bytes() == torn
        # ...and the next write repairs the files.
        g.rename("obama", "barack_obama")
        _consistent(g)


def test_second_process_gets_identical_answers(cli, known_gallery):
    photo = QUERIES / "obama_and_biden.jpg"
    here = json.loads(cli("--home", known_gallery.home, "query", "--json", photo).stdout)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "facesearch", "--home", str(known_gallery.home), "query",
                          "--json", str(photo)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == here


def test_other_database_url(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    res = cli("--home", tmp_path / "home", "--db-url", url, "enroll", "--json", "--name", "obama", KNOWN / "obama")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "elsewhere.sqlite").exists()
    assert not (tmp_path / "home" / "db" / "gallery.sqlite").exists()
    res = cli("--home", tmp_path / "home", "--db-url", url, "list", "--json")
    assert json.loads(res.stdout) == [{"name": "obama", "faces": 2, "images": 2}]


def _bad_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    good = (QUERIES / "obama1.jpg").read_bytes()
    files = {
        "text": folder / "notes.jpg",
        "empty": folder / "empty.jpg",
        "truncated": folder / "truncated.jpg",
        "tiny": folder / "tiny.png",
        "bomb": folder / "bomb.png",
    }
    files["text"].write_text("this is not a photo\n")
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good[: len(good) // 2])
    from PIL import Image

    Image.new("RGB", (1, 1)).save(files["tiny"])
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    files["bomb"].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                              + chunk(b"IEND", b""))
    files["missing"] = folder / "does-not-exist.jpg"
    return files


def _dump(db: Path) -> list[str]:
    """The database's whole content as SQL statements."""
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def test_bad_inputs_give_one_line_errors_and_keep_the_gallery(cli, known_gallery, tmp_path):
    home = known_gallery.home
    before = json.loads(cli("--home", home, "list", "--json").stdout)
    dump_before = _dump(home / "db" / "gallery.sqlite")
    for kind, path in _bad_inputs(tmp_path / "bad").items():
        for args in (["query", path], ["enroll", "--name", "obama", path]):
            res = cli("--home", home, *args)
            assert res.exit_code != 0, (kind, args, res.output)
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1, (kind, args, res.stderr)
            assert path.name in lines[0], (kind, lines[0])
    assert json.loads(cli("--home", home, "list", "--json").stdout) == before
    assert _dump(home / "db" / "gallery.sqlite") == dump_before  # not one row written
    _consistent(known_gallery)
    res = cli("--home", home, "query", "--json", QUERIES / "obama1.jpg")
    assert json.loads(res.stdout)["results"][0]["faces"][0]["identity"] == "obama"


def test_folder_enrollment_reports_bad_photos_and_carries_on(cli, tmp_path):
    root = tmp_path / "people"
    (root / "obama").mkdir(parents=True)
    (root / "obama" / "a.jpg").write_bytes((KNOWN / "obama" / "obama.jpg").read_bytes())
    (root / "obama" / "broken.jpg").write_text("not a photo")
    (root / "nobody").mkdir()
    (root / "nobody" / "landscape.png").write_bytes(_plain_photo())
    res = cli("--home", tmp_path / "g", "enroll", "--json", root)
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert [e["identity"] for e in report["enrolled"]] == ["obama"]
    assert [Path(e["path"]).name for e in report["errors"]] == ["broken.jpg"]
    assert [Path(p).name for p in report["no_face"]] == ["landscape.png"]
    assert "broken.jpg" in res.stderr


def _plain_photo() -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((120, 160, 3)) * 40 + 100).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_several_faces_in_an_enrollment_photo_keeps_the_largest(cli, tmp_path):
    photo = QUERIES / "obama_and_biden.jpg"
    res = cli("--home", tmp_path, "enroll", "--json", "--name", "obama", photo)
    report = json.loads(res.stdout)
    assert report["multiple_faces"] == [{"path": str(photo), "faces": 3}]
    assert report["enrolled"] == [{"path": str(photo), "identity": "obama"}]
    # Asked about the same photo, the largest face is the enrolled one itself; the others are strangers.
    faces = json.loads(cli("--home", tmp_path, "query", "--json", photo).stdout)["results"][0]["faces"]
    largest = max(faces, key=lambda f: f["box"][2] * f["box"][3])
    assert largest["identity"] == "obama" and largest["similarity"] > 0.99
    assert [f["identity"] for f in faces if f is not largest] == [None, None]


def test_killed_enrollment_leaves_a_consistent_gallery(tmp_path):
    """SIGKILL an enrollment mid-way: the gallery opens, agrees with itself, and resumes."""
    home = tmp_path / "g"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACESEARCH_CACHE": str(tmp_path / "cold-cache")}
    # The cold cache keeps models where they are but forces real embedding work in the child.
    models = Path(os.environ["FACESEARCH_CACHE"]) / "models"
    (tmp_path / "cold-cache").mkdir()
    os.symlink(models, tmp_path / "cold-cache" / "models")
    proc = subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(home), "enroll", "-q",
                             str(CELEB / "train")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = home / "db" / "gallery.sqlite"
    deadline = time.time() + 300
    faces = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as con:
                    faces = con.execute("select count(*) from faces").fetchone()[0]
            except sqlite3.Error:
                continue
            if faces:
                break
    assert proc.poll() is None, f"enrollment ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert faces > 0

    from facesearch.gallery import Gallery

    with Gallery(home) as g:
        n = g.store.count_faces()
        # 93 photos, a face found in each (the small Elton John photo's by the bordered second look).
        assert 0 < n < 93
        _reads_agree(g)  # whatever the kill left on disk, a reader sees exactly what was committed
        report = g.enroll([CELEB / "train"])
        assert len(report.duplicates) == n
        assert g.store.count_faces() == n + len(report.enrolled) == 93
        _consistent(g)


def test_enroll_min_face_size(cli, tmp_path):
    photo = QUERIES / "obama1.jpg"
    res = cli("--home", tmp_path, "enroll", "--name", "obama", "--min-face-size", 4000, "--json", photo)
    assert res.exit_code == 0, res.output  # reported, not an error (as any photo without a face)
    report = json.loads(res.stdout)
    assert report["enrolled"] == [] and len(report["no_face"]) == 1  # larger than the photo: nothing found
    res = cli("--home", tmp_path, "enroll", "--name", "obama", "--min-face-size", 40, "--json", photo)
    assert res.exit_code == 0, res.output
    assert [e["identity"] for e in json.loads(res.stdout)["enrolled"]] == ["obama"]


def test_new_galleries_embed_with_flip_and_plain_galleries_stay_plain(cli, tmp_path):
    from facesearch.errors import GalleryError
    from facesearch.gallery import Gallery
    from facesearch.models.analysis import FLIP_SUFFIX, FaceAnalysis
    from facesearch.models.weights import MODEL_ID

    photo = KNOWN / "obama" / "obama.jpg"
    flipped, plain = tmp_path / "flipped", tmp_path / "plain"
    res = cli("--home", flipped, "enroll", "-q", "--name", "obama", photo)
    assert res.exit_code == 0, res.output
    res = cli("--home", plain, "enroll", "-q", "--no-flip", "--name", "obama", photo)
    assert res.exit_code == 0, res.output
    assert json.loads(cli("--home", flipped, "info", "--json").stdout)["model"] == MODEL_ID + FLIP_SUFFIX
    assert json.loads(cli("--home", plain, "info", "--json").stdout)["model"] == MODEL_ID
    # Opened without saying, each gallery embeds its probes as its faces were embedded: the
    # enrolled photo itself comes back with similarity 1 from both.
    for home, flip in ((flipped, True), (plain, False)):
        with Gallery(home) as g:
            assert g.analysis.flip is flip and g.own_analysis(FaceAnalysis(g.analysis.detector)).flip is flip
            face = g.query(photo).faces[0]  # the largest
            assert face.match.identity == "obama" and face.match.similarity > 0.999
    with Gallery(flipped) as g, Gallery(plain) as p:
        stored_flip, stored_plain = g.store.embeddings()[2][0], p.store.embeddings()[2][0]
        assert 0.9 < float(stored_flip @ stored_plain) < 0.9999  # the same face, embedded two ways
    # Insisting on the other way is refused in one line, and both galleries are untouched.
    res = cli("--home", flipped, "enroll", "-q", "--no-flip", "--name", "biden", KNOWN / "biden")
    assert res.exit_code == 1 and f"built with {MODEL_ID + FLIP_SUFFIX}" in res.output
    assert len(res.output.strip().splitlines()) == 1
    try:
        Gallery(plain, analysis=FaceAnalysis(flip=True))
    except GalleryError as exc:
        assert f"built with {MODEL_ID} (512-d), not {MODEL_ID + FLIP_SUFFIX}" in str(exc)
    else:
        raise AssertionError("a plain gallery opened with flip=True")
    for home in (flipped, plain):
        assert [r["name"] for r in json.loads(cli("--home", home, "list", "--json").stdout)] == ["obama"]

"""Scanning a photo library and its candidate people (``facesearch scan``, ``facesearch people``):
real photos, real models, real SQLite galleries."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from conftest import CELEB, KNOWN, QUERIES


class CountingAnalysis:
    """The real analysis, counting the photos it is asked to detect and embed."""

    def __init__(self, analysis):
        self.inner = analysis
        self.photos = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_batch(self, images):
        self.photos += len(images)
        return self.inner.get_batch(images)


def _person(path: str) -> str:
    return Path(path).parent.name


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "db" / "gallery.sqlite")


def _scanned_faces(home: Path) -> int:
    with _db(home) as db:
        return db.execute("SELECT COUNT(*) FROM scanned_faces").fetchone()[0]


@pytest.fixture(scope="module")
def celeb_template(tmp_path_factory, analysis):
    """5celeb train and val scanned together into an empty gallery, once; copy with ``celeb``."""
    from facesearch.gallery import Gallery

    home = tmp_path_factory.mktemp("celeb-scan")
    with Gallery(home, analysis=analysis) as g:
        report = g.scan([CELEB], recursive=True)
    assert not report.errors, report.errors
    return home


@pytest.fixture
def celeb(tmp_path, celeb_template, analysis):
    from facesearch.gallery import Gallery

    home = tmp_path / "celeb"
    shutil.copytree(celeb_template, home)
    g = Gallery(home, analysis=analysis)
    yield g
    g.close()


def _clusters(g) -> dict[int, list[dict]]:
    return {c["id"]: g.people.show(c["id"])["faces"] for c in g.people.list()["clusters"]}


def _no_cluster_holds_two_faces_of_one_photo(home: Path) -> None:
    with _db(home) as db:
        clash = db.execute("SELECT cluster_id, photo_id, COUNT(*) FROM scanned_faces WHERE state = 'unknown' AND "
                           "cluster_id IS NOT NULL GROUP BY cluster_id, photo_id HAVING COUNT(*) > 1").fetchall()
    assert clash == []


def test_scan_keeps_every_face_and_identifies_the_enrolled(known_gallery):
    report = known_gallery.scan([QUERIES])
    assert not report.errors
    found = dict(report.scanned)
    assert found[str(QUERIES / "multiface.jpg")] == 6      # every face, not the largest
    who = Counter((Path(p).name, n) for p, n, _ in report.identified)
    assert who[("two_people.jpg", "obama")] == 1 and who[("two_people.jpg", "biden")] == 1
    assert not any(Path(p).name == "multiface.jpg" for p, _, _ in report.identified)
    assert report.unknown >= 6
    photos = {Path(p["path"]).name: p["faces"] for p in known_gallery.people.photos("obama")["photos"]}
    assert {"obama1.jpg", "two_people.jpg", "obama_and_biden.jpg"} <= set(photos)
    assert all(f["state"] == "identified" and len(f["box"]) == 4 for f in photos["obama1.jpg"])
    # Unknown faces answer no query and join no identity: the gallery still holds its 9 enrolled faces.
    assert known_gallery.face_count() == 9


def test_a_rescan_neither_decodes_nor_detects(tmp_path, analysis):
    from facesearch.gallery import Gallery

    counting = CountingAnalysis(analysis)
    with Gallery(tmp_path / "g", analysis=counting, cache=False) as g:
        first = g.scan([KNOWN], recursive=True)
        assert counting.photos == 9 and len(first.scanned) == 9
        again = g.scan([KNOWN, KNOWN / "obama"], recursive=True)
    assert counting.photos == 9            # no photo detected or embedded again
    assert again.scanned == [] and len(again.already_scanned) == 9   # a photo named twice counts once
    assert again.clusters["attached"] == again.clusters["new_clusters"] == 0          # nothing re-clustered
    assert again.clusters["clusters"] == first.clusters["clusters"]


def test_a_library_that_doubles_is_clustered_again_at_its_new_size(tmp_path, analysis):
    """The clustering thresholds follow the library's size, so a scan that doubles it re-clusters
    every unknown face; a scan that adds less only attaches and clusters the newcomers."""
    from facesearch.gallery import Gallery

    people = sorted((CELEB / "train").iterdir())
    with Gallery(tmp_path / "g", analysis=analysis) as g:
        g.scan([people[0]])                                   # first scan: a full clustering
        g.scan([people[1], people[2]])                        # the library more than doubles
        g.scan([CELEB / "val" / people[0].name])              # a few more faces: incremental
        with _db(g.home) as db:
            kinds = [json.loads(row[0])["summary"] for row in db.execute(
                "SELECT payload FROM people_actions WHERE kind IN ('cluster', 'recluster') ORDER BY id")]
    assert [k.split(":")[0] for k in kinds] == ["re-clustered (first clustering)", "re-clustered (the library has doubled)",
                                                "clustered"], kinds


def test_five_celebrities_scanned_unlabelled_become_five_pure_people(celeb):
    clusters = _clusters(celeb)
    largest = sorted(clusters.values(), key=len, reverse=True)[:5]
    majority = [Counter(_person(f["path"]) for f in faces).most_common(1)[0] for faces in largest]
    assert {name for name, _ in majority} == {"ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"}
    for (name, count), faces in zip(majority, largest):
        assert count / len(faces) >= 0.9, (name, count, len(faces))
    _no_cluster_holds_two_faces_of_one_photo(celeb.home)


def test_naming_the_five_makes_query_identify_the_val_photos(celeb):
    clusters = _clusters(celeb)
    named = set()
    for cluster, faces in sorted(clusters.items(), key=lambda kv: -len(kv[1])):
        name = Counter(_person(f["path"]) for f in faces).most_common(1)[0][0]
        if name not in named:
            celeb.people.name(cluster, name)
            named.add(name)
    val = sorted(p for p in (CELEB / "val").rglob("*.jpg"))

    def right() -> int:
        return sum(bool(faces) and faces[0].match.identity == p.parent.name
                   for p in val for faces in [celeb.query(p).faces])

    assert right() >= len(val) - 2
    # The smaller candidates the gallery then suggests are parts of the named people: accepting
    # every suggestion (no label looked at) merges them rightly, and val is named as by enrollment.
    suggested = [c for c in celeb.people.list()["clusters"] if c["suggestion"]]
    assert suggested
    for c in suggested:
        majority = Counter(_person(f["path"]) for f in clusters[c["id"]]).most_common(1)[0][0]
        assert c["suggestion"]["name"] == majority
        celeb.people.name(c["id"], c["suggestion"]["name"])
    assert right() == len(val)
    # Waiting faces identified by the naming are right, as a later scan's would be.
    identified = [(who, p["path"]) for who in named for p in celeb.people.photos(who)["photos"]
                  for f in p["faces"] if f["state"] == "identified"]
    assert identified and all(_person(path) == who for who, path in identified)


def test_same_photo_faces_are_never_one_person(celeb):
    from facesearch.search.face_clusters import separate

    with _db(celeb.home) as db:
        rows = db.execute("SELECT id, embedding FROM scanned_faces ORDER BY id LIMIT 20").fetchall()
    vectors = np.stack([np.frombuffer(e, "<f4") for _, e in rows])
    labels = np.zeros(len(rows), np.int64)              # all one cluster ...
    photos = np.array([0, 0, 0] + list(range(1, len(rows) - 2)), np.int64)  # ... three faces from one photo
    kept = separate(labels, vectors, photos, cannot_link=[(5, 6)])
    assert (kept[:3] >= 0).sum() == 1 and (kept[5:7] >= 0).sum() == 1
    assert (kept >= 0).sum() == len(rows) - 3


def test_name_query_and_later_scans_identify_them(tmp_path, analysis, cli):
    home = tmp_path / "g"
    res = cli("--home", home, "scan", "--json", "-q", CELEB / "train" / "jerry_seinfeld", CELEB / "train" / "madonna")
    assert res.exit_code == 0, res.output
    listing = json.loads(cli("--home", home, "people", "list", "--json").output)
    biggest = listing["clusters"][0]
    shown = json.loads(cli("--home", home, "people", "show", biggest["id"], "--json").output)
    person = Counter(_person(f["path"]) for f in shown["faces"]).most_common(1)[0][0]
    res = cli("--home", home, "people", "name", biggest["id"], person, "--json")
    assert json.loads(res.output)["named"] == biggest["faces"]
    val = sorted((CELEB / "val" / person).glob("*.jpg"))
    answers = json.loads(cli("--home", home, "query", "--json", *val).output)["results"]
    assert sum(r["faces"][0]["identity"] == person for r in answers) >= len(val) - 1
    report = json.loads(cli("--home", home, "scan", "--json", "-q", CELEB / "val" / person).output)
    assert len(report["identified"]) >= len(val) - 1 and {i["identity"] for i in report["identified"]} == {person}
    photos = json.loads(cli("--home", home, "people", "photos", person, "--json").output)["photos"]
    assert len(photos) == biggest["faces"] + len(report["identified"])


def test_split_and_not_are_kept_after_a_recluster_and_each_undoes(celeb):
    people = celeb.people
    cluster, faces = max(_clusters(celeb).items(), key=lambda kv: len(kv[1]))
    ids = [f["face"] for f in faces]
    split = people.split(cluster, ids[:2])
    assert {f["face"] for f in people.show(split["new_cluster"])["faces"]} == set(ids[:2])
    people.recluster()
    after = {f["face"]: c for c, fs in _clusters(celeb).items() for f in fs}
    for face in ids[:2]:
        assert after.get(face) is None or all(after.get(other) != after[face] for other in ids[2:])

    # Undo the split: the faces go back and the constraint goes.
    assert people.undo()["kind"] == "split"
    people.recluster()
    after = {f["face"]: c for c, fs in _clusters(celeb).items() for f in fs}
    assert after[ids[0]] == after[ids[2]]

    # Name the cluster, then say one of its faces is not that person.
    cluster = after[ids[2]]
    named = people.name(cluster, "someone")
    enrolled = celeb.face_count()
    assert enrolled == named["named"]
    rejected = people.reject(ids[0], "someone")
    assert rejected["was"] == "named" and celeb.face_count() == enrolled - 1
    assert all(f["face"] != ids[0] for p in people.photos("someone")["photos"] for f in p["faces"])
    # Undoing the naming puts its faces back as unknown; the rejected face then joins the
    # cluster again, but naming it "someone" once more leaves that face out.
    assert people.undo()["kind"] == "not" and celeb.face_count() == enrolled
    people.reject(ids[0], "someone")
    assert people.undo()["kind"] == "not"
    assert people.undo()["kind"] == "name" and celeb.is_empty()
    people.recluster()
    cluster = {f["face"]: c for c, fs in _clusters(celeb).items() for f in fs}[ids[2]]
    people.name(cluster, "someone")
    people.reject(ids[0], "someone")
    people.update_clusters()
    back = {f["face"]: c for c, fs in _clusters(celeb).items() for f in fs}.get(ids[0])
    if back is not None:
        again = people.name(back, "someone")
        assert ids[0] in again["left_out"]
    assert all(f["face"] != ids[0] for p in people.photos("someone")["photos"] for f in p["faces"])
    history = people.history()
    assert [a["kind"] for a in history][-4:] == ["not", "not", "name", "split"]
    assert [a["undone"] for a in history][-4:] == [True, True, True, True]


def test_undo_with_nothing_to_undo_and_bad_input_are_one_line(tmp_path, cli):
    home = tmp_path / "g"
    broken = tmp_path / "photos"
    broken.mkdir()
    (broken / "broken.jpg").write_text("not a photo")
    shutil.copy(QUERIES / "obama1.jpg", broken / "obama1.jpg")
    res = cli("--home", home, "scan", "-q", broken, tmp_path / "missing")
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and any(e.endswith("missing: no such file or folder") for e in errors)
    assert any(str(broken / "broken.jpg") in e for e in errors)
    assert "Scanned 1 photo(s)" in res.output       # the good photo was kept
    for args, expected in [(("people", "undo"), "nothing to undo"),
                           (("people", "name", "999", "x"), "no candidate person 999"),
                           (("people", "not", "999", "x"), "no scanned face with id 999"),
                           (("people", "split", "999", "1"), "no candidate person 999"),
                           (("people", "photos", "nobody"), "no identity named 'nobody'")]:
        res = cli("--home", home, *args)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error:") and expected in lines[0], \
            res.output
    res = cli("--home", home, "scan", "-q", KNOWN)
    assert res.exit_code == 1 and "folder holds no photos (--recursive looks in sub-folders)" in res.output


def test_sheet_is_private_and_removal_removes_the_scanned_faces(celeb, tmp_path, cli):
    scanned = _scanned_faces(celeb.home)
    res = cli("--home", celeb.home, "people", "list", "--sheet", tmp_path / "sheet.png", "--json")
    data = json.loads(res.output)
    assert data["sheet"] and stat.S_IMODE(os.stat(tmp_path / "sheet.png").st_mode) == 0o600
    from PIL import Image

    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.height >= 96 * len(data["clusters"][:50])
    cluster = data["clusters"][0]
    given = cluster["faces"] + len(celeb.people.name(cluster["id"], "x")["identified"])
    with _db(celeb.home) as db:
        assert db.execute("SELECT COUNT(*) FROM scanned_faces WHERE identity_id IS NOT NULL").fetchone()[0] == given
    celeb.remove("x")
    with _db(celeb.home) as db:
        assert db.execute("SELECT COUNT(*) FROM scanned_faces WHERE identity_id IS NOT NULL").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0
        total = db.execute("SELECT COUNT(*) FROM scanned_faces").fetchone()[0]
    assert total == scanned - given


def test_the_people_endpoints_answer_what_the_cli_prints(celeb, cli):
    from conftest import wait_ready
    from facesearch.server.app import create_app
    from facesearch.server.serving import BackgroundServer
    from test_server import call, one_line_error

    with BackgroundServer(create_app(celeb)) as url:
        wait_ready(url)
        base = url + "/api/v1/people"
        got, listing = call("GET", base + "?sample=4")
        assert got == 200 and listing == json.loads(cli("--home", celeb.home, "people", "list", "--sample", "4",
                                                        "--json").output)
        first = listing["clusters"][0]
        got, shown = call("GET", base + f"/clusters/{first['id']}")
        assert got == 200 and len(shown["faces"]) == first["faces"]
        got, jpeg = call("GET", base + f"/faces/{first['sample'][0]}/thumbnail?size=64")
        assert got == 200 and jpeg[:3] == b"\xff\xd8\xff"
        faces = [f["face"] for f in shown["faces"]]
        got, split = call("POST", base + f"/clusters/{first['id']}/split", body={"faces": faces[:1]})
        assert got == 200 and split["faces"] == faces[:1]
        got, named = call("POST", base + f"/clusters/{first['id']}/name", body={"name": "star"})
        assert got == 200 and named["named"] == first["faces"] - 1 and named["created"]
        got, photos = call("GET", base + "/named/star/photos")
        assert got == 200 and len(photos["photos"]) == named["named"] + len(named["identified"])
        got, rejected = call("POST", base + f"/faces/{faces[1]}/not", body={"name": "star"})
        assert got == 200 and rejected["was"] == "named"
        got, history = call("GET", base + "/history")
        assert [a["kind"] for a in history] == ["not", "name", "split"]
        for kind in ("not", "name", "split"):
            got, undone = call("POST", base + "/undo")
            assert got == 200 and undone["kind"] == kind
        assert celeb.is_empty()
        got, again = call("POST", base + "/recluster")
        assert got == 200 and again["clusters"] == len(listing["clusters"])
        for method, path, body in (("GET", "/clusters/9999", None), ("POST", "/clusters/9999/name", {"name": "x"}),
                                   ("POST", "/faces/99999/not", {"name": "star"}), ("GET", "/named/nobody/photos", None),
                                   ("POST", "/undo", None)):
            got, answer = call(method, base + path, body=body)
            assert got == 404 and one_line_error(answer), (path, answer)
        got, answer = call("POST", base + f"/clusters/{first['id']}/name", body={"name": ""})
        assert got == 422


@pytest.mark.slow
def test_a_killed_scan_leaves_a_consistent_library_that_a_rescan_completes(tmp_path):
    """SIGKILL a scan once it has committed some photos (a cold face cache keeps it busy): the gallery
    opens, every committed photo has its faces, and scanning again finishes the rest."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO
    from facesearch.gallery import Gallery

    cold = tmp_path / "cold-cache"
    cold.mkdir()
    os.symlink(Path(os.environ["FACESEARCH_CACHE"]) / "models", cold / "models")
    home = tmp_path / "g"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACESEARCH_CACHE": str(cold)}
    proc = subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(home), "scan", "-q", "-r",
                             str(CELEB / "train")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, photos = time.time() + 600, 0
    while time.time() < deadline and proc.poll() is None and not photos:
        time.sleep(0.5)
        if (home / "db" / "gallery.sqlite").exists():
            try:
                with _db(home) as db:
                    photos = db.execute("SELECT COUNT(*) FROM scanned_photos").fetchone()[0]
            except sqlite3.OperationalError:  # tables not created yet
                pass
    assert proc.poll() is None, f"the scan ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with _db(home) as db:
        done = db.execute("SELECT COUNT(*) FROM scanned_photos").fetchone()[0]
        orphans = db.execute("SELECT COUNT(*) FROM scanned_photos p WHERE NOT EXISTS "
                             "(SELECT 1 FROM scanned_faces f WHERE f.photo_id = p.id)").fetchone()[0]
    assert 0 < done < 93 and orphans <= 1      # one 5celeb train photo has no face
    with Gallery(home) as g:                   # the warm face cache: the rest is quick
        report = g.scan([CELEB / "train"], recursive=True)
        assert len(report.already_scanned) == done and len(report.scanned) == 93 - done
        assert g.people.list()["photos"] == 93
    _no_cluster_holds_two_faces_of_one_photo(home)


def test_every_people_command_through_the_cli(celeb, cli):
    home = celeb.home

    def run(*args):
        res = cli("--home", home, "people", *args, "--json")
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    first = run("list")["clusters"][0]
    faces = [f["face"] for f in run("show", first["id"])["faces"]]
    split = run("split", first["id"], faces[0])
    assert split["faces"] == faces[:1] and split["new_cluster"] != first["id"]
    named = run("name", first["id"], "star")
    assert named["named"] == first["faces"] - 1
    rejected = run("not", faces[1], "star")
    assert {k: v for k, v in rejected.items() if k != "action"} == {"face": faces[1], "name": "star", "was": "named"}
    assert [a["kind"] for a in run("history")["actions"]] == ["not", "name", "split"]
    assert run("undo")["kind"] == "not"
    assert run("recluster")["clusters"] >= 1
    text = cli("--home", home, "people", "history").output
    assert "face" in text and "(undone)" in text


def test_merging_or_emptying_a_named_person_keeps_their_scanned_faces_consistent(celeb):
    people = celeb.people
    scanned = _scanned_faces(celeb.home)
    clusters = sorted(_clusters(celeb).items(), key=lambda kv: -len(kv[1]))
    (first, faces_a), (second, faces_b) = clusters[0], clusters[1]
    extra = len(people.name(first, "a")["identified"]) + len(people.name(second, "b")["identified"])
    people.reject(faces_b[0]["face"], "b")
    celeb.rename("b", "a")                       # a merge: b's scanned faces and feedback follow
    given = sum(len(p["faces"]) for p in people.photos("a")["photos"])
    assert given == len(faces_a) + len(faces_b) - 1 + extra
    people.update_clusters()                     # the rejected face waits, still "not a"
    with _db(celeb.home) as db:
        assert db.execute("SELECT COUNT(*) FROM scanned_faces WHERE state != 'unknown' AND identity_id IS NULL"
                          ).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM people_constraints c JOIN identities i ON i.id = c.identity_id "
                          "WHERE i.name = 'a'").fetchone()[0] == 1
    for record in celeb.faces("a"):              # removing every face one by one empties "a"
        celeb.remove_face(record["id"])
    with _db(celeb.home) as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM scanned_faces GROUP BY state").fetchall())
    # The named faces went with their gallery copies; nothing is left pointing at a gone identity.
    assert set(states) == {"unknown"} and states["unknown"] == scanned - len(faces_a) - len(faces_b) + 1


def test_bench_people_on_5celeb_through_the_cli(cli):
    res = cli("bench", "people", "--cache", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["photos"] == 118 and d["errors"] == 0
    assert d["rescan_s"] < d["scan_s"]            # with the face cache on, the first scan decodes nothing either
    assert all(c["purity"] >= 0.9 for c in d["clusters"])
    assert d["suggested_wrong"] == 0 and d["suggested_accuracy"] == d["enroll_accuracy"] == 1.0
    res = cli("bench", "people", "--dataset", CELEB, "--probe", "nope")
    assert res.exit_code == 2 and "no nope/ folder" in res.output


def test_scanning_uploads_over_http(known_gallery):
    from conftest import wait_ready
    from facesearch.server.app import create_app
    from facesearch.server.serving import BackgroundServer
    from test_server import call, one_line_error

    uploads = known_gallery.home / "uploads"
    with BackgroundServer(create_app(known_gallery)) as url:
        wait_ready(url)
        got, answer = call("POST", url + "/api/v1/people/scan",
                           photos=[QUERIES / "multiface.jpg", ("notes.jpg", b"not a photo")])
        assert got in (415, 422) and "notes.jpg" in one_line_error(answer)
        assert not uploads.exists() or not list(uploads.iterdir())
        assert known_gallery.people.list()["photos"] == 0
        got, report = call("POST", url + "/api/v1/people/scan", photos=[QUERIES / "multiface.jpg", QUERIES / "obama1.jpg"])
        assert got == 200, report
        assert report["scanned"] == [{"path": "multiface.jpg", "faces": 6}, {"path": "obama1.jpg", "faces": 1}]
        assert [(i["path"], i["identity"]) for i in report["identified"]] == [("obama1.jpg", "obama")]
        assert len(list(uploads.iterdir())) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600
                                                         for p in uploads.iterdir())
        got, again = call("POST", url + "/api/v1/people/scan", photos=[QUERIES / "obama1.jpg"])
        assert got == 200 and again["already_scanned"] == ["obama1.jpg"] and again["scanned"] == []
        face = known_gallery.people.photos("obama")["photos"][0]["faces"][0]["face"]
        got, jpeg = call("GET", url + f"/api/v1/people/faces/{face}/thumbnail")
        assert got == 200 and jpeg[:3] == b"\xff\xd8\xff"


def _library(folder: Path, people: Sequence[str]) -> Path:
    """A flat folder of 5celeb val photos of ``people``, obama1.jpg, and a truncated JPEG."""
    folder.mkdir()
    for person in people:
        for photo in sorted((CELEB / "val" / person).iterdir()):
            shutil.copy(photo, folder / f"{person}_{photo.name}")
    shutil.copy(QUERIES / "obama1.jpg", folder / "obama1.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nothing more")
    return folder


def _leading_json(output: str):
    """The JSON a command printed before its one-line errors (CliRunner mixes stderr in)."""
    return json.JSONDecoder().raw_decode(output)[0]


def test_scan_and_people_through_a_server_print_what_they_print_locally(server, cli, known_gallery_template, tmp_path):
    url, gallery = server
    twin = tmp_path / "twin"  # the same gallery, used locally
    shutil.copytree(known_gallery_template, twin)
    # 27 files: two requests (16 photos at most in one), clustered once at the end as locally.
    library = _library(tmp_path / "library", sorted(p.name for p in (CELEB / "val").iterdir()))

    def both(*args, same=lambda data: data):
        """Run a command remotely and locally; the same exit status and output (JSON: ``same`` of it)."""
        remote, local = cli("--server", url, *args), cli("--home", twin, *args)
        assert remote.exit_code == local.exit_code, (args, remote.output, local.output)
        if "--json" not in args or remote.exit_code:
            assert remote.output == local.output, args
            return remote.output
        got, want = json.loads(remote.output), json.loads(local.output)
        assert same(got) == same(want), args
        return got

    remote = cli("--server", url, "scan", "-q", "--json", library)
    local = cli("--home", twin, "scan", "-q", "--json", library)
    assert remote.exit_code == local.exit_code == 1
    report, local_report = (_leading_json(r.output) for r in (remote, local))
    assert report == local_report
    assert len(report["scanned"]) == 26 and report["identified"][0]["identity"] == "obama"
    errors = [line for line in remote.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {library / 'broken.jpg'}: "), remote.output
    assert gallery.people.list()["photos"] == 26          # the good photos were stored
    assert both("scan", "-q", library).startswith("Scanned 0 photo(s)")   # all already scanned
    listing = both("people", "list", "--json")
    first = listing["clusters"][0]["id"]
    assert len(listing["clusters"]) >= 2
    both("people", "show", first, "--json", same=lambda d: [{**f, "path": Path(f["path"]).suffix} for f in d["faces"]])
    both("people", "name", first, "star", "--json")
    # Paths differ by nature (the server's are its copies of the uploads), and so may the second of an action.
    both("people", "photos", "star", "--json",
         same=lambda d: sorted(f["face"] for p in d["photos"] for f in p["faces"]))
    history = both("people", "history", "--json", same=lambda d: [{**a, "at": None} for a in d["actions"]])
    assert [a["kind"] for a in history["actions"]] == ["name"]
    both("people", "undo", "--json")
    both("people", "undo", "--json")                      # nothing left: the same one-line error
    both("people", "list", "--json")
    both("people", "recluster", "--json")
    both("scan", "-q", "--json", "--recluster", library)
    both("people", "name", 9999, "x")


def test_a_scan_through_a_server_goes_in_batches_within_its_limits(known_gallery, cli, tmp_path):
    import subprocess
    import sys

    from conftest import REPO, wait_ready
    from facesearch.server.app import create_app
    from facesearch.server.client import RemoteGallery
    from facesearch.server.serving import BackgroundServer
    from facesearch.server.state import ServerSettings
    from facesearch.server.uploads import UploadLimits

    library = _library(tmp_path / "library", ["elton_john"])
    shutil.copy(library / "obama1.jpg", library / "obama1-again.jpg")   # the same bytes: sent once
    (library / "notes.jpg").write_text("not a photo")
    missing = tmp_path / "missing"
    with BackgroundServer(create_app(known_gallery, settings=ServerSettings(limits=UploadLimits(max_files=3)))) as url:
        wait_ready(url)
        res = cli("--server", url, "scan", "-q", "--json", library, missing)
        assert res.exit_code == 1
        report = _leading_json(res.output)
        errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert sorted(e["path"] for e in report["errors"]) == sorted(
            [str(missing), str(library / "broken.jpg"), str(library / "notes.jpg")])
        assert len(errors) == 3 and all(line.count("\n") == 0 for line in errors)
        assert [p["path"] for p in report["scanned"]] == [str(p) for p in sorted(library.iterdir())
                                                          if p.name not in ("broken.jpg", "notes.jpg", "obama1.jpg")]
        assert report["already_scanned"] == [str(library / "obama1.jpg")]   # sorted after obama1-again.jpg
        assert report["clusters"]["clusters"] == len(known_gallery.people.list()["clusters"])
        with _db(known_gallery.home) as db:                # three requests, one clustering
            assert db.execute("SELECT COUNT(*) FROM people_actions WHERE kind IN ('cluster', 'recluster')"
                              ).fetchone()[0] == 1
        assert known_gallery.people.list()["photos"] == 6

        counted = []
        again = RemoteGallery(url).scan([library], progress=counted.append, on_total=lambda n: counted.insert(0, -n))
        assert -counted[0] == sum(counted[1:]) == 9 and len(counted) == 1 + 3   # 7 photos read, 3 a batch
        assert again.as_dict()["scanned"] == [] and len(again.as_dict()["already_scanned"]) == 7

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "facesearch", "--server", url, "scan", "-q",
                               "--json", str(library / "obama1.jpg")], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and json.loads(proc.stdout)["already_scanned"] == [str(library / "obama1.jpg")]
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                    if line.startswith("import time:")}
        assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "numpy", "PIL", "cv2", "sqlalchemy")}

        res = cli("--server", url, "people", "list", "--sheet", tmp_path / "sheet.png")
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "local gallery only" in res.output
    for args in (("scan", "-q", library), ("people", "list", "--json"), ("people", "undo")):
        res = cli("--server", "http://127.0.0.1:9", *args)
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "no facesearch server answers there" in res.output


def test_not_on_a_persons_only_face_removes_them_and_undo_brings_them_back(celeb):
    people = celeb.people
    cluster, faces = max(_clusters(celeb).items(), key=lambda kv: len(kv[1]))
    ids = [f["face"] for f in faces]
    people.split(cluster, ids[:1])
    single = {f["face"]: c for c, fs in _clusters(celeb).items() for f in fs}[ids[0]]
    before = celeb.face_count()
    people.name(single, "lone")
    assert celeb.face_count() == before + 1
    rejected = people.reject(ids[0], "lone")  # its last face: the identity goes with it
    assert rejected["was"] == "named" and celeb.face_count() == before
    assert "lone" not in {i["name"] for i in celeb.identities()}
    assert people.undo()["kind"] == "not"
    assert celeb.face_count() == before + 1
    assert any(f["face"] == ids[0] for p in people.photos("lone")["photos"] for f in p["faces"])


def test_scanned_face_ids_are_never_reused_and_the_upgrade_keeps_the_feedback(celeb, tmp_path, analysis):
    from sqlalchemy import create_engine
    from alembic import command

    from facesearch.gallery import Gallery, revisions

    people = celeb.people
    newest = max(f["face"] for fs in _clusters(celeb).values() for f in fs)
    cluster = next(c for c, fs in _clusters(celeb).items() if any(f["face"] == newest for f in fs))
    people.name(cluster, "newest")
    celeb.remove("newest")  # deletes its scanned faces, the newest one among them
    with _db(celeb.home) as db:
        assert db.execute("SELECT COUNT(*) FROM scanned_faces WHERE id = ?", (newest,)).fetchone()[0] == 0
    photo = tmp_path / "new" / "obama.jpg"
    photo.parent.mkdir()
    shutil.copy(QUERIES / "obama1.jpg", photo)
    celeb.scan([photo.parent])
    with _db(celeb.home) as db:
        assert db.execute("SELECT MIN(id) FROM scanned_faces WHERE photo_id = (SELECT MAX(id) FROM scanned_photos)"
                          ).fetchone()[0] > newest
    # A split leaves constraints naming faces; rebuilding the table for this revision keeps them.
    big, faces = max(_clusters(celeb).items(), key=lambda kv: len(kv[1]))
    people.split(big, [faces[0]["face"]])
    celeb.close()
    count = "SELECT COUNT(*) FROM people_constraints"
    with _db(celeb.home) as db:
        constraints = db.execute(count).fetchone()[0]
    assert constraints > 0
    engine = create_engine(f"sqlite:///{celeb.home / 'db' / 'gallery.sqlite'}")
    with engine.begin() as connection:
        command.downgrade(revisions._config(connection), "0006")
    engine.dispose()
    with _db(celeb.home) as db:
        assert db.execute(count).fetchone()[0] == constraints
    # Opening upgrades it again, on the gallery's own connections (foreign keys on: the rebuild's
    # cascade deletes the constraints, which the revision puts back).
    with Gallery(celeb.home, analysis=analysis) as g:
        assert g.people.history()[0]["kind"] == "split"
    with _db(celeb.home) as db:
        assert db.execute(count).fetchone()[0] == constraints
        assert "AUTOINCREMENT" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'scanned_faces'").fetchone()[0]
        assert db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'scanned_faces'").fetchone()[0] >= newest


def test_two_faces_of_one_photo_are_never_both_the_same_person(tmp_path, analysis):
    from PIL import Image

    from facesearch.gallery import Gallery

    face = Image.open(QUERIES / "obama1.jpg").convert("RGB")
    twice = Image.new("RGB", (face.width * 2, face.height))
    twice.paste(face, (0, 0))
    twice.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (face.width, 0))
    photo = tmp_path / "library" / "twice.jpg"
    photo.parent.mkdir()
    twice.save(photo, quality=95)
    with Gallery(tmp_path / "g", analysis=analysis) as g:
        g.enroll([KNOWN])
        report = g.scan([photo.parent])
    assert [who for _, who, _ in report.identified] == ["obama"]
    assert report.unknown == 1

"""The HTTP server: the API against the CLI's JSON, uploads that are refused, API keys, the live
WebSocket, `facesearch --server URL`, concurrent requests and a graceful stop. Servers listen on
127.0.0.1 and a free port only."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import QUERIES, REPO, wait_ready

pytest.importorskip("fastapi")

from facesearch.gallery import Gallery  # noqa: E402
from facesearch.server.app import create_app  # noqa: E402
from facesearch.server.client import _multipart  # noqa: E402
from facesearch.server.serving import BackgroundServer, check_keys_rule  # noqa: E402
from facesearch.server.state import ServerSettings  # noqa: E402
from facesearch.server.uploads import UploadLimits  # noqa: E402

OBAMA = QUERIES / "obama1.jpg"
PAIR = QUERIES / "obama_and_biden.jpg"
ALEX = QUERIES / "alex_lacamoire1.jpg"


def call(method: str, url: str, *, photos=(), field: str = "photo", body: dict | None = None,
         key: str | None = None, data: bytes | None = None, content_type: str | None = None):
    """``(status, parsed JSON or raw bytes)`` of one request; ``photos`` are paths or ``(name, bytes)``."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if photos:
        parts = [(field, *(p if isinstance(p, tuple) else (Path(p).name, Path(p).read_bytes()))) for p in photos]
        data, content_type = _multipart(parts)
    elif body is not None:
        data, content_type = json.dumps(body).encode(), "application/json"
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            status, raw, kind = response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in kind else raw)


def one_line_error(answer) -> str:
    assert isinstance(answer, dict) and set(answer) >= {"error"}, answer
    assert "\n" not in answer["error"] and answer["error"].strip(), answer
    return answer["error"]


def api(url: str) -> str:
    return url + "/api/v1"


def test_health_and_the_openapi_document(server):
    url, _ = server
    assert call("GET", api(url) + "/health/live") == (200, {"status": "ok"})
    assert call("GET", api(url) + "/health/ready") == (200, {"status": "ok"})
    status, page = call("GET", url + "/docs")
    assert status == 200 and b"swagger" in page.lower()
    status, spec = call("GET", url + "/openapi.json")
    assert status == 200
    assert {"/api/v1/identify", "/api/v1/verify", "/api/v1/identities", "/api/v1/identities/{name}",
            "/api/v1/identities/{name}/photos", "/api/v1/faces/{face_id}"} <= set(spec["paths"])
    # No endpoint takes a URL to fetch: photos only arrive as uploaded bytes.
    params = [p["name"] for path in spec["paths"].values() for op in path.values() for p in op.get("parameters", [])]
    assert not [p for p in params if "url" in p.lower()]


def test_identify_answers_what_query_json_prints(server, cli):
    url, gallery = server
    local = cli("--home", gallery.home, "query", "--json", PAIR, OBAMA)
    assert local.exit_code == 0, local.output
    expected = json.loads(local.output)["results"]

    status, answer = call("POST", api(url) + "/identify", photos=[PAIR, OBAMA])
    assert status == 200, answer
    assert [r["image"] for r in answer["results"]] == ["obama_and_biden.jpg", "obama1.jpg"]
    assert [r["faces"] for r in answer["results"]] == [r["faces"] for r in expected]
    assert [f["identity"] for f in answer["results"][0]["faces"]] == ["obama", "biden", None]

    status, strict = call("POST", api(url) + "/identify?matcher=centroid&top_k=2&threshold=0.95", photos=[OBAMA])
    assert status == 200, strict
    face = strict["results"][0]["faces"][0]
    assert face["identity"] is None and face["candidates"][0]["identity"] == "obama" and len(face["candidates"]) == 2


def test_bad_uploads_get_a_one_line_4xx_and_nothing_is_stored(server):
    url, gallery = server
    generation, people = gallery.generation(), gallery.identities()
    truncated = OBAMA.read_bytes()[:3000]
    cases = [
        ([("notes.jpg", b"just some text, not a photo")], 415, "notes.jpg: not a JPEG, PNG, WebP, BMP or TIFF"),
        ([("cut.jpg", truncated)], 422, "cut.jpg: corrupt or truncated"),
        ([("empty.jpg", b"")], 422, "empty.jpg: empty file"),
    ]
    for photos, status, reason in cases:
        got, answer = call("POST", api(url) + "/identify", photos=photos)
        assert got == status and one_line_error(answer).startswith(reason), answer
        # One bad photo among good ones: the enrollment is refused whole.
        got, answer = call("POST", api(url) + "/identities/newcomer/photos", photos=[ALEX, *photos])
        assert got == status and one_line_error(answer).startswith(reason), answer
    got, answer = call("POST", api(url) + "/identify", data=b"", content_type="multipart/form-data; boundary=x")
    assert got in (400, 422) and one_line_error(answer)
    got, answer = call("POST", api(url) + "/identify?top_k=0", photos=[OBAMA])
    assert got == 422 and "top_k" in one_line_error(answer)
    assert gallery.generation() == generation and gallery.identities() == people
    assert not list((gallery.home / "uploads").glob("*")) if (gallery.home / "uploads").exists() else True


def test_uploads_are_capped_in_bytes_and_pixels(known_gallery):
    limits = UploadLimits(max_upload_bytes=200_000, max_request_bytes=1_000_000, max_pixels=1_000_000)
    with BackgroundServer(create_app(known_gallery, settings=ServerSettings(limits=limits))) as url:
        got, answer = call("POST", api(url) + "/identify", photos=[PAIR])  # 560 kB
        assert got == 413 and one_line_error(answer) == "obama_and_biden.jpg: larger than the 200 kB limit"
        got, answer = call("POST", api(url) + "/identify", photos=[OBAMA])  # 79 kB but 1480x832 pixels
        assert got == 422 and "obama1.jpg: image is 1480x832 pixels" in one_line_error(answer)
        big = [(f"{i}.jpg", QUERIES.joinpath("obama-240p.jpg").read_bytes()) for i in range(30)]  # 1.1 MB
        got, answer = call("POST", api(url) + "/identify", photos=big)
        assert got == 413 and "request body larger than" in one_line_error(answer)
        got, answer = call("POST", api(url) + "/identify", photos=[QUERIES / "obama-240p.jpg"])
        assert got == 200 and answer["results"][0]["faces"][0]["identity"] == "obama"


def test_gallery_changes_through_the_api(server):
    url, gallery = server
    got, report = call("POST", api(url) + "/identities/lin/photos", photos=[ALEX, QUERIES / "lin-manuel-miranda.png"])
    assert got == 200, report
    assert report["enrolled"] == [{"path": "alex_lacamoire1.jpg", "identity": "lin"},
                                  {"path": "lin-manuel-miranda.png", "identity": "lin"}]
    assert len(list((gallery.home / "uploads").iterdir())) == 2  # the gallery's own copies
    got, people = call("GET", api(url) + "/identities")
    assert {"name": "lin", "faces": 2, "images": 2} in people and people == gallery.identities()

    got, faces = call("GET", api(url) + "/identities/lin/faces")
    assert got == 200 and [f["photo"] for f in faces] == [p.name for p in sorted((gallery.home / "uploads").iterdir(),
                                                                                 key=lambda p: p.suffix)]
    got, jpeg = call("GET", api(url) + f"/faces/{faces[0]['id']}/thumbnail?size=64")
    assert got == 200 and jpeg[:3] == b"\xff\xd8\xff"
    got, jpeg = call("GET", api(url) + "/identities/obama/thumbnail")
    assert got == 200 and jpeg[:3] == b"\xff\xd8\xff"

    assert call("PATCH", api(url) + "/identities/lin", body={"name": "lin_manuel"}) == \
        (200, {"renamed": "lin", "to": "lin_manuel"})
    got, removed = call("DELETE", api(url) + f"/faces/{faces[0]['id']}")
    assert (got, removed) == (200, {"removed_face": faces[0]["id"], "identity": "lin_manuel", "faces_left": 1})
    assert len(list((gallery.home / "uploads").iterdir())) == 1
    assert call("DELETE", api(url) + "/identities/lin_manuel") == (200, {"removed": "lin_manuel", "faces": 1})
    assert not list((gallery.home / "uploads").iterdir())

    for method, path, body in (("DELETE", "/identities/lin_manuel", None), ("PATCH", "/identities/nobody", {"name": "x"}),
                               ("GET", "/identities/nobody/faces", None), ("DELETE", "/faces/99999", None)):
        got, answer = call(method, api(url) + path, body=body)
        assert got == 404 and "no " in one_line_error(answer), (path, answer)


def test_verify_two_photos(server):
    url, _ = server
    got, answer = call("POST", api(url) + "/verify", photos=[OBAMA], field="first")
    assert got == 422 and "second" in one_line_error(answer)  # the second photo is missing
    body, content_type = _multipart([("first", "obama1.jpg", OBAMA.read_bytes()),
                                     ("second", "obama-240p.jpg", (QUERIES / "obama-240p.jpg").read_bytes())])
    got, same = call("POST", api(url) + "/verify", data=body, content_type=content_type)
    assert got == 200 and same["same_person"] and same["similarity"] > 0.6
    assert same["images"] == ["obama1.jpg", "obama-240p.jpg"] and same["threshold"] == 0.45
    body, content_type = _multipart([("first", "obama1.jpg", OBAMA.read_bytes()), ("second", "alex.jpg", ALEX.read_bytes())])
    got, other = call("POST", api(url) + "/verify", data=body, content_type=content_type)
    assert got == 200 and not other["same_person"] and other["similarity"] < 0.45


def test_an_empty_gallery_says_so(tmp_path, analysis):
    with Gallery(tmp_path / "empty", analysis=analysis) as gallery, BackgroundServer(create_app(gallery)) as url:
        got, answer = call("POST", api(url) + "/identify", photos=[OBAMA])
        assert got == 409 and "the gallery is empty" in one_line_error(answer)
        assert call("GET", api(url) + "/identities") == (200, [])


def test_api_keys(server, cli):
    url, gallery = server
    home = gallery.home
    assert call("GET", api(url) + "/identities")[0] == 200  # loopback and no key yet: open

    made = {}
    for role in ("read", "write"):
        result = cli("--home", home, "keys", "create", "--role", role, "--name", f"{role} test", "--json")
        assert result.exit_code == 0, result.output
        made[role] = json.loads(result.output)
    read_key, write_key = made["read"]["key"], made["write"]["key"]

    got, answer = call("GET", api(url) + "/identities")
    assert got == 401 and "API key is needed" in one_line_error(answer)
    assert call("GET", api(url) + "/identities", key=read_key + "x")[0] == 401
    assert call("GET", api(url) + "/identities", key=read_key)[0] == 200
    got, answer = call("POST", api(url) + "/identify", photos=[OBAMA], key=read_key)
    assert got == 200 and answer["results"][0]["faces"][0]["identity"] == "obama"
    got, answer = call("PATCH", api(url) + "/identities/obama", body={"name": "barack"}, key=read_key)
    assert got == 403 and "write key" in one_line_error(answer)
    assert call("PATCH", api(url) + "/identities/obama", body={"name": "barack"}, key=write_key)[0] == 200
    assert call("GET", url + "/", key=None)[0] == 200  # the page itself holds no data
    assert call("GET", api(url) + "/health/ready")[0] == 200

    listed = cli("--home", home, "keys", "list", "--json")
    rows = json.loads(listed.output)
    assert [r["role"] for r in rows] == ["read", "write"] and all("key" not in r for r in rows)
    assert read_key not in listed.output
    # Only a hash is stored: neither key, nor its secret part, is in the database file.
    database = (home / "db" / "gallery.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in (home / "db").glob("gallery.sqlite-*"))
    for key in (read_key, write_key):
        secret = key.split("_", 2)[2]
        assert key.encode() not in database and secret.encode() not in database

    revoked = cli("--home", home, "keys", "revoke", made["read"]["id"])
    assert revoked.exit_code == 0 and made["read"]["id"] in revoked.output
    assert call("GET", api(url) + "/identities", key=read_key)[0] == 401  # at once, in the running server
    assert call("GET", api(url) + "/identities", key=write_key)[0] == 200
    missing = cli("--home", home, "keys", "revoke", "000000000000")
    assert missing.exit_code == 1 and missing.output.count("\n") == 1


def test_beyond_loopback_a_key_is_compulsory(known_gallery, cli):
    with pytest.raises(Exception, match="refusing to listen beyond this machine"):
        check_keys_rule(known_gallery, "0.0.0.0")
    result = cli("--home", known_gallery.home, "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "keys create" in result.output
    # The same app, told it listens on every address (served on loopback here): no key, no answer.
    settings = ServerSettings(host="0.0.0.0")
    with BackgroundServer(create_app(known_gallery, settings=settings)) as url:
        assert call("GET", api(url) + "/identities")[0] == 401
        key = known_gallery.create_key("read")["key"]
        check_keys_rule(known_gallery, "0.0.0.0")
        assert call("GET", api(url) + "/identities", key=key)[0] == 200


def test_live_frames_over_a_websocket(server):
    from websockets.sync.client import connect

    url, gallery = server
    ws_url = url.replace("http://", "ws://") + "/api/v1/live"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"top_k": 2}))
        assert json.loads(ws.recv()) == {"ready": True}
        ws.send(OBAMA.read_bytes())
        answer = json.loads(ws.recv())
        assert answer["frame"] == 1 and (answer["width"], answer["height"]) == (1480, 832)
        assert [f["identity"] for f in answer["faces"]] == ["obama"] and len(answer["faces"][0]["candidates"]) == 2
        ws.send(b"not a frame")
        assert json.loads(ws.recv()) == {"frame": 2, "error": "frame 2: not an image, or an unsupported image format"}

    gallery.create_key("read")
    with connect(ws_url) as ws:
        ws.send(json.dumps({}))
        assert "API key is needed" in json.loads(ws.recv())["error"]
        with pytest.raises(Exception):
            ws.recv()
        assert ws.close_code == 1008


def test_the_cli_through_a_server_prints_what_it_prints_locally(server, cli, known_gallery_template, tmp_path):
    url, gallery = server
    twin = tmp_path / "twin"  # the same gallery, used locally
    shutil.copytree(known_gallery_template, twin)
    photos = tmp_path / "photos"
    (photos / "lin").mkdir(parents=True)
    shutil.copy(QUERIES / "lin-manuel-miranda.png", photos / "lin")
    shutil.copy(QUERIES / "multiface.jpg", photos / "lin")
    (photos / "lin" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nothing more")
    commands = [
        ("query", "--json", PAIR, QUERIES / "nonexistent.jpg"),
        ("query", PAIR, "--top-k", "2", "--threshold", "0.75"),
        ("verify", OBAMA, ALEX),
        ("enroll", "--json", "-q", photos),
        ("enroll", "-q", "--name", "obama", OBAMA),
        ("list", "--json"),
        ("rename", "lin", "lin_manuel"),
        ("remove", "lin_manuel", "--json"),
        ("rename", "nobody", "x"),
        ("list",),
    ]
    for command in commands:
        remote = cli("--server", url, *command)
        local = cli("--home", twin, *command)
        assert (remote.exit_code, remote.output) == (local.exit_code, local.output), command


def test_server_mode_loads_no_model_and_a_missing_server_is_one_line(server, tmp_path):
    url, _ = server
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "facesearch", "--server", url, "query", "--json",
                           str(OBAMA)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["results"][0]["faces"][0]["identity"] == "obama"
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in imported
                   if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "faiss", "sklearn", "numpy", "PIL"))
    assert not heavy, heavy[:10]
    assert not (tmp_path / "db").exists()  # no local gallery was opened

    env["FACESEARCH_SERVER"] = "http://127.0.0.1:9"
    proc = subprocess.run([sys.executable, "-m", "facesearch", "list"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "no facesearch server answers there" in proc.stderr


def test_concurrent_identify_requests_and_a_writer(server):
    url, gallery = server
    from facesearch.bench.http_load import load

    row = load(url, OBAMA, clients=4, requests=2, enroll_photo=ALEX, name="test")
    assert (row["ok"], row["errors"], row["write_errors"]) == (8, 0, 0), row["error_messages"]
    assert row["writes"] >= 1
    assert not any(r["name"].startswith("load_test") for r in gallery.identities())
    got, info = call("GET", api(url) + "/info")
    assert info["batching"]["photos"] >= 8 and info["generation"] > 1


def test_photos_waiting_together_are_analysed_in_one_batch(analysis):
    from facesearch.imaging.decode import load_image
    from facesearch.server.batcher import FaceBatcher

    images = [load_image(OBAMA), load_image(PAIR), load_image(OBAMA)]
    ready = threading.Event()
    batcher = FaceBatcher(analysis, workers=1, max_batch=8, ready=ready)
    futures = [batcher.submit(image) for image in images]
    ready.set()
    found = [f.result(timeout=300) for f in futures]
    stats = batcher.stats()
    batcher.close()
    assert (stats["batches"], stats["largest_batch"]) == (1, 3)
    for image, faces in zip(images, found):
        alone = analysis.get(image)
        assert [f.box for f in faces] == [f.box for f in alone]
        np.testing.assert_allclose(np.stack([f.embedding for f in faces]), np.stack([f.embedding for f in alone]),
                                   atol=1e-4)


@pytest.mark.slow
def test_serve_starts_answers_and_stops_gracefully(known_gallery_template, tmp_path):
    home = tmp_path / "gallery"
    shutil.copytree(known_gallery_template, home)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(home), "serve", "--port", "0",
                             "--log-level", "warning"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert " at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].split("/ ", 1)[0]
        wait_ready(url)
        answers = []
        request = threading.Thread(target=lambda: answers.append(call("POST", api(url) + "/identify", photos=[PAIR])))
        request.start()
        time.sleep(0.3)  # the request is in progress when the signal comes
        proc.send_signal(signal.SIGTERM)
        request.join(timeout=120)
        assert answers and answers[0][0] == 200
        assert proc.wait(timeout=120) == 0
        assert [f["identity"] for f in answers[0][1]["results"][0]["faces"]] == ["obama", "biden", None]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def test_a_port_in_use_is_one_line(known_gallery, cli):
    with BackgroundServer(create_app(known_gallery)) as url:
        port = url.rsplit(":", 1)[1]
        result = cli("--home", known_gallery.home, "serve", "--port", port)
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert f"127.0.0.1:{port}: cannot listen there" in result.output

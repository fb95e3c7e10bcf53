"""The converted detector and embedder, on OpenVINO and ONNX Runtime, against the reference
implementations they replace: the ``mtcnn`` package (TensorFlow) and the Keras FaceNet, on real
photos."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, KNOWN, QUERIES, REPO
from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.imaging.decode import load_image
from facesearch.imaging.photo_files import iter_image_files
from facesearch.models.align import crop_face
from facesearch.models.converted import load_converted, store_converted
from facesearch.models.detect import Detector
from facesearch.models.embed import Embedder
from facesearch.models.mtcnn_onnx import mtcnn_sessions
from facesearch.models.openvino_model import COMPILE_AFTER

LFW = DATA / "lfw" / "lfw-deepfunneled.tgz"


def _photos() -> list[Path]:
    """Every fixture photo and 40 LFW photos spread over the alphabet."""
    lfw = [p for p, _ in folder_dataset(lfw_root(LFW))]
    return sorted(iter_image_files(KNOWN)) + sorted(iter_image_files(QUERIES)) + lfw[:: len(lfw) // 40][:40]


@pytest.fixture(scope="module")
def detections():
    """(photo, package's faces, ONNX Runtime's faces, OpenVINO's faces) for every photo of
    :func:`_photos`. OpenVINO's are from a photo's third detection, when each pyramid level
    runs on kernels compiled for its size (the first two run the dynamic ones)."""
    keras, onnx, openvino = Detector(backend="keras"), Detector(backend="onnx"), Detector(backend="openvino")
    pnet = mtcnn_sessions("openvino")["pnet"]
    out = []
    for path in _photos():
        image = load_image(path)
        # Each size runs only three times here, which would teach P-Net not to compile sizes.
        pnet.compile_after = COMPILE_AFTER
        first = openvino.detect(image)
        for _ in range(COMPILE_AFTER):
            fixed = openvino.detect(image)
        assert [f.box for f in first] == [f.box for f in fixed], path
        out.append((path, keras.detect(image), onnx.detect(image), fixed))
    return out


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_converted_detector_finds_the_packages_faces(detections, runtime):
    assert len(detections) > 60
    for path, ref, *by_runtime in detections:
        got = by_runtime[0 if runtime == "onnx" else 1]
        assert len(got) == len(ref), path
        for a, b in zip(sorted(ref, key=lambda f: f.box), sorted(got, key=lambda f: f.box)):
            # The package rounds to whole pixels of the detection scale; a float difference
            # at a .5 can move a value by one such pixel (two in a photo shrunk by half).
            scale = max(1.0, max(load_image(path).shape[:2]) / 1024)
            assert np.abs(np.subtract(a.box, b.box)).max() <= 1.01 * scale, (path, a.box, b.box)
            assert np.abs(a.landmarks - b.landmarks).max() <= 1.01 * scale, path
            assert abs(a.score - b.score) < 1e-4, path


def test_converted_detector_settings_key_their_own_cache():
    assert Detector(backend="keras").settings["detector"] == "mtcnn"
    assert Detector().backend == "openvino"
    assert Detector().settings["detector"] == Detector(backend="onnx").settings["detector"] == "mtcnn-onnx"
    with pytest.raises(ValueError, match="backend"):
        Detector(backend="caffe")


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_converted_embeddings_equal_the_keras_models(detections, runtime):
    crops = []
    for path, _, faces, _ in detections[:30]:
        image = load_image(path)
        crops += [crop_face(image, f) for f in faces]
    crops = np.stack(crops)
    got = Embedder(download=False, runtime=runtime).embed(crops)
    keras = Embedder(download=False, runtime="keras").embed(crops)
    cosine = np.sum(got * keras, axis=1)
    assert cosine.min() >= 0.99999, cosine.min()
    # Batch size does not change what the runtime computes beyond float rounding.
    one_by_one = np.concatenate([Embedder(download=False, runtime=runtime).embed(c[None]) for c in crops[:4]])
    np.testing.assert_allclose(one_by_one, got[:4], rtol=0, atol=1e-5)


def test_detect_and_embed_without_tensorflow():
    """With the converted models cached (the tests above made them), neither model imports TensorFlow."""
    code = ("import sys; from facesearch.models.analysis import FaceAnalysis; "
            "from facesearch.imaging.decode import load_image; "
            f"faces = FaceAnalysis().get(load_image({str(QUERIES / 'obama1.jpg')!r})); "
            "assert len(faces) == 1 and faces[0].embedding.shape == (512,); "
            "sys.exit('tensorflow' in sys.modules or 'mtcnn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_a_corrupt_converted_model_is_refused(tmp_path, caplog):
    stored = store_converted("m.onnx", b"graph bytes", "source-sha", directory=tmp_path)
    assert load_converted("m.onnx", "source-sha", directory=tmp_path).data == b"graph bytes"
    assert load_converted("m.onnx", "other-source", directory=tmp_path) is None  # stale: deleted
    assert not stored.path.exists()
    store_converted("m.onnx", b"graph bytes", "source-sha", directory=tmp_path)
    stored.path.write_bytes(b"graph bytez")
    assert load_converted("m.onnx", "source-sha", directory=tmp_path) is None
    assert "does not match its sidecar" in caplog.text and not stored.path.exists()


def test_the_optimised_graph_is_cached_per_machine_and_runs_the_same(tmp_path, monkeypatch):
    """The first session optimises and caches the graph; the next loads it without reading the
    converted graph, and computes the same embeddings; a corrupt optimised file is rebuilt."""
    from facesearch.models.embed import INPUT, onnx_filename, prewhiten
    from facesearch.models.onnx_session import cached_session, machine_key, new_session
    from facesearch.models.weights import cached_weights_sha256

    source = cached_weights_sha256()
    original = load_converted(onnx_filename(source), source)
    monkeypatch.setenv("FACESEARCH_CACHE", str(tmp_path))
    graph = store_converted(onnx_filename(source), original.data, source)
    probe = {INPUT: prewhiten(np.random.default_rng(1).integers(0, 256, (2, 160, 160, 3)).astype(np.uint8))}
    builds = []

    def build():
        builds.append(1)
        return load_converted(graph.path.name, source)

    first, path = cached_session(graph.path.name, source, build, probe)
    assert builds == [1] and path == graph.path
    optimised = graph.path.with_name(f"{graph.path.stem}.optimised-{machine_key()}.onnx")
    assert optimised.exists()
    second, path = cached_session(graph.path.name, source, build, probe)
    assert builds == [1] and path == optimised  # the converted graph was not needed
    reference = new_session(original.data).run(None, probe)[0]
    np.testing.assert_allclose(second.run(None, probe)[0], reference, atol=1e-5)
    optimised.write_bytes(optimised.read_bytes()[:-10] + b"corrupted!")
    third, path = cached_session(graph.path.name, source, build, probe)
    assert builds == [1, 1] and path == graph.path and optimised.exists()
    np.testing.assert_allclose(third.run(None, probe)[0], reference, atol=1e-5)


def test_detections_from_several_threads_at_once_equal_one_at_a_time(detections):
    # P-Net levels of every caller go through one shared pool; each caller must get its own
    # photo's levels back, whatever the interleaving.
    from concurrent.futures import ThreadPoolExecutor

    detector = Detector(backend="openvino")
    photos = [load_image(path) for path, *_ in detections[:12]]
    alone = [[f.box for f in detector.detect(p)] for p in photos]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: [f.box for f in detector.detect(p)], photos * 3))
    assert together == alone * 3


def test_pnet_stops_compiling_sizes_that_do_not_recur(monkeypatch):
    """Photos of many sizes (a folder of face crops): compilations pushed out of the kept shapes
    before they paid make P-Net wait longer before compiling; a size that recurs (a video's
    frames) is still compiled, and once it has paid the wait comes down again."""
    from facesearch.models import openvino_model
    from facesearch.models.mtcnn_onnx import _arrays, pnet_graph, weights_folder

    monkeypatch.setattr(openvino_model, "SHAPES_KEPT", 4)
    model = openvino_model.OpenVinoModel(pnet_graph(_arrays(weights_folder(), "pnet")), per_shape=True, threads=1)

    def run(height: int, width: int) -> None:
        model.run(None, {model.input_name: np.zeros((1, height, width, 3), np.float32)})

    for size in range(12, 52):  # forty sizes, twice each
        run(size, size)
        run(size, size)
    # Four kept, the fifth pushed one out unused: from then on a size must recur more to compile.
    assert model.compilations == 5 and model.compile_after == 2 * COMPILE_AFTER
    waited = model.compile_after
    for _ in range(waited + openvino_model.PAYBACK_RUNS):
        run(60, 80)
    assert model.compilations == 6 and model.compile_after == waited

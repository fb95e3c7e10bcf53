"""facesearch.models.embed: batched FaceNet embeddings on real face crops (real weights, no mocks)."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesearch.models.embed import EMBEDDING_DIM, FACE_SIZE, Embedder, prewhiten

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNOWN = DATA / "fixtures" / "known"
OLD_GALLERY_DB = Path(__file__).resolve().parent / "data" / "gallery-schema-1" / "gallery.sqlite"
PHOTOS = {
    "obama": ["obama/obama.jpg", "obama/obama2.jpg"],
    "biden": ["biden/biden.jpg", "biden/biden2.jpg"],
}


def _face_crop(detector, path: Path) -> np.ndarray:
    """The most confident MTCNN face in the photo, with a 10% margin, as a (160, 160, 3) uint8 RGB."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    # Detect on a <= 640 px copy: MTCNN takes seconds on these multi-megapixel photos.
    scale = min(1.0, 640 / max(rgb.shape[:2]))
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    faces = detector.detect_faces(small)
    assert faces, f"{path}: MTCNN found no face"
    x, y, w, h = (v / scale for v in max(faces, key=lambda f: f["confidence"])["box"])
    m = 0.1 * max(w, h)
    x0, y0 = int(max(0, x - m)), int(max(0, y - m))
    x1, y1 = int(min(rgb.shape[1], x + w + m)), int(min(rgb.shape[0], y + h + m))
    return cv2.resize(rgb[y0:y1, x0:x1], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def faces() -> dict[str, list[np.ndarray]]:
    assert KNOWN.is_dir(), f"fixture photos not found at {KNOWN}"
    from mtcnn import MTCNN

    detector = MTCNN()
    return {who: [_face_crop(detector, KNOWN / rel) for rel in rels] for who, rels in PHOTOS.items()}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(download=False)


@pytest.fixture(scope="module")
def crops(faces) -> np.ndarray:
    return np.stack(faces["obama"] + faces["biden"])


def test_import_loads_no_tensorflow():
    code = (
        "import sys, facesearch.models.embed, facesearch.models.weights, facesearch.models.convert, "
        "facesearch.models.download, facesearch.models.align; sys.exit('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


def test_prewhiten_is_fixed_standardisation():
    out = prewhiten(np.array([[0, 127, 128, 255]], dtype=np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[-127.5, -0.5, 0.5, 127.5]], dtype=np.float32) / 128)


def test_embedder_identity_is_that_of_its_weights(embedder):
    # The model id galleries store must be the one recorded beside the weights actually loaded.
    sidecar = json.loads(embedder.weights.path.with_name(embedder.weights.path.name + ".json").read_text())
    assert sidecar["model_id"] == embedder.model_id
    assert sidecar["sha256"] == embedder.weights.sha256
    assert embedder.model.output_shape == (None, EMBEDDING_DIM)


def test_embedder_matches_what_galleries_of_0_1_0_recorded(embedder):
    # A gallery refuses embeddings of another model; one made by 0.1.0 must still be usable.
    with contextlib.closing(sqlite3.connect(f"file:{OLD_GALLERY_DB}?mode=ro&immutable=1", uri=True)) as db:
        (model_id, dim), = db.execute("SELECT model_id, embedding_dim FROM gallery_state").fetchall()
    assert (embedder.model_id, EMBEDDING_DIM) == (model_id, dim)


def test_shapes_dtype_and_unit_norm(embedder, crops):
    emb = embedder.embed(crops)
    assert emb.shape == (len(crops), EMBEDDING_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    assert np.isfinite(emb).all()


def test_empty_input(embedder):
    for empty in (np.empty((0, FACE_SIZE, FACE_SIZE, 3), np.uint8), []):
        out = embedder.embed(empty)
        assert out.shape == (0, EMBEDDING_DIM) and out.dtype == np.float32


def test_batching_does_not_change_embeddings(embedder, crops):
    together = embedder.embed(crops)
    alone = np.concatenate([embedder.embed(crops[i : i + 1]) for i in range(len(crops))])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-5)
    # batch_size smaller than N, with a ragged last batch; a list of crops is accepted too
    small_batches = Embedder(embedder.weights, batch_size=3).embed(list(crops))
    np.testing.assert_allclose(small_batches, together, rtol=0, atol=1e-5)


def test_same_person_is_more_similar_than_different_people(embedder, faces):
    obama = embedder.embed(np.stack(faces["obama"]))
    biden = embedder.embed(np.stack(faces["biden"]))
    same = [float(obama[0] @ obama[1]), float(biden[0] @ biden[1])]
    different = (obama @ biden.T).ravel()
    assert min(same) > different.max() + 0.2, (same, different)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8), r"crops\[None\]"),
        (np.zeros((2, 100, 100, 3), np.uint8), "expected shape"),
        (np.zeros((2, FACE_SIZE, FACE_SIZE), np.uint8), "expected shape"),
        (np.zeros((2, FACE_SIZE, FACE_SIZE, 4), np.uint8), "expected shape"),
        (np.zeros((2, FACE_SIZE, FACE_SIZE, 3), np.float32), "uint8"),
        ([np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8), np.zeros((10, 10, 3), np.uint8)], "crop 1"),
    ],
)
def test_bad_input_raises_value_error(embedder, bad, match):
    with pytest.raises(ValueError, match=match):
        embedder.embed(bad)


def test_bad_batch_size_raises_value_error(embedder):
    with pytest.raises(ValueError, match="batch_size"):
        Embedder(embedder.weights, batch_size=0)


def test_flip_adds_the_mirrored_crops_embedding(embedder):
    from facesearch.models.align import crop_face
    from facesearch.models.analysis import FaceAnalysis
    from facesearch.imaging.decode import load_image

    image = load_image(DATA / "fixtures" / "queries" / "obama1.jpg")
    plain, flipped = FaceAnalysis(embedder=embedder, flip=False), FaceAnalysis(embedder=embedder)  # flip: the default
    assert "flip" not in plain.settings and flipped.settings["flip"] is True  # separate cache entries
    assert flipped.model_id == plain.model_id + "+flip" and flipped.settings["model"] == plain.settings["model"]
    detections = plain.detector.detect(image)
    one = flipped.embed_detections([image], [detections[:1]])[0][0].embedding
    crop = crop_face(image, detections[0], "box")
    expected = embedder.embed(crop[None])[0] + embedder.embed(crop[None, :, ::-1])[0]
    np.testing.assert_allclose(one, expected / np.linalg.norm(expected), atol=1e-5)
    assert abs(float(np.linalg.norm(one)) - 1.0) < 1e-5
    alone = plain.embed_detections([image], [detections[:1]])[0][0].embedding
    assert 0.9 < float(one @ alone) < 0.9999  # the same face, not the same vector

"""Detection and cropping on real photos."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import QUERIES
from facesearch.models.align import crop_box, crop_face, template
from facesearch.models.detect import Detector
from facesearch.imaging.decode import load_image


@pytest.fixture(scope="module")
def detector():
    return Detector()


def test_every_face_with_box_landmarks_and_score(detector):
    faces = detector.detect(load_image(QUERIES / "multiface.jpg"))
    assert len(faces) == 6
    for f in faces:
        x, y, w, h = f.box
        assert w >= 20 and h >= 20 and 0.9 <= f.score <= 1.0
        assert f.landmarks.shape == (5, 2)
        # Landmarks lie inside the box; the left eye is left of the right eye.
        assert np.all(f.landmarks[:, 0] >= x - 2) and np.all(f.landmarks[:, 0] <= x + w + 2)
        assert f.landmarks[0, 0] < f.landmarks[1, 0]
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)


def test_downscaled_detection_maps_boxes_back(detector):
    """The 1080p photo is detected at 1024 px and its box mapped back to full resolution."""
    big = detector.detect(load_image(QUERIES / "obama-1080p.jpg"))
    small = detector.detect(load_image(QUERIES / "obama-480p.jpg"))
    assert len(big) == len(small) == 1
    ratio = 1080 / 480
    np.testing.assert_allclose(np.array(big[0].box), np.array(small[0].box) * ratio, rtol=0.08, atol=12)


def test_minimum_face_size_and_confidence_are_options():
    image = load_image(QUERIES / "obama-480p.jpg")
    assert len(Detector(min_face_size=40).detect(image)) == 1   # mtcnn alone breaks above 20 px
    assert Detector(min_face_size=400).detect(image) == []
    assert Detector(min_confidence=1.01).detect(image) == []


def test_batch_matches_single(detector):
    images = [load_image(QUERIES / p) for p in ("obama-480p.jpg", "obama-480p.jpg", "two_people.jpg")]
    batch = detector.detect_batch(images)
    assert [len(b) for b in batch] == [1, 1, 2]
    np.testing.assert_allclose(batch[0][0].box, detector.detect(images[0])[0].box, atol=1e-3)


def test_crops(detector):
    image = load_image(QUERIES / "obama1.jpg")
    (face,) = detector.detect(image)
    box = crop_face(image, face, "box")
    warped = crop_face(image, face, "5point")
    assert box.shape == warped.shape == (160, 160, 3) and box.dtype == np.uint8
    # The 5-point crop puts the face's landmarks on the template: found again, they lie there.
    (again,) = detector.detect(warped)
    assert np.abs(again.landmarks - template()).max() < 8
    # A box at the corner is clipped to the photo, not padded: the crop is the photo's top-left
    # 66x66 pixels (50 + half the margin) enlarged, so it keeps their colour (black padding would not).
    corner = crop_box(image, (0, 0, 50, 50), margin=32)
    assert corner.shape == (160, 160, 3)
    np.testing.assert_allclose(corner.mean(axis=(0, 1)), image[:66, :66].mean(axis=(0, 1)), atol=2)
    np.testing.assert_array_equal(corner[0, 0], image[0, 0])
    with pytest.raises(ValueError, match="unknown alignment"):
        crop_face(image, face, "nope")

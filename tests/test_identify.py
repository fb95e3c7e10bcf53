"""End to end on real weights and photos: enroll fixtures/known, identify fixtures/queries."""
from __future__ import annotations

import json

import pytest

from conftest import CELEB, QUERIES
from facesearch.search.match import DEFAULT_THRESHOLD


def _query(cli, home, *photos, extra=()):
    res = cli("--home", home, "query", "--json", *extra, *[QUERIES / p for p in photos])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["results"]


@pytest.mark.parametrize("photo", ["obama1.jpg", "obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg",
                                   "obama-1080p.jpg"])
def test_obama_at_every_resolution(cli, known_gallery, photo):
    (result,) = _query(cli, known_gallery.home, photo)
    assert [f["identity"] for f in result["faces"]] == ["obama"]


def test_kit_harington_as_jon_snow(cli, known_gallery):
    (result,) = _query(cli, known_gallery.home, "johnsnow_test1.jpg")
    assert [f["identity"] for f in result["faces"]] == ["kit_harington"]


def test_two_people_side_by_side(cli, known_gallery):
    (result,) = _query(cli, known_gallery.home, "two_people.jpg")
    assert sorted(f["identity"] for f in result["faces"]) == ["biden", "obama"]


def test_obama_biden_and_an_unknown_child(cli, known_gallery):
    (result,) = _query(cli, known_gallery.home, "obama_and_biden.jpg")
    faces = result["faces"]
    assert len(faces) == 3
    assert sorted(f["identity"] for f in faces if f["identity"]) == ["biden", "obama"]
    (child,) = [f for f in faces if f["identity"] is None]
    # The child stands at the bottom right of the photo.
    others = [f for f in faces if f is not child]
    assert all(child["box"][0] > o["box"][0] and child["box"][1] > o["box"][1] for o in others)
    assert child["similarity"] < DEFAULT_THRESHOLD  # the threshold `query` uses by default


def test_people_not_enrolled_are_unknown(cli, known_gallery):
    lin, multi = _query(cli, known_gallery.home, "lin-manuel-miranda.png", "multiface.jpg")
    assert [f["identity"] for f in lin["faces"]] == [None]
    assert len(multi["faces"]) == 6
    assert all(f["identity"] is None for f in multi["faces"])


def test_json_shape(cli, known_gallery):
    (result,) = _query(cli, known_gallery.home, "two_people.jpg", extra=["--top-k", "3"])
    assert result["image"].endswith("two_people.jpg")
    for face in result["faces"]:
        assert set(face) >= {"box", "identity", "similarity", "candidates"}
        x, y, w, h = face["box"]
        assert w > 0 and h > 0 and all(isinstance(v, int) for v in face["box"])
        # Five people are enrolled: --top-k 3 names three different ones, most similar first.
        names = [c["identity"] for c in face["candidates"]]
        assert len(names) == len(set(names)) == 3
        assert names[0] == face["identity"]
        assert face["candidates"][0]["similarity"] == face["similarity"]
        sims = [c["similarity"] for c in face["candidates"]]
        assert sims == sorted(sims, reverse=True)


def test_centroid_matcher_agrees_on_fixtures(cli, known_gallery):
    results = _query(cli, known_gallery.home, "obama1.jpg", "johnsnow_test1.jpg", "lin-manuel-miranda.png",
                     extra=["--matcher", "centroid"])
    assert [r["faces"][0]["identity"] for r in results] == ["obama", "kit_harington", None]


def test_threshold_option_turns_everyone_unknown(cli, known_gallery):
    (result,) = _query(cli, known_gallery.home, "obama1.jpg", extra=["--threshold", "0.999"])
    assert result["faces"][0]["identity"] is None
    assert result["faces"][0]["candidates"][0]["identity"] == "obama"


def test_human_output_and_annotation(cli, known_gallery, tmp_path):
    out = tmp_path / "annotated.jpg"
    res = cli("--home", known_gallery.home, "query", QUERIES / "two_people.jpg", "--annotate", out)
    assert res.exit_code == 0, res.output
    assert "two_people.jpg: 2 faces" in res.stdout
    assert "obama" in res.stdout and "biden" in res.stdout
    from facesearch.imaging.decode import load_image

    src, drawn = load_image(QUERIES / "two_people.jpg"), load_image(out)
    assert drawn.shape == src.shape and (abs(drawn.astype(int) - src).sum() > 0)


@pytest.mark.parametrize("matcher", ["knn", "centroid"])
def test_5celeb_val_identified(tmp_path, analysis, matcher):
    from facesearch.bench.datasets import folder_dataset
    from facesearch.gallery import Gallery

    with Gallery(tmp_path, analysis=analysis) as g:
        report = g.enroll([CELEB / "train"])
        assert not report.errors
        assert len(report.identities) == 5
        val = folder_dataset(CELEB / "val")
        assert len(val) == 25
        correct = 0
        for path, name in val:
            faces = g.query(path, matcher=matcher).faces
            correct += bool(faces) and max(faces, key=lambda f: f.face.area).match.identity == name
    assert correct >= 24, f"{matcher}: {correct}/25"


def test_python_api_as_in_the_readme(known_gallery, analysis):
    import numpy as np

    from facesearch import FaceAnalysis, Gallery, load_image

    assert isinstance(known_gallery, Gallery) and isinstance(analysis, FaceAnalysis)
    faces = analysis.get(load_image(QUERIES / "two_people.jpg"))
    assert len(faces) == 2
    for f in faces:
        assert f.embedding.shape == (512,) and f.embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(f.embedding)) - 1) < 1e-5
        assert f.landmarks.shape == (5, 2) and f.quality > 0
    names = sorted(fm.match.identity for fm in known_gallery.query(QUERIES / "two_people.jpg").faces)
    assert names == ["biden", "obama"]

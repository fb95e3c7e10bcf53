"""Photos that are already face crops, enrolled and queried through the CLI (issue #15, item 3).

The crops are made from the real fixture photos, the way ``bench identify --input`` makes them
from LFW: ``facesearch crop``'s 224x224 output, 5-point aligned 112x112 faces, tight boxes.
"""
from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from conftest import KNOWN, QUERIES
from facesearch.bench.photo_crops import make_crop
from facesearch.imaging.annotate import save_image
from facesearch.imaging.decode import load_image

KINDS = ("facesearch-crop", "aligned112", "box-crop")
#: One-person queries and who they show (None: never enrolled).
QUERY_PEOPLE = {"obama1.jpg": "obama", "johnsnow_test1.jpg": "kit_harington",
                "alex_lacamoire1.jpg": "alex_lacamoire", "obama-480p.jpg": "obama", "lin-manuel-miranda.png": None}


def _crop_of(analysis, photo, kind):
    image = load_image(photo)
    face = max(analysis.get(image), key=lambda f: f.area)
    return make_crop(image, face, kind)


@pytest.fixture(scope="module")
def crop_trees(tmp_path_factory, analysis):
    """``{kind: (known tree, queries folder)}``: fixtures/known and the one-person queries as crops."""
    root = tmp_path_factory.mktemp("crops")
    trees = {}
    for kind in KINDS:
        known, queries = root / kind / "known", root / kind / "queries"
        for photo in sorted(KNOWN.glob("*/*")):
            (known / photo.parent.name).mkdir(parents=True, exist_ok=True)
            save_image(known / photo.parent.name / f"{photo.stem}.png", _crop_of(analysis, photo, kind))
        queries.mkdir(parents=True)
        for name in QUERY_PEOPLE:
            save_image(queries / f"{name.rsplit('.', 1)[0]}.png", _crop_of(analysis, QUERIES / name, kind))
        trees[kind] = (known, queries)
    return trees


def _names(cli, home, folder, extra=()):
    photos = [folder / f"{name.rsplit('.', 1)[0]}.png" for name in QUERY_PEOPLE]
    res = cli("--home", home, "query", "--json", *extra, *photos)
    assert res.exit_code == 0, res.output
    return [[f["identity"] for f in r["faces"]] for r in json.loads(res.stdout)["results"]]


EXPECTED = [[who] for who in QUERY_PEOPLE.values()]


@pytest.mark.parametrize("kind", KINDS)
def test_crops_enroll_and_identify_like_photos(cli, tmp_path, crop_trees, kind):
    known, queries = crop_trees[kind]
    res = cli("--home", tmp_path / "g", "enroll", known, "--json", "-q")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["errors"] == [] and report["no_face"] == [] and len(report["enrolled"]) == 9, report
    assert _names(cli, tmp_path / "g", queries) == EXPECTED


@pytest.mark.parametrize("kind", KINDS)
def test_crops_identified_in_a_gallery_of_full_photos(cli, known_gallery, crop_trees, kind):
    assert _names(cli, known_gallery.home, crop_trees[kind][1]) == EXPECTED


@pytest.mark.parametrize("kind, aligned", [("aligned112", "arcface"), ("facesearch-crop", "facenet"),
                                           ("box-crop", "box")])
def test_aligned_option_skips_detection(cli, tmp_path, crop_trees, kind, aligned):
    known, queries = crop_trees[kind]
    res = cli("--home", tmp_path / "g", "enroll", known, "--aligned", aligned, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert _names(cli, tmp_path / "g", queries, extra=["--aligned", aligned]) == EXPECTED
    photo = queries / "obama1.png"
    res = cli("--home", tmp_path / "g", "query", "--aligned", aligned, "--json", photo)
    (face,) = json.loads(res.stdout)["results"][0]["faces"]
    height, width = load_image(photo).shape[:2]
    assert face["box"] == [0, 0, width, height]  # the whole photo is the face


def test_verify_aligned_crops(cli, tmp_path, crop_trees):
    known, queries = crop_trees["aligned112"]
    args = ("--home", tmp_path / "g", "verify", "--aligned", "arcface", "--json", queries / "obama1.png")
    same = cli(*args, known / "obama" / "obama.png")
    other = cli(*args, known / "biden" / "biden.png")
    assert same.exit_code == other.exit_code == 0, same.output + other.output
    assert json.loads(same.stdout)["same_person"] is True
    assert json.loads(other.stdout)["same_person"] is False


def test_aligned_refused_with_server(cli, tmp_path):
    res = cli("--home", tmp_path, "--server", "http://127.0.0.1:9", "query", "--aligned", "arcface",
              QUERIES / "obama1.jpg")
    assert res.exit_code == 2
    assert "--aligned works on a local gallery only" in res.output


def test_ordinary_photos_are_not_read_as_crops(analysis):
    """Full photos (one face or several, small or large) embed exactly as before crops were recognised."""
    from facesearch.models.analysis import FaceAnalysis

    plain = FaceAnalysis(embedder=analysis.embedder, crop_photos=False)
    for name in ["obama1.jpg", "obama-240p.jpg", "two_people.jpg", "obama_partial_face.jpg", "lin-manuel-miranda.png"]:
        image = load_image(QUERIES / name)
        faces, before = analysis.get(image), plain.get(image)
        assert len(faces) == len(before) >= 1, name
        for a, b in zip(faces, before):
            assert a.box == b.box and np.array_equal(a.embedding, b.embedding), name


def test_crop_recognised_by_its_framing(analysis, crop_trees):
    known = crop_trees
    expected = {"facesearch-crop": "facenet", "aligned112": "arcface", "box-crop": "box"}
    for kind, (tree, _) in known.items():
        for photo in sorted(tree.glob("*/*.png")):
            image = load_image(photo)
            assert analysis.framing(image, analysis.detector.detect(image)) == expected[kind], photo


def test_cache_reads_older_entries_of_photos_only(tmp_path, analysis, crop_trees):
    """Entries cached before crops were recognised are used for photos, not for crops."""
    from facesearch.models.analysis import CROP_PHOTOS
    from facesearch.models.face_cache import FaceCache

    settings = analysis.settings
    assert settings[CROP_PHOTOS] is True
    older = FaceCache(tmp_path, {k: v for k, v in settings.items() if k != CROP_PHOTOS})
    photo = load_image(QUERIES / "obama1.jpg")
    crop = load_image(crop_trees["facesearch-crop"][1] / "obama1.png")
    older.put("a" * 64, analysis.get(photo), (photo.shape[1], photo.shape[0]))
    older.put("b" * 64, analysis.get(crop), (crop.shape[1], crop.shape[0]))
    cache = FaceCache(tmp_path, settings)
    assert cache.get("a" * 64) is not None
    assert cache.get("b" * 64) is None  # recomputed: it is a crop


def test_aligned_choices_match_the_framings():
    from facesearch.cli.root import ALIGNED_CHOICES
    from facesearch.models.crop_input import FRAMINGS

    assert tuple(ALIGNED_CHOICES) == FRAMINGS


def test_bench_identify_on_crops(cli):
    from facesearch.bench.photo_crops import crop_path

    res = cli("bench", "identify", "--dataset", KNOWN, "--input", "aligned112", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["input"] == "aligned112" and data["known_probes"] == 4 and data["known_no_face"] == 0
    assert data["matchers"][0]["rank1"] == 1.0
    crops = [crop_path(p, "aligned112") for p in KNOWN.glob("*/*")]
    assert len(crops) == 9
    assert all(load_image(c).shape == (112, 112, 3) for c in crops)
    assert all(stat.S_IMODE(c.stat().st_mode) == 0o600 for c in crops)

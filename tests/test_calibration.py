"""The threshold calibrated to each gallery, through the CLI on real photos: how it is estimated
(LFW numbers, the gallery itself, strangers), that queries use it, that writes keep it current,
and that no known face is lost nor any stranger named at it on the fixtures and 5celeb."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import CELEB, DATA, KNOWN, QUERIES
from facesearch.search.calibration import DEFAULT_FPIR, MIN_IDENTITIES, lfw_threshold
from facesearch.search.normalisation import CENTRE_WEIGHT


def _json(cli, *args):
    res = cli(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _faces(cli, home, *photos, extra=()):
    return [[f["identity"] for f in r["faces"]]
            for r in _json(cli, "--home", home, "query", *extra, *photos)["results"]]


def test_a_small_gallery_is_calibrated_from_lfw_numbers_and_says_so(cli, known_gallery):
    info = _json(cli, "--home", known_gallery.home, "info")
    cal = info["calibration"]
    assert info["identities"] == 5 and cal["identities"] == 5
    assert cal["method"] == "lfw" and "LFW" in cal["note"] and cal["fpir"] == DEFAULT_FPIR
    assert cal["score"] == "centred"
    assert cal["threshold"] == pytest.approx(lfw_threshold(5, DEFAULT_FPIR, CENTRE_WEIGHT), abs=1e-4)
    assert info["threshold"] == cal["threshold"]
    listed = cli("--home", known_gallery.home, "list")
    assert listed.exit_code == 0, listed.output
    assert f"threshold {cal['threshold']:.3f}, calibrated for FPIR 1% at 5 identities (lfw)" in listed.stdout
    assert "too few to estimate" in listed.stdout


def test_queries_use_the_stored_threshold_and_threshold_overrides_it(cli, known_gallery):
    photo = QUERIES / "obama1.jpg"
    assert _faces(cli, known_gallery.home, photo) == [["obama"]]
    cal = _json(cli, "--home", known_gallery.home, "calibrate", "--fpir", "1e-9")
    assert cal["threshold"] > 0.85 and cal["fpir"] == 1e-9
    # obama1 scores 0.79 against obama: unknown at the new default, named when told the old one.
    assert _faces(cli, known_gallery.home, photo) == [[None]]
    assert _faces(cli, known_gallery.home, photo, extra=["--threshold", "0.45"]) == [["obama"]]
    # The target is kept: calibrating again without --fpir keeps 1e-9.
    assert _json(cli, "--home", known_gallery.home, "calibrate")["fpir"] == 1e-9


def test_each_face_is_named_when_its_similarity_reaches_its_own_threshold(cli, known_gallery):
    # Centred scores: the gallery's threshold plus half the mean of the face's other candidates.
    info = _json(cli, "--home", known_gallery.home, "info")
    results = _json(cli, "--home", known_gallery.home, "query", QUERIES / "obama_and_biden.jpg",
                    QUERIES / "multiface.jpg")["results"]
    faces = [f for r in results for f in r["faces"]]
    assert len(faces) == 9
    for f in faces:
        others = [c["similarity"] for c in f["candidates"][1:]]
        assert f["threshold"] == pytest.approx(info["threshold"] + CENTRE_WEIGHT * sum(others) / len(others),
                                               abs=2e-4)
        assert (f["identity"] is not None) == (f["similarity"] >= f["threshold"])


def test_no_known_face_lost_and_no_stranger_named_at_the_calibrated_default(cli, known_gallery):
    known = {"obama1.jpg": ["obama"], "obama-240p.jpg": ["obama"], "johnsnow_test1.jpg": ["kit_harington"],
             "alex_lacamoire1.jpg": ["alex_lacamoire"], "two_people.jpg": ["biden", "obama"],
             "kit_with_rose.jpg": ["kit_harington", "rose_leslie"]}
    got = _faces(cli, known_gallery.home, *[QUERIES / p for p in known])
    assert [sorted(g) for g in got] == [sorted(v) for v in known.values()]
    lin, multi, family = _faces(cli, known_gallery.home, QUERIES / "lin-manuel-miranda.png",
                                QUERIES / "multiface.jpg", QUERIES / "obama_and_biden.jpg")
    assert lin == [None] and multi == [None] * 6
    assert sorted(family, key=str) == [None, "biden", "obama"]


def test_5celeb_every_validation_face_named_at_the_calibrated_default(cli, tmp_path):
    from facesearch.bench.datasets import folder_dataset

    home = tmp_path / "celeb"
    assert cli("--home", home, "enroll", "-q", CELEB / "train").exit_code == 0
    assert _json(cli, "--home", home, "info")["calibration"]["method"] == "lfw"
    val = folder_dataset(CELEB / "val")
    results = _json(cli, "--home", home, "query", *[p for p, _ in val])["results"]
    named = [max(r["faces"], key=lambda f: f["box"][2] * f["box"][3])["identity"] for r in results]
    assert named == [who for _, who in val]
    # And the fixtures' people, none of them enrolled here, stay unknown.
    strangers = _faces(cli, home, *sorted(QUERIES.glob("obama*.jpg")), QUERIES / "lin-manuel-miranda.png",
                       QUERIES / "johnsnow_test1.jpg")
    assert all(who is None for faces in strangers for who in faces)


def test_strangers_sharpen_the_estimate(cli, known_gallery):
    cal = _json(cli, "--home", known_gallery.home, "calibrate", "--strangers", CELEB / "train", "-q")
    # 93 photos of 5 people enrolled nowhere here; two have no usable face (a PNG and one without).
    assert cal["method"] == "strangers" and 80 <= cal["strangers"] <= 93 and cal["samples"] == cal["strangers"]
    assert 0.3 < cal["threshold"] < 0.7
    assert _faces(cli, known_gallery.home, QUERIES / "obama1.jpg") == [["obama"]]


def _lfw_people(tmp_path, count: int):
    """``count`` LFW people with 2+ photos, one photo each, as an enrollment folder."""
    from facesearch.bench.datasets import lfw_root

    root = lfw_root(DATA / "lfw" / "lfw-deepfunneled.tgz")
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)[:count]
    out = tmp_path / f"lfw{count}"
    for person in people:
        (out / person.name).mkdir(parents=True)
        shutil.copy(sorted(person.glob("*.jpg"))[0], out / person.name)
    return out, people


def test_a_larger_gallery_is_calibrated_from_itself_and_recalibrated_as_it_grows(cli, tmp_path):
    folder, people = _lfw_people(tmp_path, MIN_IDENTITIES + 10)
    home = tmp_path / "g"
    assert cli("--home", home, "enroll", "-q", folder).exit_code == 0
    cal = _json(cli, "--home", home, "info")["calibration"]
    assert cal["method"] == "gallery" and cal["identities"] == len(people) and cal["samples"] == len(people)
    assert cal["note"] == ""
    # Removing one of 40 (2.5%) keeps the stored calibration; adding the 5 fixtures people and
    # 5celeb's five (+10 of 39, 26%) redoes it for the new size, with the same target.
    assert cli("--home", home, "remove", people[0].name).exit_code == 0
    assert _json(cli, "--home", home, "info")["calibration"]["identities"] == len(people)
    # 39 faces x 60% = 23 of the gallery's own best non-mated scores above the target (20 are
    # needed): their quantile decides, not the model.
    half = _json(cli, "--home", home, "calibrate", "--fpir", "0.6")
    assert half["method"] == "gallery-maxima" and half["samples"] == len(people) - 1
    assert cli("--home", home, "calibrate", "--fpir", "0.05").exit_code == 0
    assert cli("--home", home, "enroll", "-q", KNOWN, CELEB / "train").exit_code == 0
    again = _json(cli, "--home", home, "info")["calibration"]
    assert again["identities"] == len(people) - 1 + 10 and again["fpir"] == 0.05 and again["method"] == "gallery"


def test_calibrate_refuses_an_empty_gallery_and_a_bad_target(cli, tmp_path):
    res = cli("--home", tmp_path / "empty", "calibrate")
    assert res.exit_code == 1 and "the gallery is empty" in res.output and len(res.output.strip().splitlines()) == 1
    res = cli("--home", tmp_path / "empty", "calibrate", "--fpir", "1.5")
    assert res.exit_code == 2 and "--fpir" in res.output
    info = _json(cli, "--home", tmp_path / "empty", "info")
    assert info["calibration"] is None and info["threshold"] == 0.45


def test_the_shipped_lfw_numbers_are_refit_as_means_and_spreads(tmp_path):
    """What ``python -m facesearch.bench.calibration_check --refit`` measures, on a small gallery
    of unit vectors, and that the shipped file reads back as the same kind of numbers."""
    import numpy as np

    from facesearch.bench.calibration_check import fit_lfw_moments
    from facesearch.search.calibration import lfw_moments

    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((40, 512)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    mu, sigma = fit_lfw_moments(gallery, np.arange(40) // 2)  # 20 people, two faces each
    assert mu.shape == sigma.shape == (40,) and np.isfinite(mu).all() and (sigma > 0).all()
    # Random directions: an identity's better face of two sits a little above zero (0.025).
    assert 0.0 < float(mu.mean()) < 0.05 and 0.02 < float(sigma.mean()) < 0.08
    shipped_mu, shipped_sigma = lfw_moments()
    assert shipped_mu.shape == shipped_sigma.shape == (1680,) and 0.02 < shipped_mu.mean() < 0.05

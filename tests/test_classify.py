"""Classifiers on top of the gallery: mlp + reranking, reports, dataset tools, image models.

Real data, kept small: the mlp trains on 5celeb/train's 93 cached embeddings in seconds; image
models train one epoch on 75x75 crops (InceptionV3's smallest input) from random weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import CELEB, KNOWN, QUERIES


def _run(*args):
    """The real CLI in-process; click's result (stdout and stderr apart)."""
    from facesearch.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _png_ok(path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50


# -- mlp on 5celeb ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def celeb_home(tmp_path_factory, analysis):
    """A gallery with 5celeb/train enrolled (embeddings from the face cache after the first run)."""
    from facesearch.gallery import Gallery

    home = tmp_path_factory.mktemp("celeb")
    with Gallery(home, analysis=analysis) as g:
        report = g.enroll([CELEB / "train"])
    assert len(report.identities) == 5 and not report.errors
    return home


@pytest.fixture(scope="module")
def celeb_mlp(celeb_home, tmp_path_factory):
    """``train mlp`` on that gallery, evaluated on 5celeb/val: (summary dict, reports folder)."""
    out = tmp_path_factory.mktemp("mlp-reports")
    res = _run("--home", celeb_home, "train", "mlp", "--out", out, "--eval", CELEB / "val", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), out


def test_mlp_beats_chance_on_5celeb_val(celeb_mlp, celeb_home, analysis):
    from facesearch.classify.kinds import load_classifier
    from facesearch.classify.train import embed_folder

    summary, _ = celeb_mlp
    assert summary["samples"] >= 20
    # Five identities: chance is 20%. FaceNet embeddings separate these people well.
    assert summary["accuracy"] >= 0.8, summary
    # The saved model, reloaded, gives the same answer as the report.
    clf = load_classifier(celeb_home / "models" / "mlp")
    X, y, _ = embed_folder(CELEB / "val", analysis)
    assert list(clf.classes_) == sorted(p.name for p in (CELEB / "train").iterdir())
    assert clf.score(X, y) == pytest.approx(summary["accuracy"], abs=1e-3)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 5) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_mlp_metadata_records_gallery_state(celeb_mlp, celeb_home):
    from facesearch.classify.base import Classifier
    from facesearch.gallery import Gallery

    meta = Classifier.read_metadata(celeb_home / "models" / "mlp")
    with Gallery(celeb_home) as g:
        assert meta["trained_on"]["generation"] == g.generation()
        assert meta["trained_on"]["model_id"] == g.model_id
        assert meta["classes"] == g.names() == sorted(p.name for p in (CELEB / "train").iterdir())
    assert meta["kind"] == "mlp"
    assert len(meta["history"]["loss"]) == celeb_mlp[0]["epochs"]


def test_mlp_reports_exist_and_parse(celeb_mlp):
    summary, out = celeb_mlp
    report = json.loads((out / "classification_report.json").read_text())
    for name in ("ben_afflek", "madonna", "weighted avg", "macro avg"):
        assert set(report[name]) == {"precision", "recall", "f1-score", "support"}
    # The report describes the --eval photos the summary counts, and agrees with its accuracy.
    assert report["weighted avg"]["support"] == summary["samples"]
    assert report["accuracy"] == pytest.approx(summary["accuracy"], abs=1e-4)
    assert json.loads((out / "summary.json").read_text())["accuracy"] == summary["accuracy"]
    _png_ok(out / "history.png")
    _png_ok(out / "confusion_matrix.png")


def test_mlp_is_reproducible_with_a_seed():
    from facesearch.classify.mlp import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 16)).astype(np.float32)
    y = ["a" if v > 0 else "b" for v in X[:, 0]]
    p1 = MLPClassifier(epochs=3, seed=1).fit(X, y).predict_proba(X)
    p2 = MLPClassifier(epochs=3, seed=1).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(p1, p2, atol=1e-6)


# -- reranking -------------------------------------------------------------------------------

def test_rerank_match_orders_eligible_candidates_only():
    from facesearch.classify.rerank import combined_score, rerank_match
    from facesearch.search.match import Candidate, Match

    classes = ["a", "b", "c"]
    m = Match("a", 0.6, [Candidate("a", 0.6), Candidate("b", 0.55), Candidate("c", 0.2)])
    r = rerank_match(m, np.array([0.1, 0.4, 0.5]), classes, threshold=0.35, by="mlp", confidence=0)
    # b: sqrt(0.55 * 0.4) = 0.469 beats a: sqrt(0.6 * 0.1) = 0.245; c is under the threshold.
    assert r.identity == "b" and r.similarity == pytest.approx(0.55) and r.matcher_identity == "a"
    assert [c.identity for c in r.candidates] == ["b", "a", "c"]
    assert r.candidates[0].score == pytest.approx(combined_score(0.55, 0.4)) and r.candidates[2].score is None
    # By default a classifier only 40% sure of b does not overrule the matcher's a ...
    r = rerank_match(m, np.array([0.1, 0.4, 0.5]), classes, threshold=0.35)
    assert r.identity == "a" and [c.identity for c in r.candidates] == ["a", "b", "c"]
    # ... one 95% sure does.
    r = rerank_match(m, np.array([0.02, 0.95, 0.03]), classes, threshold=0.35)
    assert r.identity == "b" and r.matcher_identity == "a"
    # A classifier sure of c cannot make it win: c never reached the threshold. a and b tie at a
    # combined score of 0, and the higher similarity breaks the tie.
    r = rerank_match(m, np.array([0.0, 0.0, 1.0]), classes, threshold=0.35)
    assert r.identity == "a" and [c.identity for c in r.candidates] == ["a", "b", "c"]
    # Unknown stays unknown, however sure the classifier is.
    unknown = Match(None, 0.3, [Candidate("a", 0.3), Candidate("b", 0.1)])
    r = rerank_match(unknown, np.array([0.99, 0.01, 0.0]), classes, threshold=0.35)
    assert r.identity is None and r.as_dict()["identity"] is None


@pytest.fixture
def known_mlp(known_gallery, tmp_path):
    """The fixtures/known gallery copy with an mlp trained on it."""
    res = _run("--home", known_gallery.home, "train", "mlp", "--out", tmp_path / "reports", "--json")
    assert res.exit_code == 0, res.output
    return known_gallery


def test_rerank_keeps_unknown_unknown_and_known_known(known_mlp):
    res = _run("--home", known_mlp.home, "query", "--rerank", "mlp", "--json",
               QUERIES / "lin-manuel-miranda.png", QUERIES / "obama_and_biden.jpg")
    assert res.exit_code == 0, res.output
    stranger, pair = json.loads(res.stdout)["results"]
    face = stranger["faces"][0]
    assert face["identity"] is None and face["reranked_by"] == "mlp"
    # The classifier has an opinion about him (its probabilities sum to one over five people) ...
    assert sum(c["probability"] for c in face["candidates"]) == pytest.approx(1.0, abs=0.01)
    # ... but it is not allowed to name him.
    assert all(c["score"] is None for c in face["candidates"])
    names = [f["identity"] for f in pair["faces"]]
    assert names[:2] == ["obama", "biden"] and names[2] is None


def test_stale_classifier_is_refused_until_retrained(known_mlp):
    home = known_mlp.home
    assert _run("--home", home, "enroll", "--name", "alex_lacamoire", QUERIES / "alex_lacamoire1.jpg").exit_code == 0
    res = _run("--home", home, "query", "--rerank", "mlp", QUERIES / "obama1.jpg")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "generation" in lines[0] and "facesearch train mlp" in lines[0], res.stderr
    assert _run("--home", home, "train", "mlp").exit_code == 0
    res = _run("--home", home, "query", "--rerank", "mlp", "--json", QUERIES / "obama1.jpg")
    assert res.exit_code == 0 and json.loads(res.stdout)["results"][0]["faces"][0]["identity"] == "obama"


def test_rerank_without_a_trained_classifier_is_one_line(known_gallery):
    res = _run("--home", known_gallery.home, "query", "--rerank", "mlp", QUERIES / "obama1.jpg")
    assert res.exit_code == 1 and "facesearch train mlp" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# -- dataset tools ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def celeb_crops(tmp_path_factory, celeb_home):
    """5celeb/train cropped to 75x75 by `facesearch crop` (detections from the face cache), with
    one faceless photo (a grey card) added, since every 5celeb photo now has a face found."""
    import shutil

    src = tmp_path_factory.mktemp("celeb-train") / "train"
    shutil.copytree(CELEB / "train", src)
    Image.new("RGB", (300, 200), (128, 128, 128)).save(src / "madonna" / "grey-card.jpg")
    dst = tmp_path_factory.mktemp("crops") / "train"
    res = _run("crop", src, dst, "--size", 75, "--json", "-q")
    assert res.exit_code == 0, res.output
    return dst, json.loads(res.stdout)


def test_crop_keeps_the_layout_and_logs_odd_photos(celeb_crops):
    dst, log = celeb_crops
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == sorted(p.name for p in (CELEB / "train").iterdir())
    crops = sorted(dst.glob("*/*.jpg"))
    photos = list((CELEB / "train").glob("*/*")) + ["grey-card.jpg"]
    # One crop per photo with a face (the largest); the others are logged.
    assert len(crops) == log["cropped"] == len(photos) - len(log["no_face"]) - len(log["errors"])
    assert [Path(p).name for p in log["no_face"]] == ["grey-card.jpg"]
    assert log["multiple_faces"] and not log["errors"]  # 5celeb has photos of several faces
    with Image.open(crops[0]) as im:
        assert im.size == (75, 75)
    assert all(Path(m["path"]).is_file() and m["faces"] >= 2 for m in log["multiple_faces"])
    assert json.loads((dst / "crop_log.json").read_text())["no_face"] == log["no_face"]


def test_crop_reports_an_unreadable_photo_and_crops_the_rest(tmp_path):
    import shutil

    src = tmp_path / "src" / "madonna"
    src.mkdir(parents=True)
    for photo in sorted((CELEB / "val" / "madonna").iterdir())[:2]:
        shutil.copy(photo, src / photo.name)
    (src / "broken.jpg").write_text("not a photo\n")
    res = _run("crop", tmp_path / "src", tmp_path / "dst", "--size", 64, "--json", "-q")
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert json.loads(res.stdout)["cropped"] == 2 and len(list((tmp_path / "dst" / "madonna").glob("*.jpg"))) == 2


def test_export_then_import_round_trips_the_averages(known_gallery, tmp_path, cli):
    home = known_gallery.home
    out1, out2, other = tmp_path / "export1", tmp_path / "export2", tmp_path / "imported"
    assert cli("--home", home, "export", out1).exit_code == 0
    images = np.load(out1 / "all_images.npy")
    labels = np.load(out1 / "all_labels.npy")
    mapping = np.load(out1 / "label_mapping.npy")
    emb = np.load(out1 / "face_embeddings.npy")
    assert images.shape == (9, 160, 160, 3) and images.dtype == np.float32 and -1.01 <= images.min() < images.max() <= 1.0
    assert labels.dtype == np.int64 and list(mapping) == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    names, stored = known_gallery.embeddings()
    np.testing.assert_array_equal(emb, stored)  # every enrolled face has its photo: none left out
    assert [mapping[i] for i in labels] == names
    averages = json.loads((out1 / "average_embeddings.json").read_text())
    assert sorted(averages) == list(mapping) and all(len(v) == 512 for v in averages.values())
    obama = emb[labels == list(mapping).index("obama")].mean(axis=0)
    np.testing.assert_allclose(averages["obama"], obama / np.linalg.norm(obama), atol=1e-6)

    res = cli("--home", other, "import", "--json", out1 / "average_embeddings.json")
    assert res.exit_code == 0 and json.loads(res.stdout)["imported"] == list(mapping)
    assert cli("--home", other, "export", out2).exit_code == 0
    assert json.loads((out2 / "average_embeddings.json").read_text()) == averages  # exactly, float for float
    assert np.load(out2 / "all_images.npy").shape[0] == 0  # averages have no pixels
    # Importing the same file again adds nothing; the imported identities are matched like any face.
    again = json.loads(cli("--home", other, "import", "--json", out1 / "average_embeddings.json").stdout)
    assert again["imported"] == [] and again["duplicates"] == list(mapping)
    res = cli("--home", other, "query", "--json", QUERIES / "obama1.jpg")
    assert json.loads(res.stdout)["results"][0]["faces"][0]["identity"] == "obama"


def test_import_refuses_a_bad_file_in_one_line(tmp_path, cli):
    bad = tmp_path / "avg.json"
    bad.write_text(json.dumps({"someone": [0.1, 0.2]}))
    res = cli("--home", tmp_path / "g", "import", bad)
    assert res.exit_code == 1 and "512" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_split_is_stratified_and_seeded(celeb_crops, tmp_path):
    from facesearch.classify.splits import split_items, write_split
    from facesearch.bench.datasets import folder_dataset

    src, _ = celeb_crops
    items = folder_dataset(src)
    a, b = split_items(items, seed=3), split_items(items, seed=3)
    assert a == b and split_items(items, seed=4) != a
    assert sorted(p for s in a.values() for p, _ in s) == sorted(p for p, _ in items)
    for who in {w for _, w in items}:
        n = sum(1 for _, w in items if w == who)
        assert sum(1 for _, w in a["test"] if w == who) == round(0.15 * n)
    info = write_split(src, tmp_path / "split", seed=3)
    assert info["totals"] == {k: len(v) for k, v in a.items()}
    assert len(list((tmp_path / "split" / "val").glob("*/*.jpg"))) == len(a["val"])
    _png_ok(tmp_path / "split" / "class_distribution.png")


def test_augmentation_preview_and_inference_identity(tmp_path, cli):
    from facesearch.classify.augment import augmentation

    res = cli("augment-preview", QUERIES / "obama1.jpg", tmp_path / "aug.png", "-n", 3)
    assert res.exit_code == 0, res.output
    _png_ok(tmp_path / "aug.png")
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    aug = augmentation(seed=0)
    np.testing.assert_allclose(np.asarray(aug(x, training=False)), x)
    assert not np.allclose(np.asarray(aug(x, training=True)), x)


# -- image models ----------------------------------------------------------------------------

PEOPLE = ("ben_afflek", "madonna", "mindy_kaling")


def _subset(src: Path, dst: Path, per_person: int = 4) -> Path:
    """The first ``per_person`` images of three people of a folder-per-identity tree."""
    import shutil

    for who in PEOPLE:
        (dst / who).mkdir(parents=True)
        for p in sorted((src / who).iterdir())[:per_person]:
            shutil.copy(p, dst / who / p.name)
    return dst


@pytest.fixture(scope="module")
def tiny_crops(celeb_crops, tmp_path_factory):
    """12 face crops of 75x75 (three people): enough for one quick epoch."""
    return _subset(celeb_crops[0], tmp_path_factory.mktemp("tiny") / "crops")


@pytest.mark.parametrize("kind", ["inception", "ensemble", "boxnet"])
def test_image_model_trains_saves_and_reloads(kind, tiny_crops, tmp_path, analysis):
    from facesearch.classify.base import Classifier, ClassifierError
    from facesearch.classify.kinds import load_classifier
    from facesearch.classify.mlp import MLPClassifier
    from facesearch.classify.train import data_splits, load_images, train_image_model

    data = tiny_crops if kind != "boxnet" else _subset(CELEB / "train", tmp_path / "photos")
    result = train_image_model(kind, data, save_to=tmp_path / "model", out=tmp_path / "reports", analysis=analysis,
                               input_size=75, epochs=1, base_weights="none", batch_size=8)
    summary = result.summary
    assert summary["epochs"] == 1 and summary["samples"] >= 3
    assert json.loads((tmp_path / "reports" / "summary.json").read_text())["kind"] == kind
    report = json.loads((tmp_path / "reports" / "classification_report.json").read_text())
    assert [n for n in report if n in PEOPLE] == list(PEOPLE)
    assert report["accuracy"] == pytest.approx(summary["accuracy"], abs=1e-4)
    for png in ("history.png", "confusion_matrix.png"):
        _png_ok(tmp_path / "reports" / png)
    # The grid of mistakes is drawn exactly when something was misclassified.
    assert ("misclassified_png" in summary["files"]) == (summary["accuracy"] < 1)
    if summary["accuracy"] < 1:
        _png_ok(summary["files"]["misclassified_png"])

    images = load_images(data_splits(data)["test"], 75)
    loaded = load_classifier(tmp_path / "model")
    assert type(loaded) is type(result.classifier) and list(loaded.classes_) == list(PEOPLE)
    with pytest.raises(ClassifierError, match="load_classifier"):
        MLPClassifier.load(tmp_path / "model")  # a class loads only its own kind
    before, after = result.classifier.predict_proba(images), loaded.predict_proba(images)
    assert before.shape == (len(images), 3)
    assert np.allclose(before, after, atol=1e-5)
    meta = Classifier.read_metadata(tmp_path / "model")
    assert meta["trained_on"]["generation"] is None and meta["params"]["input_size"] == 75
    if kind == "boxnet":
        boxes = loaded.predict_boxes(images)
        assert boxes.shape == (len(images), 4) and (boxes >= 0).all() and (boxes <= 1).all()
        assert 0 <= summary["box_mean_iou"] <= 1


def test_query_rerank_with_an_image_model(celeb_home, celeb_crops, tiny_crops, tmp_path):
    import shutil

    from facesearch.classify.base import Classifier

    home = tmp_path / "home"
    shutil.copytree(celeb_home, home)  # the module's gallery stays as it is for the other tests

    def train(data):
        res = _run("--home", home, "train", "inception", data, "--base-weights", "none", "--input-size", 75,
                   "--epochs", 1, "--batch-size", 16, "--json")
        assert res.exit_code == 0, res.output

    train(celeb_crops[0])  # crops of all five enrolled people
    trained_on = Classifier.read_metadata(home / "models" / "inception")["trained_on"]
    assert trained_on["generation"] is not None and trained_on["gallery"] == str(home)
    madonna = sorted((CELEB / "val" / "madonna").iterdir())[0]
    res = _run("--home", home, "query", "--rerank", "inception", "--json", madonna, QUERIES / "lin-manuel-miranda.png")
    assert res.exit_code == 0, res.output
    known, stranger = (r["faces"][0] for r in json.loads(res.stdout)["results"])
    assert known["identity"] == "madonna" and known["reranked_by"] == "inception"
    assert sum(c["probability"] for c in known["candidates"]) <= 1.0 + 1e-6
    assert stranger["identity"] is None  # one epoch from scratch or not, unknown stays unknown

    train(tiny_crops)  # three of the five people: the other two would be vetoed, so it is refused
    res = _run("--home", home, "query", "--rerank", "inception", madonna)
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "does not know 2 enrolled identities" in res.stderr

    train(celeb_crops[0])
    assert _run("--home", home, "enroll", "--name", "alex_lacamoire", QUERIES / "alex_lacamoire1.jpg").exit_code == 0
    res = _run("--home", home, "query", "--rerank", "inception", madonna)
    assert res.exit_code == 1 and "facesearch train inception" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_imagenet_weights_unavailable_is_one_line(tiny_crops, tmp_path, monkeypatch):
    from facesearch.classify import image_models as images

    # As without internet (this box has none; elsewhere the test must not download 90 MB).
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(images, "_reachable", lambda *a, **k: False)
    for kind in ("inception", "ensemble"):
        res = _run("--home", tmp_path, "train", kind, tiny_crops, "--input-size", 75, "--epochs", 1)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1, res.output
        assert "ImageNet" in lines[0] and "--base-weights PATH" in lines[0]
    assert not (tmp_path / "models").exists()  # nothing trained from scratch behind the user's back
    res = _run("--home", tmp_path, "train", "inception", tiny_crops, "--base-weights", tmp_path / "nope.h5")
    assert res.exit_code == 1 and "nope.h5" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# -- bench rows ------------------------------------------------------------------------------

def test_bench_rows_for_matchers_classifiers_and_rerankers(celeb_mlp, celeb_home, analysis):
    from facesearch.bench.classifiers import classifier_rows, folder_probes
    from facesearch.classify.kinds import load_classifier
    from facesearch.classify.train import embed_folder

    train_x, train_y, _ = embed_folder(CELEB / "train", analysis)
    probes = folder_probes(CELEB / "val", analysis)
    clf = load_classifier(celeb_home / "models" / "mlp")
    rows = {r["method"]: r for r in classifier_rows(train_x, train_y, probes, [clf])}
    assert set(rows) == {"knn", "centroid", "mlp", "knn+mlp", "centroid+mlp"}
    assert rows["mlp"]["role"] == "alone" and rows["knn+mlp"]["role"] == "reranker"
    for r in rows.values():
        # Closed set: recall weighted by support is the share of faces named right, i.e. accuracy.
        assert r["weighted_recall"] == pytest.approx(r["accuracy"], abs=1e-4)
    assert rows["mlp"]["unknown"] == 0  # alone, a classifier names every face
    assert rows["mlp"]["accuracy"] == pytest.approx(celeb_mlp[0]["accuracy"], abs=0.05)
    # Reranking only reorders above-threshold candidates: it cannot add unknowns or remove them.
    assert rows["knn+mlp"]["unknown"] == rows["knn"]["unknown"]
    assert rows["knn+mlp"]["accuracy"] >= 0.8


def test_bench_classify_open_set_rows(celeb_home):
    res = _run("bench", "classify", "--train", CELEB / "train", "--test", CELEB / "val", "--unknown", KNOWN, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    rows = {r["method"]: r for r in d["rows"]}
    assert d["unknown_faces"] >= 5 and all(r["unknown_probes"] == d["unknown_faces"] for r in rows.values())
    assert rows["mlp"]["unknown_rejected"] == 0.0  # a softmax names every stranger
    assert rows["knn"]["unknown_rejected"] >= 0.8  # the matcher's threshold keeps them unknown ...
    for matcher in ("knn", "centroid"):  # ... and reranking cannot change that
        assert rows[f"{matcher}+mlp"]["unknown_rejected"] == rows[matcher]["unknown_rejected"]
    res = _run("bench", "classify", "--train", CELEB / "train", "--test", CELEB / "val", "--unknown", CELEB / "val")
    assert res.exit_code == 2 and "not unknown" in res.output

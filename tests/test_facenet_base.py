"""Image classifiers on FaceNet's face-trained base (``--base-weights facenet``), offline.

Real weights (the cached FaceNet 20180402-114759) and real photos, kept small: 5celeb cropped
to FaceNet's 160 pixels; the head trains on the frozen base's features, computed once.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CELEB, QUERIES

PEOPLE = ("ben_afflek", "madonna", "mindy_kaling")


def _run(*args):
    """The real CLI in-process; click's result (stdout and stderr apart)."""
    from facesearch.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def crops160(tmp_path_factory):
    """5celeb cropped at 160 by `facesearch crop`: ``data/train`` (enrolled photos) and ``data/test`` (val)."""
    data = tmp_path_factory.mktemp("c5") / "data"
    for src, dst in (("train", "train"), ("val", "test")):
        res = _run("crop", CELEB / src, data / dst, "--size", 160, "--json", "-q")
        assert res.exit_code == 0, res.output
        (data / dst / "crop_log.json").unlink()
    return data


@pytest.fixture(scope="module")
def tiny160(crops160, tmp_path_factory):
    """12 crops, four of each of three people."""
    dst = tmp_path_factory.mktemp("tiny160")
    for who in PEOPLE:
        (dst / who).mkdir()
        for p in sorted((crops160 / "train" / who).iterdir())[:4]:
            shutil.copy(p, dst / who / p.name)
    return dst


@pytest.fixture(scope="module")
def celeb_inception(crops160, tmp_path_factory, analysis):
    """A gallery of 5celeb/train with `train inception --base-weights facenet --fine-tune 1` saved in it."""
    from facesearch.gallery import Gallery

    home = tmp_path_factory.mktemp("celeb-facenet")
    with Gallery(home, analysis=analysis) as g:
        g.enroll([CELEB / "train"])
    res = _run("--home", home, "train", "inception", crops160, "--base-weights", "facenet", "--fine-tune", 1,
               "--fine-tune-epochs", 1, "--batch-size", 16, "--json")
    assert res.exit_code == 0, res.output
    return home, json.loads(res.stdout)


def _facenet():
    """FaceNet's own Keras model, as the embedder builds it."""
    from facesearch.models.weights import build_model, resolve_weights

    return build_model(resolve_weights(download=False))


def test_facenet_base_names_the_test_faces(celeb_inception):
    home, summary = celeb_inception
    assert summary["trained_on"]["bases"] == "InceptionResNetV1" and summary["params"]["input_size"] == 160
    # 25 test faces of five people: chance is 20%, the mlp on FaceNet embeddings gets them all.
    assert summary["samples"] == 25 and summary["accuracy"] >= 0.9


def test_facenet_base_reads_prewhitened_crops_like_the_embedder(celeb_inception, crops160):
    """The saved model's base is FaceNet with FaceNet's own preprocessing, after reloading."""
    from facesearch.classify.kinds import load_classifier
    from facesearch.classify.train import data_splits, load_images
    from facesearch.models.embed import prewhiten
    from facesearch.models.runtime import import_keras

    keras = import_keras()
    home, _ = celeb_inception
    clf = load_classifier(home / "models" / "inception")
    crops = load_images(data_splits(crops160)["test"][:4], 160)
    # Below the fine-tuned top block: the model's own prewhitening, then the frozen blocks.
    base = clf.model_.get_layer("base_facenet")
    below = keras.Model(base.input, base.get_layer("Block8_5_Activation").output)
    got = below(clf.model_.get_layer("prewhiten")(crops.astype(np.float32)), training=False)
    facenet = _facenet()
    reference = keras.Model(facenet.input, facenet.get_layer("Block8_5_Activation").output)
    expected = reference(prewhiten(crops), training=False)
    assert np.allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected), atol=1e-4)


def test_fine_tune_counts_facenet_blocks(celeb_inception):
    """--fine-tune 1 changed Block8_6's convolutions only; lower blocks and every BatchNormalization stay FaceNet's."""
    from facesearch.classify.kinds import load_classifier

    home, _ = celeb_inception
    base = load_classifier(home / "models" / "inception").model_.get_layer("base_facenet")
    facenet = _facenet()
    changed = {layer.name for layer in base.layers if layer.weights and not all(
        np.array_equal(a, b) for a, b in zip(layer.get_weights(), facenet.get_layer(layer.name).get_weights()))}
    assert changed and all(name.startswith("Block8_6_") for name in changed)
    assert not any(name.endswith("BatchNorm") for name in changed)


def test_query_reranks_with_the_facenet_inception(celeb_inception):
    home, _ = celeb_inception
    madonna = sorted((CELEB / "val" / "madonna").iterdir())[0]
    res = _run("--home", home, "query", "--rerank", "inception", "--json", madonna, QUERIES / "lin-manuel-miranda.png")
    assert res.exit_code == 0, res.output
    known, stranger = (r["faces"][0] for r in json.loads(res.stdout)["results"])
    assert known["identity"] == "madonna" and known["reranked_by"] == "inception"
    assert known["candidates"][0]["probability"] > 0.5
    assert stranger["identity"] is None


@pytest.mark.parametrize("kind", ["boxnet", "ensemble"])
def test_facenet_boxnet_and_ensemble_reload_identically(kind, tiny160, tmp_path, analysis):
    from facesearch.classify.kinds import load_classifier
    from facesearch.classify.train import load_images, train_image_model
    from facesearch.bench.datasets import folder_dataset

    data = tiny160
    if kind == "boxnet":  # whole photos of the same three people
        data = tmp_path / "photos"
        for who in PEOPLE:
            (data / who).mkdir(parents=True)
            for p in sorted((CELEB / "train" / who).iterdir())[:4]:
                shutil.copy(p, data / who / p.name)
    result = train_image_model(kind, data, save_to=tmp_path / "model", analysis=analysis, base_weights="facenet",
                               epochs=1, batch_size=8, val=0, test=0)
    assert result.summary["trained_on"]["bases"] == ("InceptionResNetV1" if kind == "boxnet"
                                                     else "MobileNetV2+InceptionResNetV1")
    images = load_images(folder_dataset(data)[:5], 160)
    loaded = load_classifier(tmp_path / "model")
    assert np.allclose(result.classifier.predict_proba(images), loaded.predict_proba(images), atol=1e-5)


def test_imagenet_unavailable_names_facenet(tiny160, tmp_path, monkeypatch):
    from facesearch.classify import image_models as images

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(images, "_reachable", lambda *a, **k: False)
    res = _run("--home", tmp_path, "train", "boxnet", tiny160, "--epochs", 1)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert "ImageNet" in lines[0] and "--base-weights facenet" in lines[0] and "offline" in lines[0]
    assert not (tmp_path / "models").exists()

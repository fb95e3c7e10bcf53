"""The dlib backend used for side-by-side benchmarks, on real photos."""
from __future__ import annotations

import json

import numpy as np

from conftest import DATA, KNOWN, QUERIES
from facesearch.models.dlib_pipeline import DlibAnalysis
from facesearch.imaging.decode import load_image


def test_dlib_faces_and_similarities():
    dl = DlibAnalysis()
    faces = dl.get(load_image(QUERIES / "two_people.jpg"))
    assert len(faces) == 2
    for f in faces:
        assert f.embedding.shape == (128,) and abs(np.linalg.norm(f.embedding) - 1) < 1e-5
        assert f.landmarks.shape == (5, 2)
    obama = dl.get(load_image(KNOWN / "obama" / "obama2.jpg"))[0].embedding
    obama_q = dl.get(load_image(QUERIES / "obama1.jpg"))[0].embedding
    biden = dl.get(load_image(KNOWN / "biden" / "biden.jpg"))[0].embedding
    assert obama @ obama_q > obama @ biden + 0.1


def test_bench_lfw_compare_rows(cli):
    res = cli("bench", "lfw", "--lfw", DATA / "lfw" / "lfw-deepfunneled.tgz",
              "--pairs", DATA / "lfw" / "pairsDevTest.txt", "--limit", "3", "--compare", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    facenet, dlib = data["rows"]
    assert (facenet["embedder"], dlib["embedder"]) == ("facenet", "dlib")
    assert dlib["align"] == "dlib-5point"
    for r in (facenet, dlib):
        assert r["pairs"] == 6 and r["photos"] == 11 and r["failed_pairs"] == 0
    # The same six pairs: FaceNet separates them all, dlib gets one wrong.
    assert facenet["accuracy"] == 1.0
    assert dlib["accuracy"] == round(5 / 6, 5)
    # FaceNet makes no error here, so there is no ratio of errors to report.
    assert data["error_ratio_dlib_over_facenet"] is None

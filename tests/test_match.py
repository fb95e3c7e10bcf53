"""Matchers' estimator API and the unknown rule, on exact vectors."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from facesearch.search.match import CentroidMatcher, KNNMatcher, make_matcher


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def gallery():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(3, 64)))
    X = _unit(np.repeat(centres, [1, 4, 4], axis=0) + 0.15 * rng.normal(size=(9, 64)))
    y = ["ann"] + ["bob"] * 4 + ["cat"] * 4
    return centres, X, y


@pytest.mark.parametrize("cls", [KNNMatcher, CentroidMatcher])
def test_estimator_api(cls, gallery):
    centres, X, y = gallery
    m = clone(cls(threshold=0.5)).fit(X, y)
    assert list(m.classes_) == ["ann", "bob", "cat"]
    assert list(m.predict(centres)) == ["ann", "bob", "cat"]
    proba = m.predict_proba(centres)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1)
    assert list(proba.argmax(axis=1)) == [0, 1, 2]
    assert m.score(centres, ["ann", "bob", "cat"]) == 1.0


@pytest.mark.parametrize("name", ["knn", "centroid"])
def test_far_away_face_is_unknown(name, gallery):
    centres, X, y = gallery
    m = make_matcher(name, threshold=0.5).fit(X, y)
    stranger = _unit(np.random.default_rng(1).normal(size=(1, 64)))
    (match,) = m.identify(stranger)
    assert match.identity is None and match.similarity < 0.5
    assert match.candidates and match.candidates[0].similarity == match.similarity
    assert m.predict_proba(stranger).sum() == 0
    assert m.score(stranger, [None]) == 1.0


def test_one_good_match_is_not_outvoted_by_poor_ones(gallery):
    """ann has one photo; bob's four photos are all dissimilar and must not outvote it."""
    centres, X, y = gallery
    m = KNNMatcher(k=5, threshold=0.5).fit(X, y)
    (match,) = m.identify(centres[:1])
    assert match.identity == "ann"
    assert [c.identity for c in match.candidates][0] == "ann"
    assert len({c.identity for c in match.candidates}) == len(match.candidates)


def test_unknown_matcher_name():
    with pytest.raises(ValueError, match="unknown matcher"):
        make_matcher("svm")

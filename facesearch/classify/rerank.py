"""Reorder a matcher's candidates with a classifier's probabilities, keeping "unknown" unknown.

The matcher (k-NN or centroid over the gallery) decides **whether** a face is someone
enrolled: its best similarity must reach the threshold. The classifier only helps decide
**who**, among the candidates that already passed that test:

* a face the matcher calls unknown stays unknown, whatever the classifier says. A softmax
  always sums to one over the enrolled people, so it is confident about strangers too; it
  has no notion of "none of them" and must never turn an unknown face into a person;
* among the candidates whose similarity is at or above the threshold, each gets the
  combined score ``sqrt(clip(similarity, 0, 1) * probability)`` (the geometric mean of the
  cosine similarity and the classifier's probability for that identity), and the best
  combined score wins;
* candidates under the threshold keep their places after the eligible ones, in the
  matcher's order;
* the classifier overrules the matcher's answer only when it is confident: when the best
  combined score belongs to another identity, that identity wins only if the classifier
  gives it at least :data:`MIN_OVERRULE_PROBABILITY`; otherwise the matcher's answer stays
  first (the other candidates keep their combined-score order).

Why the confidence rule: on LFW's 62 people with 20+ photos the matchers are right 99.56% of
the time, so nearly every change a weaker classifier makes is a mistake. boxnet (90% alone)
reranking by the combined score alone pulled knn down to 98.45%; keeping the matcher's
answer unless the classifier gives the other identity 0.9 or more left knn at 99.56%, and
every stronger classifier's figures unchanged (docs/benchmarks.md, "Classifiers").

Why the geometric mean: the two numbers live on different scales (cosines of FaceNet
embeddings of the same person are typically 0.5-0.9, softmax probabilities are often
0.99 or 0.001), so an arithmetic mean would let whichever one is more spread out decide.
The product is unchanged in ranking when either number is multiplied by a constant, needs
both pieces of evidence to be high (a near-zero probability vetoes a candidate, as does a
low similarity), and is what multiplying two independent likelihood-like scores gives; the
square root only keeps the score in ``[0, 1]`` and comparable to a similarity. Similarities are
clipped to [0, 1]; in practice only candidates at or above the (positive) threshold compete.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from facesearch.classify.base import Classifier, ClassifierError, check_fresh, model_dir
from facesearch.classify.kinds import load_classifier
from facesearch.gallery import FaceMatch, QueryResult
from facesearch.imaging.decode import load_image
from facesearch.models.align import crop_box
from facesearch.search.answers import DEFAULT_THRESHOLD, Candidate, Match

log = logging.getLogger(__name__)

#: Least probability with which the classifier must back another identity to overrule the matcher.
MIN_OVERRULE_PROBABILITY = 0.9


def combined_score(similarity: float, probability: float) -> float:
    """``sqrt(clip(similarity, 0, 1) * probability)``, in ``[0, 1]``: see the module docstring."""
    return math.sqrt(min(max(float(similarity), 0.0), 1.0) * max(float(probability), 0.0))


@dataclass
class RankedCandidate(Candidate):
    """A candidate with the classifier's probability and the combined score (``None`` under threshold)."""

    probability: float = 0.0
    score: float | None = None


@dataclass
class RerankedMatch(Match):
    """A :class:`Match` whose candidates were reordered by :func:`rerank_match`.

    Attributes:
        reranked_by: the classifier kind (e.g. ``"mlp"``).
        matcher_identity: what the matcher alone answered (to see what reranking changed).
    """

    reranked_by: str = ""
    matcher_identity: str | None = None
    candidates: list[RankedCandidate] = field(default_factory=list)  # type: ignore[assignment]

    def as_dict(self) -> dict:
        out = super().as_dict()
        out["candidates"] = [
            {"identity": c.identity, "similarity": round(float(c.similarity), 4),
             "probability": round(float(c.probability), 4),
             "score": None if c.score is None else round(float(c.score), 4)} for c in self.candidates]
        out["reranked_by"] = self.reranked_by
        out["matcher_identity"] = self.matcher_identity
        return out


def rerank_match(match: Match, proba: np.ndarray, classes: Sequence[str], *, threshold: float = DEFAULT_THRESHOLD,
                 by: str = "classifier", confidence: float = MIN_OVERRULE_PROBABILITY) -> RerankedMatch:
    """Reorder one face's candidates with the classifier's probabilities.

    Args:
        match: the matcher's answer for the face.
        proba: the classifier's probabilities for this face, float (C,), over ``classes``.
        classes: the classifier's identity names; a candidate it does not know gets probability 0.
        threshold: the matcher's similarity threshold (candidates under it cannot win).
        by: name recorded in :attr:`RerankedMatch.reranked_by`.
        confidence: least probability of another identity for it to replace the matcher's
            answer (0: the best combined score always wins).
    Returns:
        A :class:`RerankedMatch`: unknown if ``match`` was unknown; otherwise the eligible
        candidate with the best combined score (the matcher's own answer unless the classifier
        is ``confidence`` sure of that one), its similarity, and all candidates reordered.
    """
    col = {str(c): i for i, c in enumerate(classes)}
    # A face judged on centred scores carries its own threshold (facesearch.search.match).
    threshold = match.threshold if match.threshold is not None else threshold
    ranked = []
    for c in match.candidates:
        p = float(proba[col[c.identity]]) if c.identity in col else 0.0
        eligible = match.identity is not None and c.similarity >= threshold
        ranked.append(RankedCandidate(c.identity, c.similarity, p, combined_score(c.similarity, p) if eligible else None))
    if match.identity is None:
        # Open set: the classifier never overrules "unknown"; its probabilities are shown only.
        return RerankedMatch(None, match.similarity, ranked, match.threshold, reranked_by=by, matcher_identity=None)
    eligible = sorted((c for c in ranked if c.score is not None), key=lambda c: (-c.score, -c.similarity))
    rest = [c for c in ranked if c.score is None]
    if eligible[0].identity != match.identity and eligible[0].probability < confidence:
        kept = [c for c in eligible if c.identity == match.identity]
        eligible = kept + [c for c in eligible if c.identity != match.identity]
    best = eligible[0]
    return RerankedMatch(best.identity, best.similarity, eligible + rest, match.threshold, reranked_by=by,
                         matcher_identity=match.identity)


class Reranker:
    """A gallery's saved classifier, refused when the gallery has changed since training.

    Embedding classifiers (``mlp``) read the query faces' FaceNet embeddings; face-crop
    classifiers (``inception``, ``ensemble``) read each face cropped from the photo the way
    ``facesearch crop`` made their training data (the box crop at the model's input size).
    ``boxnet`` reads whole photos, one identity per photo, so it cannot say who each face is.

    Args:
        gallery: the :class:`~facesearch.gallery.Gallery` whose matches are reranked.
        kind: the classifier kind (``"mlp"``, ``"inception"``, ``"ensemble"``); loaded from
            ``<home>/models/<kind>``.
        folder: load from here instead.
    Raises:
        ClassifierError: nothing trained there, or a classifier that cannot name single faces.
        StaleClassifierError: trained on another generation of the gallery (retrain).
    """

    #: What a reranker can feed a classifier: per-face embeddings or per-face crops.
    INPUT_KINDS = ("embedding", "crop")

    def __init__(self, gallery, kind: str = "mlp", folder: str | os.PathLike | None = None) -> None:
        self.gallery = gallery
        self.folder = Path(folder) if folder is not None else model_dir(gallery.home, kind)
        try:
            meta = Classifier.read_metadata(self.folder)
        except ClassifierError:
            raise ClassifierError(f"{self.folder}: no {kind} classifier trained for this gallery; "
                                  f"run `facesearch train {kind}` first") from None
        if meta.get("input_kind") not in self.INPUT_KINDS:
            raise ClassifierError(f"{self.folder}: a {meta.get('kind')} classifier reads "
                                  f"{meta.get('input_kind')}s, not single faces; it cannot rerank queries")
        self.check()
        self.classifier = load_classifier(self.folder)
        self.kind = self.classifier.kind
        # A person the classifier never saw would get probability 0 and be vetoed: refuse instead.
        unseen = sorted(set(gallery.names()) - set(self.classifier.classes_))
        if unseen:
            raise ClassifierError(f"{self.folder}: the {self.kind} classifier does not know {len(unseen)} enrolled "
                                  f"identit{'y' if len(unseen) == 1 else 'ies'} ({', '.join(unseen[:3])}"
                                  f"{', ...' if len(unseen) > 3 else ''}); train it on every enrolled person")

    def check(self) -> None:
        """Raise :class:`StaleClassifierError` if the gallery changed since the classifier was trained."""
        meta = Classifier.read_metadata(self.folder)
        check_fresh(meta, self.gallery.generation(), self.gallery.model_id, self.folder)

    def _inputs(self, face_matches: list, image: np.ndarray | None) -> np.ndarray:
        if self.classifier.input_kind == "embedding":
            return np.stack([fm.face.embedding for fm in face_matches])
        if image is None:
            raise ValueError(f"the {self.kind} classifier reads face crops: pass the photo as image=")
        size = self.classifier.input_size
        return np.stack([crop_box(image, fm.face.box, size=size) for fm in face_matches])

    def rerank(self, face_matches: list, threshold: float | None = None, *, image: np.ndarray | None = None) -> list:
        """The gallery's :class:`~facesearch.gallery.FaceMatch` list with reranked matches.

        ``image``: the ``(H, W, 3)`` uint8 RGB photo the faces come from (crop classifiers need it).
        """
        if not face_matches:
            return []
        self.check()  # the gallery may have changed since this reranker was made
        thr = self.gallery.default_threshold() if threshold is None else threshold
        proba = self.classifier.predict_proba(self._inputs(face_matches, image))
        return [FaceMatch(fm.face, rerank_match(fm.match, p, self.classifier.classes_, threshold=thr, by=self.kind))
                for fm, p in zip(face_matches, proba)]

    def query(self, photo, *, threshold: float | None = None, **kwargs):
        """:meth:`Gallery.query <facesearch.gallery.Gallery.query>` with the matches reranked."""
        image = load_image(photo)  # once, for the matcher and for the crops
        result = self.gallery.query(image, threshold=threshold, **kwargs)
        name = None if isinstance(photo, np.ndarray) else os.fspath(photo)
        return QueryResult(name, self.rerank(result.faces, threshold, image=image))

"""What a matcher answers for a face, and the similarity under which a face is unknown.

Kept apart from :mod:`facesearch.search.match` (which builds on scikit-learn, slow to import)
so that code which only reads or shows answers starts fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: Cosine similarity at or above which a face is named. Measured on LFW pairsDevTrain.txt: the
#: lowest threshold that accepts at most 1 in 1,000 different-person pairs (0.445, rounded;
#: FAR 0.09%, TAR 96.0%).
#: A gallery compares each face with every identity, so a threshold tuned for best pair
#: accuracy (0.35, FAR 1.3%) would name most strangers; see README, "The unknown threshold".
DEFAULT_THRESHOLD = 0.45


@dataclass
class Candidate:
    identity: str
    similarity: float


@dataclass
class Match:
    """The answer for one face.

    Attributes:
        identity: best identity, or ``None`` when its similarity is under the threshold.
        similarity: cosine similarity of the best candidate (even when unknown).
        candidates: best first, at most ``top_k``.
        threshold: the similarity this face needed to be named, when it is the face's own
            (centred scores, :mod:`facesearch.search.normalisation`); ``None`` when it is the
            matcher's one threshold.
    """

    identity: str | None
    similarity: float
    candidates: list[Candidate] = field(default_factory=list)
    threshold: float | None = None

    def as_dict(self) -> dict:
        out = {"identity": self.identity, "similarity": round(float(self.similarity), 4),
               "candidates": [{"identity": c.identity, "similarity": round(float(c.similarity), 4)}
                              for c in self.candidates]}
        if self.threshold is not None:
            out["threshold"] = round(float(self.threshold), 4)
        return out

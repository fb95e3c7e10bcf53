"""Who is this face? Nearest-neighbour matchers with an "unknown" threshold.

Both matchers follow scikit-learn's estimator API (``fit``, ``predict``, ``predict_proba``,
``score``) so benchmarks can swap them, and add :meth:`identify`, which returns for every
face the best identity (or ``None`` for unknown), its cosine similarity and the next
candidates.

* :class:`KNNMatcher`: the ``k`` most similar enrolled faces vote for their identity,
  each with its similarity; only neighbours at or above the threshold vote, so one good
  match is not outvoted by several poor ones of another person.
* :class:`CentroidMatcher`: the identity whose average embedding is most similar.

Similarities are cosines of L2-normalised FaceNet embeddings, in ``[-1, 1]``.

With ``centre`` > 0 the threshold applies to the *centred* score of
:func:`facesearch.search.normalisation.centre`: a face is named when its best similarity reaches
``threshold + centre * (mean similarity of its next cohort identities)``, the cosine each
:class:`Match` reports as its ``threshold``. Ranking is unchanged.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from facesearch.search.answers import DEFAULT_THRESHOLD, Candidate, Match
from facesearch.search.faiss_index import VectorIndex, centroids
from facesearch.search.normalisation import COHORT_K

__all__ = ["DEFAULT_THRESHOLD", "Candidate", "Match", "KNNMatcher", "CentroidMatcher", "MATCHERS", "make_matcher"]

class Searchable(Protocol):
    """What a matcher searches: :class:`~facesearch.search.faiss_index.VectorIndex` or a gallery's
    layered index."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...


#: Names of the given ids (int64 array) that still exist: looked up per query, so a gallery of a
#: million faces never maps them all.
NameLookup = Callable[[np.ndarray], Mapping[int, str]]


class _NearestMatcher:
    """Shared machinery: a vector index whose ids map to identity names.

    ``get_params``/``set_params`` are scikit-learn's estimator protocol (so ``sklearn.base.clone``
    and parameter searches work) written out here rather than inherited: importing
    ``sklearn.base`` pulls in SciPy and pandas, seconds of start-up for every ``facesearch query``.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters and their current values (scikit-learn's protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "_NearestMatcher":
        """Set constructor parameters by name; unknown names raise ValueError."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    threshold: float
    top_k: int
    centre: float
    cohort: int

    def _set_reference(self, index: Searchable, names: Mapping[int, str] | NameLookup,
                       all_names: Callable[[], Sequence[str]] | None = None) -> None:
        self.index_ = index
        if callable(names):
            self._lookup = names
            self._all_names = all_names or (lambda: [])
        else:
            table = dict(names)
            self._lookup = lambda ids: table
            self._all_names = lambda: table.values()

    @property
    def classes_(self) -> np.ndarray:
        """Every enrolled name, sorted (object array)."""
        return np.array(sorted(set(self._all_names())), dtype=object)

    def _neighbours(self, X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, Mapping[int, str]]:
        """Similarities, ids and the names of those ids (ids that no longer exist have none)."""
        if not hasattr(self, "index_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or from_index() first")
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        sims, ids = self.index_.search(X, min(n, max(len(self.index_), 1)))
        return sims, ids, self._lookup(np.unique(ids[ids >= 0]))

    def _scores(self, X: np.ndarray) -> list[tuple[list[tuple[str, float, float]], float]]:
        """Per face: ``(identity, vote, best similarity)`` for each identity seen, best first, and
        the similarity this face needs to be named."""
        raise NotImplementedError

    def _searched(self, n: int) -> int:
        """Neighbours to look at: ``n``, or enough for the cohort when scores are centred."""
        return max(n, 2 * (self.cohort + 1)) if self.centre else n

    def _needed(self, best: Sequence[float]) -> float:
        """The threshold of a face whose identities' best similarities are ``best`` (descending)."""
        cohort = list(best[1:self.cohort + 1])
        if not self.centre or not cohort:
            return self.threshold
        return self.threshold + self.centre * float(np.mean(cohort))

    def identify(self, X: np.ndarray) -> list[Match]:
        """Best identity (or unknown), similarity and candidates for each row of ``X`` (N, D)."""
        out = []
        for ranked, needed in self._scores(X):
            if not ranked:
                out.append(Match(None, float("nan"), []))
                continue
            name, vote, sim = ranked[0]
            cands = [Candidate(n, s) for n, _, s in ranked[: self.top_k]]
            out.append(Match(name if vote > 0 and sim >= needed else None, sim, cands,
                             threshold=needed if self.centre else None))
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Identity name per row, ``None`` for unknown; object array (N,)."""
        return np.array([m.identity for m in self.identify(X)], dtype=object)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Vote shares over :attr:`classes_`, float (N, C). A row of zeros means unknown."""
        col = {c: i for i, c in enumerate(self.classes_)}
        proba = np.zeros((len(np.atleast_2d(X)), len(self.classes_)))
        for row, (ranked, _) in enumerate(self._scores(X)):
            votes = {n: v for n, v, _ in ranked if v > 0}
            total = sum(votes.values())
            for n, v in votes.items():
                proba[row, col[n]] = v / total
        return proba

    def score(self, X: np.ndarray, y: Sequence[str | None]) -> float:
        """Fraction of rows whose prediction equals ``y`` (``None`` in ``y`` means unknown)."""
        pred = self.predict(X)
        return float(np.mean([p == t for p, t in zip(pred, y)])) if len(pred) else float("nan")


class KNNMatcher(_NearestMatcher):
    """Similarity-weighted vote of the ``k`` nearest enrolled faces.

    Args:
        k: neighbours that vote.
        threshold: cosine similarity (centred with ``centre`` > 0) under which a face is unknown.
        top_k: candidates reported per face.
        centre, cohort: weight and size of the cohort centring (see the module's notes); 0: none.
    """

    def __init__(self, k: int = 5, threshold: float = DEFAULT_THRESHOLD, top_k: int = 5, centre: float = 0.0,
                 cohort: int = COHORT_K) -> None:
        self.k = k
        self.threshold = threshold
        self.top_k = top_k
        self.centre = centre
        self.cohort = cohort

    def fit(self, X: np.ndarray, y: Sequence[str]) -> "KNNMatcher":
        """Enroll faces ``X`` (N, D) float32 L2-normalised with names ``y`` (N,)."""
        X = np.asarray(X, dtype=np.float32)
        ids = np.arange(len(X), dtype=np.int64)
        self._set_reference(VectorIndex.build(ids, X, kind="flat"), dict(zip(ids.tolist(), y)))
        return self

    def from_index(self, index: Searchable, names: Mapping[int, str] | NameLookup,
                   all_names: Callable[[], Sequence[str]] | None = None) -> "KNNMatcher":
        """Use an existing faces index; ``names`` maps its ids (face ids) to identity names, as a
        mapping or a lookup called with each query's neighbour ids; ``all_names`` lists every
        name (for :attr:`classes_`) when ``names`` is a lookup."""
        self._set_reference(index, names, all_names)
        return self

    def _scores(self, X):
        # Look past k so the candidate list can hold top_k distinct identities.
        sims, ids, names = self._neighbours(X, self._searched(max(self.k, 4 * self.top_k)))
        out = []
        for srow, irow in zip(sims, ids):
            seen = [(names.get(int(i)) if i >= 0 else None, float(s)) for s, i in zip(srow, irow)]
            seen = [(n, s) for n, s in seen if n is not None]  # no neighbour, or a face removed since
            top: dict[str, float] = {}
            for name, s in seen:  # descending: the first time a name is seen is its best face
                top.setdefault(name, s)
            needed = self._needed(list(top.values()))
            votes: dict[str, float] = dict.fromkeys(top, 0.0)
            for name, s in seen[: self.k]:
                if s >= needed:
                    votes[name] += s
            out.append((sorted(((n, votes[n], top[n]) for n in top), key=lambda t: (-t[1], -t[2])), needed))
        return out


class CentroidMatcher(_NearestMatcher):
    """Nearest identity average (centroid) embedding.

    Args:
        threshold: cosine similarity (centred with ``centre`` > 0) under which a face is unknown.
        top_k: candidates reported per face.
        centre, cohort: weight and size of the cohort centring (see the module's notes); 0: none.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, top_k: int = 5, centre: float = 0.0,
                 cohort: int = COHORT_K) -> None:
        self.threshold = threshold
        self.top_k = top_k
        self.centre = centre
        self.cohort = cohort

    def fit(self, X: np.ndarray, y: Sequence[str]) -> "CentroidMatcher":
        """Average the faces ``X`` (N, D) of each name in ``y`` into one centroid per name."""
        labels = np.asarray(y, dtype=object)
        classes = sorted(set(labels.tolist()))
        code = {c: i for i, c in enumerate(classes)}
        owners = np.array([code[v] for v in labels], dtype=np.int64)
        ids, means = centroids(owners, np.asarray(X, dtype=np.float32))
        self._set_reference(VectorIndex.build(ids, means, kind="flat"), {int(i): classes[i] for i in ids})
        return self

    def from_index(self, index: Searchable, names: Mapping[int, str] | NameLookup,
                   all_names: Callable[[], Sequence[str]] | None = None) -> "CentroidMatcher":
        """Use an existing identities index; ``names`` maps its ids (identity ids) to names, as a
        mapping or a lookup (see :meth:`KNNMatcher.from_index`)."""
        self._set_reference(index, names, all_names)
        return self

    def _scores(self, X):
        sims, ids, names = self._neighbours(X, self._searched(self.top_k))
        out = []
        for srow, irow in zip(sims, ids):
            seen = [(names[int(i)], float(s)) for s, i in zip(srow, irow) if i >= 0 and int(i) in names]
            needed = self._needed([s for _, s in seen])
            out.append(([(n, max(s, 0.0) if s >= needed else 0.0, s) for n, s in seen], needed))
        return out


MATCHERS = {"knn": KNNMatcher, "centroid": CentroidMatcher}


def make_matcher(name: str, **params) -> _NearestMatcher:
    """A matcher by name (``"knn"`` or ``"centroid"``) with its parameters."""
    try:
        cls = MATCHERS[name]
    except KeyError:
        raise ValueError(f"unknown matcher {name!r}; choose one of {', '.join(MATCHERS)}") from None
    return cls(**params)

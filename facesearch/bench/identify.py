"""Open-set 1:N identification: who is this, or is it nobody we know?

A split has three parts: *gallery* photos (enrolled, with their identity), *known probes*
(other photos of enrolled people) and *unknown probes* (people never enrolled). Every
matcher of :mod:`facesearch.search.match` is fitted on the gallery embeddings and asked about every
probe, all from one set of cached embeddings. Reported per matcher:

* rank-1 / rank-5: the true identity is the first / among the first five candidates
  (closed-set: no threshold; the matcher votes with every neighbour it looks at);
* DIR at FPIR: the detection and identification rate (rank-1 correct *and* best similarity
  >= t) at the threshold t where a given fraction of unknown probes (the false-positive
  identification rate) reach t;
* at the product's threshold: how often a known probe gets its right name and an unknown
  probe is rejected, with the matcher configured exactly as ``facesearch query`` uses it;
* the DET curve (FNIR = 1 - DIR against FPIR).

A photo where no face is found is a failure of the system: a known probe without a face is
wrong at every rank and threshold. An unknown probe without a face is *not* counted as a
correct rejection: it is left out of FPIR and the rejection rate and counted on its own.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facesearch.errors import OptionsError
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.plotting import pyplot
from facesearch.bench.datasets import folder_dataset, lfw_root
from facesearch.imaging.photo_files import IMAGE_EXTENSIONS
from facesearch.search import normalisation
from facesearch.search.calibration import identity_scores
from facesearch.search.match import DEFAULT_THRESHOLD, MATCHERS, make_matcher
from facesearch.bench.embeddings import DatasetEmbeddings, embed_photos, make_analysis
from facesearch.bench import photo_crops
from facesearch.progress import ProgressFactory, no_progress

log = logging.getLogger(__name__)

#: FPIR operating points reported (fractions of unknown probes falsely identified).
FPIR_TARGETS = (0.01, 0.1)
#: Candidates kept per probe: enough for rank-5.
TOP_K = 5


@dataclass
class Split:
    """Who is enrolled with which photos, and who is asked about.

    Attributes:
        gallery: ``(photo, identity)`` to enroll.
        known: ``(photo, identity)`` probes of enrolled identities.
        unknown: photos of people never enrolled.
        pick: which face a photo is about (``"center"`` for LFW, else ``"largest"``).
    """

    gallery: list[tuple[Path, str]]
    known: list[tuple[Path, str]]
    unknown: list[Path]
    pick: str = "largest"

    def photos(self) -> list[Path]:
        return [p for p, _ in self.gallery] + [p for p, _ in self.known] + list(self.unknown)


def _enroll_first(items: list[tuple[Path, str]], per_id: int | None) -> tuple[list, list]:
    """Split ``(photo, identity)`` (sorted) into the first ``per_id`` of each identity and the rest."""
    gallery, probes, seen = [], [], {}
    for photo, who in items:
        seen[who] = seen.get(who, 0) + 1
        (gallery if per_id is None or seen[who] <= per_id else probes).append((photo, who))
    return gallery, probes


def _first_people(items: list[tuple[Path, str]], max_people: int | None) -> list[tuple[Path, str]]:
    """Only the photos of the first ``max_people`` identities (alphabetical; all when ``None``)."""
    if max_people is None:
        return items
    keep = set(sorted({who for _, who in items})[:max_people])
    return [(p, who) for p, who in items if who in keep]


def lfw_split(lfw: str | os.PathLike, gallery_per_id: int = 1, max_people: int | None = None) -> Split:
    """The LFW open-set protocol used here.

    Every person with 2+ images is enrolled with their ``gallery_per_id`` lowest-numbered
    images and the rest are known probes (a person with no more than ``gallery_per_id``
    images stays enrolled, as a distractor, with no probe). The 4,069 people with exactly
    one image are the unknown probes. ``max_people`` keeps the first N people (alphabetical)
    of each of the two groups, for quick runs.
    """
    items = folder_dataset(lfw_root(lfw))
    counts: dict[str, int] = {}
    for _, who in items:
        counts[who] = counts.get(who, 0) + 1
    several = _first_people([(p, w) for p, w in items if counts[w] >= 2], max_people)
    single = _first_people([(p, w) for p, w in items if counts[w] == 1], max_people)
    gallery, known = _enroll_first(several, gallery_per_id)
    return Split(gallery, known, [p for p, _ in single], pick="center")


def folder_split(dataset: str | os.PathLike, gallery_per_id: int = 1, max_people: int | None = None) -> Split:
    """Any folder-per-identity tree: each identity's first ``gallery_per_id`` photos enrolled, the rest probes."""
    gallery, known = _enroll_first(_first_people(folder_dataset(dataset), max_people), gallery_per_id)
    return Split(gallery, known, [])


def gallery_probe_split(gallery_dir: str | os.PathLike, probes_dir: str | os.PathLike,
                        gallery_per_id: int | None = None, max_people: int | None = None) -> Split:
    """Two folder-per-identity trees (e.g. train/ and val/).

    Probes of identities that are not in the gallery are unknown probes.
    """
    gallery, _ = _enroll_first(_first_people(folder_dataset(gallery_dir), max_people), gallery_per_id)
    enrolled = {who for _, who in gallery}
    probes = folder_dataset(probes_dir)
    known = [(p, who) for p, who in probes if who in enrolled]
    unknown = [p for p, who in probes if who not in enrolled]
    return Split(gallery, known, unknown)


def unknown_photos(folder: str | os.PathLike, max_people: int | None = None) -> list[tuple[Path, str | None]]:
    """Photos of never-enrolled people: ``(photo, identity)`` from a folder-per-identity tree,
    or ``(photo, None)`` from a flat folder of photos (``max_people`` then keeps N photos; a
    folder with loose photos is read as flat, its sub-folders ignored)."""
    folder = Path(folder)
    loose = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if loose:
        return [(p, None) for p in loose[:max_people]]
    return [(p, who) for p, who in _first_people(folder_dataset(folder), max_people)]


def add_unknown(split: Split, folder: str | os.PathLike, max_people: int | None = None) -> Split:
    """``split`` with the photos of ``folder`` as extra unknown probes.

    Raises:
        OptionsError: an identity folder there has the name of an enrolled identity.
    """
    extra = unknown_photos(folder, max_people)
    enrolled = {who for _, who in split.gallery}
    clash = sorted({who for _, who in extra if who in enrolled})
    if clash:
        raise OptionsError(f"{folder}: unknown people are enrolled too: {', '.join(clash[:5])}")
    return Split(split.gallery, split.known, split.unknown + [p for p, _ in extra], split.pick)


def embed_split(split: Split, analysis: FaceAnalysis, cache: FaceCache | None, *,
                progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> DatasetEmbeddings:
    """One embedding per distinct photo of the split (NaN rows where no face was found)."""
    return embed_photos(split.photos(), analysis, cache, pick=split.pick, progress=progress, on_total=on_total)


# --- scoring -----------------------------------------------------------------------------------


def matcher_rows() -> list[tuple[str, str, dict]]:
    """``(label, matcher name, parameters)`` for every matcher in :data:`facesearch.search.match.MATCHERS`.

    kNN is run with k=1 (nearest face) and k=5 (the CLI's default vote); any other matcher
    with its defaults.
    """
    rows = []
    for name in MATCHERS:
        if name == "knn":
            rows += [("knn k=1", "knn", {"k": 1}), ("knn k=5", "knn", {"k": 5})]
        else:
            rows.append((name, name, {}))
    return rows


@dataclass
class ProbeScores:
    """One matcher's answers for a set of probes.

    Attributes:
        rank: 1-based rank of the true identity among the candidates, 0 when absent or no
            face (int64 (N,); always 0 for unknown probes).
        score: similarity of the rank-1 candidate, float64 (N,); ``-inf`` where no face.
        named: the identity the matcher gives at the product's threshold (``None`` = unknown).
    """

    rank: np.ndarray
    score: np.ndarray
    named: list[str | None]


def score_probes(label: str, name: str, params: dict, gallery_x: np.ndarray, gallery_y: list[str],
                 probe_x: np.ndarray, probe_y: Sequence[str | None], threshold: float) -> ProbeScores:
    """Fit matcher ``name`` on the gallery (float32 (G, 512), names (G,)) and score the probes.

    ``probe_x`` is float32 (N, 512) with NaN rows for photos without a face. Ranking uses the
    matcher with no threshold (every neighbour votes), so rank-k and the DET curve measure the
    ranking alone; ``named`` uses it at ``threshold``, as ``facesearch query`` does.
    """
    n = len(probe_x)
    rank = np.zeros(n, np.int64)
    score = np.full(n, -np.inf)
    named: list[str | None] = [None] * n
    ok = ~np.isnan(probe_x).any(axis=1)
    if not ok.any() or not len(gallery_x):
        return ProbeScores(rank, score, named)
    rows = np.flatnonzero(ok)
    x = probe_x[ok]
    # -inf, not -1: cosines are >= -1, and the kNN vote only counts neighbours at or above it.
    ranked = make_matcher(name, threshold=-np.inf, top_k=TOP_K, **params).fit(gallery_x, gallery_y).identify(x)
    decided = make_matcher(name, threshold=threshold, top_k=TOP_K, **params).fit(gallery_x, gallery_y).identify(x)
    for row, r, d in zip(rows, ranked, decided):
        names = [c.identity for c in r.candidates]
        truth = probe_y[row]
        rank[row] = names.index(truth) + 1 if truth in names else 0
        score[row] = r.similarity
        named[row] = d.identity
    log.debug("%s: scored %d probes", label, len(rows))
    return ProbeScores(rank, score, named)


#: ``(label, function of (probe scores (P, N), identity scores (N, N)))`` compared by
#: ``bench identify --normalised`` (see :mod:`facesearch.search.normalisation`).
NORMALISATIONS = (
    ("best face, raw", lambda s, g: s),
    ("centre K=10 w=0.5", lambda s, g: normalisation.centre(s, 10, 0.5)),
    ("centre K=20 w=0.5", lambda s, g: normalisation.centre(s, 20, 0.5)),
    ("centre K=50 w=0.5", lambda s, g: normalisation.centre(s, 50, 0.5)),
    ("centre K=20 w=1", lambda s, g: normalisation.centre(s, 20, 1.0)),
    ("t-norm K=20", lambda s, g: normalisation.t_norm(s, 20)),
    ("t-norm K=100", lambda s, g: normalisation.t_norm(s, 100)),
    ("as-norm K=50", lambda s, g: normalisation.as_norm(s, g, 50)),
    ("as-norm K=100", lambda s, g: normalisation.as_norm(s, g, 100)),
)


def normalised_scores(label: str, normalise, gallery_x: np.ndarray, gallery_y: list[str], probe_x: np.ndarray,
                      probe_y: Sequence[str | None], identity_matrix: np.ndarray) -> ProbeScores:
    """Probes scored against each identity's best face, normalised by ``normalise``; ``named``
    stays ``None`` (the product's threshold is a cosine, not a normalised score)."""
    n = len(probe_x)
    rank = np.zeros(n, np.int64)
    score = np.full(n, -np.inf)
    ok = ~np.isnan(probe_x).any(axis=1)
    names = sorted(set(gallery_y))
    code = {name: i for i, name in enumerate(names)}
    if ok.any() and len(gallery_x):
        raw, _ = identity_scores(probe_x[ok], gallery_x, np.array([code[y] for y in gallery_y], np.int64))
        norm = normalise(raw, identity_matrix)
        order = np.argsort(-norm, axis=1, kind="stable")[:, :TOP_K]
        for row, o, srow in zip(np.flatnonzero(ok), order, norm):
            truth = code.get(probe_y[row]) if probe_y[row] is not None else None
            hits = np.flatnonzero(o == truth) if truth is not None else []
            rank[row] = int(hits[0]) + 1 if len(hits) else 0
            score[row] = float(srow[o[0]])
    log.debug("%s: scored %d probes", label, int(ok.sum()))
    return ProbeScores(rank, score, [None] * n)


#: The score quality rules are tried on (the product's default, facesearch.search.match).
QUALITY_BASE = "centre K=20 w=0.5"
#: ``(label, quality column, gallery quantile, penalty)``: a probe whose face's detector score,
#: height in pixels or sharpness (:data:`facesearch.bench.embeddings.QUALITY_COLUMNS`) is under
#: that quantile of the enrolled faces' has ``penalty`` taken off its score (``inf``: it is
#: declined, never named); its candidates' order is unchanged, so rank-1 is too.
QUALITY_RULES = tuple(
    (f"{QUALITY_BASE}, {'decline' if np.isinf(penalty) else f'-{penalty:g} for'} {name} in the gallery's "
     f"lowest {100 * q:g}%", column, q, penalty)
    for column, name in enumerate(("detector score", "face height", "sharpness"))
    for q, penalty in ((0.02, np.inf), (0.05, np.inf), (0.05, 0.05))
)


def quality_results(base_known: "ProbeScores", base_unknown: "ProbeScores", known_y: list[str],
                    unknown_ok: np.ndarray, quality: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list["MatcherResult"]:
    """One :class:`MatcherResult` per :data:`QUALITY_RULES` on the :data:`QUALITY_BASE` scores;
    ``quality`` is the (gallery, known, unknown) float32 (N, 3) quality rows."""
    gallery_q, known_q, unknown_q = quality
    out = []
    for label, column, q, penalty in QUALITY_RULES:
        floor = float(np.nanquantile(gallery_q[:, column], q))
        results = []
        for scores, rows in ((base_known, known_q), (base_unknown, unknown_q)):
            low = rows[:, column] < floor  # NaN (no face) compares False: already -inf
            adjusted = np.where(low, scores.score - penalty, scores.score)
            results.append(ProbeScores(scores.rank, adjusted, scores.named))
        result = summarise(label, results[0], known_y, results[1], unknown_ok, float("nan"))
        result.at_threshold = {key: None for key in result.at_threshold}
        out.append(result)
    return out


def normalised_results(gallery_x: np.ndarray, gallery_y: list[str], known_x: np.ndarray, known_y: list[str],
                       unknown_x: np.ndarray, unknown_ok: np.ndarray,
                       quality: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list["MatcherResult"]:
    """One :class:`MatcherResult` per entry of :data:`NORMALISATIONS` (no "at threshold" figures),
    and with ``quality`` (gallery, known, unknown rows) one per :data:`QUALITY_RULES`."""
    names = sorted(set(gallery_y))
    code = {name: i for i, name in enumerate(names)}
    labels = np.array([code[y] for y in gallery_y], np.int64)
    matrix, _ = identity_scores(gallery_x, gallery_x, labels)
    # Each identity against the others: its best face against their best faces, its own left out.
    per_identity = np.full((len(names), len(names)), -np.inf, np.float32)
    np.maximum.at(per_identity, labels, matrix)
    np.fill_diagonal(per_identity, -np.inf)
    out = []
    for label, normalise in NORMALISATIONS:
        k = normalised_scores(label, normalise, gallery_x, gallery_y, known_x, known_y, per_identity)
        u = normalised_scores(label, normalise, gallery_x, gallery_y, unknown_x, [None] * len(unknown_x),
                              per_identity)
        result = summarise(label, k, known_y, u, unknown_ok, float("nan"))
        result.at_threshold = {key: None for key in result.at_threshold}
        out.append(result)
        if label == QUALITY_BASE and quality is not None:
            base = (k, u)
    if quality is not None:
        out += quality_results(*base, known_y, unknown_ok, quality)
    return out


def threshold_at_fpir(unknown_scores: np.ndarray, fpir: float) -> float:
    """The lowest threshold at which at most ``fpir`` of ``unknown_scores`` (float64 (U,)) reach it.

    Just above the ``floor(fpir * U) + 1``-th highest score; ``-inf`` when every unknown may pass.
    """
    s = np.sort(unknown_scores)[::-1]
    allowed = int(np.floor(fpir * len(s) + 1e-9))
    if allowed >= len(s):
        return float("-inf")
    return float(np.nextafter(s[allowed], np.inf))


def det_curve(known: ProbeScores, unknown_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpir, fnir, thresholds)`` over every distinct score, thresholds descending.

    FNIR(t): known probes not identified correctly at rank 1 with similarity >= t.
    FPIR(t): unknown probes (with a face) whose best similarity is >= t.
    """
    hits = np.sort(known.score[known.rank == 1])
    u = np.sort(unknown_scores)
    pool = np.concatenate([hits, u])
    thr = np.unique(pool[np.isfinite(pool)])[::-1]
    thr = np.concatenate([[np.inf], thr])
    n_known, n_unknown = max(len(known.score), 1), max(len(u), 1)
    dir_ = (len(hits) - np.searchsorted(hits, thr, side="left")) / n_known
    fpir = (len(u) - np.searchsorted(u, thr, side="left")) / n_unknown
    return fpir, 1.0 - dir_, thr


@dataclass
class MatcherResult:
    """One row of the identification report (rates are fractions in [0, 1])."""

    label: str
    rank1: float
    rank5: float
    dir_at_fpir: dict[str, dict[str, float | None]]
    at_threshold: dict[str, float | None]
    known: ProbeScores = field(repr=False)
    unknown_scores: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        def r(v):
            return None if v is None else round(float(v), 5)

        return {"matcher": self.label, "rank1": r(self.rank1), "rank5": r(self.rank5),
                "dir_at_fpir": {k: {kk: r(vv) for kk, vv in v.items()} for k, v in self.dir_at_fpir.items()},
                "at_threshold": {k: r(v) for k, v in self.at_threshold.items()}}


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarise(label: str, known: ProbeScores, known_y: Sequence[str], unknown: ProbeScores,
              unknown_ok: np.ndarray, threshold: float) -> MatcherResult:
    """Rates of one matcher from its probe scores; unknown probes without a face are left out."""
    u_scores = unknown.score[unknown_ok]
    rank1 = _mean(known.rank == 1)
    rank5 = _mean((known.rank >= 1) & (known.rank <= 5))
    at_fpir = {}
    for target in FPIR_TARGETS:
        if not len(u_scores) or not len(known.rank):
            at_fpir[str(target)] = {"dir": None, "threshold": None, "fpir": None}
            continue
        t = threshold_at_fpir(u_scores, target)
        at_fpir[str(target)] = {"dir": _mean((known.rank == 1) & (known.score >= t)),
                                "threshold": t if np.isfinite(t) else None, "fpir": _mean(u_scores >= t)}
    named_known = np.array([n == y for n, y in zip(known.named, known_y)], bool)
    rejected = np.array([n is None for n, ok in zip(unknown.named, unknown_ok) if ok], bool)
    wrong_name = np.array([n is not None and n != y for n, y in zip(known.named, known_y)], bool)
    at_thr = {"threshold": threshold, "known_accuracy": _mean(named_known),
              "known_misidentified": _mean(wrong_name), "unknown_rejection": _mean(rejected),
              "fpir": _mean(u_scores >= threshold) if len(u_scores) else None}
    return MatcherResult(label, rank1 if rank1 is not None else float("nan"),
                         rank5 if rank5 is not None else float("nan"), at_fpir, at_thr, known, u_scores)


@dataclass
class IdentificationResult:
    """Counts of the split and one :class:`MatcherResult` per matcher."""

    identities: int
    gallery_photos: int
    gallery_no_face: int
    identities_without_face: int
    known_probes: int
    known_no_face: int
    unknown_probes: int
    unknown_no_face: int
    threshold: float
    matchers: list[MatcherResult]
    no_face: list[str]

    def as_dict(self) -> dict:
        return {"identities": self.identities, "gallery_photos": self.gallery_photos,
                "gallery_no_face": self.gallery_no_face, "identities_without_face": self.identities_without_face,
                "known_probes": self.known_probes, "known_no_face": self.known_no_face,
                "unknown_probes": self.unknown_probes, "unknown_no_face": self.unknown_no_face,
                "threshold": self.threshold, "fpir_targets": list(FPIR_TARGETS),
                "matchers": [m.as_dict() for m in self.matchers], "no_face": self.no_face}


def identify(split: Split, emb: DatasetEmbeddings, threshold: float = DEFAULT_THRESHOLD, *,
             normalised: bool = False) -> IdentificationResult:
    """Score every matcher of :func:`matcher_rows` on ``split`` with the embeddings ``emb``, and
    with ``normalised`` every score normalisation of :data:`NORMALISATIONS`."""
    of = emb.of()

    def vectors(photos: Sequence[Path]) -> np.ndarray:
        return emb.vectors[[of[p] for p in photos]] if photos else np.zeros((0, emb.vectors.shape[1]), np.float32)

    g_rows = [of[p] for p, _ in split.gallery]
    g_ok = emb.ok[g_rows] if g_rows else np.zeros(0, bool)
    gallery_x = vectors([p for p, _ in split.gallery])[g_ok]
    gallery_y = [who for (_, who), ok in zip(split.gallery, g_ok) if ok]
    enrolled = {who for _, who in split.gallery}
    known_x, known_y = vectors([p for p, _ in split.known]), [who for _, who in split.known]
    unknown_x = vectors(split.unknown)
    unknown_ok = ~np.isnan(unknown_x).any(axis=1)
    results = []
    for label, name, params in matcher_rows():
        k = score_probes(label, name, params, gallery_x, gallery_y, known_x, known_y, threshold)
        u = score_probes(label, name, params, gallery_x, gallery_y, unknown_x, [None] * len(unknown_x), threshold)
        results.append(summarise(label, k, known_y, u, unknown_ok, threshold))
    if normalised and len(gallery_x):
        quality = None
        if emb.quality is not None:
            g_q = emb.quality[g_rows][g_ok] if g_rows else np.zeros((0, 3), np.float32)
            quality = (g_q, emb.quality[[of[p] for p, _ in split.known]] if split.known else np.zeros((0, 3)),
                       emb.quality[[of[p] for p in split.unknown]] if split.unknown else np.zeros((0, 3)))
        results += normalised_results(gallery_x, gallery_y, known_x, known_y, unknown_x, unknown_ok, quality)
    return IdentificationResult(
        identities=len(enrolled), gallery_photos=len(split.gallery), gallery_no_face=int((~g_ok).sum()),
        identities_without_face=len(enrolled - set(gallery_y)), known_probes=len(split.known),
        known_no_face=int(np.isnan(known_x).any(axis=1).sum()), unknown_probes=len(split.unknown),
        unknown_no_face=int((~unknown_ok).sum()), threshold=threshold, matchers=results,
        no_face=sorted(emb.errors))


def plot_det(result: IdentificationResult, path: str | Path, title: str = "open-set identification DET") -> None:
    """DET curves (FNIR against FPIR, log axes) of every matcher into a PNG at ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    # Matchers often coincide (with one photo per identity kNN and centroid agree): vary the dash.
    styles = ["-", "--", ":", "-."]
    for i, m in enumerate(result.matchers):
        if not len(m.unknown_scores):
            continue
        fpir, fnir, _ = det_curve(m.known, m.unknown_scores)
        # Log axes cannot show 0: clip at half a probe's worth so the ends stay visible.
        floor_x, floor_y = 0.5 / max(len(m.unknown_scores), 1), 0.5 / max(len(m.known.rank), 1)
        ax.step(np.maximum(fpir, floor_x), np.maximum(fnir, floor_y), where="post", ls=styles[i % len(styles)],
                label=f"{m.label} (rank-1 {100 * m.rank1:.1f}%)")
    for target in FPIR_TARGETS:
        ax.axvline(target, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false positive identification rate (unknown probes accepted)")
    ax.set_ylabel("false negative identification rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def make_split(*, lfw: str | os.PathLike | None = None, dataset: str | os.PathLike | None = None,
               gallery_dir: str | os.PathLike | None = None, probes_dir: str | os.PathLike | None = None,
               unknown: str | os.PathLike | None = None, gallery_per_id: int | None = None,
               max_people: int | None = None) -> Split:
    """The split that ``bench identify``'s options describe: LFW's protocol, one folder-per-identity
    tree (``dataset``), or a gallery tree and a probes tree; plus optional extra strangers.

    ``gallery_per_id`` defaults to 1, except that a separate gallery tree is enrolled whole.

    Raises:
        OptionsError: the options contradict each other, leave nothing to enroll, or name enrolled
            people as strangers.
        DataError: a folder or file cannot be used.
    """
    if dataset and (gallery_dir or probes_dir):
        raise OptionsError("give --dataset or --gallery/--probes, not both")
    if bool(gallery_dir) != bool(probes_dir):
        raise OptionsError("--gallery and --probes go together")
    per_id = gallery_per_id or (None if gallery_dir else 1)
    if dataset:
        split = folder_split(dataset, per_id, max_people)
    elif gallery_dir:
        split = gallery_probe_split(gallery_dir, probes_dir, per_id, max_people)
    elif lfw is not None:
        split = lfw_split(lfw, per_id, max_people)
    else:
        raise OptionsError("no LFW data: pass --lfw PATH (or set FACESEARCH_LFW or FACESEARCH_DATA), "
                           "--dataset DIR or --gallery/--probes")
    if unknown:
        split = add_unknown(split, unknown, max_people)
    if not split.gallery:
        raise OptionsError("nothing to enroll: the gallery part of the data holds no photos")
    return split


def run(*, lfw: str | os.PathLike | None = None, dataset: str | os.PathLike | None = None,
        gallery_dir: str | os.PathLike | None = None, probes_dir: str | os.PathLike | None = None,
        unknown: str | os.PathLike | None = None, gallery_per_id: int | None = None,
        max_people: int | None = None, threshold: float | None = None, align: str = "box",
        min_confidence: float = 0.8, flip: bool | None = None, normalised: bool = False, use_cache: bool = True,
        input_kind: str = "full", aligned: str | None = None, crop_photos: bool = True,
        out: str | os.PathLike | None = None, progress: ProgressFactory = no_progress) -> dict:
    """``facesearch bench identify``: build the split (:func:`make_split`), embed every photo once
    (cached by content), score every matcher, and with ``out`` write ``det.png`` and
    ``identify.json`` there. Returns the dict ``--json`` prints.

    ``input_kind`` other than ``"full"`` replaces every photo by its face crop of that kind
    (:mod:`facesearch.bench.photo_crops`, made with the default pipeline); ``aligned`` reads
    every photo as an aligned crop of that framing (``FaceAnalysis(aligned=...)``); ``crop_photos``
    False reads crops as ordinary photos (the pipeline before crops were recognised).
    """
    split = make_split(lfw=lfw, dataset=dataset, gallery_dir=gallery_dir, probes_dir=probes_dir, unknown=unknown,
                       gallery_per_id=gallery_per_id, max_people=max_people)
    if input_kind != "full":
        maker = make_analysis(min_confidence=min_confidence, flip=False)  # crops need boxes, not embeddings
        with progress(f"cropping ({input_kind})") as (on_total, update):
            crops = photo_crops.crop_photos(split.photos(), input_kind, maker,
                                FaceCache.for_settings(maker.settings) if use_cache else None,
                                pick=split.pick, progress=update, on_total=on_total)
        # A crop holds one face: the largest is the one it was made of.
        split = Split([(crops[p], w) for p, w in split.gallery], [(crops[p], w) for p, w in split.known],
                      [crops[p] for p in split.unknown], pick="largest")
    analysis = make_analysis(align=align, min_confidence=min_confidence, flip=flip, aligned=aligned,
                             crop_photos=crop_photos)
    cache = FaceCache.for_settings(analysis.settings) if use_cache else None
    with progress("embedding") as (on_total, update):
        emb = embed_split(split, analysis, cache, progress=update, on_total=on_total)
    result = identify(split, emb, DEFAULT_THRESHOLD if threshold is None else threshold, normalised=normalised)
    source = dataset or (f"{gallery_dir} + {probes_dir}" if gallery_dir else str(lfw))
    data = {"benchmark": "identify", "source": source, "unknown_source": unknown, "input": input_kind,
            "aligned": aligned, "crop_photos": crop_photos, "align": align, "flip": analysis.flip,
            "gallery_per_id": gallery_per_id or (None if gallery_dir else 1), "max_people": max_people,
            **result.as_dict()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plot_det(result, out / "det.png")
        (out / "identify.json").write_text(json.dumps(data, indent=2))
        data["det_png"] = str(out / "det.png")
    return data

"""``facesearch bench lfw``: the LFW verification protocol on our own detection and crops."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from facesearch.bench.datasets import Pair, find_lfw_pairs, lfw_root, read_pairs
from facesearch.bench.embeddings import DatasetEmbeddings, embed_photos, make_analysis
from facesearch.bench.verify import VerificationResult, plot_roc, verify
from facesearch.models.analysis import FaceAnalysis
from facesearch.models.face_cache import FaceCache
from facesearch.paths import data_dir
from facesearch.progress import ProgressFactory, no_progress


def limit_pairs(pairs: list[Pair], per_class: int) -> list[Pair]:
    """The first ``per_class`` same and ``per_class`` different pairs of each fold (quick runs)."""
    kept, counts = [], {}
    for p in pairs:
        key = (p.fold, p.same)
        if counts.get(key, 0) < per_class:
            counts[key] = counts.get(key, 0) + 1
            kept.append(p)
    return kept


def lfw_pairs(lfw: str | os.PathLike, pairs_file: str | os.PathLike | None = None,
              limit: int | None = None) -> list[Pair]:
    """Pairs of ``pairs_file`` (default ``pairs.txt`` beside ``lfw``) resolved to image paths."""
    root = lfw_root(lfw)
    pairs = read_pairs(pairs_file or find_lfw_pairs(lfw, "pairs.txt"), root)
    return limit_pairs(pairs, limit) if limit else pairs


def embed_pairs(pairs: list[Pair], analysis: FaceAnalysis, cache: FaceCache | None, *,
                progress=None, on_total=None) -> DatasetEmbeddings:
    """Embed each distinct photo of ``pairs`` once (the face nearest the centre, as LFW is centred)."""
    photos = [p for pair in pairs for p in (pair.a, pair.b)]
    return embed_photos(photos, analysis, cache, pick="center", progress=progress, on_total=on_total)


def default_lfw() -> Path | None:
    """``$FACESEARCH_LFW``, else ``lfw/lfw-deepfunneled.tgz`` under ``$FACESEARCH_DATA``, if either is set."""
    env = os.environ.get("FACESEARCH_LFW")
    if env:
        return Path(env).expanduser()
    data = data_dir()
    return data / "lfw" / "lfw-deepfunneled.tgz" if data is not None else None


@dataclass
class LfwReport:
    """One row per embedder run on the same pairs; ``results`` keeps the scores for the ROC."""

    pairs_file: str
    rows: list[dict]
    results: dict[str, VerificationResult] = field(repr=False)
    files: dict[str, str] = field(default_factory=dict)  # written by write_report, by name

    def as_dict(self) -> dict:
        data = {"benchmark": "lfw", "pairs_file": self.pairs_file, "rows": self.rows}
        if self.files:
            data["files"] = dict(self.files)
        if len(self.rows) == 2 and {r["embedder"] for r in self.rows} == {"facenet", "dlib"}:
            ours, dlib = (next(r for r in self.rows if r["embedder"] == e) for e in ("facenet", "dlib"))
            errors = (1 - ours["accuracy"], 1 - dlib["accuracy"])
            data["error_ratio_dlib_over_facenet"] = round(errors[1] / errors[0], 3) if errors[0] > 0 else None
        return data


def run(lfw: str | os.PathLike, pairs_file: str | os.PathLike | None = None, *, limit: int | None = None,
        embedders: tuple[str, ...] = ("facenet",), align: str = "box", subtract_mean: bool = True,
        min_confidence: float = 0.8, min_face_size: int = 20, flip: bool | None = None, use_cache: bool = True,
        out: str | os.PathLike | None = None, progress: ProgressFactory = no_progress) -> LfwReport:
    """The LFW k-fold protocol for each of ``embedders`` on the same pairs.

    Returns each row's accuracy, TAR at FAR 0.1% and 1%, thresholds, failures and the seconds
    spent embedding (cached photos cost almost nothing, so a second run is fast). With ``out``,
    also writes ``roc.png`` and ``lfw.json`` there (:func:`write_report`).
    """
    pair_list = lfw_pairs(lfw, pairs_file, limit)
    rows, results = [], {}
    for name in embedders:
        analysis = make_analysis(name, align=align, min_confidence=min_confidence, min_face_size=min_face_size,
                                 flip=flip)
        cache = FaceCache.for_settings(analysis.settings) if use_cache else None
        started = time.perf_counter()
        with progress(f"embedding ({name})") as (on_total, update):
            emb = embed_pairs(pair_list, analysis, cache, progress=update, on_total=on_total)
        seconds = time.perf_counter() - started
        result = verify(pair_list, emb, subtract_mean=subtract_mean)
        facenet = name == "facenet"
        flipped = bool(getattr(analysis, "flip", False))
        results[f"{name} {align}{' +flip' if flipped else ''}" if facenet else name] = result
        rows.append({"embedder": name, "align": align if facenet else "dlib-5point", "flip": flipped,
                     **result.as_dict(), "embedding_seconds": round(seconds, 1), "photos": len(emb.paths),
                     "no_face": sorted(emb.errors)})
    report = LfwReport(str(pairs_file or "pairs.txt"), rows, results)
    if out is not None:
        report.files = write_report(report, out)
    return report


def write_report(report: LfwReport, out: str | os.PathLike) -> dict[str, str]:
    """Write ``roc.png`` and ``lfw.json`` into ``out`` (created); returns their paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_roc(report.results, out / "roc.png")
    (out / "lfw.json").write_text(json.dumps(report.as_dict(), indent=2))
    return {"roc_png": str(out / "roc.png"), "json": str(out / "lfw.json")}

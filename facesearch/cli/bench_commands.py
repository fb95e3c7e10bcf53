"""``facesearch bench ...``: accuracy and speed on real data, each a call to :mod:`facesearch.bench`.

Data folders come from options, ``$FACESEARCH_LFW`` or ``$FACESEARCH_DATA``; nothing here guesses
a path. Library modules are imported inside each command to keep ``--help`` fast.
"""
from __future__ import annotations

from pathlib import Path

import click

from facesearch.cli import render
from facesearch.cli.root import ALIGNED_CHOICES, main, open_gallery, quiet_progress

LFW_HELP = "lfw-deepfunneled folder or .tgz (default: $FACESEARCH_LFW, else lfw/ under $FACESEARCH_DATA)."


@main.group()
def bench():
    """Measure accuracy and speed on real data."""


def _default_lfw(lfw: str | None) -> str | Path:
    from facesearch.bench.lfw import default_lfw

    found = lfw or default_lfw()
    if found is None:
        raise click.UsageError("no LFW data: pass --lfw PATH or set FACESEARCH_LFW or FACESEARCH_DATA")
    return found


def _comma_list(option: str, text: str, cast=str) -> list:
    try:
        values = [cast(s.strip()) for s in text.split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"{option}: expected a comma-separated list, got {text!r}") from None
    if not values:
        raise click.UsageError(f"{option}: give at least one value")
    return values


@bench.command(name="lfw")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None, help=LFW_HELP)
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Pairs file (default: pairs.txt beside the LFW data; pairsDevTrain/DevTest for quick runs).")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Use only the first N same and N different pairs of each fold.")
@click.option("--align", type=click.Choice(["box", "5point"]), default="box", show_default=True)
@click.option("--subtract-mean/--no-subtract-mean", default=True, show_default=True,
              help="Subtract the training folds' mean embedding before comparing.")
@click.option("--min-confidence", type=float, default=0.8, show_default=True, help="MTCNN confidence floor.")
@click.option("--min-face-size", type=click.IntRange(12), default=20, show_default=True,
              help="Smallest face looked for, in pixels; larger is faster.")
@click.option("--embedder", type=click.Choice(["facenet", "dlib"]), default="facenet", show_default=True,
              help="dlib: face_recognition's HOG + ResNet pipeline (pip install 'facesearch[dlib]').")
@click.option("--flip/--no-flip", default=None,
              help="FaceNet: add the embedding of the mirrored crop (test-time augmentation, twice the cost), "
                   "or not (default: as a new gallery does, with it).")
@click.option("--compare", is_flag=True, help="Run facenet and dlib on the same pairs, one row each.")
@click.option("--no-cache", is_flag=True, help="Recompute every embedding.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write roc.png and lfw.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_lfw(lfw, pairs, limit, align, subtract_mean, min_confidence, min_face_size, embedder, flip, compare,
              no_cache, out, as_json):
    """LFW verification: k-fold accuracy, TAR at FAR 0.1% and 1%, ROC."""
    from facesearch.bench import lfw as lfw_bench

    report = lfw_bench.run(_default_lfw(lfw), pairs, limit=limit,
                           embedders=("facenet", "dlib") if compare else (embedder,), align=align,
                           subtract_mean=subtract_mean, min_confidence=min_confidence, min_face_size=min_face_size,
                           flip=flip, use_cache=not no_cache, out=out, progress=quiet_progress(False))
    render.emit(report.as_dict(), as_json, render.lfw_text)


@bench.command(name="identify")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None, help=LFW_HELP)
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder-per-identity data instead of LFW: first N photos of each enrolled, the rest probes.")
@click.option("--gallery", "gallery_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder-per-identity photos to enroll (with --probes).")
@click.option("--probes", "probes_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder-per-identity probes; identities not in --gallery are unknown probes.")
@click.option("--unknown", type=click.Path(exists=True, file_okay=False), default=None,
              help="Photos of people never enrolled: folder-per-identity or a flat folder.")
@click.option("--gallery-per-id", type=click.IntRange(1), default=None,
              help="Photos enrolled per identity, lowest-numbered first [default: 1; all with --gallery].")
@click.option("--max-people", type=click.IntRange(1), default=None,
              help="Only the first N people (alphabetical) of each group, for quick runs.")
@click.option("--threshold", type=float, default=None,
              help="Similarity for the 'at the threshold' figures (default: the product's default).")
@click.option("--align", type=click.Choice(["box", "5point"]), default="box", show_default=True)
@click.option("--min-confidence", type=float, default=0.8, show_default=True, help="MTCNN confidence floor.")
@click.option("--flip/--no-flip", default=None,
              help="Embed each face and its mirror image, averaged (test-time augmentation), or not "
                   "(default: as a new gallery does, with it).")
@click.option("--normalised", is_flag=True,
              help="Also score with each score normalisation (gallery as cohort: centring, t-norm, as-norm).")
@click.option("--input", "input_kind", type=click.Choice(["full", "box-crop", "aligned112", "facesearch-crop"]), default="full", show_default=True,
              help="Replace every photo by a face crop made from it: the detector's box (box-crop), a 5-point "
                   "aligned 112x112 face (aligned112) or what `facesearch crop` writes (facesearch-crop).")
@click.option("--aligned", type=click.Choice(ALIGNED_CHOICES), default=None,
              help="Read every photo as one aligned face crop of this kind, without detection (as enroll/query "
                   "--aligned do).")
@click.option("--as-photos", is_flag=True,
              help="Read crops as ordinary photos, not recognising them as crops (the pipeline before it did).")
@click.option("--no-cache", is_flag=True, help="Recompute every embedding.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write det.png and identify.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_identify(lfw, dataset, gallery_dir, probes_dir, unknown, gallery_per_id, max_people, threshold, align,
                   min_confidence, flip, normalised, input_kind, aligned, as_photos, no_cache, out, as_json):
    """Open-set 1:N identification: rank-1/5, DIR at FPIR 1% and 10%, DET curve, per matcher."""
    from facesearch.bench import identify as identify_bench
    from facesearch.bench.lfw import default_lfw

    data = identify_bench.run(lfw=lfw or default_lfw(), dataset=dataset, gallery_dir=gallery_dir,
                              probes_dir=probes_dir, unknown=unknown, gallery_per_id=gallery_per_id,
                              max_people=max_people, threshold=threshold, align=align, min_confidence=min_confidence,
                              flip=flip, normalised=normalised, use_cache=not no_cache, input_kind=input_kind,
                              aligned=aligned, crop_photos=not as_photos, out=out, progress=quiet_progress(False))
    render.emit(data, as_json, render.identify_text)


@bench.command(name="calibration")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None, help=LFW_HELP)
@click.option("--sizes", default="100,500,1680", show_default=True,
              help="Enrolled LFW identities, comma-separated (sizes under 1,680 are drawn at random --draws times).")
@click.option("--fpir", "fpirs", default="0.01", show_default=True, help="Target FPIRs, comma-separated.")
@click.option("--draws", type=click.IntRange(1), default=5, show_default=True, help="Random galleries per size.")
@click.option("--distractors", type=click.IntRange(0), default=0, show_default=True,
              help="Also all 1,680 people plus this many synthetic distractor identities (LFW's photo counts).")
@click.option("--distractor-faces", type=click.IntRange(1), default=None,
              help="Faces per synthetic identity [default: drawn from LFW's photo counts, 5.3 on average].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_calibration(lfw, sizes, fpirs, draws, distractors, distractor_faces, seed, as_json):
    """Realised FPIR of the calibrated threshold against its target, on LFW's never-enrolled people."""
    from facesearch.bench import calibration_check

    data = calibration_check.run(_default_lfw(lfw), sizes=_comma_list("--sizes", sizes, int),
                                 fpirs=_comma_list("--fpir", fpirs, float), draws=draws, distractors=distractors,
                                 distractor_faces=distractor_faces, seed=seed, progress=quiet_progress(False))
    render.emit(data, as_json, render.calibration_bench_text)


@bench.command(name="speed")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None, help=LFW_HELP)
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), envvar="FACESEARCH_DATA",
              default=None, help="The data folder with fixtures/ and 5celeb/ (default: $FACESEARCH_DATA).")
@click.option("--sizes", default="10000,100000,1000000", show_default=True,
              help="Stored faces for the FAISS search figures, comma-separated (1M needs ~8 GB of memory, "
                   "and its HNSW build takes long on few cores).")
@click.option("--only", default=",".join(("detection", "embedding", "enrollment", "query", "startup", "search")),
              show_default=True, help="The parts to measure, comma-separated.")
@click.option("--compare", is_flag=True,
              help="Also enroll the same photos through dlib's pipeline (needs the [dlib] extra), alternating "
                   "with ours, and print the ratio.")
@click.option("--min-face-size", type=click.IntRange(12), default=20, show_default=True,
              help="Our detector's smallest face, in pixels (dlib's HOG, upsampled once, finds faces down to "
                   "about 40).")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Also time the TensorFlow path (the mtcnn package, the Keras FaceNet) beside the default "
                   "ONNX Runtime path, alternating.")
@click.option("--flip/--no-flip", default=None,
              help="Embed each face with its mirror image, or not (default: as a new gallery does, with it).")
@click.option("--quick", is_flag=True, help="Few repetitions of everything (a smoke run, rough figures).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_speed(lfw, data_dir, sizes, only, compare, min_face_size, reference, flip, quick, as_json):
    """Detection, embedding, enrollment, query and FAISS search speed on this machine."""
    from facesearch.bench import speed
    from facesearch.bench.embeddings import make_analysis

    size_list = _comma_list("--sizes", sizes, int)
    if min(size_list) < 1:
        raise click.UsageError("--sizes: give positive sizes")
    parts = _comma_list("--only", only)
    unknown = sorted(set(parts) - set(speed.PARTS))
    if unknown:
        raise click.UsageError(f"--only: unknown part(s) {', '.join(unknown)}; choose from {', '.join(speed.PARTS)}")
    if compare and "enrollment" not in parts:
        raise click.UsageError("--compare compares enrollment: include it in --only")
    if data_dir is None:
        raise click.UsageError("no data folder: pass --data DIR or set FACESEARCH_DATA")
    data = speed.run(Path(data_dir), _default_lfw(lfw), size_list, quick=quick, only=parts, compare=compare,
                     analysis=make_analysis(min_face_size=min_face_size, flip=flip), reference=reference)
    render.emit(data, as_json, render.speed_text)


@bench.command(name="live")
@click.option("--video", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Video to analyse (default: a 640x480 clip made from --photo).")
@click.option("--photo", "photos", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="Photo of one face for the generated clip; repeat for more faces, each in its own part of "
                   "the frame (default: --faces photos of fixtures/queries under $FACESEARCH_DATA).")
@click.option("--faces", type=click.IntRange(1, 4), default=1, show_default=True,
              help="Faces in the default clip (different people from the fixtures).")
@click.option("--frames", type=click.IntRange(2), default=60, show_default=True, help="Frames of the generated clip.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def bench_live(ctx, video, photos, faces, frames, as_json):
    """Analysed frames per second of `live` on a video, tracking on and off (uses the gallery at --home)."""
    from facesearch.bench import live_rate

    if video is None and not photos:
        photos = live_rate.default_photos(faces)
    data = live_rate.run_clip(open_gallery(ctx), video=video, photos=photos, frames=frames)
    render.emit(data, as_json, render.live_rate_text)


@bench.command(name="scale")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None,
              help="Where the real faces come from: LFW (default: $FACESEARCH_LFW, else lfw/ under $FACESEARCH_DATA) "
                   "or any folder-per-identity tree.")
@click.option("--sizes", default="10000,100000,1000000", show_default=True,
              help="Gallery sizes in faces, comma-separated (1M takes about half an hour and 3 GB of disk).")
@click.option("--kinds", default="faces,random", show_default=True,
              help="Distractors: faces (identities with real FaceNet statistics), random (unit vectors).")
@click.option("--people", type=click.IntRange(2), default=500, show_default=True,
              help="Real people enrolled (first photo) and probed (second photo).")
@click.option("--work", type=click.Path(file_okay=False), default=None,
              help="Build the galleries here (default: a temporary folder).")
@click.option("--keep", is_flag=True, help="Keep the galleries.")
@click.option("--reuse", is_flag=True, help="With --work and --keep: measure a gallery of the right size left there "
                                          "by an earlier run instead of building it again.")
@click.option("--backend", "backends", default=None, metavar="LIST",
              help="Compare storage backends instead (embedded, postgres, milvus; comma-separated): bulk and live "
                   "insert rate, query p50/p95, recall@1/@10 against exact search and size on disk, on synthetic "
                   "faces only. The engines start themselves (pgserver, a Milvus Lite file) under --work.")
@click.option("--queries", type=click.IntRange(10), default=200, show_default=True,
              help="With --backend: probes timed one at a time (fewer where they take over --query-budget).")
@click.option("--query-budget", type=click.FloatRange(1), default=60.0, show_default=True,
              help="With --backend: seconds of queries per row a slow backend is held to.")
@click.option("--live-faces", type=click.IntRange(100), default=1000, show_default=True,
              help="With --backend: faces added after the bulk load in writes of 100, each updating the index.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_scale(lfw, sizes, kinds, people, work, keep, reuse, backends, queries, query_budget, live_faces, as_json):
    """Query latency, recall, write costs, memory and disk of galleries up to a million faces."""
    from facesearch.bench import scale

    kind_list = _comma_list("--kinds", kinds)
    unknown = sorted(set(kind_list) - set(scale.KINDS))
    if unknown:
        raise click.UsageError(f"--kinds: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(scale.KINDS)}")
    if backends is not None:
        from facesearch.bench import backend_scale

        backend_list = _comma_list("--backend", backends)
        unknown = sorted(set(backend_list) - set(backend_scale.BACKENDS))
        if unknown:
            raise click.UsageError(f"--backend: unknown backend(s) {', '.join(unknown)}; "
                                   f"choose from {', '.join(backend_scale.BACKENDS)}")
        data = backend_scale.run(_comma_list("--sizes", sizes, int), backend_list, kinds=kind_list, queries=queries,
                                 query_budget_s=query_budget, live_faces=live_faces, work=work, keep=keep, progress=quiet_progress(False))
        render.emit(data, as_json, render.backend_scale_text)
        return
    data = scale.run(_default_lfw(lfw), _comma_list("--sizes", sizes, int), kinds=kind_list, people=people,
                     work=work, keep=keep, reuse=reuse, progress=quiet_progress(False))
    render.emit(data, as_json, render.scale_text)


@bench.command(name="serve")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), envvar="FACESEARCH_DATA",
              default=None, help="The data folder with fixtures/ (default: $FACESEARCH_DATA).")
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True, help="Concurrent clients.")
@click.option("--requests", type=click.IntRange(1), default=50, show_default=True,
              help="Identify requests per client of the concurrent load, over all rounds.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Alternating rounds of one client, many, and many without batching.")
@click.option("--max-batch", type=click.IntRange(1, 256), default=8, show_default=True,
              help="The server's --max-batch.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="The server's --workers.")
@click.option("--compare-batching/--no-compare-batching", default=True, show_default=True,
              help="Run the concurrent load again on a server with --max-batch 1.")
@click.option("--quick", is_flag=True, help="Few repetitions (a smoke run, rough figures).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_serve(data_dir, clients, requests, rounds, max_batch, workers, compare_batching, quick, as_json):
    """The HTTP server under load on 127.0.0.1: latency against the warm Python API, throughput with
    one and many clients, errors, memory, and `--server` queries end to end."""
    from facesearch.bench import http_load

    if data_dir is None:
        raise click.UsageError("no data folder: pass --data DIR or set FACESEARCH_DATA")
    data = http_load.run(data_dir, clients=clients, requests=requests, rounds=rounds, quick=quick,
                         compare_batching=compare_batching, max_batch=max_batch, workers=workers)
    render.emit(data, as_json, render.http_load_text)


@bench.command(name="cluster")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None, help=LFW_HELP)
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder-per-identity photos instead of LFW (the largest face of each photo is labelled).")
@click.option("--max-people", type=click.IntRange(1), default=None,
              help="LFW: only the first N people (alphabetical) with several photos and N seen once, for quick runs.")
@click.option("--methods", default=None,
              help="Rows to run, comma-separated (the adopted method always runs) [default: all but hdbscan].")
@click.option("--no-cache", is_flag=True, help="Recompute every embedding.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_cluster(lfw, dataset, max_people, methods, no_cache, as_json):
    """Clustering of every face into people: pairwise and BCubed precision/recall/F1, merged
    singletons and time, for the adopted method and the usual rules (Immich, Chinese whispers, DBSCAN)."""
    from facesearch.bench import cluster_quality

    method_list = None if methods is None else _comma_list("--methods", methods)
    unknown = sorted(set(method_list or ()) - set(cluster_quality.METHODS))
    if unknown:
        raise click.UsageError(f"--methods: unknown method(s) {', '.join(unknown)}; "
                               f"choose from {', '.join(cluster_quality.METHODS)}")
    if dataset is not None and max_people is not None:
        raise click.UsageError("--max-people applies to LFW only")
    data = cluster_quality.run(None if dataset else _default_lfw(lfw), dataset=dataset, max_people=max_people,
                               methods=method_list, use_cache=not no_cache, progress=quiet_progress(False))
    render.emit(data, as_json, render.cluster_bench_text)


@bench.command(name="people")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of <split>/<person>/<photos> [default: 5celeb under $FACESEARCH_DATA].")
@click.option("--probe", default="val", show_default=True, help="The split whose photos are queried afterwards.")
@click.option("--cache", "use_cache", is_flag=True, help="Use the face cache (the first scan's time then means little).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_people(dataset, probe, use_cache, as_json):
    """A labelled photo library scanned unlabelled into an empty gallery: scan and re-scan time,
    candidate people's purity and recall, and `query` after naming them against the enroll path."""
    import os

    from facesearch.bench import people_scan

    if dataset is None:
        if not os.environ.get("FACESEARCH_DATA"):
            raise click.UsageError("no data folder: pass --dataset DIR or set FACESEARCH_DATA")
        dataset = Path(os.environ["FACESEARCH_DATA"]) / "5celeb"
    if not (Path(dataset) / probe).is_dir():
        raise click.UsageError(f"{dataset}: no {probe}/ folder to query (see --probe)")
    render.emit(people_scan.run(dataset, probe=probe, use_cache=use_cache), as_json, render.people_bench_text)

"""The ``facesearch`` command: a thin click skin over :class:`facesearch.Gallery`.

Every command that prints results takes ``--json``. Errors are one line on stderr and a
non-zero exit status.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from facesearch.cli.root import _emit, _fail_on_errors, _gallery, _lazy_progress, main

@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", default=None, help="Enroll PATHS (photos or folders) as this one person.")
@click.option("--min-face-size", type=click.IntRange(12), default=20, show_default=True,
              help="Smallest face looked for, in pixels. 40 enrolls about twice as fast (docs/benchmarks.md); "
                   "faces under it are neither enrolled nor reported as extra faces.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def enroll(ctx, paths, name, min_face_size, as_json, quiet):
    """Enroll people from photos.

    PATHS are folders with one sub-folder of photos per person (the usual dataset layout),
    or, with --name, photos or folders of photos of one person. Each photo contributes its
    largest face; a photo already enrolled is skipped.
    """
    from facesearch.models.analysis import FaceAnalysis
    from facesearch.models.detect import Detector

    gallery = _gallery(ctx, analysis=FaceAnalysis(Detector(min_face_size=min_face_size)))
    with _lazy_progress("enrolling", quiet) as (on_total, update):
        report = gallery.enroll(list(paths), name, progress=update, on_total=on_total)
    data = report.as_dict()

    def human(d):
        click.echo(f"Enrolled {len(d['enrolled'])} face(s) of {len(d['identities'])} identit"
                   f"{'y' if len(d['identities']) == 1 else 'ies'}; {len(d['duplicates'])} duplicate(s) skipped, "
                   f"{len(d['no_face'])} photo(s) without a face, {len(d['multiple_faces'])} with several faces, "
                   f"{len(d['errors'])} error(s).")
        for m in d["multiple_faces"]:
            click.echo(f"  {m['path']}: {m['faces']} faces found; enrolled the largest")
        for p in d["no_face"]:
            click.echo(f"  {p}: no face found")
        for dup in d["duplicates"]:
            click.echo(f"  {dup['path']}: already enrolled as {dup['identity']}")

    _emit(data, as_json, human)
    _fail_on_errors(ctx, data["errors"])


@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--matcher", type=click.Choice(["knn", "centroid"]), default="knn", show_default=True)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1), help="Candidates per face.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1), help="Neighbours that vote (knn).")
@click.option("--threshold", type=float, default=None,
              help="Cosine similarity under which a face is unknown (default: the measured one, see README).")
@click.option("--annotate", "annotate_out", type=click.Path(), default=None,
              help="Write each photo with boxes and names: a file for one photo, else a folder.")
@click.option("--rerank", type=click.Choice(["mlp", "inception", "ensemble"]), default=None,
              help="Reorder the candidates above the threshold with a classifier trained by `facesearch train`.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def query(ctx, photos, matcher, top_k, k, threshold, annotate_out, rerank, as_json):
    """Identify every face in PHOTOS."""
    from facesearch.errors import ImageError

    gallery = _gallery(ctx)
    if rerank:  # issue 5: loaded (and refused if stale) before any photo is read
        from facesearch.classify.rerank import Reranker

        gallery = Reranker(gallery, rerank)
    results, failed = [], 0
    for photo in photos:
        try:
            res = gallery.query(photo, matcher=matcher, threshold=threshold, top_k=top_k, k=k)
        except ImageError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed += 1
            continue
        results.append(res)
        if annotate_out:
            _annotate(photo, res, annotate_out, single=len(photos) == 1)

    def human(d):
        for r in d["results"]:
            faces = r["faces"]
            click.echo(f"{r['image']}: {len(faces)} face{'' if len(faces) == 1 else 's'}")
            for f in faces:
                who = f["identity"] if f["identity"] is not None else "unknown"
                others = ", ".join(f"{c['identity']} {c['similarity']:.2f}" for c in f["candidates"][1:])
                click.echo(f"  {f['box']}  {who:<20} {f['similarity']:.2f}" + (f"   next: {others}" if others else ""))

    _emit({"results": [r.as_dict() for r in results]}, as_json, human)
    if failed:
        ctx.exit(1)


def _annotate(photo: str, result, out: str, single: bool) -> None:
    from facesearch.imaging.annotate import draw_faces, save_image
    from facesearch.imaging.decode import IMAGE_EXTENSIONS, load_image

    target = Path(out)
    if not (single and target.suffix.lower() in IMAGE_EXTENSIONS):
        target.mkdir(parents=True, exist_ok=True)
        target = target / f"{Path(photo).stem}.annotated.jpg"
    image = draw_faces(load_image(photo), [(f.face.box, f.match.identity, f.match.similarity) for f in result.faces])
    save_image(str(target), image)


@main.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_(ctx, as_json):
    """List enrolled identities with their face and photo counts."""
    rows = _gallery(ctx).identities()

    def human(rs):
        if not rs:
            click.echo("The gallery is empty.")
            return
        width = max(len(r["name"]) for r in rs)
        click.echo(f"{'identity':<{width}}  faces  photos")
        for r in rs:
            click.echo(f"{r['name']:<{width}}  {r['faces']:>5}  {r['images']:>6}")

    _emit(rows, as_json, human)


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def remove(ctx, name, as_json):
    """Remove NAME and all its faces from the gallery."""
    n = _gallery(ctx).remove(name)
    _emit({"removed": name, "faces": n}, as_json, lambda d: click.echo(f"Removed {name} ({n} face(s))."))


@main.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def rename(ctx, old, new, as_json):
    """Rename OLD to NEW (merging into NEW if it exists)."""
    _gallery(ctx).rename(old, new)
    _emit({"renamed": old, "to": new}, as_json, lambda d: click.echo(f"Renamed {old} to {new}."))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def reindex(ctx, as_json):
    """Rebuild the FAISS indexes from the database."""
    index = _gallery(ctx).reindex()
    data = {"faces": len(index.faces), "identities": len(index.identities), "generation": index.generation}
    _emit(data, as_json, lambda d: click.echo(
        f"Rebuilt the index: {d['faces']} face(s), {d['identities']} identit{'y' if d['identities'] == 1 else 'ies'}."))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json):
    """Show which model weights are in use, where, and their hash."""
    from facesearch.models.weights import MODEL_ID, resolve_weights

    info = resolve_weights()
    data = {"embedder": {"model": MODEL_ID, "path": str(info.path), "sha256": info.sha256, "source": info.source},
            "detector": {"model": "mtcnn", "package": _version("mtcnn")}}

    def human(d):
        e = d["embedder"]
        click.echo(f"embedder  {e['model']}\n  path    {e['path']}\n  sha256  {e['sha256']}\n  source  {e['source']}")
        click.echo(f"detector  MTCNN (mtcnn {d['detector']['package']}, weights inside the package)")

    _emit(data, as_json, human)


@main.group()
def bench():
    """Measure accuracy and speed on real data."""


def _analysis(align: str, min_confidence: float, embedder: str = "facenet", min_face_size: int = 20,
              flip: bool = False):
    if embedder == "dlib":
        from facesearch.models.dlib_pipeline import DlibAnalysis

        return DlibAnalysis()
    from facesearch.models.analysis import FaceAnalysis
    from facesearch.models.detect import Detector

    return FaceAnalysis(Detector(min_confidence=min_confidence, min_face_size=min_face_size), align=align,
                        flip=flip)


def _face_cache(analysis, use_cache: bool):
    from facesearch.models.face_cache import FaceCache

    return FaceCache.for_settings(analysis.settings) if use_cache else None


@bench.command(name="lfw")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None,
              help="lfw-deepfunneled folder or .tgz (default: $FACESEARCH_LFW or ../shared/data/lfw).")
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
@click.option("--flip", is_flag=True,
              help="FaceNet: add the embedding of the mirrored crop (test-time augmentation, twice the cost).")
@click.option("--compare", is_flag=True, help="Run facenet and dlib on the same pairs, one row each.")
@click.option("--no-cache", is_flag=True, help="Recompute every embedding.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write roc.png and lfw.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_lfw(lfw, pairs, limit, align, subtract_mean, min_confidence, min_face_size, embedder, flip, compare,
              no_cache, out, as_json):
    """LFW verification: k-fold accuracy, TAR at FAR 0.1% and 1%, ROC."""
    import time

    from facesearch.bench.lfw import default_lfw, embed_pairs, lfw_pairs
    from facesearch.bench.verify import plot_roc, verify

    lfw = lfw or default_lfw()
    if lfw is None:
        raise click.UsageError("no LFW data: pass --lfw PATH or set FACESEARCH_LFW")
    pair_list = lfw_pairs(lfw, pairs, limit)
    rows, results = [], {}
    for name in (["facenet", "dlib"] if compare else [embedder]):
        analysis = _analysis(align, min_confidence, name, min_face_size, flip)
        started = time.perf_counter()
        with _lazy_progress(f"embedding ({name})") as (on_total, update):
            emb = embed_pairs(pair_list, analysis, _face_cache(analysis, not no_cache),
                              progress=update, on_total=on_total)
        seconds = time.perf_counter() - started
        result = verify(pair_list, emb, subtract_mean=subtract_mean)
        label = f"{name} {align}{' +flip' if flip else ''}" if name == "facenet" else name
        results[label] = result
        rows.append({"embedder": name, "align": align if name == "facenet" else "dlib-5point",
                     "flip": flip and name == "facenet",
                     **result.as_dict(), "embedding_seconds": round(seconds, 1), "photos": len(emb.paths),
                     "no_face": sorted(emb.errors)})
    data = {"benchmark": "lfw", "pairs_file": str(pairs or "pairs.txt"), "rows": rows}
    if compare:
        a, b = rows
        errors = (1 - a["accuracy"], 1 - b["accuracy"])
        data["error_ratio_dlib_over_facenet"] = round(errors[1] / errors[0], 3) if errors[0] > 0 else None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        plot_roc(results, Path(out) / "roc.png")
        (Path(out) / "lfw.json").write_text(json.dumps(data, indent=2))

    def human(d):
        for r in d["rows"]:
            click.echo(f"LFW verification [{r['embedder']}, {r['align']}{', flip' if r['flip'] else ''}], "
                       f"{r['pairs']} pairs in "
                       f"{len(r['fold_accuracies'])} fold(s), subtract-mean={r['subtract_mean']}")
            click.echo(f"  accuracy     {100 * r['accuracy']:.2f}% +- {100 * r['accuracy_std']:.2f}")
            for far, label in (("0.001", "0.1%"), ("0.01", "1%  ")):
                click.echo(f"  TAR@FAR={label} {100 * r['tar_at_far'][far]:.2f}% "
                           f"(threshold {r['threshold_at_far'][far]:.3f})")
            click.echo(f"  threshold    {sum(r['thresholds']) / len(r['thresholds']):.3f} "
                       "(best accuracy, mean over folds)")
            if r["embedder"] == "facenet":
                at = r["at_default_threshold"]
                click.echo(f"  at the default threshold {at['threshold']:.2f}: TAR {100 * at['tar']:.2f}%, "
                           f"FAR {100 * at['far']:.2f}%")
            click.echo(f"  failures     {r['failed_pairs']} pair(s), {r['failed_photos']} photo(s) without a face")
        if d.get("error_ratio_dlib_over_facenet") is not None:
            click.echo(f"dlib makes {d['error_ratio_dlib_over_facenet']:.2f}x the errors of facenet")

    _emit(data, as_json, human)


# --- bench identify / bench speed (issue 4): see facesearch/bench/identify.py and speed.py ---

def _identify_split(lfw, dataset, gallery_dir, probes_dir, unknown, gallery_per_id, max_people):
    """The :class:`~facesearch.bench.identify.Split` the options describe."""
    from facesearch.bench import identify as ident
    from facesearch.bench.lfw import default_lfw

    if dataset and (gallery_dir or probes_dir):
        raise click.UsageError("give --dataset or --gallery/--probes, not both")
    if bool(gallery_dir) != bool(probes_dir):
        raise click.UsageError("--gallery and --probes go together")
    if dataset:
        split = ident.folder_split(dataset, gallery_per_id, max_people)
    elif gallery_dir:
        split = ident.gallery_probe_split(gallery_dir, probes_dir, gallery_per_id, max_people)
    else:
        lfw = lfw or default_lfw()
        if lfw is None:
            raise click.UsageError("no LFW data: pass --lfw PATH, --dataset DIR or --gallery/--probes")
        split = ident.lfw_split(lfw, gallery_per_id, max_people)
    if unknown:
        try:
            split = ident.add_unknown(split, unknown, max_people)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    if not split.gallery:
        raise click.UsageError("nothing to enroll: the gallery part of the data holds no photos")
    return split


@bench.command(name="identify")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None,
              help="lfw-deepfunneled folder or .tgz (default: $FACESEARCH_LFW or ../shared/data/lfw).")
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
@click.option("--no-cache", is_flag=True, help="Recompute every embedding.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write det.png and identify.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_identify(lfw, dataset, gallery_dir, probes_dir, unknown, gallery_per_id, max_people, threshold, align,
                   min_confidence, no_cache, out, as_json):
    """Open-set 1:N identification: rank-1/5, DIR at FPIR 1% and 10%, DET curve, per matcher."""
    from facesearch.bench import identify as ident
    from facesearch.search.match import DEFAULT_THRESHOLD

    # Default: one photo per identity, except that a separate gallery folder is enrolled whole.
    per_id = gallery_per_id or (None if gallery_dir else 1)
    split = _identify_split(lfw, dataset, gallery_dir, probes_dir, unknown, per_id, max_people)
    analysis = _analysis(align, min_confidence)
    with _lazy_progress("embedding") as (on_total, update):
        emb = ident.embed_split(split, analysis, _face_cache(analysis, not no_cache),
                                progress=update, on_total=on_total)
    result = ident.identify(split, emb, DEFAULT_THRESHOLD if threshold is None else threshold)
    source = dataset or (f"{gallery_dir} + {probes_dir}" if gallery_dir else str(lfw or "lfw"))
    data = {"benchmark": "identify", "source": source, "unknown_source": unknown, "align": align,
            "gallery_per_id": per_id, "max_people": max_people, **result.as_dict()}
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        ident.plot_det(result, Path(out) / "det.png")
        (Path(out) / "identify.json").write_text(json.dumps(data, indent=2))
        data["det_png"] = str(Path(out) / "det.png")
    _emit(data, as_json, _print_identify)


def _print_identify(d: dict) -> None:
    def pct(v):
        return "    -" if v is None else f"{100 * v:5.1f}"

    click.echo(f"Open-set identification: {d['identities']} enrolled identities ({d['gallery_photos']} photos, "
               f"{d['gallery_no_face']} without a face), {d['known_probes']} known probes, "
               f"{d['unknown_probes']} unknown probes")
    click.echo(f"{'matcher':<10} {'rank-1':>6} {'rank-5':>6} {'DIR@FPIR1%':>10} {'DIR@FPIR10%':>11}   "
               f"at threshold {d['threshold']:.2f}: {'known ok':>8} {'unknown rejected':>16}")
    for m in d["matchers"]:
        f1, f10, at = m["dir_at_fpir"]["0.01"], m["dir_at_fpir"]["0.1"], m["at_threshold"]
        click.echo(f"{m['matcher']:<10} {pct(m['rank1']):>6} {pct(m['rank5']):>6} {pct(f1['dir']):>10} "
                   f"{pct(f10['dir']):>11}   {'':>22}{pct(at['known_accuracy']):>8} {pct(at['unknown_rejection']):>16}")
    click.echo("  (percentages; DIR at FPIR uses the threshold that lets that fraction of unknown probes through)")
    click.echo(f"  failures: {d['known_no_face']} known probe(s) without a face (counted wrong); "
               f"{d['unknown_no_face']} unknown probe(s) without a face (left out of FPIR and rejection, "
               f"not counted as rejected)")
    if d.get("det_png"):
        click.echo(f"  DET curve: {d['det_png']}")


@bench.command(name="speed")
@click.option("--lfw", "lfw", type=click.Path(exists=True), default=None,
              help="lfw-deepfunneled folder or .tgz (default: $FACESEARCH_LFW or ../shared/data/lfw).")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="The shared data folder with fixtures/ and 5celeb/ (default: $FACESEARCH_DATA or ../shared/data).")
@click.option("--sizes", default="10000,100000,1000000", show_default=True,
              help="Stored faces for the FAISS search figures, comma-separated (1M needs ~8 GB of memory, "
                   "and its HNSW build takes long on few cores).")
@click.option("--only", default=",".join(("detection", "embedding", "enrollment", "query", "search")),
              show_default=True, help="The parts to measure, comma-separated.")
@click.option("--compare", is_flag=True,
              help="Also enroll the same photos through dlib's pipeline (needs the [dlib] extra), alternating "
                   "with ours, and print the ratio.")
@click.option("--min-face-size", type=click.IntRange(12), default=20, show_default=True,
              help="Our detector's smallest face, in pixels (dlib's HOG, upsampled once, finds faces down to "
                   "about 40).")
@click.option("--quick", is_flag=True, help="Few repetitions of everything (a smoke run, rough figures).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_speed(lfw, data_dir, sizes, only, compare, min_face_size, quick, as_json):
    """Detection, embedding, enrollment, query and FAISS search speed on this machine."""
    from facesearch.bench import speed
    from facesearch.bench.lfw import default_lfw

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"--sizes: expected comma-separated integers, got {sizes!r}") from None
    if not size_list or min(size_list) < 1:
        raise click.UsageError("--sizes: give at least one positive size")
    data_dir = Path(data_dir) if data_dir else speed.default_data()
    if data_dir is None:
        raise click.UsageError("no shared data folder: pass --data DIR or set FACESEARCH_DATA")
    lfw = lfw or default_lfw()
    if lfw is None:
        raise click.UsageError("no LFW data: pass --lfw PATH or set FACESEARCH_LFW")
    parts = [p.strip() for p in only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(speed.PARTS))
    if unknown or not parts:
        raise click.UsageError(f"--only: unknown part(s) {', '.join(unknown) or '(none given)'}; "
                               f"choose from {', '.join(speed.PARTS)}")
    if compare and "enrollment" not in parts:
        raise click.UsageError("--compare compares enrollment: include it in --only")
    from facesearch.models.analysis import FaceAnalysis
    from facesearch.models.detect import Detector

    data = speed.run(data_dir, lfw, size_list, quick=quick, only=parts, compare=compare,
                     analysis=FaceAnalysis(Detector(min_face_size=min_face_size)))
    _emit(data, as_json, _print_speed)


def _print_speed(d: dict) -> None:
    """The human form of :func:`facesearch.bench.speed.run`'s dict."""
    m = d["machine"]
    echo = click.echo
    echo(f"Machine: {m['cpu']}, {m['usable_cores']} usable of {m['cores']} cores, load average "
         f"{m['load_average']} -> {m.get('load_average_end')}{' (quick run: rough figures)' if d['quick'] else ''}")
    echo(f"  float32 matmul ceiling   {d['matmul']['gflops']:8.1f} GFLOP/s (numpy {d['matmul']['n']}^2, best of "
         f"{d['matmul']['repeats']})")
    if "detection" in d:
        for key, label in (("lfw", "LFW 250x250"), ("photo_1080p", "1080p photo")):
            r = d["detection"][key]
            echo(f"  detection {label:<14} {r['images_per_s']:8.2f} images/s ({r['ms_per_image']} ms/image)")
    if "embedding" in d:
        for b in (1, 32):
            r = d["embedding"][f"batch_{b}"]
            echo(f"  embedding batch {b:<8} {r['faces_per_s']:8.2f} faces/s ({r['ms_per_face']} ms/face, "
                 f"{100 * r['fraction_of_ceiling']:.0f}% of the ceiling at {d['embedding']['gflop_per_face']} "
                 "GFLOP/face)")
        r = d["embedding"]["efficiency"]
        echo(f"  embedding efficiency     {100 * r['median_fraction']:7.0f}% of the ceiling at batch {r['batch']} "
             f"(median of {r['rounds']} alternating rounds; best round {100 * r['best_round_fraction']:.0f}%)")
    if "enrollment" in d:
        r = d["enrollment"]
        echo(f"  enrollment (no cache)    {r['images_per_s']:8.2f} images/s ({r['images']} LFW images)")
    if "enrollment_vs_dlib" in d:
        r = d["enrollment_vs_dlib"]
        echo(f"  enrollment, alternating  facenet {r['facenet']['images_per_s']:.2f} images/s "
             f"({r['facenet']['enrolled']} enrolled), dlib {r['dlib']['images_per_s']:.2f} images/s "
             f"({r['dlib']['enrolled']} enrolled): {r['ratio']:.2f}x (median of {r['rounds']} rounds)")
    if "query_warm" in d:
        r = d["query_warm"]
        echo(f"  query, warm (Python API) p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms ({r['repeats']} runs)")
        echo(f"  query, cold process      {d['query_cold']['median_s']:.2f} s (median of "
             f"{len(d['query_cold']['runs_s'])})")
    if "search" not in d:
        return
    echo("  FAISS search, one query at a time:")
    echo(f"    {'faces':>9} {'kind':<5} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8} {'1 thread':>8} {'recall@1':>9}")
    for r in d["search"]:
        echo(f"    {r['size']:>9} {r['kind']:<5} {r['build_s']:>8.2f} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} "
             f"{r['p50_ms_1_thread']:>8.3f} {r['recall_at_1']:>9.4f}")
    echo("    (ms per query; '1 thread': p50 with FAISS on one OpenMP thread; recall@1 against exact search)")

# --- end bench identify / bench speed ---

@bench.command(name="live")
@click.option("--video", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Video to analyse (default: a 640x480 one-face clip made from --photo).")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Photo for the generated clip (default: ../shared/data/fixtures/queries/obama1.jpg).")
@click.option("--frames", type=click.IntRange(2), default=60, show_default=True, help="Frames of the generated clip.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def bench_live(ctx, video, photo, frames, as_json):
    """Analysed frames per second of `live` on a video, tracking on and off (uses the gallery at --home)."""
    import tempfile

    from facesearch.bench import live_rate as bench_live_mod

    gallery = _gallery(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        if video is None:
            photo = photo or Path(__file__).resolve().parents[2] / "shared/data/fixtures/queries/obama1.jpg"
            if not Path(photo).exists():
                raise click.UsageError("pass --video FILE or --photo PHOTO")
            video = bench_live_mod.one_face_video(photo, Path(tmp) / "one-face.mp4", frames=frames)
        rows = bench_live_mod.run(gallery, video)
    data = {"benchmark": "live", "rows": rows}

    def human(d):
        click.echo(f"{'tracking':<10}{'frames':>8}{'analysed fps':>14}{'embeddings/frame':>18}")
        for r in d["rows"]:
            click.echo(f"{'on' if r['tracking'] else 'off':<10}{r['frames']:>8}{r['analysed_fps']:>14.2f}"
                       f"{r['embeddings_per_frame']:>18.2f}")

    _emit(data, as_json, human)



# --- live (issue 6): camera / stream / video identification with tracking; see facesearch/live.py ---

@main.command(name="live")
@click.option("--camera", type=click.IntRange(0), default=None, metavar="INDEX",
              help="Camera index (the default source, index 0).")
@click.option("--video", type=click.Path(dir_okay=False), default=None,
              help="A video file: every frame is processed in order; the output has the same frame count.")
@click.option("--stream", metavar="URL", default=None, help="Anything OpenCV opens: rtsp://, http://, a device path.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the annotated video (.mp4/.mov/.m4v: mp4v, .avi: MJPG) at the source's fps.")
@click.option("--no-display", is_flag=True, help="No window (headless).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per event on stdout.")
@click.option("--matcher", type=click.Choice(["knn", "centroid"]), default="knn", show_default=True)
@click.option("--threshold", type=float, default=None,
              help="Cosine similarity under which a face is unknown (default: the measured one).")
@click.option("--every", type=click.IntRange(1), default=10, show_default=True,
              help="Re-embed a steady track every N analysed frames.")
@click.option("--analyse-every", type=click.IntRange(1), default=1, show_default=True,
              help="Video files: analyse every N-th frame (others are drawn with the latest tracks).")
@click.option("--detect-side", type=click.IntRange(64), default=640, show_default=True, metavar="PX",
              help="Detect faces on a copy of the frame downscaled to this longest side.")
@click.option("--no-tracking", is_flag=True, help="Embed every face on every analysed frame, no smoothing.")
@click.pass_context
def live_(ctx, camera, video, stream, output, no_display, as_json, matcher, threshold, every, analyse_every,
          detect_side, no_tracking):
    """Identify people live in a camera, a stream or a video; q or Esc quits."""
    from facesearch.video import session as live_mod

    if sum(x is not None for x in (camera, video, stream)) > 1:
        raise click.UsageError("give one of --camera, --video and --stream")
    if video is not None:
        source = live_mod.Source.video(video)
    elif stream is not None:
        source = live_mod.Source.stream(stream)
    else:
        source = live_mod.Source.camera(camera or 0)

    def on_event(event):
        if event["event"] == "summary":
            click.echo(f"{event['frames']} frames shown at {event['displayed_fps']:.1f} fps, {event['analysed']} "
                       f"analysed at {event['analysed_fps']:.1f} fps, {event['dropped']} dropped for analysis, "
                       f"{event['tracks']} track(s)", err=True)
        if as_json:
            click.echo(json.dumps(event, ensure_ascii=False))
        elif event["event"] != "summary":
            who = event["identity"] if event["identity"] is not None else "unknown"
            sim = "" if event["similarity"] is None else f" {event['similarity']:.2f}"
            click.echo(f"{event['time']:8.2f}s  frame {event['frame']:<6} track {event['track']:<3} "
                       f"{event['event']:<10} {who}{sim}")

    live_mod.run(_gallery(ctx), source, output=output, display=not no_display, on_event=on_event,
                 matcher=matcher, threshold=threshold, every=every, detect_side=detect_side,
                 tracking=not no_tracking, analyse_every=analyse_every)

# --- end live ---



def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


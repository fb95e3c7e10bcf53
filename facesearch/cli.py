"""The ``facesearch`` command: a thin click skin over :class:`facesearch.Gallery`.

Every command that prints results takes ``--json``. Errors are one line on stderr and a
non-zero exit status.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

# TensorFlow's C++ start-up chatter would bury our one-line messages; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402

from .errors import FaceSearchError  # noqa: E402

log = logging.getLogger("facesearch")


class _Group(click.Group):
    """Turns facesearch's own exceptions into one clean line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FaceSearchError as exc:
            raise click.ClickException(str(exc)) from None


def _emit(data, as_json: bool, human) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=None, ensure_ascii=False))
    else:
        human(data)


def _gallery(ctx: click.Context, **kwargs):
    from .gallery import Gallery

    opts = ctx.find_root().params
    return Gallery(opts["home"], db_url=opts["db_url"], **kwargs)


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, pipes), so errors stay one line.
    return tqdm(total=total, desc=desc, unit="photo", disable=True if quiet else None, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facesearch")
@click.option("--home", type=click.Path(file_okay=False), envvar="FACESEARCH_HOME", default=None,
              help="Gallery folder holding index/ and db/ (default: $FACESEARCH_HOME or the current directory).")
@click.option("--db-url", default=None, metavar="URL",
              help="SQLAlchemy URL of the gallery database (default: sqlite under HOME/db/).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(home, db_url, verbose):
    """Identify enrolled people in photos and video from their faces."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", default=None, help="Enroll PATHS (photos or folders) as this one person.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def enroll(ctx, paths, name, as_json, quiet):
    """Enroll people from photos.

    PATHS are folders with one sub-folder of photos per person (the usual dataset layout),
    or, with --name, photos or folders of photos of one person. Each photo contributes its
    largest face; a photo already enrolled is skipped.
    """
    gallery = _gallery(ctx)
    bar = None

    def on_total(n):
        nonlocal bar
        bar = _progress(n, "enrolling", quiet or n == 0)

    try:
        report = gallery.enroll(list(paths), name, progress=lambda n: bar.update(n), on_total=on_total)
    finally:
        if bar is not None:
            bar.close()
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
    for e in data["errors"]:
        click.echo(f"Error: {e['path']}: {e['error']}", err=True)
    if data["errors"]:
        ctx.exit(1)


@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--matcher", type=click.Choice(["knn", "centroid"]), default="knn", show_default=True)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1), help="Candidates per face.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1), help="Neighbours that vote (knn).")
@click.option("--threshold", type=float, default=None,
              help="Cosine similarity under which a face is unknown (default: the measured one, see README).")
@click.option("--annotate", "annotate_out", type=click.Path(), default=None,
              help="Write each photo with boxes and names: a file for one photo, else a folder.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def query(ctx, photos, matcher, top_k, k, threshold, annotate_out, as_json):
    """Identify every face in PHOTOS."""
    from .errors import ImageError

    gallery = _gallery(ctx)
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
    from .annotate import draw_faces, save_image
    from .images import IMAGE_EXTENSIONS, load_image

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
    from .weights import MODEL_ID, resolve_weights

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


def _analysis(align: str, min_confidence: float):
    from .analysis import FaceAnalysis
    from .detect import Detector

    return FaceAnalysis(Detector(min_confidence=min_confidence), align=align)


def _face_cache(analysis, use_cache: bool):
    from .cache import FaceCache
    from .weights import cache_dir

    return FaceCache(cache_dir() / "faces", analysis.settings) if use_cache else None


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
@click.option("--min-confidence", type=float, default=0.9, show_default=True, help="MTCNN confidence floor.")
@click.option("--no-cache", is_flag=True, help="Recompute every embedding.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write roc.png and results.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def bench_lfw(lfw, pairs, limit, align, subtract_mean, min_confidence, no_cache, out, as_json):
    """LFW verification: k-fold accuracy, TAR at FAR 0.1% and 1%, ROC."""
    from .bench.lfw import default_lfw, embed_pairs, lfw_pairs
    from .bench.verify import plot_roc, verify

    lfw = lfw or default_lfw()
    if lfw is None:
        raise click.UsageError("no LFW data: pass --lfw PATH or set FACESEARCH_LFW")
    pair_list = lfw_pairs(lfw, pairs, limit)
    analysis = _analysis(align, min_confidence)
    bar = None

    def on_total(n):
        nonlocal bar
        bar = _progress(n, "embedding", False)

    try:
        emb = embed_pairs(pair_list, analysis, _face_cache(analysis, not no_cache),
                          progress=lambda n: bar.update(n), on_total=on_total)
    finally:
        if bar is not None:
            bar.close()
    result = verify(pair_list, emb, subtract_mean=subtract_mean)
    data = {"benchmark": "lfw", "pairs_file": str(pairs or "pairs.txt"), "align": align, **result.as_dict(),
            "no_face": sorted(emb.errors)}
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        plot_roc({f"facenet {align}": result}, Path(out) / "roc.png")
        (Path(out) / "lfw.json").write_text(json.dumps(data, indent=2))

    def human(d):
        click.echo(f"LFW verification, {d['pairs']} pairs in {len(d['fold_accuracies'])} fold(s), align={align}, "
                   f"subtract-mean={d['subtract_mean']}")
        click.echo(f"  accuracy     {100 * d['accuracy']:.2f}% +- {100 * d['accuracy_std']:.2f}")
        click.echo(f"  TAR@FAR=0.1% {100 * d['tar_at_far']['0.001']:.2f}%")
        click.echo(f"  TAR@FAR=1%   {100 * d['tar_at_far']['0.01']:.2f}%")
        click.echo(f"  threshold    {sum(d['thresholds']) / len(d['thresholds']):.3f} (mean over folds)")
        click.echo(f"  failures     {d['failed_pairs']} pair(s), {d['failed_photos']} photo(s) without a face")

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
    from . import live as live_mod

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


if __name__ == "__main__":  # pragma: no cover
    main()

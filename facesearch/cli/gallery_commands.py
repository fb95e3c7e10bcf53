"""Commands on the gallery: enroll, query, verify, list, info, calibrate, remove, rename, reindex, migrate, and which
models run.

Library modules are imported inside each command, not at the top: ``facesearch --help`` and
commands that need no model must not pay for numpy, FAISS and TensorFlow. With ``--server URL``,
``open_gallery`` gives enroll, query, verify, list, remove and rename a gallery on that server
instead, with the same methods and results.
"""
from __future__ import annotations

import click

from facesearch.cli import render
from facesearch.cli.root import ALIGNED_CHOICES, ALIGNED_HELP, exit_on_errors, main, open_gallery, open_local_gallery, progress_bar


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", default=None, help="Enroll PATHS (photos or folders) as this one person.")
@click.option("--min-face-size", type=click.IntRange(12), default=20, show_default=True,
              help="Smallest face looked for, in pixels. 40 enrolls about twice as fast (docs/benchmarks.md); "
                   "faces under it are neither enrolled nor reported as extra faces.")
@click.option("--aligned", type=click.Choice(ALIGNED_CHOICES), default=None, help=ALIGNED_HELP)
@click.option("--no-flip", is_flag=True,
              help="Make a new gallery that embeds each face without its mirror image: half the FaceNet work, "
                   "about 2 points fewer people named at the same stranger rate (docs/benchmarks.md). An existing "
                   "gallery keeps the way it was made.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Decode, detect and embed on a Ray cluster (`pip install 'facesearch[ray]'`): its address "
                   "(HOST:PORT, ray://HOST:10001 or auto), or none to start a local one for this run (then give --ray "
                   "after PATHS, or it takes the next word as the address). This process stores the results: the "
                   "gallery is the one a plain enroll makes (docs/scaling.md).")
@click.option("--ray-workers", type=click.IntRange(1), default=None,
              help="Ray actors, each with its own models (default: one per CPU of the cluster); implies --ray.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def enroll(ctx, paths, name, min_face_size, aligned, no_flip, ray_address, ray_workers, as_json, quiet):
    """Enroll people from photos.

    PATHS are folders with one sub-folder of photos per person (the usual dataset layout),
    or, with --name, photos or folders of photos of one person. Each photo contributes its
    largest face; a photo already enrolled is skipped.
    """
    distributed = {}
    if ray_address is not None or ray_workers is not None:
        from facesearch.models.ray_analysis import check_reachable

        check_reachable(ray_address)  # before the gallery is opened: an unreachable cluster creates nothing
        distributed = {"ray": ray_address or "", "ray_workers": ray_workers}
    gallery = open_gallery(ctx, remote=not distributed, min_face_size=min_face_size, aligned=aligned,
                           flip=False if no_flip else None)
    with progress_bar("enrolling", quiet) as (on_total, update):
        report = gallery.enroll(list(paths), name, progress=update, on_total=on_total, **distributed)
    data = report.as_dict()
    render.emit(data, as_json, render.enroll_text)
    exit_on_errors(ctx, data["errors"])


@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--matcher", type=click.Choice(["knn", "centroid"]), default="knn", show_default=True)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1), help="Candidates per face.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1), help="Neighbours that vote (knn).")
@click.option("--threshold", type=float, default=None,
              help="Cosine similarity under which a face is unknown (default: the gallery's calibrated one, "
                   "see `facesearch calibrate`).")
@click.option("--annotate", "annotate_out", type=click.Path(), default=None,
              help="Write each photo with boxes and names: a file for one photo, else a folder.")
@click.option("--rerank", type=click.Choice(["mlp", "inception", "ensemble"]), default=None,
              help="Reorder the candidates above the threshold with a classifier trained by `facesearch train`.")
@click.option("--aligned", type=click.Choice(ALIGNED_CHOICES), default=None, help=ALIGNED_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def query(ctx, photos, matcher, top_k, k, threshold, annotate_out, rerank, aligned, as_json):
    """Identify every face in PHOTOS."""
    from facesearch.errors import ImageError

    gallery = open_gallery(ctx, remote=True, aligned=aligned)
    if rerank and ctx.find_root().params.get("server"):
        raise click.UsageError("--rerank works on a local gallery only; drop --server")
    if rerank:  # loaded (and refused if stale) before any photo is read
        from facesearch.classify.rerank import Reranker

        gallery = Reranker(gallery, rerank)
    results, errors = [], []
    for photo in photos:
        try:
            result = gallery.query(photo, matcher=matcher, threshold=threshold, top_k=top_k, k=k)
        except ImageError as exc:
            errors.append({"path": exc.path, "error": exc.reason})
            continue
        results.append(result)
        if annotate_out:
            from facesearch.imaging.annotate import annotate_photo

            annotate_photo(photo, result.labelled_boxes(), annotate_out, single=len(photos) == 1)
    render.emit({"results": [r.as_dict() for r in results]}, as_json, render.query_text)
    exit_on_errors(ctx, errors)


@main.command()
@click.argument("first", type=click.Path())
@click.argument("second", type=click.Path())
@click.option("--threshold", type=float, default=None,
              help="Cosine similarity from which the two are the same person (default: the measured one).")
@click.option("--aligned", type=click.Choice(ALIGNED_CHOICES), default=None, help=ALIGNED_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx, first, second, threshold, aligned, as_json):
    """Say whether the largest faces in FIRST and SECOND are the same person."""
    result = open_gallery(ctx, remote=True, aligned=aligned).verify(first, second, threshold=threshold)
    render.emit(result.as_dict(), as_json, render.verify_text)


@main.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (the identities only; `info --json` has the rest).")
@click.pass_context
def list_(ctx, as_json):
    """List enrolled identities with their face and photo counts, and the threshold in use."""
    gallery = open_gallery(ctx, remote=True)
    rows = gallery.identities()
    render.emit(rows, as_json, render.identities_text)
    if not as_json and rows:
        for line in render.threshold_text(gallery.info()):
            click.echo(line)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def info(ctx, as_json):
    """What the gallery holds, and the threshold queries use (calibrated or not)."""
    render.emit(open_gallery(ctx).info(), as_json, render.info_text)


@main.command()
@click.option("--fpir", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Target false-positive identification rate: the fraction of strangers named as someone "
                   "[default: the gallery's current target, else 0.01].")
@click.option("--strangers", multiple=True, type=click.Path(exists=True),
              help="Photos, or folders of photos, of people known NOT to be enrolled: sharpens the estimate "
                   "(each photo's largest face). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def calibrate(ctx, fpir, strangers, as_json, quiet):
    """Choose the threshold that names FPIR of strangers in this gallery, and store it.

    Queries and `live` use it unless --threshold is given. Writes keep it up to date as the
    gallery grows or shrinks (by 20% or more); run this again after adding strangers' photos.
    """
    gallery = open_gallery(ctx)
    with progress_bar("strangers", quiet) as (on_total, update):
        cal = gallery.calibrate(fpir, list(strangers) or None, progress=update, on_total=on_total)
    render.emit(cal.as_dict(), as_json, render.calibration_text)


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def remove(ctx, name, as_json):
    """Remove NAME and all its faces from the gallery."""
    faces = open_gallery(ctx, remote=True).remove(name)
    render.emit({"removed": name, "faces": faces}, as_json, render.removed_text)


@main.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def rename(ctx, old, new, as_json):
    """Rename OLD to NEW (merging into NEW if it exists)."""
    open_gallery(ctx, remote=True).rename(old, new)
    render.emit({"renamed": old, "to": new}, as_json, render.renamed_text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def reindex(ctx, as_json, quiet):
    """Rebuild the indexes from the database, choosing the index kind for the gallery's size.

    Queries and writes go on meanwhile; the new files replace the old ones atomically.
    """
    with progress_bar("indexing", quiet) as (on_total, update):
        index = open_gallery(ctx).reindex(progress=update, on_total=on_total)
    render.emit(index.summary(), as_json, render.reindex_text)


@main.command()
@click.option("--to", "to", required=True, metavar="URL|FOLDER",
              help="The destination: a database URL (postgresql+psycopg://USER:PASSWORD@HOST/DB keeps the vectors "
                   "there too, with pgvector) or a folder for an embedded gallery. It must be empty.")
@click.option("--to-vectors", metavar="URL", default=None,
              help="Keep the destination's vectors in Milvus: milvus://HOST:PORT or a Milvus Lite file PATH.db.")
@click.option("--to-home", type=click.Path(file_okay=False), default=None,
              help="The destination's folder when --to is a database URL (default: the SQLite file's folder, "
                   "or this gallery's folder).")
@click.option("--sample", type=click.IntRange(0), default=200, show_default=True,
              help="Stored faces whose answers are compared between the two galleries afterwards.")
@click.option("--without-people", is_flag=True,
              help="Copy a gallery that holds a scanned photo library (`facesearch scan`) without it; migrate "
                   "does not copy that library yet, and refuses otherwise.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def migrate(ctx, to, to_vectors, to_home, sample, without_people, as_json, quiet):
    """Copy this gallery to another backend (and back): identities, photos, faces, vectors and API keys.

    Then checks that both hold the same people and give the same answers on a sample of stored faces;
    exits 1 if they do not. Example: facesearch --home ~/celebs migrate --to postgresql+psycopg://me@db/celebs
    """
    from facesearch.gallery import Gallery
    from facesearch.gallery.transfer import destination_settings

    source = open_local_gallery(ctx)
    source.check_copyable(without_people=without_people)  # before the destination is created
    opts = ctx.find_root().params
    settings = destination_settings(to, source_home=source.home, home=to_home)
    dest = Gallery(**settings, vectors=to_vectors, analysis=source.analysis, wait=not opts["no_wait"],
                   on_wait=lambda message: click.echo(message, err=True))
    ctx.call_on_close(dest.close)
    with progress_bar("copying", quiet) as (on_total, update):
        report = source.copy_to(dest, sample=sample, progress=update, on_total=on_total, without_people=without_people)
    render.emit(report.as_dict(), as_json, render.migrate_text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json):
    """Show which model weights are in use, where, and their hash."""
    from facesearch.models.analysis import model_inventory

    render.emit(model_inventory(), as_json, render.models_text)

"""Commands on a scanned photo library: ``scan``, and the ``people`` group (list, show, name, not,
split, photos, undo, history, recluster) over :class:`facesearch.gallery.people.People`.

With ``--server URL`` they run on a server's gallery (:class:`~facesearch.server.client.RemoteGallery`:
``scan`` uploads the photos, the others call ``/api/v1/people``), printing what they print locally.
"""
from __future__ import annotations

import click

from facesearch.cli import render
from facesearch.cli.root import exit_on_errors, main, open_gallery, progress_bar


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-r", "--recursive", is_flag=True, help="Look for photos in sub-folders too.")
@click.option("--recluster", is_flag=True,
              help="Cluster every unknown face again from scratch afterwards, instead of only the new ones.")
@click.option("--min-face-size", type=click.IntRange(12), default=20, show_default=True,
              help="Smallest face looked for, in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def scan(ctx, paths, recursive, recluster, min_face_size, as_json, quiet):
    """Scan a photo library for people: every face of every photo in PATHS (photos or folders).

    Faces of enrolled people are identified; the others are grouped into candidate people that
    `facesearch people list` shows and `facesearch people name` enrolls. A photo scanned before
    (same bytes) is skipped at no cost.
    """
    gallery = open_gallery(ctx, remote=True, min_face_size=min_face_size)
    with progress_bar("scanning", quiet) as (on_total, update):
        report = gallery.scan(list(paths), recursive=recursive, recluster=recluster, progress=update,
                              on_total=on_total)
    data = report.as_dict()
    render.emit(data, as_json, render.scan_text)
    exit_on_errors(ctx, data["errors"])


@main.group()
def people():
    """Candidate people found by `facesearch scan`: list, name, correct, undo."""


@people.command(name="list")
@click.option("--sheet", type=click.Path(dir_okay=False), default=None,
              help="Also write a contact sheet PNG: one row of face thumbnails per candidate person.")
@click.option("--sample", type=click.IntRange(1, 32), default=8, show_default=True,
              help="Faces shown per candidate person (ids, and thumbnails on the sheet).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_people(ctx, sheet, sample, as_json):
    """The candidate people, largest first, with their face and photo counts."""
    gallery = open_gallery(ctx, remote=True)
    data = gallery.people.list(sample=sample)
    if sheet:
        data["sheet"] = gallery.people.sheet(sheet, per_row=sample)["sheet"]
    render.emit(data, as_json, render.people_text)


@people.command()
@click.argument("cluster", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show(ctx, cluster, as_json):
    """The faces of candidate person CLUSTER: face id, photo and box."""
    render.emit(open_gallery(ctx, remote=True).people.show(cluster), as_json, render.cluster_text)


@people.command()
@click.argument("cluster", type=int)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def name(ctx, cluster, name, as_json):
    """Enroll candidate person CLUSTER as NAME (merged into NAME if already enrolled)."""
    render.emit(open_gallery(ctx, remote=True).people.name(cluster, name), as_json, render.named_text)


@people.command(name="not")
@click.argument("face", type=int)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def not_(ctx, face, name, as_json):
    """Scanned face FACE is not NAME: never give it to NAME again."""
    render.emit(open_gallery(ctx, remote=True).people.reject(face, name), as_json, render.rejected_text)


@people.command()
@click.argument("cluster", type=int)
@click.argument("faces", type=int, nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def split(ctx, cluster, faces, as_json):
    """Move FACES out of candidate person CLUSTER into a new one; they stay apart from the rest."""
    render.emit(open_gallery(ctx, remote=True).people.split(cluster, faces), as_json, render.people_split_text)


@people.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def photos(ctx, name, as_json):
    """Every scanned photo in which NAME appears, with the box."""
    render.emit(open_gallery(ctx, remote=True).people.photos(name), as_json, render.person_photos_text)


@people.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def undo(ctx, as_json):
    """Undo the newest name, not or split not yet undone."""
    render.emit(open_gallery(ctx, remote=True).people.undo(), as_json, render.undone_text)


@people.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def history(ctx, as_json):
    """The actions taken on candidate people, newest first (what `undo` would revert)."""
    render.emit({"actions": open_gallery(ctx, remote=True).people.history()}, as_json, render.history_text)


@people.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def recluster(ctx, as_json):
    """Cluster every unknown face again from scratch (splits are honoured)."""
    render.emit(open_gallery(ctx, remote=True).people.recluster(), as_json, render.clusters_text)

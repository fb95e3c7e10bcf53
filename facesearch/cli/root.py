"""The root ``facesearch`` group and what every command shares: opening the gallery, turning
exceptions into one line, progress bars.

Command modules add themselves to :data:`main`; this module imports none of them.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Callable, Iterator

# TensorFlow's C++ start-up chatter would bury our one-line messages; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402

from facesearch.errors import FaceSearchError, OptionsError, one_line  # noqa: E402

log = logging.getLogger("facesearch")


class FaceSearchGroup(click.Group):
    """Turns every expected failure into one ``Error: ...`` line and exit status 1.

    facesearch's own errors already name the file or object; an ``OSError`` from writing a
    result (an annotated image, an export) names its file here, and a database error is
    raised by the gallery as a :class:`~facesearch.errors.GalleryError` with its URL masked.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OptionsError as exc:
            raise click.UsageError(one_line(exc)) from None
        except FaceSearchError as exc:
            raise click.ClickException(one_line(exc)) from None
        except OSError as exc:
            where = exc.filename if exc.filename is not None else "facesearch"
            raise click.ClickException(f"{where}: {exc.strerror or one_line(exc)}") from None
        except KeyboardInterrupt:
            # Whatever was committed stays; the gallery's next open repairs a stale index.
            click.echo("Interrupted; work committed so far is kept.", err=True)
            ctx.exit(130)


@click.group(cls=FaceSearchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facesearch")
@click.option("--home", type=click.Path(file_okay=False), envvar="FACESEARCH_HOME", default=None,
              help="Gallery folder holding index/ and db/ (default: $FACESEARCH_HOME or the current directory).")
@click.option("--db-url", default=None, metavar="URL",
              help="SQLAlchemy URL of the gallery database (default: sqlite under HOME/db/). A PostgreSQL "
                   "database (postgresql+psycopg://USER:PASSWORD@HOST/DB) keeps the vectors too, with pgvector.")
@click.option("--vectors", default=None, metavar="URL", envvar="FACESEARCH_VECTORS",
              help="Keep the vectors in Milvus instead: milvus://HOST:PORT, or a Milvus Lite file PATH.db "
                   "(default: $FACESEARCH_VECTORS, else FAISS files under HOME/index/, or pgvector).")
@click.option("--no-wait", is_flag=True,
              help="Fail at once, instead of waiting, when another process is writing the gallery.")
@click.option("--server", metavar="URL", envvar="FACESEARCH_SERVER", default=None,
              help="Run query, enroll, list, rename, remove, verify, scan and people on a running "
                   "`facesearch serve` at URL instead of loading models here (default: $FACESEARCH_SERVER).")
@click.option("--api-key", metavar="KEY", envvar="FACESEARCH_API_KEY", default=None,
              help="API key for --server (default: $FACESEARCH_API_KEY).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(home, db_url, vectors, no_wait, server, api_key, verbose):
    """Identify enrolled people in photos and video from their faces."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


#: ``--aligned`` choices: the framings of :data:`facesearch.models.crop_input.FRAMINGS`, spelt out
#: here so that ``--help`` imports no model code (a test keeps the two equal).
ALIGNED_CHOICES = ["facenet", "arcface", "box"]
ALIGNED_HELP = ("Every photo is one aligned face crop: skip detection and embed the whole photo. facenet: box "
                "plus margin (160x160 FaceNet crops, `facesearch crop` output); arcface: 112x112 five-point "
                "template crops; box: the detector's box alone (tight crops). Crops are recognised without it "
                "too; see docs/benchmarks.md 'Face crops as input'.")


def open_gallery(ctx: click.Context, *, remote: bool = False, min_face_size: int | None = None,
                 aligned: str | None = None, flip: bool | None = None):
    """The gallery a command works on, closed with the command: the local
    :class:`~facesearch.gallery.Gallery` that ``--home`` / ``--db-url`` name, or, with ``--server URL``,
    a :class:`~facesearch.server.client.RemoteGallery` with the same methods (for commands that pass
    ``remote=True``; the others refuse ``--server`` in one line). ``min_face_size`` sets enrollment's
    smallest face in pixels; ``aligned`` reads every photo as one aligned face crop (local only);
    ``flip`` sets how a new gallery embeds (``None``: the default, or as the gallery was made)."""
    opts = ctx.find_root().params
    if opts.get("server") and (aligned or flip is not None):
        option = "--aligned" if aligned else "--no-flip"
        raise click.UsageError(f"{option} works on a local gallery only; drop --server")
    if opts.get("server"):
        if not remote:
            raise click.UsageError(f"`{ctx.command_path}` works on a local gallery only; "
                                   "drop --server (or unset FACESEARCH_SERVER)")
        from facesearch.server.client import RemoteGallery  # standard library only: no model, no numpy

        return RemoteGallery(opts["server"], api_key=opts.get("api_key"), min_face_size=min_face_size)
    return open_local_gallery(ctx, min_face_size=min_face_size, aligned=aligned, flip=flip)


def open_local_gallery(ctx: click.Context, *, min_face_size: int | None = None, aligned: str | None = None,
                       flip: bool | None = None):
    """The local :class:`~facesearch.gallery.Gallery` that ``--home`` / ``--db-url`` name, whatever
    ``--server`` says (for ``serve`` and benchmarks), closed with the command."""
    from facesearch.gallery import Gallery  # here, not at the top: `--help` must not pay for it

    kwargs = {}
    if min_face_size is not None or aligned or flip is not None:
        from facesearch.models.analysis import FaceAnalysis
        from facesearch.models.detect import Detector

        kwargs["analysis"] = FaceAnalysis(Detector(min_face_size=min_face_size or 20), aligned=aligned, flip=flip)
    opts = ctx.find_root().params
    gallery = Gallery(opts["home"], db_url=opts["db_url"], vectors=opts.get("vectors"), wait=not opts["no_wait"],
                      on_wait=lambda message: click.echo(message, err=True), **kwargs)
    ctx.call_on_close(gallery.close)
    return gallery


def exit_on_errors(ctx: click.Context, errors: list[dict]) -> None:
    """One ``Error: PATH: REASON`` line on stderr per photo that could not be used; exit 1 if any."""
    for e in errors:
        click.echo(f"Error: {e['path']}: {e['error']}", err=True)
    if errors:
        ctx.exit(1)


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, pipes), so errors stay one line.
    return tqdm(total=total, desc=desc, unit="photo", disable=True if quiet else None, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


@contextlib.contextmanager
def progress_bar(desc: str, quiet: bool = False) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """``(on_total, update)`` callbacks for a library call that learns its total once it starts:
    the bar (a count and a rate) opens with that total, not at all for 0, and is closed however
    the call ends. Has the shape of :data:`facesearch.progress.ProgressFactory`."""
    bar = None

    def on_total(n: int) -> None:
        nonlocal bar
        bar = _bar(n, desc, quiet or n == 0)

    def update(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        yield on_total, update
    finally:
        if bar is not None:
            bar.close()


def quiet_progress(quiet: bool):
    """A progress factory for library calls that report several phases, each with its own bar."""
    return lambda desc: progress_bar(desc, quiet)

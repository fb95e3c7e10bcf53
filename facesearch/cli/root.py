"""The root ``facesearch`` group and what every command shares: opening the gallery, one-line
errors, JSON or text output, progress bars.

Command modules add themselves to :data:`main`; this module imports none of them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys

# TensorFlow's C++ start-up chatter would bury our one-line messages; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402

from facesearch.errors import FaceSearchError  # noqa: E402

log = logging.getLogger("facesearch")


class _Group(click.Group):
    """Turns facesearch's own exceptions into one clean line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FaceSearchError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            # Whatever was committed stays; the gallery's next open repairs a stale index.
            click.echo("Interrupted; work committed so far is kept.", err=True)
            ctx.exit(130)


def _emit(data, as_json: bool, human) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=None, ensure_ascii=False))
    else:
        human(data)


def _fail_on_errors(ctx: click.Context, errors: list[dict]) -> None:
    """One ``Error: PATH: REASON`` line on stderr per photo that could not be read; exit 1 if any."""
    for e in errors:
        click.echo(f"Error: {e['path']}: {e['error']}", err=True)
    if errors:
        ctx.exit(1)


def _gallery(ctx: click.Context, **kwargs):
    from facesearch.gallery import Gallery

    opts = ctx.find_root().params
    return Gallery(opts["home"], db_url=opts["db_url"], **kwargs)


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, pipes), so errors stay one line.
    return tqdm(total=total, desc=desc, unit="photo", disable=True if quiet else None, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


@contextlib.contextmanager
def _lazy_progress(desc: str, quiet: bool = False):
    """``(on_total, update)`` callbacks for a library call that learns its total once it starts:
    the bar opens with that total (not at all for 0) and is closed however the call ends."""
    bar = None

    def on_total(n: int) -> None:
        nonlocal bar
        bar = _progress(n, desc, quiet or n == 0)

    try:
        yield on_total, lambda n: bar.update(n)
    finally:
        if bar is not None:
            bar.close()


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



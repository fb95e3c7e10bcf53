"""``facesearch serve`` and ``facesearch keys``: the HTTP server over the gallery, and its API keys."""
from __future__ import annotations

import click

from facesearch.cli import render
from facesearch.cli.root import main, open_gallery, open_local_gallery
from facesearch.errors import FaceSearchError


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs an API key first (`facesearch keys create`).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Threads that detect and embed faces concurrently (1 suits two cores: batches stay large).")
@click.option("--max-batch", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Photos arriving together embedded in one batch at most (1: no batching).")
@click.option("--max-upload-mb", type=click.IntRange(1, 1024), default=20, show_default=True,
              help="Largest photo accepted, MiB.")
@click.option("--max-megapixels", type=click.FloatRange(0.01, 1000), default=40.0, show_default=True,
              help="Largest photo accepted, width x height in millions, checked before decoding.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True, help="uvicorn's log level (info logs each request).")
@click.pass_context
def serve(ctx, host, port, workers, max_batch, max_upload_mb, max_megapixels, log_level):
    """Serve the gallery over HTTP: the API at /api/v1 (docs at /docs) and the web page at /.

    The models load once, at start-up; /api/v1/health/ready says when. Ctrl-C or SIGTERM stops
    it after the requests in progress.
    """
    try:
        from facesearch.server import serving
        from facesearch.server.state import ServerSettings
        from facesearch.server.uploads import MiB, UploadLimits
    except ImportError as exc:
        raise FaceSearchError(f"the server needs its extra: pip install 'facesearch[server]' ({exc})") from None

    gallery = open_local_gallery(ctx)
    limits = UploadLimits(max_upload_bytes=max_upload_mb * MiB,
                          max_request_bytes=max(64 * MiB, 2 * max_upload_mb * MiB + MiB),
                          max_pixels=int(max_megapixels * 1e6))
    settings = ServerSettings(host=host, limits=limits, workers=workers, max_batch=max_batch)

    def announce(url: str) -> None:
        click.echo(f"Serving {gallery.home} at {url}/ (API docs at {url}/docs); Ctrl-C stops.", err=True)

    serving.serve(gallery, settings, port, on_ready=announce, log_level=log_level)


@main.group()
def keys():
    """API keys for `facesearch serve` (kept, hashed, in the gallery)."""


@keys.command(name="create")
@click.option("--role", type=click.Choice(["read", "write"]), required=True,
              help="read: identify, verify, list; write: also enroll, rename, remove.")
@click.option("--name", default="", help="A label to recognise the key by in `keys list`.")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its details as JSON.")
@click.pass_context
def keys_create(ctx, role, name, as_json):
    """Create an API key and print it, once: only its hash is stored."""
    render.emit(open_gallery(ctx).create_key(role, name), as_json, render.key_created_text)


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def keys_list(ctx, as_json):
    """List API keys (never the keys themselves): id, role, dates, name."""
    render.emit(open_gallery(ctx).api_keys(), as_json, render.keys_text)


@keys.command(name="revoke")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print the revoked key's details as JSON.")
@click.pass_context
def keys_revoke(ctx, key_id, as_json):
    """Revoke the key KEY_ID (its id from `keys list`, or the whole key); a running server refuses it at once."""
    render.emit(open_gallery(ctx).revoke_key(key_id), as_json, render.key_revoked_text)

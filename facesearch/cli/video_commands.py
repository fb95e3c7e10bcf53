"""``facesearch live``: identify people in a camera, a stream or a video file as it plays."""
from __future__ import annotations

import click

from facesearch.cli import render
from facesearch.cli.root import main, open_gallery


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
              help="Cosine similarity under which a face is unknown (default: the gallery's calibrated one).")
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
    from facesearch import video as live_mod

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
            click.echo(render.live_summary_text(event), err=True)
        render.emit(event, as_json, render.live_event_text)

    live_mod.run(open_gallery(ctx), source, output=output, display=not no_display, on_event=on_event,
                 matcher=matcher, threshold=threshold, every=every, detect_side=detect_side,
                 tracking=not no_tracking, analyse_every=analyse_every)

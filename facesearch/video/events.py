"""The events a live run reports, as JSON-ready dicts.

``appeared`` (a new track, with its first match), ``identified`` (a track's identity settled,
or a settled identity changed), ``left`` (a track missed ``max_missed`` analysed frames in a
row, or the source ended) and, last, one ``summary`` of the run. ``time`` is in seconds: the
video timestamp (frame / fps) for files, seconds since the start for cameras and streams.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

from facesearch.video.tracker import Track

Event = dict
EventSink = Callable[[Event], None]

#: The kinds of event a track goes through, in order (``identified`` may come again).
TRACK_EVENTS = ("appeared", "identified", "left")


def _round(value: float | None, digits: int = 4) -> float | None:
    # JSON has no NaN: a similarity that does not exist is null.
    return None if value is None or math.isnan(value) else round(float(value), digits)


def track_event(kind: str, track: Track, frame: int, seconds: float) -> Event:
    """``{"event", "time", "frame", "track", "identity", "similarity"}`` for one track, at
    analysed frame number ``frame`` taken at ``seconds``; ``left`` adds ``last_frame``, the
    frame the face was last seen on."""
    if kind not in TRACK_EVENTS:
        raise ValueError(f"unknown track event {kind!r}; one of {', '.join(TRACK_EVENTS)}")
    event = {"event": kind, "time": round(seconds, 3), "frame": frame, "track": track.id,
             "identity": track.identity, "similarity": _round(track.similarity)}
    if kind == "left":
        event["last_frame"] = track.last_frame
    return event


def summary_event(source: str, *, frames: int, analysed: int, dropped: int, tracks: int, embedded: int,
                  identities: Iterable[str], seconds: float, stopped: str, error: str | None = None) -> Event:
    """The last event of a run.

    Args:
        source: the source's name (``camera 0``, a path, a URL).
        frames: frames read, drawn and written; ``analysed``: frames analysed.
        dropped: live sources: frames not analysed because analysis was busy.
        tracks: tracks created; ``embedded``: face embeddings computed.
        identities: settled names seen (listed sorted).
        seconds: wall time of the loop; the rates are per second of it (0 when it is 0).
        stopped: ``end``, ``quit``, ``interrupted`` or ``error`` (then ``error`` says what).
    """
    span = max(seconds, 1e-9)
    summary = {"event": "summary", "source": source, "frames": frames, "analysed": analysed, "dropped": dropped,
               "tracks": tracks, "embedded": embedded, "identities": sorted(identities),
               "seconds": round(seconds, 3),
               "analysed_fps": round(analysed / span, 2) if seconds else 0.0,
               "displayed_fps": round(frames / span, 2) if seconds else 0.0,
               "stopped": stopped}
    if error:
        summary["error"] = error
    return summary

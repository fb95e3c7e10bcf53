"""Live identification in cameras, streams and video files: sources, analysis, tracking, overlay, events.

``from facesearch import video; video.run(gallery, video.Source.camera(0))``. The names below
are imported on first use, so importing this package (or :mod:`.tracker` alone) loads no model.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "run": "facesearch.video.session",
    "Source": "facesearch.video.sources",
    "open_source": "facesearch.video.sources",
    "LiveError": "facesearch.errors",
    "Analyser": "facesearch.video.analyser",
    "DEFAULT_EVERY": "facesearch.video.analyser",
    "DEFAULT_DETECT_SIDE": "facesearch.video.analyser",
    "DEFAULT_MAX_MISSED": "facesearch.video.analyser",
    "TrackView": "facesearch.video.overlay",
    "check_output": "facesearch.video.output",
    "Tracker": "facesearch.video.tracker",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facesearch.video' has no attribute {name!r}")

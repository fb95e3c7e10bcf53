"""facesearch: identify enrolled people in photos and video from their faces.

The names below are imported on first use, so ``import facesearch`` (and the CLI's start-up)
stays fast and loads no model.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Gallery": "facesearch.gallery",
    "EnrollReport": "facesearch.gallery",
    "QueryResult": "facesearch.gallery",
    "FaceAnalysis": "facesearch.models.analysis",
    "Face": "facesearch.models.analysis",
    "Detector": "facesearch.models.detect",
    "Embedder": "facesearch.models.embed",
    "KNNMatcher": "facesearch.search.match",
    "CentroidMatcher": "facesearch.search.match",
    "load_image": "facesearch.imaging.decode",
    "FaceSearchError": "facesearch.errors",
    "ImageError": "facesearch.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facesearch' has no attribute {name!r}")

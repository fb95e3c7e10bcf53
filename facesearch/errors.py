"""Exceptions raised by facesearch.

Every message is one line that names the file (when there is one) and the reason, so the
CLI can print it as is.
"""
from __future__ import annotations

import os


def one_line(text: object) -> str:
    """``str(text)`` squeezed onto one line, for embedding another library's message in ours."""
    return " ".join(str(text).split())


class FaceSearchError(Exception):
    """Base class for every error facesearch raises on purpose."""


class ImageError(FaceSearchError):
    """A photo could not be used: unreadable, empty, truncated, too small or too large."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        where = self.path if self.path is not None else "<image>"
        super().__init__(f"{where}: {reason}")


class WeightsError(FaceSearchError):
    """The FaceNet weights could not be found, downloaded, converted or verified."""


class GalleryError(FaceSearchError):
    """The gallery cannot do what was asked (unknown identity, model mismatch, ...)."""


class NotFoundError(GalleryError):
    """The gallery holds no identity, face or API key by that name or id."""


class OptionsError(FaceSearchError):
    """The options of a call contradict each other or leave it nothing to do (exit status 2, like
    click's own usage errors)."""


class DataError(FaceSearchError):
    """A dataset or benchmark input (LFW, a folder of people, a pairs file) is missing or unusable."""


class LiveError(FaceSearchError):
    """A camera, stream, video or output file cannot be used, or a video broke off."""

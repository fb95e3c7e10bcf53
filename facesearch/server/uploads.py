"""Photos arriving over HTTP: capped in bytes before they are read whole and in pixels before they
are decoded, recognised by their content (never by name or declared type), decoded once.

A refused photo raises :class:`UploadRejected` (status 413 or 415) or
:class:`~facesearch.errors.ImageError` (422), each naming the file in one line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facesearch.errors import FaceSearchError, ImageError
from facesearch.imaging.decode import load_image, sniff_format

MiB = 1 << 20


def size_text(n: int) -> str:
    """``"20 MiB"``, ``"200 kB"``: a byte count for messages."""
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n / 1000:.0f} kB"


@dataclass(frozen=True)
class UploadLimits:
    """What one request may send.

    Attributes:
        max_upload_bytes: bytes of one photo.
        max_request_bytes: bytes of a whole request body (all its photos and fields).
        max_pixels: width x height of one photo, checked from its header before decoding.
        max_files: photos in one request.
    """

    max_upload_bytes: int = 20 * MiB
    max_request_bytes: int = 64 * MiB
    max_pixels: int = 40_000_000
    max_files: int = 32

    def as_dict(self) -> dict:
        return {"max_upload_bytes": self.max_upload_bytes, "max_request_bytes": self.max_request_bytes,
                "max_pixels": self.max_pixels, "max_files": self.max_files}


class UploadRejected(FaceSearchError):
    """A request or one of its photos was refused before decoding; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str, *, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.path = path
        self.reason = reason


def _name(upload: UploadFile, index: int) -> str:
    return upload.filename or f"photo {index + 1}"


async def read_photo(upload: UploadFile, limits: UploadLimits, index: int = 0) -> tuple[str, bytes]:
    """``(file name, bytes)`` of an uploaded photo after the byte cap and the content sniff."""
    name = _name(upload, index)
    data = await upload.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        reason = f"larger than the {size_text(limits.max_upload_bytes)} limit"
        raise UploadRejected(413, f"{name}: {reason}", path=name, reason=reason)
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    if sniff_format(data) is None:
        reason = "not a JPEG, PNG, WebP, BMP or TIFF image"
        raise UploadRejected(415, f"{name}: {reason}", path=name, reason=reason)
    return name, data


def decode_photo(name: str, data: bytes, limits: UploadLimits) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a sniffed photo; :class:`ImageError` naming it if it cannot be used."""
    try:
        return load_image(data, max_pixels=limits.max_pixels)
    except ImageError as exc:
        raise ImageError(name, exc.reason) from None


async def read_photos(uploads: list[UploadFile], limits: UploadLimits) -> list[tuple[str, bytes]]:
    """Every uploaded photo of a request, capped and sniffed; at least one, at most ``max_files``."""
    if not uploads:
        raise UploadRejected(422, "no photo uploaded")
    if len(uploads) > limits.max_files:
        raise UploadRejected(413, f"{len(uploads)} photos in one request; at most {limits.max_files}")
    return [await read_photo(u, limits, i) for i, u in enumerate(uploads)]


class _TooLarge(Exception):
    pass


#: Key in the ASGI scope that :class:`BodyLimit` sets when a body grew past the limit.
BODY_TOO_LARGE = "facesearch.body_too_large"


def too_large_message(max_bytes: int) -> str:
    return f"request body larger than the {size_text(max_bytes)} limit"


#: Largest refused body still read (and dropped) before the 413 is sent; a larger one is cut off.
DRAIN_BYTES = 1 << 30


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 and one JSON line, whether
    ``Content-Length`` announces it or a chunked body grows past it while it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            # Read and drop the body first (up to DRAIN_BYTES), so that a client that sends it all
            # before reading (most do) gets the 413 rather than a broken connection.
            if int(declared) <= DRAIN_BYTES:
                await _drain(receive)
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI turns errors while parsing a body into a 400; the app's error
                    # handler finds this mark and answers 413 instead.
                    scope[BODY_TOO_LARGE] = self.max_bytes
                    raise _TooLarge()
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": too_large_message(self.max_bytes)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

"""A gallery on a running server: what ``facesearch --server URL`` uses instead of loading models.

:class:`RemoteGallery` has the :class:`~facesearch.gallery.Gallery` methods the CLI's gallery
commands call (``query``, ``enroll``, ``scan``, ``identities``, ``rename``, ``remove``, ``verify``)
and, as ``.people`` (:class:`RemotePeople`), the :class:`~facesearch.gallery.people.People` methods
the ``people`` commands call, returning the same shapes, so the commands print exactly what they
print locally.
Standard library only: a query through a server must start in well under a second.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from facesearch.errors import FaceSearchError, GalleryError, ImageError, NotFoundError, one_line
from facesearch.imaging.photo_files import collect_photos, library_photos

#: Photos per enrollment or scan request at most (the server may allow fewer, see ``/api/v1/info``).
ENROLL_CHUNK = 16
#: The keys of an enrollment report that a batch's answer adds to.
ENROLL_KEYS = ("enrolled", "duplicates", "no_face", "multiple_faces", "errors")
#: The keys of a scan report (``ScanReport.as_dict()``) that a batch's answer adds to.
SCAN_KEYS = ("scanned", "already_scanned", "no_face", "identified", "unknown", "errors")
#: Seconds to wait for an answer; a first request may wait for the server's models to load.
TIMEOUT = 300.0


class RemoteResult:
    """An answer kept as the JSON dict the server sent (``as_dict()`` gives it back)."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def as_dict(self) -> dict:
        return self.data


class RemoteQueryResult(RemoteResult):
    def labelled_boxes(self) -> list[tuple[tuple[float, float, float, float], str | None, float]]:
        """``(box, identity or None, similarity)`` per face, for :mod:`facesearch.imaging.annotate`."""
        return [(tuple(f["box"]), f["identity"], f["similarity"]) for f in self.data["faces"]]


class _TooLarge(Exception):
    """The server refused a request body as too large (no single photo named)."""


def _read_photo(path: str | os.PathLike) -> bytes:
    """The bytes of a photo file, or the :class:`ImageError` a local gallery would raise for it."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ImageError(name, "is a directory, not an image file")
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise ImageError(name, "file does not exist") from None
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except OSError as exc:
        raise ImageError(name, f"cannot read file: {one_line(exc.strerror or exc)}") from None
    if not data:
        raise ImageError(name, "file is empty (0 bytes)")
    return data


def _multipart(files: Sequence[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """``(body, content type)`` of a multipart/form-data body of ``(field, file name, bytes)`` parts."""
    boundary = f"facesearch-{secrets.token_hex(12)}"
    parts = []
    for field, filename, data in files:
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class RemoteGallery:
    """The gallery served at ``url`` (``http://host:port``).

    Args:
        url: the server's base URL.
        api_key: sent as ``Authorization: Bearer KEY`` when given.
        min_face_size: enrollment's smallest face, in pixels (``None``: the server's default).
        timeout: seconds to wait for each answer.
    """

    def __init__(self, url: str, *, api_key: str | None = None, min_face_size: int | None = None,
                 timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise FaceSearchError(f"{url}: the server URL must start with http:// or https://")
        self.api_key = api_key
        self.min_face_size = min_face_size
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"RemoteGallery({self.url!r})"

    def close(self) -> None:
        """Nothing to close (one connection per request); here so the CLI treats both galleries alike."""

    # -- HTTP -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None, body: bytes | None = None,
                 content_type: str | None = None):
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = f"{self.url}/api/v1{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._error(exc) from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FaceSearchError(f"{self.url}: no facesearch server answers there ({one_line(reason)})") from None
        except (ValueError, http.client.HTTPException) as exc:  # a proxy's page, a cut-off answer
            raise FaceSearchError(f"{self.url}: not a facesearch server's answer ({one_line(exc)})") from None

    def _error(self, exc: urllib.error.HTTPError) -> Exception:
        try:
            payload = json.loads(exc.read() or b"{}")
        except ValueError:
            payload = {}
        message = payload.get("error") if isinstance(payload, dict) else None
        if not message:
            return FaceSearchError(f"{self.url}: the server answered {exc.code} {exc.reason}")
        if payload.get("path") and payload.get("reason"):
            return ImageError(payload["path"], payload["reason"])
        if exc.code == 413:
            return _TooLarge(message)
        if exc.code == 404:
            return NotFoundError(message)
        if exc.code == 409:
            return GalleryError(message)
        if exc.code in (401, 403):
            return FaceSearchError(f"{self.url}: {message}")
        return FaceSearchError(message)

    def _post_photos(self, path: str, photos: Sequence[tuple[str, bytes]], field: str = "photo",
                     params: dict | None = None):
        body, content_type = _multipart([(field, name, data) for name, data in photos])
        return self._request("POST", path, params=params, body=body, content_type=content_type)

    # -- the Gallery methods the CLI uses -----------------------------------------------------

    def info(self) -> dict:
        """The server's ``/api/v1/info``: version, counts, limits."""
        return self._request("GET", "/info")

    def identities(self) -> list[dict]:
        return self._request("GET", "/identities")

    def query(self, photo: str | os.PathLike, *, matcher: str = "knn", threshold: float | None = None,
              top_k: int = 5, k: int = 5) -> RemoteQueryResult:
        """Identify every face in one photo file.

        Raises:
            ImageError: the photo cannot be read here or used there.
            GalleryError: the gallery is empty.
        """
        name = os.fspath(photo)
        data = self._post_photos("/identify", [(name, _read_photo(name))],
                                 params={"matcher": matcher, "threshold": threshold, "top_k": top_k, "k": k})
        return RemoteQueryResult(data["results"][0])

    def verify(self, photo_a: str | os.PathLike, photo_b: str | os.PathLike, *,
               threshold: float | None = None) -> RemoteResult:
        a, b = os.fspath(photo_a), os.fspath(photo_b)
        body, content_type = _multipart([("first", a, _read_photo(a)), ("second", b, _read_photo(b))])
        return RemoteResult(self._request("POST", "/verify", params={"threshold": threshold}, body=body,
                                          content_type=content_type))

    def rename(self, old: str, new: str) -> None:
        body = json.dumps({"name": new}).encode()
        self._request("PATCH", f"/identities/{_quote(old)}", body=body, content_type="application/json")

    def remove(self, name: str) -> int:
        return int(self._request("DELETE", f"/identities/{_quote(name)}")["faces"])

    def enroll(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, name: str | None = None, *,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> RemoteResult:
        """Enroll photo files as :meth:`Gallery.enroll <facesearch.gallery.Gallery.enroll>` does: the same
        arguments, the same report. Photos go up in small batches; one that cannot be used is
        reported and the others carry on."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if name is not None and not name.strip():
            raise GalleryError("--name is empty")
        items, errors = collect_photos(paths, name.strip() if name else None)
        report = {"enrolled": [], "duplicates": [], "no_face": [], "multiple_faces": [],
                  "errors": [{"path": p, "error": e} for p, e in errors]}
        if on_total:
            on_total(len(items))
        if items:
            limits = self.info()["limits"]
            for identity, batch in _batches(items, limits):
                self._upload(f"/identities/{_quote(identity)}/photos", [(p, _read_photo) for p in batch],
                             {"min_face_size": self.min_face_size}, report, ENROLL_KEYS)
                if progress:
                    progress(len(batch))
        report["identities"] = sorted({e["identity"] for e in report["enrolled"]})
        return RemoteResult(report)

    def scan(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, *, recursive: bool = False,
             recluster: bool = False, progress: Callable[[int], None] | None = None,
             on_total: Callable[[int], None] | None = None) -> RemoteResult:
        """Scan photo files as :meth:`Gallery.scan <facesearch.gallery.Gallery.scan>` does: the same
        arguments, the same report (``ScanReport.as_dict()``, paths as found here).

        The files are found as a local scan finds them; a file with the bytes of one before it is
        reported as already scanned without being sent. The others go up in batches within the
        server's limits; a photo that cannot be read here or used there is reported in one line and
        the rest of its batch goes again. The new unknown faces are clustered once, after the last
        batch, as a local scan clusters them (``recluster``: every unknown face again).
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        photos, errors = library_photos(paths, recursive)
        report: dict = {"scanned": [], "already_scanned": [], "no_face": [], "identified": [], "unknown": 0,
                        "errors": [{"path": p, "error": e} for p, e in errors]}
        if on_total:
            on_total(len(photos))
        seen: set[str] = set()

        def unseen(path: str) -> bytes | None:
            data = _read_photo(path)
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                report["already_scanned"].append(path)
                return None
            seen.add(digest)
            return data

        if photos:
            limits = self.info()["limits"]
            params = {"min_face_size": self.min_face_size, "cluster": "false"}
            for _, batch in _batches([(p, "") for p in photos], limits):
                self._upload("/people/scan", [(p, unseen) for p in batch], params, report, SCAN_KEYS)
                if progress:
                    progress(len(batch))
        report["clusters"] = self.people.recluster() if recluster else self._request("POST", "/people/cluster")
        return RemoteResult(report)

    @property
    def people(self) -> "RemotePeople":
        """The server's candidate people, as :attr:`Gallery.people <facesearch.gallery.Gallery.people>`."""
        return RemotePeople(self)

    def _upload(self, path: str, photos: Sequence[tuple[str, Callable[[str], bytes | None]]], params: dict,
                report: dict, keys: Sequence[str]) -> None:
        """POST one batch of photos to ``path``, each ``(file, read)``: ``read`` gives its bytes, or
        ``None`` to leave it out. A photo that cannot be read, or that the server refuses by name,
        goes to ``report["errors"]`` and the rest goes again (the server stores nothing of a refused
        request); a request too large is halved. Each answer's ``keys`` are added to ``report``."""
        loaded = []
        for name, read in photos:
            try:
                data = read(name)
            except ImageError as exc:
                report["errors"].append({"path": exc.path, "error": exc.reason})
                continue
            if data is not None:
                loaded.append((name, data))
        self._post_batch(path, loaded, params, report, keys)

    def _post_batch(self, path: str, photos: list[tuple[str, bytes]], params: dict, report: dict,
                    keys: Sequence[str]) -> None:
        while photos:
            try:
                answer = self._post_photos(path, photos, params=params)
            except ImageError as exc:  # that photo is reported, the others go again
                remaining = [p for p in photos if p[0] != exc.path]
                failed = [exc.path] if len(remaining) < len(photos) else [p for p, _ in photos]
                report["errors"] += [{"path": p, "error": exc.reason} for p in failed]
                photos = remaining if len(remaining) < len(photos) else []
                continue
            except _TooLarge as exc:
                if len(photos) == 1:
                    report["errors"].append({"path": photos[0][0], "error": str(exc)})
                    return
                half = len(photos) // 2
                self._post_batch(path, photos[:half], params, report, keys)
                self._post_batch(path, photos[half:], params, report, keys)
                return
            for key in keys:
                report[key] += answer[key]
            return


class RemotePeople:
    """The candidate people of a server's gallery: the :class:`~facesearch.gallery.people.People`
    methods the ``people`` commands call, each one request to ``/api/v1/people``, with the same
    arguments and the same answers (the errors as the same exception types)."""

    def __init__(self, gallery: RemoteGallery) -> None:
        self.gallery = gallery

    def _call(self, method: str, path: str, body: dict | None = None, **params):
        data = None if body is None else json.dumps(body).encode()
        return self.gallery._request(method, f"/people{path}", params=params, body=data,
                                     content_type="application/json" if body is not None else None)

    def list(self, sample: int = 8) -> dict:
        return self._call("GET", "", sample=sample)

    def sheet(self, out: str | os.PathLike, *, per_row: int = 8) -> dict:
        """Refused: a contact sheet is drawn from the gallery's photos, on the gallery's machine."""
        raise FaceSearchError(f"{self.gallery.url}: --sheet works on a local gallery only (a face's thumbnail "
                              "is at /api/v1/people/faces/ID/thumbnail)")

    def show(self, cluster: int) -> dict:
        return self._call("GET", f"/clusters/{int(cluster)}")

    def name(self, cluster: int, name: str) -> dict:
        if not name.strip():
            raise GalleryError("the name is empty")
        return self._call("POST", f"/clusters/{int(cluster)}/name", {"name": name})

    def reject(self, face_id: int, name: str) -> dict:
        return self._call("POST", f"/faces/{int(face_id)}/not", {"name": name})

    def split(self, cluster: int, faces: Sequence[int]) -> dict:
        wanted = sorted({int(f) for f in faces})
        if not wanted:
            raise GalleryError("name at least one face to split off")
        return self._call("POST", f"/clusters/{int(cluster)}/split", {"faces": wanted})

    def photos(self, name: str) -> dict:
        return self._call("GET", f"/named/{_quote(name)}/photos")

    def undo(self) -> dict:
        return self._call("POST", "/undo")

    def history(self) -> list[dict]:
        return self._call("GET", "/history")

    def recluster(self) -> dict:
        return self._call("POST", "/recluster")


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _batches(items: Sequence[tuple[Path, str]], limits: dict) -> list[tuple[str, list[str]]]:
    """``(identity, photo paths)`` batches within the server's limits on files and request bytes."""
    per_request = max(1, min(ENROLL_CHUNK, int(limits["max_files"])))
    budget = int(limits["max_request_bytes"]) - (64 << 10)
    out: list[tuple[str, list[str]]] = []
    for path, identity in items:
        size = path.stat().st_size if path.is_file() else 0
        if out and out[-1][0] == identity and len(out[-1][1]) < per_request and out[-1][2] + size <= budget:
            out[-1][1].append(str(path))
            out[-1][2] += size
        else:
            out.append([identity, [str(path)], size])
    return [(identity, paths) for identity, paths, _ in out]

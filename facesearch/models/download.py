"""Download a file and keep it only if its sha256 is the one expected.

facesearch uses this for keras-facenet's published Keras weights (see
:mod:`facesearch.models.weights`), but nothing here knows about models: a URL, a destination
and a sha256 go in; the file, or a one-line WeightsError, comes out. pooch streams the body into
a temporary file beside the destination, checks its hash and only then renames it into place,
so a failed or mismatched download leaves nothing behind and readers never see half a file.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator


from facesearch.lazy_import import lazy_module
from facesearch.errors import WeightsError
from facesearch.permissions import SHARED_FILE

pooch = lazy_module("pooch")
requests = lazy_module("requests")

#: Seconds allowed to connect and for each read, so an unreachable host fails fast; a slow but
#: live download may take as long as it needs in all.
DOWNLOAD_TIMEOUT_S = 15.0

_CHUNK = 1 << 20  # bytes per read


def offline() -> bool:
    """True when env ``FACESEARCH_OFFLINE`` is 1, true, yes or on: nothing may be downloaded."""
    return os.environ.get("FACESEARCH_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    # pooch's logger has its own stderr handler and reports every download at INFO; the
    # caller logs the outcome itself, in facesearch's one-line style.
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _reason(exc: requests.RequestException, timeout: float) -> str:
    """What went wrong in a few words: requests' own messages repeat the whole URL and pool."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    cause: BaseException | None = exc
    while cause is not None:  # the operating system's words, e.g. "Connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return " ".join(str(exc).split()) or type(exc).__name__


def download_verified(url: str, dest: Path, sha256: str, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``, if the bytes have sha256 ``sha256``.

    url: http(s) address. dest: the file to write (its folder is created). sha256: lowercase hex.
    timeout: seconds for the connection and for each read.
    Raises WeightsError when the server cannot be reached or answers with an error, when the
    bytes do not match ``sha256`` (nothing is written then) or when ``dest`` cannot be written.
    """
    downloader = pooch.HTTPDownloader(timeout=timeout, chunk_size=_CHUNK, progressbar=False)
    try:
        with _quiet_pooch():
            pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=dest.name, path=dest.parent,
                           downloader=downloader)
        # pooch's temporary file is private (0600); weights are not personal, others sharing
        # the cache may read them.
        os.chmod(dest, SHARED_FILE)
    except requests.RequestException as exc:  # an OSError too, so it must be caught first
        raise WeightsError(f"{url}: download failed: {_reason(exc, timeout)}") from exc
    except ValueError as exc:  # pooch's hash check; it has already deleted the temporary file
        raise WeightsError(f"{url}: downloaded file does not match expected sha256 {sha256}") from exc
    except OSError as exc:
        raise WeightsError(f"{dest.parent}: cannot write the download: {exc.strerror or exc}") from exc
    return dest

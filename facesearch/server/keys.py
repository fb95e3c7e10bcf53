"""Who may call the API: API keys from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

The rule:

- a server listening only on loopback needs no key while the gallery has none;
- once a key exists, or when the server listens on any other address (``facesearch serve``
  refuses to start there without one), every API call needs a key;
- a ``read`` key may identify, verify, list and look; changes need a ``write`` key.

The web page and the health checks need no key (they hold no gallery data).
"""
from __future__ import annotations

import ipaddress
import logging

from fastapi import HTTPException, Request, WebSocket

from facesearch.gallery import Gallery

log = logging.getLogger(__name__)

ROLE_RANK = {"read": 0, "write": 1}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for 0.0.0.0, names, ..."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def presented_key(headers) -> str | None:
    """The key a request carries, if any."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


class KeyCheck:
    """Decides, per request, whether its key (or lack of one) allows a role.

    Args:
        gallery: where the keys live.
        loopback: the server listens on loopback only.
    """

    def __init__(self, gallery: Gallery, *, loopback: bool) -> None:
        self.gallery = gallery
        self.loopback = loopback

    def keys_required(self) -> bool:
        return not self.loopback or self.gallery.has_keys()

    def check(self, key: str | None, need: str) -> str | None:
        """The key's role when it may do ``need`` (``None`` when no key is needed and none was given).

        Raises:
            HTTPException: 401 without a valid key where one is needed, 403 for a read key on a change.
        """
        if key is None:
            if not self.keys_required():
                return None
            raise HTTPException(401, "an API key is needed: send it as 'Authorization: Bearer KEY' "
                                     "(create one with `facesearch keys create`)")
        role = self.gallery.check_key(key)
        if role is None:
            raise HTTPException(401, "the API key is unknown or revoked")
        if ROLE_RANK[role] < ROLE_RANK[need]:
            raise HTTPException(403, f"a {need} key is needed; this one is a {role} key")
        return role


def _checker(request: Request | WebSocket) -> KeyCheck:
    return request.app.state.facesearch.keys


def read_access(request: Request) -> str | None:
    """FastAPI dependency: the request may read the gallery. Runs in a worker thread (database)."""
    return _checker(request).check(presented_key(request.headers), "read")


def write_access(request: Request) -> str | None:
    """FastAPI dependency: the request may change the gallery."""
    return _checker(request).check(presented_key(request.headers), "write")

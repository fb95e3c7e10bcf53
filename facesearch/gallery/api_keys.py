"""API keys: how they look, and the salted hash that is all a gallery keeps of them.

A key reads ``fsk_<id>_<secret>``: ``id`` (12 hex digits) is public and finds the stored row,
``secret`` holds 256 random bits. The gallery stores ``scrypt(secret, salt)`` with a random
16-byte salt per key, never the secret, so a copy of the database does not let anyone call
the API. The secrets are random rather than chosen by people, so the hash only has to make a
stolen table useless, not resist guessing; scrypt's cost (about 50 ms) is paid once per key
per process, since :class:`KeyMemo` remembers which presented keys already matched.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

PREFIX = "fsk"
ROLES = ("read", "write")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``key`` is shown to its owner once; the rest is stored."""

    key: str
    key_id: str
    salt: str
    key_hash: str


def hash_secret(secret: str, salt: str) -> str:
    """Hex scrypt digest of ``secret`` with the hex ``salt``."""
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def new_key() -> NewKey:
    """A new random key with its id, salt and hash."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    return NewKey(f"{PREFIX}_{key_id}_{secret}", key_id, salt, hash_secret(secret, salt))


def split_key(key: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else ``None``."""
    prefix, _, rest = key.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def key_id_of(text: str) -> str:
    """The key id in ``text``: a whole key, or the id itself as ``keys list`` shows it."""
    parts = split_key(text)
    return parts[0] if parts else text.strip()


class KeyMemo:
    """Presented keys (by their sha256) already found to match a stored hash, so that scrypt runs
    once per key per process. Thread-safe. A key's row is still read on every check, so a
    revocation by another process counts at once."""

    def __init__(self) -> None:
        self._matched: dict[str, str] = {}
        self._lock = threading.Lock()

    def matches(self, secret: str, salt: str, key_hash: str) -> bool:
        digest = hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()
        with self._lock:
            if self._matched.get(digest) == key_hash:
                return True
        if not hmac.compare_digest(hash_secret(secret, salt), key_hash):
            return False
        with self._lock:
            self._matched[digest] = key_hash
        return True

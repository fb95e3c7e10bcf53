"""Identity classifiers on pixels: face crops (InceptionV3, MobileNetV2 + InceptionV3) and whole photos (boxnet).

All take ``(N, S, S, 3)`` RGB images with values 0..255 (uint8 or float) at ``input_size`` S;
the model rescales them itself, so a saved model needs no outside preprocessing: to [-1, 1]
for the ImageNet networks, and with FaceNet's own prewhitening ``(x - 127.5) / 128``
(:func:`facesearch.models.embed.prewhiten`) for the FaceNet base.

* :class:`InceptionClassifier` (``inception``): InceptionV3 without its top -> Flatten ->
  Dense 1024 ReLU -> Dropout 0.2 -> Dense 128 ELU -> Dropout 0.1 -> softmax.
* :class:`EnsembleClassifier` (``ensemble``): MobileNetV2 and InceptionV3 feature extractors
  (global average pooled) concatenated -> the same dense head; trained with augmentation.
* :class:`BoxNetClassifier` (``boxnet``): InceptionV3 on whole photos with two outputs: the
  face box ``(x, y, w, h)`` as fractions of the photo (sigmoid, mean squared error against the
  detector's box) and the identity softmax.

Training: Adam with an exponentially decaying step (x0.9 per epoch), up to ``epochs`` (100)
epochs, EarlyStopping with patience 5 on validation accuracy (best weights restored). With
pretrained base weights the base is frozen and only the head learns; ``fine_tune=N`` then
unfreezes the top N layers of the base (BatchNormalization stays frozen) for
``fine_tune_epochs`` more epochs at a 100x smaller step. With ``base_weights="none"`` the
whole network trains from random weights: only when asked for explicitly.

Base weights (``base_weights``): ``"imagenet"`` uses Keras's own download into ``~/.keras/models``;
when the file is not there and cannot be downloaded, :class:`~.base.ClassifierError` says so in
one line, names ``facenet`` as the offline choice and the file to pass as ``PATH`` (a file, or
a folder holding Keras's file names), never falling back to random weights.

``"facenet"`` needs no download: InceptionV3 is replaced by FaceNet 20180402-114759's
Inception-ResNet-v1 (trained on VGGFace2 faces; the weights facesearch embeds with, from
:mod:`facesearch.models.weights`) up to its last pooling layer (``AvgPool``, 1792 features per
face), with the same heads on top. Its input side defaults to FaceNet's 160 pixels, and crops
from ``facesearch crop --size 160`` are then exactly what the embedder reads. ``--fine-tune N``
counts that network's top N *blocks* (Block8_6, Block8_5, ..., Block8_1, Mixed_7a, Block17_10,
...) rather than layers. The ensemble keeps its MobileNetV2 branch, which has no face-trained
weights and so trains from random weights beside the frozen FaceNet branch.

While every base is frozen and nothing augments the images, the bases' outputs cannot change
between epochs: they are computed once per image and the head trains on them (minutes
instead of hours on a CPU), then its weights go into the full model.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesearch.classify.augment import augmentation
from facesearch.classify.base import Classifier, ClassifierError, stratified_holdout
from facesearch.models.embed import FACE_SIZE
from facesearch.models.runtime import import_keras
from facesearch.models.weights import build_model, keras_custom_objects, resolve_weights

log = logging.getLogger(__name__)

#: Where Keras downloads ImageNet weights from.
WEIGHTS_HOST = "storage.googleapis.com"
_MOBILENET_SIZES = (96, 128, 160, 192, 224)
#: Runs of at most this many training steps run eagerly: tracing InceptionV3's training step
#: into a graph took 40-50 s on a 2-core CPU, more than such a run spends computing eagerly
#: (a one-epoch run on 66 crops of 75 px: 55 s traced, 20 s eager). Results are the same.
EAGER_STEPS = 12


@dataclass(frozen=True)
class BaseNet:
    """A Keras application used as a feature extractor."""

    name: str          # keras.applications attribute
    min_size: int      # smallest input side it accepts

    def weights_file(self, size: int) -> str:
        """The file name Keras downloads for the top-less ImageNet weights at ``size``."""
        if self.name == "InceptionV3":
            return "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
        rows = size if size in _MOBILENET_SIZES else 224  # Keras itself falls back to 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


BASES = {"inception": BaseNet("InceptionV3", 75), "mobilenet": BaseNet("MobileNetV2", 32),
         "facenet": BaseNet("InceptionResNetV1", 75)}
#: FaceNet's layer the base ends at: global average pooling of its last block, (N, 1792).
FACENET_CUT = "AvgPool"
#: Layer-name prefixes of FaceNet's blocks, the units ``fine_tune`` counts for that base.
_FACENET_BLOCK = re.compile(r"^(Block\d+_\d+|Mixed_\d+[a-z]|Conv2d_\d+[a-z]_\d+x\d+|MaxPool_\d+[a-z]_\d+x\d+)")


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds (DNS included)."""
    result = [False]

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result[0] = True
        except OSError:
            pass

    # A thread bounds the DNS lookup too, which create_connection's timeout does not cover.
    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout + 1.0)
    return result[0]


def _keras_homes() -> list[Path]:
    """Where Keras keeps downloads: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when home is read-only).

    Worked out here rather than asked of Keras so that a missing file is reported without
    importing TensorFlow (seconds).
    """
    if os.environ.get("KERAS_HOME"):
        return [Path(os.environ["KERAS_HOME"])]
    return [Path.home() / ".keras", Path("/tmp/.keras")]


def resolve_base_weights(spec: str, base: str, size: int) -> str | None:
    """What to pass as ``weights=`` to the Keras application ``base`` for ``--base-weights spec``.

    Returns ``None`` (random weights), ``"imagenet"`` (cached or downloadable) or a file path.
    Raises :class:`ClassifierError` (one line) when ImageNet weights are neither cached nor
    downloadable, or ``spec`` is a path without the file.
    """
    net = BASES[base]
    if spec in (None, "none"):
        return None
    if spec == "facenet":
        # Only the Inception branch has a face-trained counterpart; MobileNetV2 starts random.
        return str(resolve_weights(download=False).path) if base == "facenet" else None
    if spec == "imagenet":
        cached = [d / "models" / net.weights_file(size) for d in _keras_homes()]
        if any(p.is_file() for p in cached) or _reachable(WEIGHTS_HOST):
            return "imagenet"
        raise ClassifierError(
            f"ImageNet weights for {net.name} are not in {cached[0].parent} and cannot be downloaded "
            f"({WEIGHTS_HOST} is unreachable); use --base-weights facenet (FaceNet's face-trained network, "
            f"offline), supply the file with --base-weights PATH ({net.weights_file(size)}, or a folder "
            f"holding it), or train from scratch with --base-weights none")
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / net.weights_file(size)
    if not path.is_file():
        raise ClassifierError(f"{path}: no such weights file for {net.name} (expected {net.weights_file(size)})")
    return str(path)


def _facenet_base(weights: str, name: str):
    """FaceNet's Inception-ResNet-v1 from its input to :data:`FACENET_CUT`: (N, S, S, 3) prewhitened -> (N, 1792)."""
    keras = import_keras()
    full = build_model(resolve_weights(weights))
    return keras.Model(full.input, full.get_layer(FACENET_CUT).output, name=name)


def _application(base: str, weights: str | None, size: int, name: str):
    """The top-less Keras application, with Keras's download failures as one-line errors."""
    keras = import_keras()
    net = BASES[base]
    if size < net.min_size:
        raise ClassifierError(f"--input-size {size} is too small for {net.name} (at least {net.min_size})")
    if base == "facenet":
        return _facenet_base(weights, name)
    build = getattr(keras.applications, net.name)
    try:
        return build(include_top=False, weights=weights, input_shape=(size, size, 3), name=name)
    except Exception as exc:  # Keras raises a bare Exception when its download fails
        if weights == "imagenet":
            raise ClassifierError(f"ImageNet weights for {net.name} could not be downloaded "
                                  f"({str(exc).splitlines()[0]}); supply the file with --base-weights PATH "
                                  f"({net.weights_file(size)})") from None
        if weights is not None:
            raise ClassifierError(f"{weights}: cannot load {net.name} weights ({str(exc).splitlines()[0]})") from None
        raise


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W, 3)`` images as float32 ``(N, size, size, 3)``, resized only when needed."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ClassifierError(f"expected images of shape (N, H, W, 3), got {images.shape}")
    if images.shape[1:3] == (size, size):
        return images.astype(np.float32)
    return np.stack([cv2.resize(np.asarray(im, np.float32), (size, size), interpolation=cv2.INTER_AREA)
                     for im in images]) if len(images) else np.zeros((0, size, size, 3), np.float32)


class ImageClassifier(Classifier):
    """Shared machinery of the pixel classifiers (see the module docstring).

    Args:
        input_size: side S of the square input in pixels (InceptionV3 needs at least 75);
            ``None``: 160 (FaceNet's own) with ``base_weights="facenet"``, else 224.
        base_weights: ``"imagenet"``, ``"facenet"``, ``"none"`` or a path (see :func:`resolve_base_weights`).
        epochs: most epochs of the first phase.
        batch_size: images per step.
        learning_rate: Adam's initial step; multiplied by ``decay_rate`` every epoch.
        decay_rate: exponential decay factor per epoch.
        patience: epochs without a better validation accuracy before stopping.
        fine_tune: top layers of the base (blocks of the FaceNet base) unfrozen for a second
            phase (0: none; pretrained bases only).
        fine_tune_epochs: most epochs of that phase.
        augment: train through :func:`.augment.augmentation` layers (inactive at inference).
        validation_split: fraction held out (stratified) for early stopping when no
            validation data is given.
        seed: seeds Python, NumPy and TensorFlow.
    """

    input_kind = "crop"
    #: Which :data:`BASES` the network uses with ImageNet, PATH or no weights (see :attr:`bases`).
    base_nets: tuple[str, ...] = ("inception",)

    def __init__(self, input_size: int | None = None, base_weights: str = "imagenet", epochs: int = 100, batch_size: int = 32,
                 learning_rate: float = 1e-3, decay_rate: float = 0.9, patience: int = 5, fine_tune: int = 0,
                 fine_tune_epochs: int = 10, augment: bool = False, validation_split: float = 0.15,
                 seed: int = 0) -> None:
        self.input_size = input_size if input_size is not None else (
            FACE_SIZE if base_weights == "facenet" else 224)
        self.base_weights = base_weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.patience = patience
        self.fine_tune = fine_tune
        self.fine_tune_epochs = fine_tune_epochs
        self.augment = augment
        self.validation_split = validation_split
        self.seed = seed

    @property
    def bases(self) -> tuple[str, ...]:
        """The :data:`BASES` this network uses: FaceNet stands in for InceptionV3 with ``facenet`` weights."""
        if self.base_weights == "facenet":
            return tuple("facenet" if b == "inception" else b for b in self.base_nets)
        return self.base_nets

    def check_weights(self) -> dict[str, str | None]:
        """Resolve every base's weights now (fails fast, before any data is read)."""
        return {b: resolve_base_weights(self.base_weights, b, self.input_size) for b in self.bases}

    def base_pretrained(self, base: str) -> bool:
        """Whether ``base`` starts from trained weights (then frozen, BatchNormalization in inference mode)."""
        if self.base_weights in (None, "none"):
            return False
        return not (self.base_weights == "facenet" and base != "facenet")

    @property
    def pretrained(self) -> bool:
        """Whether any base starts from trained weights."""
        return any(self.base_pretrained(b) for b in self.bases)

    @classmethod
    def _custom_objects(cls) -> dict:
        # A saved FaceNet base holds keras-facenet's residual-scaling Lambdas.
        return keras_custom_objects()

    def _prepare(self, X):
        return _resize(X, self.input_size)

    # -- network ---------------------------------------------------------------------------

    def _base_features(self, base: str, inputs, unit, weights: str | None, pool: str | None):
        """Features through the named base network of ``inputs`` (0..255) or ``unit`` (the same in [-1, 1])."""
        keras = import_keras()
        net = _application(base, weights, self.input_size, f"base_{base}")
        if base == "facenet":
            # FaceNet's fixed prewhitening (embed.prewhiten), not the ImageNet networks' [-1, 1].
            x = keras.layers.Rescaling(1 / 128, offset=-127.5 / 128, name="prewhiten")(inputs)
        else:
            x = unit
        # Frozen pretrained bases run BatchNormalization in inference mode, also later when
        # fine-tuned, as Keras's transfer-learning guide does; random ones train fully.
        pretrained = self.base_pretrained(base)
        net.trainable = not pretrained
        y = net(x, training=False) if pretrained else net(x)
        if pool == "avg" and len(y.shape) == 4:  # FaceNet's base ends pooled already
            y = keras.layers.GlobalAveragePooling2D(name=f"pool_{base}")(y)
        return y

    def _head(self, x, n_classes: int, name: str = "identity"):
        """Flatten -> Dense 1024 ReLU -> Dropout 0.2 -> Dense 128 ELU -> Dropout 0.1 -> softmax."""
        layers = import_keras().layers
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(1024, activation="relu", name="dense_1024")(x)
        x = layers.Dropout(0.2, name="dropout_1024")(x)
        x = layers.Dense(128, activation="elu", name="dense_128")(x)
        x = layers.Dropout(0.1, name="dropout_128")(x)
        return layers.Dense(n_classes, activation="softmax", name=name)(x)

    def _inputs(self):
        """The model's input (0..255) and the same rescaled to [-1, 1]."""
        keras = import_keras()
        inputs = keras.Input(shape=(self.input_size, self.input_size, 3), name="image")
        return inputs, keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)

    def _with_augmentation(self, model):
        """``model`` behind the augmentation layers when ``augment``, for training only.

        The saved model is the plain network: augmentation does nothing at inference anyway,
        and leaving it out keeps the saved file loadable (Keras 3.15 cannot read back a
        RandomShear layer's own config).
        """
        if not self.augment:
            return model
        keras = import_keras()
        inputs = keras.Input(shape=model.input_shape[1:], name="image")
        return keras.Model(inputs, model(augmentation(self.seed)(inputs)), name=f"{model.name}_augmented")

    def _build(self, input_shape, n_classes):
        """The full network: :meth:`_features` of the input, then :meth:`_top` on them."""
        keras = import_keras()
        inputs, unit = self._inputs()
        features = self._features(inputs, unit, self.check_weights())
        return keras.Model(inputs, self._top(features, n_classes), name=f"facesearch_{self.kind}")

    def _features(self, inputs, unit, weights: dict):
        """What the bases make of the input: the tensor the head's ``flatten`` layer reads."""
        base = self.bases[0]
        return self._base_features(base, inputs, unit, weights[base], pool=None)

    def _top(self, features, n_classes: int):
        """The trainable head from the features to the outputs (layer names as in the saved model)."""
        return self._head(features, n_classes)

    # -- training --------------------------------------------------------------------------

    def _loss(self):
        return "categorical_crossentropy"

    def _monitor(self, has_val: bool) -> str:
        return "val_accuracy" if has_val else "accuracy"

    def _compile(self, model, learning_rate: float, steps_per_epoch: int, epochs: int) -> None:
        keras = import_keras()
        schedule = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=max(steps_per_epoch, 1), decay_rate=self.decay_rate)
        # No XLA: on CPU it spends longer compiling InceptionV3 than a small run trains.
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=self._loss(), metrics=self._metrics(),
                      jit_compile=False, run_eagerly=epochs * steps_per_epoch <= EAGER_STEPS)

    def _metrics(self):
        return ["accuracy"]

    def _fit_phase(self, model, X, Y, val, epochs: int, learning_rate: float) -> dict:
        keras = import_keras()
        steps = int(np.ceil(len(X) / self.batch_size))
        model = self._with_augmentation(model)
        self._compile(model, learning_rate, steps, epochs)
        stop = keras.callbacks.EarlyStopping(monitor=self._monitor(val is not None), mode="max",
                                             patience=self.patience, restore_best_weights=True)
        hist = model.fit(X, Y, validation_data=val, epochs=epochs, batch_size=self.batch_size, shuffle=True,
                         callbacks=[stop], verbose=0)
        return {k: [float(v) for v in vs] for k, vs in hist.history.items()}

    def _train(self, model, X, Y, val):
        if self._features_fixed():
            history = self._fit_head_on_features(model, X, Y, val)
        else:
            history = self._fit_phase(model, X, Y, val, self.epochs, self.learning_rate)
        if self.fine_tune and self.pretrained:
            self._unfreeze(model, self.fine_tune)
            more = self._fit_phase(model, X, Y, val, self.fine_tune_epochs, self.learning_rate / 100)
            history = {k: history.get(k, []) + more.get(k, []) for k in set(history) | set(more)}
        history.pop("learning_rate", None)
        return history

    def _features_fixed(self) -> bool:
        """Whether the head's input is the same every epoch: all bases frozen, no augmentation."""
        return not self.augment and all(self.base_pretrained(b) for b in self.bases)

    def _fit_head_on_features(self, model, X, Y, val) -> dict:
        """Train only the head, on the frozen bases' features computed once, and copy it into ``model``."""
        keras = import_keras()
        extractor = keras.Model(model.input, model.get_layer("flatten").input, name="frozen_bases")
        log.info("%s: computing the frozen bases' features of %d images once", self.kind,
                 len(X) + (0 if val is None else len(val[0])))
        F = _batched(extractor, X, self.batch_size)
        fval = None if val is None else (_batched(extractor, val[0], self.batch_size), val[1])
        inputs = keras.Input(shape=F.shape[1:], name="features")
        head = keras.Model(inputs, self._top(inputs, Y.shape[1]), name=f"{self.kind}_head")
        history = self._fit_phase(head, F, Y, fval, self.epochs, self.learning_rate)
        for layer in head.layers:
            if layer.weights:
                model.get_layer(layer.name).set_weights(layer.get_weights())
        return history

    def _unfreeze(self, model, top: int) -> None:
        """Make the top ``top`` layers (FaceNet: blocks) of every pretrained base trainable, BatchNormalization excepted."""
        keras = import_keras()
        for base in self.bases:
            if not self.base_pretrained(base):
                continue  # a randomly started base trains fully already
            net = model.get_layer(f"base_{base}")
            net.trainable = True
            chosen = _top_blocks(net.layers, top) if base == "facenet" else set(range(len(net.layers) - top, len(net.layers)))
            for i, layer in enumerate(net.layers):
                layer.trainable = i in chosen and not isinstance(layer, keras.layers.BatchNormalization)
        log.info("%s: fine-tuning the top %d %s of %s", self.kind, top,
                 "blocks" if "facenet" in self.bases else "layers", ", ".join(self.bases))


def _batched(model, X: np.ndarray, batch_size: int) -> np.ndarray:
    """``model`` applied to ``X`` in batches (inference mode), as one float32 array."""
    keras = import_keras()
    parts = [keras.ops.convert_to_numpy(model(X[i:i + batch_size], training=False)) for i in range(0, len(X), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def _top_blocks(layers, top: int) -> set[int]:
    """Indices of the layers of FaceNet's top ``top`` blocks; unnamed layers (Keras's own
    ``lambda_N``, ``add_N``) belong to the block of the named layer before them."""
    blocks, current = [], None
    for layer in layers:
        match = _FACENET_BLOCK.match(layer.name)
        if match:
            current = match.group(1)
        blocks.append(current)
    order = list(dict.fromkeys(b for b in blocks if b is not None))
    chosen = set(order[-top:]) if top > 0 else set()
    return {i for i, b in enumerate(blocks) if b in chosen}


class InceptionClassifier(ImageClassifier):
    """InceptionV3 on face crops; see the module docstring."""

    kind = "inception"


class EnsembleClassifier(ImageClassifier):
    """MobileNetV2 + InceptionV3 features concatenated, dense head, augmentation on by default."""

    kind = "ensemble"
    base_nets = ("mobilenet", "inception")

    def __init__(self, input_size: int | None = None, base_weights: str = "imagenet", epochs: int = 100, batch_size: int = 32,
                 learning_rate: float = 1e-3, decay_rate: float = 0.9, patience: int = 5, fine_tune: int = 0,
                 fine_tune_epochs: int = 10, augment: bool = True, validation_split: float = 0.15,
                 seed: int = 0) -> None:
        super().__init__(input_size, base_weights, epochs, batch_size, learning_rate, decay_rate, patience,
                         fine_tune, fine_tune_epochs, augment, validation_split, seed)

    def _features(self, inputs, unit, weights):
        feats = [self._base_features(b, inputs, unit, weights[b], pool="avg") for b in self.bases]
        return import_keras().layers.Concatenate(name="features")(feats)


class BoxNetClassifier(ImageClassifier):
    """InceptionV3 on whole photos: face box regression + identity softmax.

    ``fit(X, y, boxes=B)``: ``X`` (N, S, S, 3) photos resized to S x S, ``y`` names, ``B``
    float32 (N, 4) the face box ``(x, y, w, h)`` as fractions of the photo's width and height
    (a plain resize keeps those fractions). :meth:`predict_boxes` returns the same form.
    """

    kind = "boxnet"
    input_kind = "photo"

    def _top(self, features, n_classes):
        layers = import_keras().layers
        flat = layers.Flatten(name="flatten")(features)
        shared = layers.Dropout(0.2, name="dropout_shared")(layers.Dense(1024, activation="relu", name="dense_1024")(flat))
        box = layers.Dense(4, activation="sigmoid", name="box")(layers.Dense(128, activation="relu", name="box_128")(shared))
        ident = layers.Dense(128, activation="elu", name="dense_128")(shared)
        ident = layers.Dense(n_classes, activation="softmax", name="identity")(layers.Dropout(0.1, name="dropout_128")(ident))
        return {"box": box, "identity": ident}

    def _loss(self):
        return {"box": "mse", "identity": "categorical_crossentropy"}

    def _metrics(self):
        return {"box": ["mae"], "identity": ["accuracy"]}

    def _monitor(self, has_val: bool) -> str:
        return "val_identity_accuracy" if has_val else "identity_accuracy"

    def _probabilities(self, outputs):
        return outputs["identity"]

    def fit(self, X, y, *, boxes=None, validation_data=None, trained_on=None) -> "BoxNetClassifier":
        """As :meth:`Classifier.fit`, plus ``boxes`` (N, 4); ``validation_data`` is ``(X, y, boxes)``."""
        if boxes is None:
            raise ClassifierError("boxnet needs the face boxes of its training photos (boxes=...)")
        boxes = np.asarray(boxes, np.float32)
        if validation_data is None:
            split = stratified_holdout([str(v) for v in y], self.validation_split, self.seed)
            if split is not None:
                train, held = split
                validation_data = (np.asarray(X)[held], [y[i] for i in held], boxes[held])
                X, y, boxes = np.asarray(X)[train], [y[i] for i in train], boxes[train]
        if validation_data is not None:  # only identities it trains on can be validated
            vx, vy, vb = validation_data
            keep = [i for i, v in enumerate(vy) if v in set(map(str, y))]
            validation_data = (np.asarray(vx)[keep], [vy[i] for i in keep], np.asarray(vb, np.float32)[keep])
        self._boxes = boxes
        self._val_boxes = None if validation_data is None else validation_data[2]
        val = None if validation_data is None else validation_data[:2]
        try:
            return super().fit(X, y, validation_data=val, trained_on=trained_on) if val is not None else \
                self._fit_without_val(X, y, trained_on)
        finally:
            del self._boxes, self._val_boxes

    def _fit_without_val(self, X, y, trained_on):
        saved, self.validation_split = self.validation_split, 0.0  # the split was already tried above
        try:
            return super().fit(X, y, trained_on=trained_on)
        finally:
            self.validation_split = saved

    def _fit_phase(self, model, X, Y, val, epochs, learning_rate):
        targets = {"box": self._boxes, "identity": Y}
        if val is not None:
            val = (val[0], {"box": self._val_boxes, "identity": val[1]})
        return super()._fit_phase(model, X, targets, val, epochs, learning_rate)

    def predict_boxes(self, X: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Face box per photo, float32 (N, 4): ``(x, y, w, h)`` as fractions of width and height."""
        keras = import_keras()
        self._check_fitted()
        X = self._prepare(X)
        parts = [keras.ops.convert_to_numpy(self.model_(X[i:i + batch_size], training=False)["box"])
                 for i in range(0, len(X), batch_size)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 4), np.float32)


IMAGE_MODELS: dict[str, type[ImageClassifier]] = {
    "inception": InceptionClassifier, "ensemble": EnsembleClassifier, "boxnet": BoxNetClassifier}

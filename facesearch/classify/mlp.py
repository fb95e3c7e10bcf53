"""A small dense network on FaceNet embeddings, trained on a gallery's own faces.

Input: ``(N, 512)`` float32 L2-normalised FaceNet embeddings. Output: ``(N, C)`` softmax
probabilities over the enrolled identities. Architecture: scale by ``sqrt(512)`` (the
components of a unit 512-d vector have a standard deviation of about ``1/sqrt(512)``; scaled,
they are of order one, which suits Adam's default step), then ``hidden`` Dense ReLU layers each
followed by Dropout, then a softmax. Trained with Adam on categorical cross-entropy, with
EarlyStopping (best weights restored) and ReduceLROnPlateau on the validation loss when a
stratified validation split exists, else on the training loss.
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

from facesearch.classify.base import Classifier
from facesearch.models.runtime import import_keras

log = logging.getLogger(__name__)


class MLPClassifier(Classifier):
    """Dense softmax classifier over FaceNet embeddings.

    Args:
        hidden: widths of the hidden Dense ReLU layers.
        dropout: dropout rate after each hidden layer.
        learning_rate: Adam's initial step size.
        epochs: most epochs (early stopping usually ends sooner).
        batch_size: embeddings per step.
        patience: epochs without improvement before stopping; the learning rate halves after
            ``max(2, patience // 3)`` such epochs.
        validation_split: fraction held out (stratified) for early stopping, when possible.
        seed: seeds Python, NumPy and TensorFlow: same data and seed give the same model.
    """

    kind = "mlp"
    input_kind = "embedding"

    def __init__(self, hidden: Sequence[int] = (256,), dropout: float = 0.3, learning_rate: float = 1e-3,
                 epochs: int = 200, batch_size: int = 32, patience: int = 10, validation_split: float = 0.2,
                 seed: int = 0) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_split = validation_split
        self.seed = seed

    def _build(self, input_shape, n_classes):
        keras = import_keras()
        layers = keras.layers
        inputs = keras.Input(shape=input_shape, name="embedding")
        x = layers.Rescaling(math.sqrt(input_shape[-1]), name="unit_scale")(inputs)
        for i, width in enumerate(self.hidden):
            x = layers.Dense(int(width), activation="relu", name=f"dense_{i}")(x)
            x = layers.Dropout(self.dropout, name=f"dropout_{i}")(x)
        outputs = layers.Dense(n_classes, activation="softmax", name="identity")(x)
        model = keras.Model(inputs, outputs, name="facesearch_mlp")
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def _train(self, model, X, Y, val):
        keras = import_keras()
        monitor = "val_loss" if val is not None else "loss"
        callbacks = [
            keras.callbacks.EarlyStopping(monitor=monitor, patience=self.patience, min_delta=1e-3,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(2, self.patience // 3),
                                              min_lr=1e-5),
        ]
        hist = model.fit(X, Y, validation_data=val, epochs=self.epochs, batch_size=self.batch_size,
                         shuffle=True, callbacks=callbacks, verbose=0)
        history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
        log.info("mlp: %d epochs, final %s", len(history.get("loss", [])),
                 {k: round(v[-1], 4) for k, v in history.items()})
        return history

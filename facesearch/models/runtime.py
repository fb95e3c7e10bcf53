"""TensorFlow start-up, once per process and quietly.

TensorFlow's C++ core writes start-up lines straight to file descriptor 2 (CUDA probing on
machines without a GPU, and similar) before Python logging exists, and no environment
variable silences all of them. They would bury facesearch's one-line messages, so the import
and device discovery run with descriptor 2 pointed at /dev/null. Set ``FACESEARCH_TF_VERBOSE=1``
to see them.
"""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def import_tensorflow():
    """The ``tensorflow`` module, imported and its devices discovered with stderr silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("FACESEARCH_TF_VERBOSE") == "1":
        import tensorflow as tf

        return tf
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0) + 1.0  # first op: the remaining device-init lines come out here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    return tf


def import_keras():
    """The ``keras`` module, with TensorFlow imported quietly first (see :func:`import_tensorflow`)."""
    import_tensorflow()
    import keras

    return keras

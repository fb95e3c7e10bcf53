"""Matplotlib, imported once and drawing to files only.

Charts (ROC, DET, training history, confusion matrices) are written as PNG files; no window
is ever opened, so the non-interactive Agg backend is chosen before pyplot is first imported.
Importing matplotlib costs about half a second, which commands that draw nothing never pay.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def pyplot():
    """The ``matplotlib.pyplot`` module, on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

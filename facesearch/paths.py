"""Where facesearch keeps its files, outside any gallery.

- the cache (model weights, per-photo faces, extracted datasets): ``$FACESEARCH_CACHE``, else the
  platform's user cache folder (``~/.cache/facesearch`` on Linux, ``~/Library/Caches/facesearch``
  on macOS, ``%LOCALAPPDATA%\\facesearch\\Cache`` on Windows);
- the default gallery: ``$FACESEARCH_HOME``, else the current directory;
- the sample and benchmark data (LFW, 5celeb, fixtures): ``$FACESEARCH_DATA`` or an option, never
  a guess relative to the installed package.

Nothing here creates a folder; the code that writes into one does.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "facesearch"


def cache_dir() -> Path:
    """Root of facesearch's cache: ``$FACESEARCH_CACHE`` or the platform's user cache folder."""
    env = os.environ.get("FACESEARCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Where verified model weights are kept: ``cache_dir()/models``."""
    return cache_dir() / "models"


def faces_cache_dir() -> Path:
    """Where per-photo detection and embedding results are kept: ``cache_dir()/faces``."""
    return cache_dir() / "faces"


def default_home() -> Path:
    """The gallery folder used when none is given: ``$FACESEARCH_HOME`` or the current directory."""
    return Path(os.environ.get("FACESEARCH_HOME") or os.getcwd()).expanduser()


def data_dir() -> Path | None:
    """``$FACESEARCH_DATA`` (the folder holding ``lfw/``, ``5celeb/`` and ``fixtures/``), if set."""
    env = os.environ.get("FACESEARCH_DATA")
    return Path(env).expanduser() if env else None

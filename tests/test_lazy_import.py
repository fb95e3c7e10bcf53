"""facesearch.lazy_import: a module bound lazily is imported once, on first use, whole, from any thread."""
from __future__ import annotations

import sys
import threading

import pytest

from facesearch.lazy_import import lazy_module

# A module whose body takes a while: a thread that reads it during its execution would see it
# half-built (the standard library's LazyLoader before Python 3.12 let it).
SLOW_MODULE = """
import time
time.sleep(0.3)
VALUE = 42
def answer():
    return VALUE
"""


@pytest.fixture
def slow_module(tmp_path, monkeypatch):
    name = f"slow_module_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_nothing_runs_before_the_first_attribute(slow_module):
    module = lazy_module(slow_module)
    assert slow_module not in sys.modules
    assert module.answer() == 42
    assert slow_module in sys.modules and module.VALUE == 42


def test_threads_touching_it_first_together_all_see_the_whole_module(slow_module):
    module = lazy_module(slow_module)
    start, seen, errors = threading.Barrier(6), [], []

    def touch():
        start.wait()
        try:
            seen.append(module.answer())
        except Exception as exc:  # a half-built module raises AttributeError here
            errors.append(repr(exc))

    threads = [threading.Thread(target=touch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == [42] * 6


def test_an_imported_module_is_returned_as_it_is():
    import json

    assert lazy_module("json") is json


def test_a_missing_module_fails_at_once():
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        lazy_module("no_such_module_here")

"""A FIFO, socket or device named like a photo is refused at once, never opened: opening a FIFO
for reading would wait forever for a writer."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KNOWN, REPO

from facesearch.errors import ImageError
from facesearch.imaging.decode import image_sha256, load_image, read_image_info
from facesearch.imaging.photo_files import iter_image_files

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and Unix sockets")

#: Seconds a command may take before the test calls it hung (TensorFlow's import included).
TIMEOUT_S = 300


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging when a regression opens a FIFO in this process."""
    def hung(*_):
        raise TimeoutError(f"still running after {seconds} s: a special file was opened")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def specials(tmp_path, monkeypatch):
    """``{"FIFO": path, "socket": path}``: special files named like photos in ``tmp_path/obama``,
    beside two real photos."""
    folder = tmp_path / "people" / "obama"
    folder.mkdir(parents=True)
    for photo in sorted((KNOWN / "obama").iterdir()):
        (folder / photo.name).write_bytes(photo.read_bytes())
    os.mkfifo(folder / "fifo.jpg")
    # A relative name: socket paths are limited to about 100 bytes.
    monkeypatch.chdir(folder)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("sock.jpg")
    yield {"FIFO": folder / "fifo.jpg", "socket": folder / "sock.jpg"}
    sock.close()


def test_readers_refuse_special_files_without_opening_them(specials):
    devices = {"character device": Path(os.devnull)}
    with _deadline(20):
        for kind, path in {**specials, **devices}.items():
            for read in (load_image, image_sha256, read_image_info):
                with pytest.raises(ImageError) as info:
                    read(path)
                assert str(info.value) == f"{path}: not a regular file (a {kind})"


def test_folder_listing_keeps_them_for_the_report(specials):
    # Listed (nothing is opened to list a folder), so that enrollment names them among its errors.
    names = [p.name for p in iter_image_files(specials["FIFO"].parent)]
    assert names == ["fifo.jpg", "obama.jpg", "obama2.jpg", "sock.jpg"]


def test_enrollment_arguments_that_are_special_files(specials):
    from facesearch.gallery.facade import collect_photos

    fifo = specials["FIFO"]
    with _deadline(20):
        assert collect_photos([fifo], "obama") == ([(fifo, "obama")], [])  # refused when hashed
        assert collect_photos([fifo], None) == ([], [(str(fifo), "not a regular file (a FIFO)")])
        _, errors = collect_photos([fifo.parent.parent], None)
    assert errors == []


def _run(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "facesearch", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT_S)


def test_enroll_reports_special_files_and_enrolls_the_rest(specials, tmp_path):
    res = _run("--home", tmp_path / "g", "enroll", "-q", "--json", specials["FIFO"].parent.parent)
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    assert sorted(Path(e["path"]).name for e in report["enrolled"]) == ["obama.jpg", "obama2.jpg"]
    assert {Path(e["path"]).name: e["error"] for e in report["errors"]} == {
        "fifo.jpg": "not a regular file (a FIFO)", "sock.jpg": "not a regular file (a socket)"}
    assert res.stderr.strip().splitlines() == [f"Error: {specials['FIFO']}: not a regular file (a FIFO)",
                                               f"Error: {specials['socket']}: not a regular file (a socket)"]


def test_query_of_a_fifo_fails_in_one_line(specials, tmp_path):
    res = _run("--home", tmp_path / "g", "query", specials["FIFO"])
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"Error: {specials['FIFO']}: not a regular file (a FIFO)"]

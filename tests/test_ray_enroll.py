"""`facesearch enroll --ray`: decoding, detection and embedding on a real local Ray cluster (started
here with ``ray.init(num_cpus=2)``), storing in this process: the same gallery as a plain enroll."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import KNOWN

pytestmark = pytest.mark.slow  # starts a Ray cluster: a head, a raylet and worker processes


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def photos(tmp_path):
    """fixtures/known plus an unreadable photo and a duplicate of another person's photo."""
    folder = tmp_path / "photos"
    shutil.copytree(KNOWN, folder)
    (folder / "obama" / "broken.jpg").write_bytes(b"not a jpeg")
    shutil.copy(folder / "biden" / "biden.jpg", folder / "obama" / "dup.jpg")
    return folder


def _contents(gallery) -> tuple[list, list, np.ndarray]:
    faces = sorted(((f["identity"], f["photo"], f["box"], f["score"]) for f in gallery.faces()))
    names, vectors = gallery.embeddings()
    order = np.lexsort((np.arange(len(names)), np.asarray(names)))
    return gallery.identities(), faces, vectors[order]


def test_ray_enroll_makes_the_same_gallery_as_a_plain_one(ray_cluster, photos, tmp_path, monkeypatch):
    from facesearch.gallery import Gallery, facade

    # Small batches, so several are analysed at once on the two workers and must come back in order.
    monkeypatch.setattr(facade, "CHUNK", 3)
    # No face cache: the workers really decode, detect and embed.
    with Gallery(tmp_path / "plain", cache=False) as plain:
        expected = plain.enroll([photos]).as_dict()
        want = _contents(plain)
    steps = []
    with Gallery(tmp_path / "ray", cache=False) as distributed:
        got = distributed.enroll([photos], ray="", progress=steps.append).as_dict()
        have = _contents(distributed)
    assert got == expected
    assert len(got["enrolled"]) == 9 and got["errors"] and got["duplicates"]
    assert sum(steps) == 11 and len(steps) == 4  # every photo counted, batch by batch
    assert have[0] == want[0] and have[1] == want[1]
    np.testing.assert_allclose(have[2], want[2], atol=1e-5)


def test_enroll_ray_command_reports_bad_photos_and_stores_the_rest(ray_cluster, photos, tmp_path, cli):
    home = tmp_path / "g"
    result = cli("--home", home, "enroll", photos, "--ray", "--json")
    assert result.exit_code == 1  # the unreadable photo
    report = json.loads(result.stdout)
    assert len(report["enrolled"]) == 9
    assert [e["path"] for e in report["errors"]] == [str(photos / "obama" / "broken.jpg")]
    assert "broken.jpg" in result.stderr and "not an image" in result.stderr
    listed = json.loads(cli("--home", home, "list", "--json").stdout)
    assert sorted(i["name"] for i in listed) == ["alex_lacamoire", "biden", "kit_harington", "obama",
                                                                "rose_leslie"]


@pytest.mark.parametrize("address", ["127.0.0.1:9", "ray://127.0.0.1:9"])
def test_enroll_ray_unreachable_cluster_is_one_line_and_creates_nothing(tmp_path, address):
    import subprocess
    import sys

    home = tmp_path / "g"
    done = subprocess.run([sys.executable, "-m", "facesearch", "--home", str(home), "enroll", str(KNOWN),
                           "--ray", address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: Ray cluster {address}: unreachable (connection refused)"]
    assert not home.exists()

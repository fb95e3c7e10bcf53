"""Failures that reach the CLI are one line naming the file or object and the reason, exit 1."""
from __future__ import annotations

from conftest import QUERIES


def _one_error_line(result) -> str:
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("Error:")]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_an_annotated_photo_that_cannot_be_written_is_one_line(cli, known_gallery, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "out.jpg"  # its "folder" is a file
    line = _one_error_line(cli("--home", known_gallery.home, "query", QUERIES / "obama1.jpg", "--annotate", target))
    assert str(blocker) in line


def test_an_export_that_cannot_be_written_is_one_line(cli, known_gallery, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder of the export path should be")
    line = _one_error_line(cli("--home", known_gallery.home, "export", blocker / "export"))
    assert str(blocker) in line


def test_a_missing_dataset_folder_is_one_line(cli, tmp_path):
    result = cli("bench", "identify", "--lfw", tmp_path / "no-such-lfw.tgz")
    assert result.exit_code == 2 and "no-such-lfw.tgz" in result.output  # click checks the path exists
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_error_line(cli("bench", "lfw", "--lfw", empty, "--pairs", QUERIES / "obama1.jpg"))
    assert "obama1.jpg" in line

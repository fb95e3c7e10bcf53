"""The package's layout rules: every module imports on its own, file names are unique, the CLI starts light."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "facesearch"
#: Files that are not modules to import: ``__main__`` runs the CLI (covered by the ``-m`` test below).
_NOT_IMPORTED = {"__main__.py"}
#: Names every package may repeat.
_SHARED_NAMES = {"__init__.py", "__main__.py"}


def _in_packages(path: Path) -> bool:
    # Alembic's scripts (gallery/migrations/) sit in plain folders: Alembic loads them by path,
    # they are not modules of the package.
    return all((folder / "__init__.py").is_file() for folder in path.parents if PACKAGE in (folder, *folder.parents))


def _module_files() -> list[Path]:
    """Every module of the package, found by walking its folder (new modules are covered too)."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts and _in_packages(p))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = [_module_name(p) for p in _module_files() if p.name not in _NOT_IMPORTED]


def _python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """A fresh interpreter in the repository root with this process's environment."""
    return subprocess.run([sys.executable, *args], cwd=REPO, env=dict(os.environ), capture_output=True,
                          text=True, timeout=timeout)


def test_the_walk_finds_the_package():
    assert "facesearch" in MODULES and "facesearch.cli" in MODULES
    assert "facesearch.search.match" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module):
    proc = _python("-c", f"import {module}")
    assert proc.returncode == 0, f"`import {module}` in a fresh interpreter failed:\n{proc.stderr[-4000:]}"


def test_no_two_modules_share_a_file_name():
    names = Counter(p.name for p in _module_files() if p.name not in _SHARED_NAMES)
    shared = {name: sorted(str(p.relative_to(REPO)) for p in _module_files() if p.name == name)
              for name, n in names.items() if n > 1}
    assert not shared, f"modules sharing a file name: {shared}"


_HEAVY = ("tensorflow", "keras", "tf_keras")
_LIST_HEAVY = f"import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {_HEAVY!r}))"


def test_importing_the_cli_does_not_import_tensorflow():
    proc = _python("-c", f"import facesearch.cli; {_LIST_HEAVY}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == "[]", f"importing facesearch.cli imported: {proc.stdout.strip()}"


def test_help_does_not_import_tensorflow():
    # -X importtime names every module the real `python -m facesearch --help` imports, on stderr.
    proc = _python("-X", "importtime", "-m", "facesearch", "--help")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Usage:" in proc.stdout and "query" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "facesearch.cli" in imported  # the listing works
    heavy = sorted(m for m in imported if m.split(".")[0] in _HEAVY)
    assert not heavy, f"`python -m facesearch --help` imported {heavy[:10]}"


#: What a command that needs neither a model nor the index must not load: the runtimes, the
#: index library, OpenCV and scikit-learn (with SciPy and pandas behind it) cost seconds.
_MODEL_AND_INDEX = ("tensorflow", "keras", "onnxruntime", "openvino", "faiss", "cv2", "sklearn", "scipy", "pandas", "mtcnn")


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["rename", "nobody", "somebody"], ["remove", "nobody"],
                                  ["query", "/no/such/photo.jpg"]])
def test_commands_without_a_model_load_no_runtime_index_or_opencv(args, tmp_path):
    proc = _python("-X", "importtime", "-m", "facesearch", "--home", str(tmp_path / "g"), *args)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "facesearch.gallery.facade" in imported or args[0] == "query"
    heavy = sorted(m for m in imported if m.split(".")[0] in _MODEL_AND_INDEX)
    assert not heavy, f"`facesearch {' '.join(args)}` imported {heavy[:10]}"


#: What ``list`` does not even execute: numpy, Pillow and filelock are bound lazily
#: (``facesearch.lazy_import``) by the modules on its path; a module that ran is a plain module in
#: ``sys.modules``.
_LAZY_FOR_LIST = ("numpy", "PIL.Image", "filelock", "cv2", "faiss")
_RAN = ("import sys, types\nsys.argv = ['facesearch', '--home', {home!r}, 'list']\nfrom facesearch.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('RAN', sorted(m for m in {_LAZY_FOR_LIST!r} if type(sys.modules.get(m)) is types.ModuleType))")


def test_list_executes_neither_numpy_nor_pillow_nor_filelock(known_gallery):
    proc = _python("-c", _RAN.format(home=str(known_gallery.home)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "biden" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "RAN []", proc.stdout[-2000:]


def _runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (imports under ``if TYPE_CHECKING:`` are for type hints only)."""
    import ast

    tree = ast.parse(path.read_text())
    hints = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
             and getattr(block.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_search_and_models_do_not_import_the_gallery():
    # Data moves one way: the gallery calls search/ and models/, which never reach back into it.
    offenders = {str(p.relative_to(REPO)): sorted(m for m in _runtime_imports(p) if m.startswith("facesearch.gallery"))
                 for folder in ("search", "models") for p in (PACKAGE / folder).rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}, offenders


@pytest.mark.parametrize("package, module", [("ray", "facesearch/models/ray_analysis.py"),
                                             ("openvino", "facesearch/models/openvino_model.py"),
                                             ("onnxruntime", "facesearch/models/onnx_session.py")])
def test_each_engine_is_imported_by_one_module_only(package, module):
    users = sorted(str(p.relative_to(REPO)) for p in _module_files()
                   if any(m == package or m.startswith(package + ".") for m in _runtime_imports(p)))
    assert users == [module], users

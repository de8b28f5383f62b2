"""The install cell every chapter opens with: it installs camri_utils only where it is missing
(Colab), from this repository at the book's tag. Tested here with the source pointed at this
checkout (``git+file://``, the same VCS install as the cell's ``git+https://``) in a fresh
virtual environment without TensorFlow."""

import json
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

import camri_utils

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONDITION = 'import importlib.util; print(importlib.util.find_spec("camri_utils") is None)'
CELL = re.compile(
    r"""(?:#[^\n]*\n)*import importlib\.util\n\n"""
    r"""BOOK = "git\+https://github\.com/camri-book/camri-book@(?P<tag>v[0-9][^"]*)"\n"""
    r"""if importlib\.util\.find_spec\("camri_utils"\) is None:\n"""
    r"""    %pip install --quiet "camri-utils @ \{BOOK\}"\n?""")


def _first_code_cell(path):
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_every_chapter_opens_with_the_same_install_cell_pinned_to_this_version():
    assert NOTEBOOKS
    tags = {}
    for path in NOTEBOOKS:
        match = CELL.fullmatch(_first_code_cell(path))
        assert match, f"{path.name}: the first code cell is not the install cell"
        tags[path.name] = match["tag"]
    assert set(tags.values()) == {f"v{camri_utils.__version__}"}, tags


def _git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def test_install_cell_installs_every_module_from_a_checkout(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    commit = _git("rev-parse", "HEAD").strip()
    modules = sorted(p for p in _git("ls-tree", "-r", "--name-only", commit, "camri_utils").split()
                     if p.endswith(".py"))
    assert modules, "no module of camri_utils is committed"
    # The committed modules are the working tree's (a module left uncommitted would not reach Colab).
    assert modules == sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "camri_utils").rglob("*.py"))

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")

    def run(*args):  # from tmp_path, so that the checkout's camri_utils is not on sys.path
        return subprocess.run([python, *args], cwd=tmp_path, check=True, capture_output=True, text=True,
                              timeout=240).stdout.strip()

    assert run("-c", "import importlib.util; print(importlib.util.find_spec('tensorflow') is None)") == "True"
    assert run("-c", CONDITION) == "True"  # missing: the cell installs
    run("-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
        f"camri-utils @ git+file://localhost{ROOT.as_posix()}@{commit}")  # pip 23 needs the host
    assert run("-c", CONDITION) == "False"  # installed: the cell does nothing
    listing = json.loads(run("-c", (
        "import importlib.metadata as m, importlib.util as u, json; d = m.distribution('camri-utils'); "
        "print(json.dumps({'version': d.version, 'origin': u.find_spec('camri_utils').origin, "
        "'files': [f.as_posix() for f in d.files]}))")))
    assert listing["version"] == camri_utils.__version__
    assert Path(listing["origin"]).is_relative_to(env_dir)
    installed = sorted(f for f in listing["files"] if f.startswith("camri_utils/") and f.endswith(".py"))
    assert installed == modules

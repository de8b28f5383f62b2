"""Atomic writes: complete or absent, and readable like an ordinary file."""

import json
import os
import stat

import pytest

from camri_utils import io


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_file_is_readable_by_group_and_other(tmp_path, umask_022):
    path = io.write_json(tmp_path / "a" / "record.json", {"x": 1})
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o644, oct(mode)
    assert json.loads(path.read_text()) == {"x": 1}


def test_atomic_dir_gets_ordinary_permissions(tmp_path, umask_022):
    with io.atomic_dir(tmp_path / "cache") as tmp:
        (tmp / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o755
    assert (tmp_path / "cache" / "f").read_text() == "x"


def test_failure_leaves_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]


def test_failed_atomic_dir_keeps_old_folder(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "old").write_text("x")
    with pytest.raises(OSError):
        with io.atomic_dir(tmp_path / "cache") as tmp:
            (tmp / "new").write_text("y")
            raise OSError("disk full")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_temporary_keeps_the_suffix(tmp_path):
    with io.atomic_path(tmp_path / "chapter.ipynb") as tmp:
        assert tmp.name.startswith(".") and tmp.suffix == ".ipynb"
        tmp.write_text("{}")

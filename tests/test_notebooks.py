"""The chapters: each runs top to bottom in the quick profile (papermill, in a temporary
folder), each stored notebook passes nbval in lax mode, and their stored form is clean. Every
chapter's runs are tests of their own, so that ``make test`` (pytest-xdist) spreads them over
the cores; tests/conftest.py starts them first, being the longest."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import camri_utils
from camri_utils.notebook import run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPOSITORY = "camri-book/camri-book"
IDS = [nb.stem for nb in NOTEBOOKS]
MACHINE_PATH = re.compile(r"(/root/|/home/[A-Za-z]|/tmp/|/work/|/Users/|[A-Za-z]:\\\\Users)")


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 6


def test_chapter_tests_are_spread_and_modules_kept_whole_in_parallel_runs():
    """`make test` (pytest-xdist) schedules these tests one by one, every other module whole,
    and the book's build and browser tests as one unit (tests/conftest.py)."""
    from tests.conftest import parallel_unit

    nbval = "tests/test_notebooks.py::test_stored_notebook_passes_nbval[01_softmax_geometry]"
    quick = "tests/test_notebooks.py::test_runs_in_quick_profile[01_softmax_geometry]"
    assert parallel_unit(nbval) == nbval and parallel_unit(quick) == quick
    assert parallel_unit("tests/test_book.py::test_book_builds_without_warnings") == "book"
    assert parallel_unit("tests/test_browser.py::test_page_renders_cleanly[intro]") == "book"
    assert parallel_unit("tests/test_losses.py::test_a[1]") == parallel_unit("tests/test_losses.py::test_b") == \
        "tests/test_losses.py"


def test_the_longest_units_start_first_then_the_chapters():
    from tests.conftest import LONGEST, UNITS, start_rank

    order = ["tests/test_losses.py::test_a", "tests/test_notebooks.py::test_runs_in_quick_profile[01_softmax_geometry]",
             "tests/test_browser.py::test_page_renders_cleanly[intro]", "tests/test_protocol_store.py::test_b",
             "tests/test_notebooks.py::test_stored_notebook_passes_nbval[01_softmax_geometry]"]
    assert sorted(order, key=start_rank) == [order[3], order[2], order[4], order[1], order[0]]
    # Every name in LONGEST is a unit of this suite (a renamed module would silently start last).
    units = {p.name for p in Path(__file__).parent.glob("test_*.py")} | set(UNITS.values())
    assert set(LONGEST) <= units, set(LONGEST) - units


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_in_quick_profile(path, tmp_path):
    import papermill

    out = tmp_path / path.name
    before = _results_files()
    try:
        run(path, out, profile="quick", cwd=tmp_path)
    except papermill.PapermillExecutionError as err:
        pytest.fail(f"{path.name}: cell {err.exec_count} raised {err.ename}: {err.evalue}", pytrace=False)
    executed = nbformat.read(out, as_version=4)
    assert executed.metadata["camri"]["profile"] == "quick"
    assert _results_files() == before, f"{path.name}'s quick profile wrote into results/"
    assert not any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    where = path.name

    # Stored with the outputs of a full-profile run of this library version.
    meta = nb.metadata.get("camri")
    assert meta, f"{where}: no provenance metadata; run it with `make notebooks`"
    # Part III (the GPU datasets) can only run here on a fixture: stored as that quick run, labelled so.
    assert meta["profile"] == "full", f"{where}: stored outputs are from the {meta['profile']!r} profile"
    assert meta["camri_utils"] == camri_utils.__version__, f"{where}: outputs from camri_utils {meta['camri_utils']}"
    assert meta["data"] and meta["date"]
    assert all(c.execution_count is not None for c in code), f"{where}: has unexecuted cells"
    outputs = [o for c in code for o in c.outputs]
    assert outputs, f"{where}: stored without outputs"
    assert not [o for o in outputs if o.output_type == "error"], f"{where}: has error outputs"
    text = json.dumps(outputs)
    assert not MACHINE_PATH.search(text), f"{where}: an absolute path appears in its outputs"

    # One parameters cell with a profile; a standard kernel.
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{where}: {len(params)} cells tagged 'parameters'"
    assert re.search(r'^profile = "(quick|full)"', params[0].source, re.M)
    assert nb.metadata["kernelspec"]["name"] == "python3"

    # Title, Colab badge, installer pinned to this version, summary and exercises.
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    badge = f"colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}"
    assert badge in nb.cells[0].source, f"{where}: Colab badge missing or pointing elsewhere"
    assert f"github.com/{REPOSITORY}@" in code[0].source  # the version: tests/test_install.py
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in markdown and "## Exercises" in markdown and ":class: dropdown" in markdown
    checked = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])
               or "NBVAL_CHECK_OUTPUT" in c.source]  # nbval honours the tag and the comment
    assert checked, f"{where}: no cell checked by nbval"
    assert "{cite:" in markdown, f"{where}: cites nothing from references.bib"


def test_citations_exist_in_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", cell.source):
                    for key in group.split(","):
                        assert key.strip() in keys, f"{path.name}: unknown citation {key}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_notebook_passes_nbval(path, tmp_path):
    """nbval (lax) re-executes the stored notebook and compares the cells tagged
    nbval-check-output (or marked NBVAL_CHECK_OUTPUT): formula checks, shapes and constants.
    One chapter per test, so that pytest-xdist runs them side by side (``make test``)."""
    before = _results_files()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-p", "no:xdist", "-q", "--rootdir", str(tmp_path), str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # A chapter that reads committed runs (chapter 6) finds all it needs: one it had to train
    # would have been added to results/, and the stored outputs would not be the records'.
    assert _results_files() == before, f"{path.name} added runs to results/: {sorted(_results_files() - before)}"


def _results_files():
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "results").rglob("*") if p.is_file()}

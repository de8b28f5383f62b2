"""The student edition: the chapters without their solutions, the checks kept, for an instructor
to hand out.

The one format of the book's exercises (what this tool relies on):

- the exercise text stays in the chapter's "Exercises" Markdown cell;
- every solution *text* is its own Markdown cell holding a collapsed MyST dropdown
  (```` ```{dropdown} Solutions ```` or an ``{admonition}`` with ``:class: dropdown``), tagged
  ``solution``;
- every solution *code* cell is tagged ``solution`` and ``hide-cell`` (Jupyter Book shows it
  collapsed, output included);
- an answer stub ``name = ...`` per checked exercise, tagged ``exercise``, and a check cell
  ``ex.check(id, name)``, tagged ``check`` (from ``camri_utils.exercises``), stay in both
  editions: in the book the check says "correct" after the hidden solution, in the student
  edition it says "not attempted yet" until the student fills the stub.

``python -m camri_utils.student`` (or ``make student``) removes every cell tagged ``solution``
with nbconvert's ``TagRemovePreprocessor``, clears the outputs (they were computed with the
solutions) and the reference run's provenance, and writes each chapter into the output folder
(default ``_build/student``). A chapter that still holds a solution outside a tagged cell (a
``Solutions`` dropdown or a ``# Solution`` code cell without the tag, or a checked exercise's
solution code) is *not written*: it is listed with its cells, a stale copy from an earlier build
is removed, and the command exits with status 1. Nothing that leaks a solution is ever handed out.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from camri_utils.io import atomic_path, write_text

__all__ = ["SOLUTION_TAG", "Report", "leaks", "student_notebook", "build", "main"]

SOLUTION_TAG = "solution"
DEFAULT_OUTPUT = Path("_build") / "student"
# A MyST dropdown or admonition titled "Solution(s)", and a code cell that says it is one.
_SOLUTION_BOX = re.compile(r"^\s*(`{3,}|:{3,})\s*\{(admonition|dropdown)\}\s*Solutions?\b", re.I | re.M)
_SOLUTION_CODE = re.compile(r"^\s*#\s*Solutions?\b", re.I)

_README = """# Student edition

These are the chapters of the CAMRI book without their solutions: every cell tagged `solution`
was removed and the outputs were cleared. Run them top to bottom in a fresh kernel.

Each checked exercise has a cell `name = ...` for your answer and a check cell below it
(`ex.check(...)`): it says whether your answer is right, or names the mistake, without showing
the answer. `ex.hint(id)` gives a hint. The library holds model solutions too (`ex.solution(id)`):
use them after you have tried.

The chapters need the book's library, `camri_utils` (the first code cell of each chapter installs
it on Colab). Chapters 7, 8 and 9 read the committed protocol records of the book's repository:
beside the library when it is installed from a clone, else fetched once from the repository
(`camri_utils.records.find`), or from `CAMRI_RESULTS_DIR`.
"""


def _tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def _solution_codes(stem):
    """The solution code of every checked exercise declared for this chapter (empty if none)."""
    from camri_utils import exercises

    try:
        ex = exercises.chapter(stem)
    except ValueError:
        return []
    return [(e.id, e.code.strip()) for e in ex.exercises if e.code]


def leaks(nb, stem=None):
    """Solutions that are not in a cell tagged ``solution``: [(cell index, what)]."""
    found = []
    codes = _solution_codes(stem) if stem else []
    for i, cell in enumerate(nb.cells):
        if SOLUTION_TAG in _tags(cell):
            continue
        source = cell.get("source", "")
        if cell.cell_type == "markdown" and _SOLUTION_BOX.search(source):
            found.append((i, "a Solutions dropdown in a Markdown cell without the `solution` tag"))
        elif cell.cell_type == "code" and _SOLUTION_CODE.match(source):
            found.append((i, "a '# Solution' code cell without the `solution` tag"))
        for key, code in codes:
            if code and code in source:
                found.append((i, f"the solution code of exercise {key} outside a `solution` cell"))
    return found


def student_notebook(nb):
    """A copy of ``nb`` without the cells tagged ``solution``, outputs and execution counts
    cleared, and without the reference run's provenance. Returns (notebook, cells removed)."""
    import copy

    try:
        from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor
    except ImportError:  # pragma: no cover - a dev/test dependency
        raise ImportError("the student edition needs nbconvert: pip install nbconvert (or 'camri-utils[dev]').") from None

    nb = copy.deepcopy(nb)
    before = len(nb.cells)
    remove = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    out, _ = remove.preprocess(nb, {})
    out, _ = ClearOutputPreprocessor(enabled=True).preprocess(out, {})
    for key in ("camri", "papermill"):
        out.metadata.pop(key, None)
    for cell in out.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return out, before - len(out.cells)


@dataclass
class Report:
    output: Path
    written: dict = field(default_factory=dict)  # {stem: cells removed}
    refused: dict = field(default_factory=dict)  # {stem: [(cell index, what)]}

    @property
    def complete(self):
        return not self.refused

    def text(self):
        lines = [f"student edition in {self.output}: {len(self.written)} chapter(s) written"
                 + (f" ({', '.join(self.written)})." if self.written else ".")]
        if self.refused:
            lines.append(f"{len(self.refused)} chapter(s) NOT written: they hold solutions outside cells tagged "
                         f"`{SOLUTION_TAG}` (tag those cells; see the book's page for instructors):")
            for stem, found in self.refused.items():
                lines.append(f"  {stem}: " + "; ".join(f"cell {i}: {what}" for i, what in found))
        return "\n".join(lines)


def _read(path):
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook.")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # JSON errors, schema errors: say which file
        raise ValueError(f"{path} is not a readable notebook ({type(exc).__name__}: {exc}).") from None


def build(notebooks, output=DEFAULT_OUTPUT):
    """Write the student edition of ``notebooks`` into ``output``; returns a :class:`Report`.
    Every notebook is read before anything is written, so a bad input writes nothing."""
    import nbformat

    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"--output {output} is a file; give a folder for the student edition.")
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise ValueError("no notebooks given: pass the chapters, e.g. notebooks/[0-9][0-9]_*.ipynb.")
    books = [(p, _read(p)) for p in paths]
    report = Report(output)
    for path, nb in books:
        found = leaks(nb, path.stem)
        target = output / path.name
        if found:
            report.refused[path.stem] = found
            target.unlink(missing_ok=True)  # never leave an older copy that might hold solutions
            continue
        student, removed = student_notebook(nb)
        left = leaks(student, path.stem)
        assert not left, f"{path.name}: solutions left after removal: {left}"  # pragma: no cover
        with atomic_path(target) as tmp:
            nbformat.write(student, tmp)
        report.written[path.stem] = removed
    write_text(output / "README.md", _README)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m camri_utils.student",
        description="Write the student edition: the chapters without their solutions (cells tagged "
                    f"`{SOLUTION_TAG}`), outputs cleared, checks kept.")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="chapters (default: notebooks/[0-9][0-9]_*.ipynb under the working directory)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"folder to write into (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    try:
        report = build(notebooks, args.output)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())

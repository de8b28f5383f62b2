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

- a folded box that students may see (hints) is its own Markdown cell tagged ``hint``.

``python -m camri_utils.student`` (or ``make student``) keeps a cell only if it carries no
``solution`` tag (nbconvert's ``TagRemovePreprocessor``), clears the outputs (they were computed
with the solutions) and the reference run's provenance, and writes each chapter into the output
folder (default ``_build/student``), never into the folder it reads. What it keeps is decided by
the tags, so a chapter whose cells after its first exercise could hold an answer without the tag
is *not written*: an untagged cell there (a renamed solution), a folded box of any title (a MyST
dropdown, an admonition with ``:class: dropdown``, an HTML ``<details>``) not tagged ``hint``, a
stub ``name = ...`` that holds an answer, and anywhere a ``Solutions`` box, a ``# Solution`` code
cell or a checked exercise's solution code without the tag. Such a chapter is listed with its
cells, a stale copy from an earlier build is removed, and the command exits with status 1.
Nothing that leaks a solution is ever handed out.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from camri_utils.io import atomic_path, write_text

__all__ = ["SOLUTION_TAG", "HINT_TAG", "Report", "leaks", "student_notebook", "build", "main"]

SOLUTION_TAG = "solution"
HINT_TAG = "hint"  # kept in the student edition: its author vouches it holds no answer
# The tags a cell after the first exercise must carry one of: what each is for is declared.
_EXERCISE_TAGS = {SOLUTION_TAG, HINT_TAG, "exercise", "check"}
DEFAULT_OUTPUT = Path("_build") / "student"
# A MyST dropdown or admonition titled "Solution(s)", and a code cell that says it is one.
_SOLUTION_BOX = re.compile(r"^\s*(`{3,}|:{3,})\s*\{(admonition|dropdown)\}\s*Solutions?\b", re.I | re.M)
_SOLUTION_CODE = re.compile(r"^\s*#\s*Solutions?\b", re.I)
# Where the exercises begin: a Markdown heading "Exercises" (or "Problems", "Questions").
_EXERCISES_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(?:[\d.]+\s*)?(?:Exercises?|Problems?|Questions?)\b", re.I | re.M)
# Anything a reader unfolds: a MyST dropdown or toggle of any title (backticks or colons), an
# admonition (or any directive) of class dropdown/toggle, an HTML <details> block.
_FOLDED = re.compile(r"^\s*(?:`{3,}|:{3,})\s*\{(?:dropdown|toggle)\}"
                     r"|^\s*:class:.*\b(?:dropdown|toggle)\b"
                     r"|<details\b", re.I | re.M)

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


def _filled_stub(source):
    """Why an answer stub (tagged ``exercise``) is not one: None when it holds only
    ``name = ...`` assignments (and comments)."""
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return "an answer stub that is not valid Python"
    for node in body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is ...):
            return (f"an answer stub (tagged `exercise`) filled in, line {node.lineno}: a stub holds only "
                    "`name = ...`; move the answer to a cell tagged `solution`")
    return None


def _exercises_start(nb):
    """(index of the cell where the exercises begin, offset of its heading in its source) or None:
    the first Markdown heading "Exercises" or the first cell tagged ``exercise`` or ``check``."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = _EXERCISES_HEADING.search(cell.get("source", ""))
            if heading:
                return i, heading.start()
        if _tags(cell) & {"exercise", "check"}:
            return i, 0
    return None


def leaks(nb, stem=None):
    """Cells that may hold a solution without the ``solution`` tag: [(cell index, what)].

    What the student edition keeps is decided by tags alone, so from where the exercises begin
    every cell must say what it is (``exercise``, ``check``, ``hint`` or ``solution``), a folded
    box must be tagged ``hint`` or ``solution``, and an answer stub must be empty; anywhere in
    the chapter, a Solutions box, a ``# Solution`` cell or a checked exercise's solution code
    must be tagged ``solution``."""
    found = []
    codes = _solution_codes(stem) if stem else []
    start = _exercises_start(nb)
    for i, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if SOLUTION_TAG in tags:
            continue
        source = cell.get("source", "")
        if cell.cell_type == "markdown" and _SOLUTION_BOX.search(source):
            found.append((i, "a Solutions dropdown in a Markdown cell without the `solution` tag"))
        elif cell.cell_type == "code" and _SOLUTION_CODE.match(source):
            found.append((i, "a '# Solution' code cell without the `solution` tag"))
        elif start is not None and i > start[0] and not tags & _EXERCISE_TAGS:
            found.append((i, f"a {cell.cell_type} cell after the first exercise without a tag: tag it `solution` "
                             f"(left out of the student edition) or `{HINT_TAG}`, `exercise`, `check` (kept)"))
        elif (start is not None and i >= start[0] and HINT_TAG not in tags
              and _FOLDED.search(source[start[1]:] if i == start[0] else source)):
            found.append((i, "a folded box (dropdown or <details>) after the first exercise without a tag: "
                             f"tag its cell `solution` (left out) or `{HINT_TAG}` (kept: it holds no answer)"))
        if "exercise" in tags and cell.cell_type == "code":
            filled = _filled_stub(source)
            if filled:
                found.append((i, filled))
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

    if isinstance(output, str) and not output.strip():  # Path("") would be the working directory
        raise ValueError(f"--output {output!r} is empty: give the folder to write the student edition into, e.g. "
                         f"{DEFAULT_OUTPUT}.")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"--output {output} is a file; give a folder for the student edition.")
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise ValueError("no notebooks given: pass the chapters, e.g. notebooks/[0-9][0-9]_*.ipynb.")
    names = [p.name for p in paths]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two notebooks named {twice[0]} would be written to one file in {output}: give each "
                         "chapter once.")
    for path in paths:  # the edition would replace the chapters it is made from
        if path.parent.resolve() == output.resolve():
            raise ValueError(f"--output {output} is the folder of {path}: the student edition would overwrite the "
                             f"chapters it reads; give another folder, e.g. {DEFAULT_OUTPUT}.")
    readme = output / "README.md"
    if readme.is_file() and not readme.read_text(errors="replace").startswith(_README.splitlines()[0]):
        raise ValueError(f"--output {output} holds a README.md that is not a student edition's: give an empty "
                         f"folder or an earlier student edition, e.g. {DEFAULT_OUTPUT}.")
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
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
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

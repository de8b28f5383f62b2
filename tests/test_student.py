"""The student edition (camri_utils.student): solutions tagged `solution` are removed, text and
code; the checks stay and run; a chapter with an untagged solution is refused, not written; bad
inputs are clear errors that write nothing; the real chapters build (or are refused, listed) and
one of them runs in its quick profile."""

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from camri_utils import student

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SECRET_CODE, SECRET_TEXT = "SECRET-CODE-7f3", "SECRET-TEXT-9c1"


def _cell(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def _synthetic(tag_text=True):
    """A chapter in the book's one format: stub, hidden solution code, check, solution text."""
    nb = new_notebook(cells=[
        new_markdown_cell("# A synthetic chapter"),
        _cell(new_code_cell('profile = "full"'), "parameters"),
        new_code_cell("from camri_utils.exercises import chapter\nex = chapter(3)"),
        new_markdown_cell("## Exercises\n\n1. Which ArcFace margin closes both regions?"),
        _cell(new_code_cell("m_meet = ...  # your answer, in radians"), "exercise"),
        _cell(new_code_cell(f"# Solution 1\nimport math\nm_meet = math.pi / 2  # {SECRET_CODE}"), "solution", "hide-cell"),
        _cell(new_code_cell("ex.check(1, m_meet)"), "check"),
        _cell(new_markdown_cell(f"```{{dropdown}} Solutions\n1. {SECRET_TEXT}: the band is m wide.\n```"),
              *(("solution",) if tag_text else ())),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["camri"] = {"profile": "full"}  # a stored reference run's provenance
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text=f"{SECRET_TEXT}\n")]  # an output made with it
    return nb


def _write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _execute(path, out, cwd):
    import papermill

    papermill.execute_notebook(str(path), str(out), kernel_name="python3", cwd=str(cwd), progress_bar=False)
    return nbformat.read(out, as_version=4)


def _outputs_text(nb):
    return "".join(o.get("text", "") + str(o.get("data", "")) for c in nb.cells for o in c.get("outputs", []))


def test_solutions_are_removed_and_the_check_runs(tmp_path):
    source = _write(_synthetic(), tmp_path / "in" / "03_angular_margins.ipynb")
    report = student.build([source], tmp_path / "out")
    assert report.complete and report.written == {"03_angular_margins": 2}
    out = tmp_path / "out" / "03_angular_margins.ipynb"
    text = out.read_text()
    assert SECRET_CODE not in text and SECRET_TEXT not in text and "Solutions" not in text
    nb = nbformat.read(out, as_version=4)
    assert [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code"][-2:] == \
        ["m_meet = ...  # your answer, in radians", "ex.check(1, m_meet)"]
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "camri" not in nb.metadata  # the reference run's provenance went with its outputs
    assert (tmp_path / "out" / "README.md").is_file()
    # The student edition runs and its check waits for an answer; the book's edition says correct.
    ran = _execute(out, tmp_path / "ran.ipynb", tmp_path)
    assert "not attempted yet" in _outputs_text(ran)
    book = _execute(source, tmp_path / "book.ipynb", tmp_path)
    assert "Exercise 1: correct" in _outputs_text(book)


def test_a_chapter_with_an_untagged_solution_is_refused_and_a_stale_copy_removed(tmp_path, capsys):
    source = _write(_synthetic(tag_text=False), tmp_path / "in" / "03_angular_margins.ipynb")
    stale = _write(_synthetic(), tmp_path / "out" / "03_angular_margins.ipynb")
    report = student.build([source], tmp_path / "out")
    assert not report.complete and not report.written
    assert report.refused == {"03_angular_margins": [(7, "a Solutions dropdown in a Markdown cell without the "
                                                         "`solution` tag")]}
    assert not stale.exists()
    assert student.main([str(source), "--output", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "NOT written" in out and "03_angular_margins: cell 7" in out


def test_solution_code_of_a_checked_exercise_outside_a_solution_cell_is_a_leak(tmp_path):
    from camri_utils.exercises import chapter

    nb = _synthetic()
    nb.cells[5].metadata["tags"] = []  # the solution cell lost its tag...
    nb.cells[5].source = chapter(3).exercise(1).code  # ...and holds the declared solution code
    found = student.leaks(nb, "03_angular_margins")
    assert [what for _, what in found] == [
        "a code cell after the first exercise without a tag: tag it `solution` (left out of the student edition) "
        "or `hint`, `exercise`, `check` (kept)",
        "the solution code of exercise 1 outside a `solution` cell"]
    assert {i for i, _ in found} == {5}
    code = new_code_cell("# Solution 2: something")
    assert student.leaks(new_notebook(cells=[code]))[0][1].startswith("a '# Solution' code cell")


# Hostile chapters: what the edition keeps is decided by tags, so every cell after the first
# exercise that could hold an answer without the `solution` tag refuses the chapter.
def _answers_box(fence="```", title="Answers"):
    return f"{fence}{{dropdown}} {title}\n1. {SECRET_TEXT}\n{fence}"


@pytest.mark.parametrize("case", [
    "renamed solution code", "renamed solution text", "dropdown of another title", "colon-fenced dropdown",
    "admonition folded by class", "html details", "filled-in stub", "stub with extra code", "box in the heading cell",
])
def test_a_cell_after_an_exercise_that_may_hold_an_answer_refuses_the_chapter(case, tmp_path, capsys):
    nb = _synthetic()
    untagged = {
        "renamed solution code": new_code_cell(f"# Worked answer\nm_meet = 1.5708  # {SECRET_CODE}"),
        "renamed solution text": new_markdown_cell(f"**Answer.** {SECRET_TEXT}"),
        "dropdown of another title": new_markdown_cell(_answers_box()),
        "colon-fenced dropdown": new_markdown_cell(_answers_box(":::", "Show me")),
        "admonition folded by class": new_markdown_cell(f"```{{admonition}} Notes\n:class: dropdown\n{SECRET_TEXT}\n```"),
        "html details": new_markdown_cell(f"<details><summary>Click</summary>{SECRET_TEXT}</details>"),
    }
    if case in untagged:
        nb.cells.insert(7, untagged[case])
        where = 7
    elif case == "filled-in stub":
        nb.cells[4].source = f"m_meet = 1.5708  # {SECRET_CODE}"
        where = 4
    elif case == "stub with extra code":
        nb.cells[4].source = f"m_meet = ...\nprint('{SECRET_CODE}')"
        where = 4
    else:  # a folded box after the Exercises heading, in the heading's own cell
        nb.cells[3].source += "\n\n" + _answers_box()
        where = 3
    source = _write(nb, tmp_path / "in" / "03_angular_margins.ipynb")
    report = student.build([source], tmp_path / "out")
    assert not report.written and [i for i, _ in report.refused["03_angular_margins"]] == [where]
    assert not (tmp_path / "out" / "03_angular_margins.ipynb").exists()
    assert student.main([str(source), "--output", str(tmp_path / "out")]) == 1
    assert f"03_angular_margins: cell {where}" in capsys.readouterr().out


def test_a_box_tagged_hint_is_kept_and_a_box_before_the_exercises_is_the_chapters_own(tmp_path):
    nb = _synthetic()
    hint = new_markdown_cell(_answers_box(title="Hints").replace(SECRET_TEXT, "HINT-TEXT-4d2"))
    hint.metadata["tags"] = ["hint"]
    nb.cells.insert(7, hint)
    nb.cells.insert(1, new_markdown_cell("<details><summary>Derivation</summary>cos(a + b) = ...</details>"))
    report = student.build([_write(nb, tmp_path / "in" / "03_angular_margins.ipynb")], tmp_path / "out")
    assert report.complete
    text = (tmp_path / "out" / "03_angular_margins.ipynb").read_text()
    assert "HINT-TEXT-4d2" in text and "Derivation" in text and SECRET_TEXT not in text


def test_the_edition_never_writes_into_the_folder_it_reads(tmp_path, capsys, monkeypatch):
    source = _write(_synthetic(), tmp_path / "notebooks" / "03_angular_margins.ipynb")
    before = source.read_bytes()
    for output in (tmp_path / "notebooks", tmp_path / "notebooks" / "." / "", tmp_path / "x" / ".." / "notebooks"):
        with pytest.raises(ValueError, match="would overwrite the chapters it reads"):
            student.build([source], output)
    monkeypatch.chdir(tmp_path / "notebooks")
    assert student.main(["03_angular_margins.ipynb", "--output", "."]) == 2
    assert "would overwrite the chapters it reads" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert student.main([str(source), "--output", ""]) == 2
    assert "--output '' is empty" in capsys.readouterr().err
    assert source.read_bytes() == before and sorted(p.name for p in (tmp_path / "notebooks").iterdir()) == \
        ["03_angular_margins.ipynb"]
    # Nor into a folder of something else (its README.md), nor two chapters into one file.
    mine = tmp_path / "mine"
    _write(_synthetic(), mine / "03_angular_margins.ipynb")
    (mine / "README.md").write_text("# My notes\n")
    with pytest.raises(ValueError, match="not a student edition's"):
        student.build([source], mine)
    other = _write(_synthetic(), tmp_path / "other" / "03_angular_margins.ipynb")
    with pytest.raises(ValueError, match="two notebooks named 03_angular_margins.ipynb"):
        student.build([source, other], tmp_path / "out")
    assert (mine / "README.md").read_text() == "# My notes\n" and not (tmp_path / "out").exists()


def test_bad_inputs_are_clear_errors_and_write_nothing(tmp_path, capsys):
    good = _write(_synthetic(), tmp_path / "in" / "03_angular_margins.ipynb")
    broken = tmp_path / "in" / "04_broken.ipynb"
    broken.write_text("{ not json")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="04_broken.ipynb is not a readable notebook"):
        student.build([good, broken], out)
    assert not out.exists()  # every notebook is read before anything is written
    with pytest.raises(FileNotFoundError, match="missing.ipynb: no such notebook"):
        student.build([tmp_path / "missing.ipynb"], out)
    with pytest.raises(ValueError, match="no notebooks given"):
        student.build([], out)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        student.build([good], a_file)
    assert student.main([str(broken), "--output", str(out)]) == 2
    assert "error: " in capsys.readouterr().err


def test_the_real_chapters_build_or_are_refused_with_their_cells(tmp_path):
    report = student.build(NOTEBOOKS, tmp_path)
    assert set(report.written) | set(report.refused) == {p.stem for p in NOTEBOOKS}
    for stem, found in report.refused.items():
        assert found and not (tmp_path / f"{stem}.ipynb").exists()
    for stem in report.written:
        nb = nbformat.read(tmp_path / f"{stem}.ipynb", as_version=4)
        assert not student.leaks(nb, stem)
        assert not any(student.SOLUTION_TAG in c.metadata.get("tags", []) for c in nb.cells)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert report.written, "no chapter could be written: nothing to hand out"


def test_a_student_chapter_runs_in_its_quick_profile(tmp_path):
    """The written chapter whose stored reference run was fastest (papermill's recorded duration),
    in the quick profile, from the student folder."""
    from camri_utils.notebook import run

    report = student.build(NOTEBOOKS, tmp_path / "student")
    duration = {p.stem: nbformat.read(p, as_version=4).metadata.get("papermill", {}).get("duration", 1e9)
                for p in NOTEBOOKS}
    fastest = min(report.written, key=duration.get)
    run(tmp_path / "student" / f"{fastest}.ipynb", tmp_path / "ran.ipynb", profile="quick", cwd=tmp_path)
    ran = nbformat.read(tmp_path / "ran.ipynb", as_version=4)
    assert not any(o.get("output_type") == "error" for c in ran.cells for o in c.get("outputs", []))
    assert not re.search(r"Exercise \w+: correct", _outputs_text(ran))  # no solution left to pass a check

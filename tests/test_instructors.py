"""The page for instructors (book/instructors.md) is what camri_utils.instructors generates from the
toc, the chapters and the exercises: its structure exactly, its numbers (reading and run times,
records) within a tolerance, since a chapter re-run (under a different load) or re-worded shifts
them."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from camri_utils import instructors

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "instructors.md"
NUMBER = re.compile(r"\d+(?:\.\d+)?")
STALE = "book/instructors.md is out of date: run `python -m camri_utils.instructors --write book/instructors.md`"


@pytest.fixture(scope="module")
def generated():
    return instructors.page()


def test_the_page_is_in_the_book():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert "book/instructors" in files


def test_the_committed_page_is_the_generated_one(generated):
    committed = PAGE.read_text()
    assert NUMBER.sub("#", committed) == NUMBER.sub("#", generated), STALE
    # Run times vary with the machine's load, and chapters are re-run and re-worded all the time:
    # a number is stale when it is off by more than a factor of 10 (and 5 units); regenerating
    # the page brings every number up to date.
    for old, new in zip(NUMBER.findall(committed), NUMBER.findall(generated)):
        old, new = float(old), float(new)
        assert new / 10 - 5 <= old <= 10 * new + 5, f"{STALE} ({old:g} is now {new:g})"


def test_every_chapter_of_the_toc_is_on_the_map_with_its_exercises(generated):
    from camri_utils.exercises import chapter

    for fact in instructors.chapter_facts():
        assert f"<../{fact['file']}>`" in generated
        assert f"**Chapter {fact['number']}**" in generated
        for e in chapter(fact["stem"]).exercises:
            assert f"| {e.id} |" in generated
    assert "make student" in generated and "TagRemovePreprocessor" in generated


def test_reading_time_counts_words_and_code_lines():
    nb = new_notebook(cells=[new_markdown_cell("word " * 400), new_code_cell("x = 1\n\n" * 30)])
    words, lines, minutes = instructors._reading_minutes(nb)
    assert (words, lines) == (400, 30)
    assert minutes == 5  # 400/200 + 30/30 = 3 minutes, rounded up to 5
    nb.cells.append(new_markdown_cell("word " * 1000))
    assert instructors._reading_minutes(nb)[2] == 10  # 8 minutes -> 10


def test_write_to_a_folder_is_a_clear_error(tmp_path, capsys):
    assert instructors.main(["--write", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    out = tmp_path / "page.md"
    assert instructors.main(["--write", str(out)]) == 0 and out.read_text().startswith("# For instructors")


def test_a_chapter_with_its_stored_run_and_records(tmp_path):
    facts = {f["stem"]: f for f in instructors.chapter_facts()}
    stored = nbformat.read(ROOT / "notebooks" / "01_softmax_geometry.ipynb", as_version=4)
    assert facts["01_softmax_geometry"]["seconds"] == stored.metadata["papermill"]["duration"]
    records = facts["07_protocol_fashion_mnist"]["records"]
    assert records and records[0] == "results/fashion_mnist" and records[1] > 0 and records[2] > 0


def test_grading_notes_follow_the_answer_type():
    from camri_utils.exercises.core import Custom, Exercise, Function, Number, Values

    def note(answer):
        return instructors._grading(Exercise("1", "q", "h", "s", answer=answer))

    assert "single checked value" in note(Number("a number about a loss"))  # the word "loss" misled it once
    assert "array" in note(Values("three losses", (3,)))
    assert note(Function("f", lambda ctx: [])).startswith("suitable")
    assert note(Custom("a loss object", lambda answer, ctx: answer)).startswith("suitable")
    assert note(None).startswith("discussion")


def test_the_schedules_cover_every_chapter_once_and_the_gpu_chapters_show_their_estimate(generated):
    numbers = {f["number"] for f in instructors.chapter_facts()}
    for weeks, plan in instructors.SCHEDULES.items():
        listed = [n for week in plan for n in week]
        assert sorted(listed) == sorted(numbers) and len(plan) == weeks
        assert f"**{weeks} weeks**" in generated
    for fact in instructors.chapter_facts():
        if fact["exercises"].where == "gpu":
            assert fact["estimate"], f"chapter {fact['number']}: no printed session estimate found"
    assert "not timed" not in generated
    assert "Chapters 7, 8 and 9 read the committed records" in generated


def test_session_estimate_is_read_from_the_printed_line():
    nb = new_notebook(cells=[new_code_cell("x")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "Three runs ...: about 24 minutes on a T4\n  in float32, about 12 with mixed precision (assumed 2x)"))]
    assert instructors._session_estimate(nb) == ("24", "T4", "12")
    assert instructors._session_estimate(new_notebook(cells=[new_code_cell("x")])) is None

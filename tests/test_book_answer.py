"""The book's answer across its runs (camri_utils.book_answer): the pages that state it hold the
block computed from the committed records; its verdicts are chapter 7's (read independently by
``findings.Findings``); its wording follows the verdicts on hand-made rows; bad pages are refused
before anything is written."""

import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from camri_utils import book_answer, protocol
from camri_utils.book_answer import END, START, Run

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["book/intro.md", "README.md", "notebooks/07_protocol_fashion_mnist.ipynb"]


@pytest.fixture(scope="module")
def rows():
    return book_answer.answer_rows(ROOT)


def test_the_committed_pages_hold_the_computed_block(rows, capsys):
    # Stale after new records: python -m camri_utils.book_answer --write <the PAGES>
    new = book_answer.markdown(rows)
    for page in PAGES:
        assert book_answer.updated(ROOT / page, new) == (ROOT / page).read_text(), (
            f"{page}: run python -m camri_utils.book_answer --write {' '.join(PAGES)}")


def test_the_fashion_mnist_verdicts_are_chapter_7s(rows):
    from camri_utils import findings

    story = findings.Findings(protocol.summarize(ROOT / "results/fashion_mnist"))
    fm = rows[rows.run == "Fashion-MNIST"]
    assert len(fm) == 3 and set(fm.state) == {"complete"}
    for r in fm.itertuples():
        for ref, key in (("CE", "ce"), ("control", "control")):
            pick = story.pick(r.role, ref)
            assert getattr(r, f"{key}_verdict") == pick.verdict
            assert getattr(r, f"{key}_oracle") == pytest.approx(pick.accuracy_gap, abs=1e-12)
            assert getattr(r, f"{key}_oos") == pytest.approx(pick.oos_accuracy_gap, abs=1e-12)


def test_runs_without_records_or_with_missing_ones_get_no_verdict(tmp_path):
    src = ROOT / "results/fashion_mnist"
    for name in ("empty", "ce"):  # no record (the table waits for CE); only CE's records
        (tmp_path / name / "runs").mkdir(parents=True)
        shutil.copy(src / "protocol.json", tmp_path / name)
    for record in (src / "runs").glob("*.json"):
        if json.loads(record.read_text())["method"] == "CE":
            for f in (record, record.with_suffix(".npz")):
                shutil.copy(f, tmp_path / "ce" / "runs")
    runs = (Run("A", 7, "empty"), Run("A2", 7, "ce"), Run("B", 10, "absent"), Run("C", 12, None, "no images here"))
    rows = book_answer.answer_rows(tmp_path, runs)
    assert list(rows.state) == ["in progress", "in progress", "not recorded", "no run"]
    text = book_answer.markdown(rows)
    assert "| run (chapter)" not in text  # no complete run: no table
    assert "- A (chapter 7): the run is in progress: no verdict" in text
    assert "- B (chapter 10): not recorded yet (no record of it is committed): no verdict." in text
    assert "- C (chapter 12): no run is stored: no images here." in text
    assert text.startswith("No complete run gives CAMRI a verdict against its control yet.")


def _row(run, cls, ce, control, gap=0.004, above=(), n_settings=8):
    setting = json.dumps({"margin": 0.19634954084936207, "scale": 16.0})
    row = {"run": run, "chapter": 7, "state": "complete", "why": "", "role": cls, "class": cls, "n": 5,
           "setting": setting, "n_settings": n_settings,
           "settings_above": list(above) + ([setting] if control == "above" else [])}
    for key, verdict in (("ce", ce), ("control", control)):
        row[f"{key}_verdict"] = verdict
        decided = verdict in ("above", "not told apart", "below")
        for gap_name in ("oracle", "oos"):
            value = {"above": gap, "below": -gap}.get(verdict, 0.0) if decided else np.nan
            row[f"{key}_{gap_name}"] = value
            row[f"{key}_{gap_name}_low"] = value - 0.001 if decided else np.nan
            row[f"{key}_{gap_name}_high"] = value + 0.001 if decided else np.nan
    return row


def test_the_answer_follows_the_verdicts():
    level = pd.DataFrame([_row("R", "cat", "above", "not told apart"),
                          _row("R", "dog", "not told apart", "not told apart")])
    text = book_answer.markdown(level)
    assert text.startswith("**In short, on the complete runs, CAMRI's chosen setting beats moving CE's threshold "
                           "for one of the two cases, but in none is it above the same cosine head trained without "
                           "the margin (the seeds cannot tell them apart): no case shows the margin itself reaching "
                           "a better trade-off than its head's.**")
    assert "†" not in text  # no run here has a late scale
    assert "against CE's threshold moving: one above and one not told apart; against the same head without the " \
           "margin: two not told apart." in text
    assert ("| R (7) | cat | m = 4π/64, s = 16 | **above**<br>oracle +0.40 [+0.30,&nbsp;+0.50]<br>out of sample "
            "+0.40 [+0.30,&nbsp;+0.50] |") in text
    assert "the mean over 5 seeds" in text

    beyond = pd.DataFrame([_row("R", "cat", "above", "above"), _row("S", "dog", "below", "below")])
    text = book_answer.markdown(beyond)
    assert text.startswith("**In short, on the complete runs, the margin itself reaches beyond its own head's "
                           "trade-off for cat in R")
    assert "moves along" not in text and "against the same head without the margin: one above and one below." in text

    below = pd.DataFrame([_row("R", "cat", "below", "below"), _row("R", "dog", "above", "not told apart")])
    assert ("in none is it above the same cosine head trained without the margin (not told apart in one, below it "
            "for cat in R): no case") in book_answer.markdown(below)
    all_below = pd.DataFrame([_row("R", "cat", "below", "below")])
    assert "without the margin (below it for cat in R): no case" in book_answer.markdown(all_below)


def test_a_pick_at_a_scale_added_after_test_comparisons_is_flagged():
    late = pd.DataFrame([dict(_row("R", "cat", "above", "not told apart"), late=True),
                         dict(_row("R", "dog", "above", "not told apart"), late=False)])
    text = book_answer.markdown(late)
    assert "for two of the two cases (one at a scale added to the grid after test comparisons had been seen, " \
           "marked †)" in text
    assert "| R (7) | cat | m = 4π/64, s = 16 † |" in text and "| R (7) | dog | m = 4π/64, s = 16 |" in text
    assert "†: a scale added to the run's grid after test comparisons had been seen" in text
    both = pd.DataFrame([dict(_row("R", c, "above", "not told apart"), late=True) for c in ("cat", "dog")])
    assert "(both at a scale added" in book_answer.markdown(both)


def test_a_run_whose_ce_seeds_miss_the_convergence_criterion_is_marked():
    moving = pd.DataFrame([dict(_row("R", "cat", "above", "not told apart"), unconverged=2, ce_seeds=5),
                           dict(_row("R", "dog", "above", "not told apart"), unconverged=2, ce_seeds=5),
                           dict(_row("S", "cat", "above", "not told apart"), unconverged=0, ce_seeds=5)])
    text = book_answer.markdown(moving)
    assert "| R (7) ‡ | cat |" in text and "| R (7) ‡ | dog |" in text and "| S (7) | cat |" in text
    assert text.count("two of five in R") == 1 and "in S" not in text.split("‡: ")[1]
    assert "‡: CE seeds that miss chapter 7's convergence criterion" in text and "its chapter gives" in text
    steady = pd.DataFrame([dict(_row("R", "cat", "above", "not told apart"), unconverged=0, ce_seeds=5)])
    assert "‡" not in book_answer.markdown(steady)


def test_the_marks_count_the_committed_ce_seeds_that_miss_the_criterion(rows):
    for run, folder in (("Fashion-MNIST", "fashion_mnist"), ("Fashion-MNIST with Shirt rare", "fashion_mnist-rare")):
        conv = protocol.convergence(protocol.summarize(ROOT / "results" / folder).selection.ce)
        mine = rows[rows.run == run]
        assert set(mine.unconverged) == {int((~conv.converged).sum())} and set(mine.ce_seeds) == {len(conv)}
    assert set(rows[rows.run == "Fashion-MNIST"].unconverged) == {0}  # chapter 7: every seed converged


def test_the_settings_above_their_control_carry_their_verdict_against_ce(rows):
    fm = rows[rows.run == "Fashion-MNIST"]
    comp = protocol.summarize(ROOT / "results/fashion_mnist").comparison
    for r in fm.itertuples():
        assert len(r.settings_above_ce) == len(r.settings_above)
        for setting, verdict in zip(r.settings_above, r.settings_above_ce):
            ce = comp[(comp.role == r.role) & (comp.method == "CAMRI") & (comp.setting == setting)
                      & (comp.reference == "CE")]
            assert [verdict] == list(ce.verdict)


def test_the_late_scale_flags_the_fashion_mnist_picks_at_it(rows):
    fm = rows[rows.run == "Fashion-MNIST"]
    assert list(fm.late) == [json.loads(s)["scale"] == 8.0 for s in fm.setting]
    assert not rows[rows.run != "Fashion-MNIST"].late.fillna(False).astype(bool).any()


def test_settings_above_their_control_that_were_not_chosen_are_named_beside_chance():
    unchosen = json.dumps({"margin": 0.09817477042468103, "scale": 8.0})
    rows = pd.DataFrame([dict(_row("R", "cat", "above", "not told apart", above=[unchosen], n_settings=20),
                              settings_above_ce=["not told apart"]),
                         _row("R", "dog", "above", "not told apart", n_settings=20)])
    text = book_answer.markdown(rows)
    assert ("Over all 40 CAMRI settings trained in these cases, chosen or not, one is above its control "
            "(not chosen on validation: m = 2π/64, s = 8 for cat in R; against CE's threshold moving, it is not "
            "told apart). If the margin changed nothing, at most about "
            "1.0 of the 40 would be") in text
    mixed = json.dumps({"margin": 0.2945243112740431, "scale": 8.0})
    rows = pd.DataFrame([dict(_row("R", "cat", "above", "not told apart", above=[unchosen, mixed]),
                              settings_above_ce=["not told apart", "above"])])
    assert ("(not chosen on validation: m = 2π/64, s = 8 for cat in R, not told apart against CE's threshold moving; "
            "m = 6π/64, s = 8 for cat in R, above against CE's threshold moving)") in book_answer.markdown(rows)


def test_an_undecided_verdict_is_shown_as_such_and_not_counted():
    rows = pd.DataFrame([_row("R", "cat", "above", "no verdict (1 seed: no interval)"),
                         _row("R", "dog", "above", "not told apart")])
    text = book_answer.markdown(rows)
    assert "| no verdict (1 seed: no interval) |" in text
    assert "beats moving CE's threshold in the one case" in text and "The counts: one case (" in text


@pytest.mark.parametrize("body, count", [("no markers\n", "0 and 0"), (f"{START}\n{START}\n{END}\n", "2 and 1"),
                                         (f"{END}\n{START}\n", "1 and 1")])
def test_a_page_without_its_markers_once_in_order_is_refused(body, count):
    with pytest.raises(ValueError, match=f"page.md must hold the line .* \\(it holds {count}\\)"):
        book_answer.replace_block(body, "new", where="page.md")


def test_the_block_is_replaced_and_the_rest_kept():
    text = f"before\n{START}\nold\nlines\n{END}\nafter\n"
    assert book_answer.replace_block(text, "new", "p") == f"before\n{START}\nnew\n{END}\nafter\n"


def test_a_notebook_holds_the_block_in_one_markdown_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"Intro\n\n{START}\n{END}"),
                                         nbformat.v4.new_code_cell("1 + 1")])
    page = tmp_path / "ch.ipynb"
    nbformat.write(nb, page)
    out = nbformat.reads(book_answer.updated(page, "new block"), as_version=4)
    assert out.cells[0].source == f"Intro\n\n{START}\nnew block\n{END}" and out.cells[1].source == "1 + 1"
    nb.cells.append(nbformat.v4.new_markdown_cell(f"{START}\n{END}"))
    nbformat.write(nb, page)
    with pytest.raises(ValueError, match="in exactly one Markdown cell \\(it does in 2\\)"):
        book_answer.updated(page, "new")


def test_write_and_check_refuse_bad_pages_before_writing_any(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(book_answer, "block", lambda: "computed")
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text(f"a\n{START}\nold\n{END}\n")
    bad.write_text("no markers here\n")
    assert book_answer.main(["--write", str(good), str(bad)]) == 2
    assert "bad.md must hold the line" in capsys.readouterr().err
    assert "old" in good.read_text()  # nothing written while one page is bad
    assert book_answer.main(["--write", str(good), str(tmp_path / "missing.md")]) == 2
    assert "missing.md is not a file" in capsys.readouterr().err

    assert book_answer.main(["--check", str(good)]) == 1
    assert "good.md: the book's answer is stale" in capsys.readouterr().err
    assert book_answer.main(["--write", str(good)]) == 0
    assert good.read_text() == f"a\n{START}\ncomputed\n{END}\n"
    assert book_answer.main(["--check", str(good)]) == 0

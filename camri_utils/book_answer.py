"""The book's answer to its question on every run it stores, in one block computed from the
committed records, for the pages that state it: the introduction and the README (chapter 7 shows
the same block in its summary).

The question: does CAMRI reach a better recall/accuracy trade-off than moving the threshold of a
plain model (CE), and than the same cosine head trained without the margin (its control), or does
it only move along the same curve? For each run (Fashion-MNIST balanced and with a rare class,
CIFAR-10 and GTSRB at CPU scale) and each important class, CAMRI's setting chosen on validation
is read against both threshold curves with :func:`camri_utils.replication.verdicts` (the verdict
of :func:`camri_utils.protocol.curves.verdict`: *above* only above the oracle, *below* only below
the bias chosen on validation). A run with missing records gets no verdict here: its chapter
shows the runs recorded so far.

    make records-pages   # after new records: --write on the three pages, with the chapters they feed
    python -m camri_utils.book_answer --check book/intro.md README.md notebooks/07_protocol_fashion_mnist.ipynb

Each page holds the block between the lines :data:`START` and :data:`END`; the rest of the page
is left as it is.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camri_utils.findings import count_words, join_words, points

__all__ = ["Run", "RUNS", "START", "END", "answer_rows", "block", "markdown", "replace_block", "updated", "main"]

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- book-answer: start (generated from the records by `make records-pages`: do not edit) -->"
END = "<!-- book-answer: end -->"


@dataclass(frozen=True)
class Run:
    """One stored run of the book: its name on the pages, its chapter and its records' folder
    (relative to the repository; None: no run can be stored, ``why`` says why). ``late_scale``:
    a scale added to the run's grid after test-set comparisons had been seen (its chapter tells
    how); a CAMRI setting chosen at it is flagged wherever it is counted."""
    name: str
    chapter: int
    folder: str | None
    why: str = ""
    late_scale: float | None = None


RUNS = (
    # s = 8 joined this grid after chapter 8's sweep had compared it with CE's test curve (chapter 7).
    Run("Fashion-MNIST", 7, "results/fashion_mnist", late_scale=8.0),
    Run("Fashion-MNIST with Shirt rare", 9, "results/fashion_mnist-rare"),
    Run("CIFAR-10, CPU-scale network", 10, "results/cifar10-cpu"),
    Run("GTSRB, CPU-scale network", 11, "results/gtsrb-cpu"),
    Run("AwA2", 12, None, "its images cannot be downloaded where this book's runs are trained (the chapter "
                          "says why)"),
)
_DECIDED = ("above", "not told apart", "below")


def answer_rows(root=ROOT, runs=RUNS):
    """One row per run and important class: ``run``, ``chapter``, ``state`` (``complete``,
    ``in progress``, ``not recorded``, ``no run``), ``role``, ``class``, ``setting`` (CAMRI's
    chosen one), ``n`` (the seeds its comparisons rest on), for each reference (``ce``,
    ``control``) its ``*_verdict`` and the accuracy gaps at the same recall it rests on
    (``*_oracle``, ``*_oos`` with ``_low``/``_high``: paired t intervals), ``late`` (the chosen
    setting is at the run's ``late_scale``), and over every CAMRI setting of the role, chosen or
    not: ``n_settings`` (those with a verdict against their control), ``settings_above`` (the
    settings above it) and ``settings_above_ce`` (the verdict of each of those against CE's
    threshold moving), ``unconverged`` and ``ce_seeds`` (how many of the run's recorded CE seeds
    miss chapter 7's convergence criterion, :func:`camri_utils.protocol.convergence`, of how many).
    A run without verdicts has one row with ``role`` None."""
    from camri_utils import protocol, replication
    from camri_utils.protocol.report import WaitingForCE

    out = []
    for run in runs:
        base = {"run": run.name, "chapter": run.chapter, "role": None}
        folder = None if run.folder is None else Path(root) / run.folder
        if folder is None:
            out.append(dict(base, state="no run", why=run.why))
            continue
        if not (folder / "protocol.json").is_file():
            out.append(dict(base, state="not recorded", why="no record of it is committed"))
            continue
        try:
            summary = protocol.summarize(folder)
        except WaitingForCE:  # not even CE is recorded yet
            summary = None
        if summary is None or replication.progress_text(summary):  # some planned run is missing
            # No count here: the block would change with every record; the chapter shows them.
            out.append(dict(base, state="in progress", why=""))
            continue
        names = replication._class_names(summary)
        missed, ce_seeds = _unconverged(summary)
        rows = replication.verdicts(summary)
        rows = rows[rows.method == "CAMRI"]
        comp = summary.comparison
        for role in dict.fromkeys(rows.role):
            row = dict(base, state="complete", why="", role=role, n=np.nan, unconverged=missed, ce_seeds=ce_seeds)
            for ref, key in (("CE", "ce"), ("control", "control")):
                r = rows[(rows.role == role) & (rows.reference == ref)].iloc[0].to_dict()
                row["class"] = names.get(r["important_class"], f"class {r['important_class']}")
                row["setting"] = r["setting"]
                row["late"] = run.late_scale is not None and _scale(r["setting"]) == run.late_scale
                decided = r["verdict"] in _DECIDED and r["resolved"]
                row[f"{key}_verdict"] = r["verdict"] if decided else f"no verdict ({r['why'] or r['verdict']})"
                if decided:
                    row["n"] = int(r["n"])
                for gap, col in (("oracle", "accuracy_gap"), ("oos", "oos_accuracy_gap")):
                    for end in ("", "_low", "_high"):
                        row[f"{key}_{gap}{end}"] = float(r.get(col + end, np.nan)) if decided else np.nan
            every = (comp[(comp.role == role) & (comp.method == "CAMRI") & (comp.reference == "control")
                          & (comp.n >= 2)] if comp is not None else pd.DataFrame(columns=["verdict", "setting"]))
            row["n_settings"] = len(every)
            row["settings_above"] = [k for k, v in zip(every.setting, every.verdict) if v == "above"]
            ce_rows = (comp[(comp.role == role) & (comp.method == "CAMRI") & (comp.reference == "CE")]
                       if comp is not None else pd.DataFrame(columns=["setting", "verdict"]))
            against_ce = dict(zip(ce_rows.setting, ce_rows.verdict))
            row["settings_above_ce"] = [against_ce.get(k, "no verdict") for k in row["settings_above"]]
            out.append(row)
    return pd.DataFrame(out)


def _unconverged(summary):
    """(how many recorded CE seeds miss chapter 7's convergence criterion, how many there are);
    runs with too few epochs for the criterion count as missing it."""
    from camri_utils.protocol import convergence

    try:
        conv = convergence(summary.selection.ce)
    except ValueError:  # fewer epochs than the criterion's window: it cannot be met
        return len(summary.selection.ce), len(summary.selection.ce)
    return int((~conv.converged).sum()), len(conv)


def _scale(setting):
    import json

    return json.loads(setting).get("scale")


def _interval(mean, low, high):
    # a non-breaking space inside the brackets: an interval never wraps in a narrow column
    return points(mean, low, high, digits=2).replace(", ", ",&nbsp;")


def _cell(row, key):
    verdict = row[f"{key}_verdict"]
    if verdict not in _DECIDED:
        return verdict
    oracle, oos = ([row[f"{key}_{gap}{end}"] for end in ("", "_low", "_high")] for gap in ("oracle", "oos"))
    return f"**{verdict}**<br>oracle {_interval(*oracle)}<br>out of sample {_interval(*oos)}"


def _tally(rows, key):
    """``two above, one not told apart and one below`` (the verdicts that occur, in that order)."""
    counts = [(int((rows[f"{key}_verdict"] == v).sum()), v) for v in _DECIDED]
    return join_words(f"{count_words(k)} {v}" for k, v in counts if k)


def _each(n):
    return "it is" if n == 1 else "both are" if n == 2 else f"all {count_words(n)} are"


def _case(r):
    return f"{r['class']} in {r['run']}"


def _overall(rows):
    """The answer across the complete runs, first in one sentence, then the counts it rests on:
    the chosen settings against CE's threshold moving and against their control, and how many of
    all CAMRI settings (chosen or not) are above their control, with how many chance alone would
    put there."""
    from camri_utils.protocol import setting_text

    done = rows[rows.state == "complete"]
    decided = done[done.control_verdict.isin(_DECIDED)] if not done.empty else done
    if decided.empty:
        return "No complete run gives CAMRI a verdict against its control yet."
    n = len(decided)
    records = decided.to_dict("records")
    beats = [r for r in records if r["ce_verdict"] == "above"]
    late = sum(bool(r.get("late")) for r in beats)
    above = [r for r in records if r["control_verdict"] == "above"]
    below = [r for r in records if r["control_verdict"] == "below"]
    if above:
        lead = (f"the margin itself reaches beyond its own head's trade-off for {join_words(map(_case, above))}: "
                "there CAMRI's chosen setting is above the same head without the margin")
    else:
        where = (f"for {count_words(len(beats))} of the {count_words(n)} cases" if n > 1
                 else "in the one case" if beats else "not in the one case")
        if late:
            which = ("" if len(beats) == 1 else "both " if late == len(beats) == 2 else
                     "all " if late == len(beats) else f"{count_words(late)} ")
            where += f" ({which}at a scale added to the grid after test comparisons had been seen, marked †)"
        tied = n - len(below)
        lead = (f"CAMRI's chosen setting beats moving CE's threshold {where}, but in none is it above the same "
                "cosine head trained without the margin"
                + (f" ({'the seeds cannot tell them apart' if tied == n else f'not told apart in {count_words(tied)}'}"
                   if tied else " (")
                + (f"{', ' if tied else ''}below it for {join_words(map(_case, below))}" if below else "") + ")"
                + ": no case shows the margin itself reaching a better trade-off than its head's")
    text = f"**In short, on the complete runs, {lead}.**"
    text += (f" The counts: {count_words(n)} case{'s' if n != 1 else ''} (a case: one important class of one "
             "run); CAMRI's "
             f"chosen setting against CE's threshold moving: {_tally(decided, 'ce')}; against the same head without "
             f"the margin: {_tally(decided, 'control')}.")
    total = int(decided.n_settings.sum())
    def against_ce(r):  # rows made before that column: no verdict to name
        ce = r.get("settings_above_ce")
        return ce if isinstance(ce, list) else [None] * len(r["settings_above"])

    others = [(r, k, ce) for r in records for k, ce in zip(r["settings_above"], against_ce(r)) if k != r["setting"]]
    if total:
        k = sum(len(r["settings_above"]) for r in records)
        text += (f" Over all {total} CAMRI settings trained in these cases, chosen or not, "
                 f"{count_words(k)} {'is' if k == 1 else 'are'} above {'its' if k == 1 else 'their'} control")
        if others:
            verdicts = {ce for _, _, ce in others}
            same = verdicts.pop() if len(verdicts) == 1 else None  # said once when all share it
            text += (" (not chosen on validation: "
                     + "; ".join(f"{setting_text(k)} for {_case(r)}" + (f", {ce} against CE's threshold moving"
                                                                          if ce and not same else "")
                                 for r, k, ce in others)
                     + (f"; against CE's threshold moving, {_each(len(others))} {same}" if same else "") + ")")
        # each "above" needs the lower end of a 95% interval above zero against the oracle: by chance
        # at most 2.5% of comparisons (fewer: the oracle is the reference's best threshold)
        text += (f". If the margin changed nothing, at most about {0.025 * total:.1f} of the {total} would be (each "
                 "*above* needs the lower end of its 95% interval above zero: at most 2.5% of comparisons by "
                 "chance).")
    return text


def block(root=ROOT, runs=RUNS):
    """The generated Markdown block (without the marker lines) of the runs under ``root``."""
    return markdown(answer_rows(root, runs))


def markdown(rows):
    """The block for :func:`answer_rows`' ``rows``: the answer across the complete runs, a table of
    their verdicts for CAMRI with what its cells mean, and a line per run without a verdict."""
    from camri_utils.protocol import setting_text

    done = rows[rows.state == "complete"]
    text = [_overall(rows), ""]
    if not done.empty:
        text += ["| run (chapter) | important class | CAMRI's setting | against threshold moving on CE | "
                 "against the same head without the margin |",
                 "| --- | --- | --- | --- | --- |"]
        for r in done.to_dict("records"):
            mark = " †" if r.get("late") else ""
            moving = " ‡" if r.get("unconverged", 0) > 0 else ""
            text.append(f"| {r['run']} ({r['chapter']}){moving} | {r['class']} | {setting_text(r['setting'])}{mark} | "
                        f"{_cell(r, 'ce')} | {_cell(r, 'control')} |")
        seeds = sorted({int(k) for k in done.n.dropna()})
        text += ["", "CAMRI's setting is the one chosen on validation for that class ($m$: its angular margin on the "
                 "important class, in radians; $s$: the scale of the cosine logits). CE is the plain cross-entropy "
                 "model; the same head without the margin is normalized softmax at CAMRI's scale, the control that "
                 "isolates the margin. Each cell gives the verdict, then CAMRI's test accuracy minus the "
                 "reference's at the same recall of the important class, in percentage points: the mean over "
                 f"{join_words([str(k) for k in seeds], last='or')} seeds with its paired Student-t 95% interval, "
                 "against the oracle (the reference's best threshold on the test images, the upper bound of "
                 "threshold moving) and out of sample (its threshold chosen on validation where it gives CAMRI's "
                 "validation recall, as a practitioner would; on the test images the two recalls then differ a "
                 "little). *Above*: the whole interval against the oracle lies above zero; *below*: the whole "
                 "out-of-sample interval lies below zero; otherwise *not told apart*: the seeds cannot separate "
                 "them."
                 + (" †: a scale added to the run's grid after test comparisons had been seen (its chapter tells "
                    "how), so that choice was not blind to the test set." if done.get("late", pd.Series()).any()
                    else "")
                 + _moving_note(done), ""]
    for r in rows[rows.state != "complete"].to_dict("records"):
        words = {"no run": f"no run is stored: {r['why']}.",
                 "not recorded": f"not recorded yet ({r['why']}): no verdict.",
                 "in progress": "the run is in progress: no verdict here until every planned run is recorded; "
                                "the chapter shows the runs recorded so far."}[r["state"]]
        text.append(f"- {r['run']} (chapter {r['chapter']}): {words}")
    return "\n".join(text).rstrip("\n")


def _moving_note(done):
    """The caption's sentence for the runs marked ‡: how many of their CE seeds miss chapter 7's
    convergence criterion ('' when none does)."""
    if "unconverged" not in done:
        return ""
    runs = done[done.unconverged > 0].drop_duplicates("run")
    if runs.empty:
        return ""
    each = join_words(f"{count_words(int(r.unconverged))} of {count_words(int(r.ce_seeds))} in {r.run}"
                      for r in runs.itertuples())
    return (f" ‡: CE seeds that miss chapter 7's convergence criterion (validation accuracy steady within 0.5 points "
            f"over the last 3 epochs): {each}; {'its chapter gives' if len(runs) == 1 else 'their chapters give'} "
            "each seed's range.")


def replace_block(text, new, where="the page"):
    """``text`` with the lines between :data:`START` and :data:`END` replaced by ``new``;
    ``ValueError`` naming ``where`` unless each marker is there exactly once, in order."""
    starts, ends = text.count(START), text.count(END)
    if starts != 1 or ends != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{where} must hold the line {START!r} once, then {END!r} once (it holds {starts} and "
                         f"{ends}); add them where the book's answer goes, then run the command again.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{new}\n{END}{tail}"


def updated(page, new):
    """The text ``page`` would hold with its block replaced by ``new``. A notebook (``.ipynb``)
    holds the markers in one Markdown cell, replaced inside it and written as the book stores
    notebooks (nbformat, a final newline)."""
    page = Path(page)
    if page.suffix != ".ipynb":
        return replace_block(page.read_text(), new, where=str(page))
    import nbformat

    nb = nbformat.read(page, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "markdown" and START in c.source]
    if len(cells) != 1:
        raise ValueError(f"{page} must hold the line {START!r} in exactly one Markdown cell (it does in "
                         f"{len(cells)}); add it, then {END!r}, where the book's answer goes.")
    cells[0].source = replace_block(cells[0].source, new, where=str(page))
    return nbformat.writes(nb) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m camri_utils.book_answer",
                                     description="The book's answer across its stored runs, computed from "
                                                 "the records, written between the markers of each page.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", nargs="+", type=Path, metavar="PAGE", help="update the block of these pages")
    mode.add_argument("--check", nargs="+", type=Path, metavar="PAGE",
                      help="exit 1 if a page's block is not the computed one")
    args = parser.parse_args(argv)
    new = block()
    pages = args.write or args.check
    if not pages:
        print(new)
        return 0
    texts = {}
    for page in pages:  # every page is read and checked before any is written
        if not page.is_file():
            print(f"error: {page} is not a file; give the pages that hold the book's answer.", file=sys.stderr)
            return 2
        try:
            texts[page] = updated(page, new)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    stale = [p for p in pages if texts[p] != p.read_text()]
    if args.check:
        for page in stale:
            print(f"{page}: the book's answer is stale; run python -m camri_utils.book_answer --write {page}",
                  file=sys.stderr)
        return 1 if stale else 0
    from camri_utils.io import write_text

    for page in stale:
        write_text(page, texts[page])
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

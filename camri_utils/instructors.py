"""The book's page for instructors (``book/instructors.md``), generated: the chapter map from
``book/_toc.yml``, the notebooks and their stored runs, the exercises from
:mod:`camri_utils.exercises`, and the records Part II reads. Every number on the page is computed
here, and the page says how.

    python -m camri_utils.instructors --write book/instructors.md

Run it again after chapters are added, renumbered or re-run (the map follows ``_toc.yml``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["WORDS_PER_MINUTE", "CODE_LINES_PER_MINUTE", "chapter_facts", "page", "main"]

ROOT = Path(__file__).resolve().parents[1]
WORDS_PER_MINUTE = 200  # prose, read carefully
CODE_LINES_PER_MINUTE = 30  # code, read (not typed)
_RESULTS_DIR = re.compile(r"""^results_dir\s*=\s*["']([^"']+)["']""", re.M)


def _toc(root):
    import yaml

    toc = yaml.safe_load((root / "book" / "_toc.yml").read_text())
    parts = []
    for part in toc.get("parts", []):
        files = [c["file"] for c in part.get("chapters", []) if c["file"].startswith("notebooks/")]
        if files:
            parts.append((part.get("caption", ""), files))
    return parts


def _reading_minutes(nb):
    words = sum(len(re.findall(r"\w+", c.source)) for c in nb.cells if c.cell_type == "markdown")
    lines = sum(len([ln for ln in c.source.splitlines() if ln.strip()]) for c in nb.cells if c.cell_type == "code")
    minutes = words / WORDS_PER_MINUTE + lines / CODE_LINES_PER_MINUTE
    return words, lines, 5 * math.ceil(minutes / 5)


def _records_cost(nb, root):
    """(folder, trained runs, CPU-hours) of the protocol records the chapter reads, or None."""
    parameters = next((c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), "")
    found = _RESULTS_DIR.search(parameters)
    if not found:
        return None
    from camri_utils import protocol

    try:
        folder = protocol.results_folder(root / found.group(1))
        records = protocol.load_records(folder)
    except (FileNotFoundError, protocol.ProtocolError):
        return None
    hours = sum(r.get("wall_time_s", 0.0) for r in records) / 3600
    return found.group(1), len(records), hours


def chapter_facts(root=ROOT):
    """One dict per chapter of the toc, in reading order: number, stem, part, title, words,
    code lines, reading minutes, the stored run's profile, data and seconds, the records it
    reads, and its exercises."""
    from camri_utils import exercises

    facts = []
    for caption, files in _toc(root):
        for file in files:
            path = root / (file + ".ipynb")
            nb = nbformat.read(path, as_version=4)
            stem = path.stem
            words, lines, minutes = _reading_minutes(nb)
            meta = nb.metadata.get("camri", {})
            title = next((c.source.splitlines()[0].lstrip("# ").strip() for c in nb.cells
                          if c.cell_type == "markdown" and c.source.startswith("# ")), stem)
            ex = exercises.chapter(stem) if stem in exercises.stems() else None
            facts.append({
                "number": int(stem.split("_", 1)[0]), "stem": stem, "file": file, "part": caption, "title": title,
                "words": words, "code_lines": lines, "minutes": minutes,
                "profile": meta.get("profile"), "data": meta.get("data", ""),
                "seconds": nb.metadata.get("papermill", {}).get("duration"),
                "records": _records_cost(nb, root), "estimate": _session_estimate(nb), "exercises": ex,
            })
    return facts


_SESSION_ESTIMATE = re.compile(r"about ([\d.]+) minutes on a (\S+) in float32, about ([\d.]+) with mixed precision")


def _session_estimate(nb):
    """(minutes in float32, GPU, minutes with mixed precision) as the chapter printed them for its
    one-session experiment (``comparison.print_session_cost``), or None."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = " ".join(output.get("text", "").split())
            found = _SESSION_ESTIMATE.search(text)
            if found:
                return found.group(1), found.group(2), found.group(3)
    return None


def _compute(fact):
    seconds = fact["seconds"]
    run = f"{seconds:.0f} s" if seconds is not None else "not timed"
    where = fact["exercises"].where if fact["exercises"] else "cpu"
    if where == "cpu":
        return f"CPU: {run} (its {fact['profile']} profile)"
    if where == "records":
        rec = fact["records"]
        made = (f"; its {rec[1]} records ran {rec[2]:.1f} h in all (two-core CPU, `camri protocol`)" if rec else "")
        return f"reads committed records: {run} on a CPU{made}"
    estimate = fact.get("estimate")
    gpu = (f"a GPU and the data (Colab): about {estimate[0]} min on a {estimate[1]} in float32, {estimate[2]} "
           "with mixed precision (the chapter's estimate)" if estimate else "a GPU and the data (Colab)")
    if "synthetic fixture" in fact["data"] and seconds is not None:
        return f"{gpu}; stored here as a quick run on a fixture ({run} on a CPU)"
    if seconds is not None:  # stored from a full-profile run on the CPU: the data and records, no training
        return f"{gpu}; stored here on a CPU, nothing trained ({run})"
    return gpu


def _link(fact):
    return f"{{doc}}`{fact['number']}. {fact['title'].split('. ', 1)[-1]} <../{fact['file']}>`"


def _answer_kind(e):
    if not e.checked:
        return "open"
    return e.answer.describe().split(":")[0]


def _grading(e):
    from camri_utils.exercises.core import Custom, Function, Number

    if e.assignment:
        return e.assignment
    if not e.checked:
        return "discussion: no single answer (compare with the model solution)"
    if isinstance(e.answer, (Function, Custom)):
        return "suitable: the student's function or object is checked, not a printed value"
    if isinstance(e.answer, Number):
        return "practice: a single checked value is easy to pass on"
    return "practice: a checked array of values is easy to pass on"


# Suggested modules: the chapters of each week (Part III: one dataset, chosen by the class).
SCHEDULES = {
    4: [(1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12)],
    6: [(1, 2), (3, 4), (5, 6), (7,), (8, 9), (10, 11, 12)],
}
PREREQUISITES = (
    "Python and NumPy, and having trained a classifier with Keras (or PyTorch) once",
    "linear algebra: dot products, norms, the angle between two vectors, a projection",
    "calculus: the chain rule (chapters 1, 2 and 5 derive the gradients they use)",
    "probability and statistics: softmax as a distribution; a mean with a Student-t interval "
    "(chapters 6-9 compare methods paired by seed)",
)


def _chapter_list(numbers):
    names = [str(n) for n in numbers]
    if len(names) < 2:
        return "Chapter " + "".join(names)
    return "Chapters " + ", ".join(names[:-1]) + " and " + names[-1]


def _schedule(facts):
    """The page's section on prerequisites and suggested 4- and 6-week modules, with each week's
    reading time summed from the chapters' (Part III counted once: a class picks one dataset)."""
    minutes = {f["number"]: f["minutes"] for f in facts}
    part3 = {f["number"] for f in facts if f["exercises"] and f["exercises"].where == "gpu"}
    lines = ["", "## Prerequisites and a suggested schedule", "",
             "What a student should bring:", ""]
    lines += [f"- {item};" if i < len(PREREQUISITES) - 1 else f"- {item}." for i, item in enumerate(PREREQUISITES)]
    lines += ["", "Two ways to fit the chapters into a module, one lecture and one lab a week. *Reading* "
              "sums the chapters' reading times from the table above; where a week lists chapters 10-12, "
              "the class picks one dataset (on Colab) and its time is counted once.", ""]
    for weeks, plan in SCHEDULES.items():
        lines += [f"**{weeks} weeks**", "", "| week | chapters | reading |", "| --- | --- | --- |"]
        for week, chapters in enumerate(plan, 1):
            present = [n for n in chapters if n in minutes]
            gpu = [n for n in present if n in part3]
            read = sum(minutes[n] for n in present if n not in part3) + (max(minutes[n] for n in gpu) if gpu else 0)
            shown = ", ".join(str(n) for n in present if n not in part3)
            if gpu:
                shown = (shown + ", " if shown else "") + "one of " + ", ".join(str(n) for n in gpu)
            lines.append(f"| {week} | {shown} | {read} min |")
        lines.append("")
    return lines[:-1]


def page(root=ROOT):
    """The page's Markdown text."""
    facts = chapter_facts(root)
    by_stem = {f["stem"]: f for f in facts}
    lines = [
        "# For instructors",
        "",
        "This book is written to be taught from: every chapter runs top to bottom in a fresh kernel, "
        "its exercises check themselves, and a student edition without the solutions is one command "
        "away. This page is the map for planning a course: what each chapter needs first, what it "
        "teaches, how long it takes to read and to run, and where.",
        "",
        "## The chapters",
        "",
        "| chapter | builds on | reading | compute |",
        "| --- | --- | --- | --- |",
    ]
    for f in facts:
        ex = f["exercises"]
        deps = ", ".join(str(by_stem[d]["number"]) for d in ex.depends_on if d in by_stem) if ex else ""
        lines.append(f"| {_link(f)} | {deps or '-'} | {f['minutes']} min | {_compute(f)} |")
    lines += [
        "",
        "*Reading*: the words of the chapter's text at "
        f"{WORDS_PER_MINUTE} words a minute plus its lines of code at {CODE_LINES_PER_MINUTE} a minute, "
        "rounded up to 5 minutes (counted in the stored notebook). *Compute*: the wall time papermill "
        "recorded for the stored run of each chapter (in its notebook's metadata) on this project's shared "
        "2-core CPU machine (times vary with its load); for the chapters that read `camri protocol` records, also the sum of the records' "
        "own wall times (each record stores it). The GPU chapters' experiment is not run here (no GPU): its "
        "compute is the estimate each chapter prints for its one-session experiment (FLOPs counted from the "
        "network, an assumed GPU efficiency: `camri_utils.comparison`), not a measurement; their stored pages "
        "(the data, the CPU-scale replication's records, no training) took the time shown.",
        "",
        "### What each chapter teaches",
        "",
    ]
    for f in facts:
        ex = f["exercises"]
        if ex and ex.objectives:
            lines.append(f"- **{f['number']}.** " + "; ".join(ex.objectives) + ".")
    records_chapters = [f["number"] for f in facts if f["exercises"] and f["exercises"].where == "records"]
    lines += _schedule(facts)
    checked = [(f, e) for f in facts if f["exercises"] for e in f["exercises"].exercises if e.checked]
    open_ = [(f, e) for f in facts if f["exercises"] for e in f["exercises"].exercises if not e.checked]
    lines += [
        "",
        "## Exercises",
        "",
        f"The chapters hold {len(checked) + len(open_)} exercises (parts counted separately): "
        f"{len(checked)} with a definite answer, which check themselves, and {len(open_)} open ones. "
        "In a chapter a student writes an answer and runs its check:",
        "",
        "```python",
        "from camri_utils.exercises import chapter",
        "ex = chapter(3)",
        "ex.check(2, shift)   # correct, or the likely mistake, never the answer",
        "ex.hint(2)",
        "ex.solution(2)",
        "```",
        "",
        "A check compares the answer with what the library computes, within a tolerance, and names the "
        "common mistakes it recognises (the loss of the wrong class, degrees for radians, a missing "
        "scale, a wrong sign, probabilities for losses, 1-based class indices). A wrong type, a wrong "
        "shape, NaN or the notebook's `...` placeholder get a message saying so.",
        "",
        "**Which suit graded assignments.** Exercises whose answer is a *function* (or a loss object) "
        "are checked on inputs the student does not see, so a passed check means the derivation is "
        "right, not that a number was copied: they make the best graded work. A single number is good "
        "practice but easy to pass on. Open exercises (training outcomes, which depend on seeds and "
        "hardware) need a rubric: grade the method (seeds, the control, paired differences) and the "
        "write-up. The coursework exercises are marked *(Coursework)* in the chapters.",
        "",
    ]
    for f in facts:
        ex = f["exercises"]
        if not ex:
            continue
        lines += [f"**Chapter {f['number']}**", "", "| exercise | answer | for grading |", "| --- | --- | --- |"]
        for e in ex.exercises:
            lines.append(f"| {e.id} | {_answer_kind(e)} | {_grading(e)} |")
        lines.append("")
    lines += [
        "Checking is for feedback, not secrecy: the library that checks an answer also holds its model "
        "solution (`ex.solution`), as in Kaggle's learntools. To grade, run the submitted notebook "
        "(`papermill`) and read its check outputs, or call `chapter(n).verdict(id, answer)`, which returns "
        "the verdict without printing it.",
        "",
        "## The student edition",
        "",
        "```bash",
        "make student",
        "# the same, by hand:",
        "python -m camri_utils.student --output _build/student notebooks/*.ipynb",
        "```",
        "",
        "writes every chapter into `_build/student/` without its solutions and with its outputs cleared, "
        "ready to hand out. It relies on one format in the chapters:",
        "",
        "- a solution's text is its own Markdown cell, a collapsed `{dropdown}` (or an admonition with "
        "`:class: dropdown`), tagged `solution`;",
        "- a solution's code is a code cell tagged `solution` and `hide-cell` (collapsed in the book, its "
        "output too);",
        "- each checked exercise has an answer cell `name = ...` (tagged `exercise`) and a check cell "
        "`ex.check(id, name)` (tagged `check`), kept in both editions: in the book the check follows the "
        "hidden solution and says *correct*; in the student edition it says *not attempted yet* until the "
        "student answers;",
        "- a folded box students may open (hints) is its own Markdown cell tagged `hint`.",
        "",
        "The tool keeps a cell only if it carries no `solution` tag (nbconvert's `TagRemovePreprocessor`), "
        "so it trusts the tags, and checks them: a chapter is not written when a cell after its first "
        "exercise carries none of these tags, when a folded box there (a dropdown of any title, an "
        "admonition of class dropdown, an HTML `<details>`) is tagged neither `solution` nor `hint`, when an "
        "answer cell holds more than `name = ...`, or when a Solutions box, a `# Solution` cell or a checked "
        "exercise's solution code anywhere lacks the tag: the command lists those cells and exits with "
        "status 1, so nothing that leaks a solution is handed out. It never writes into the folder it "
        "reads. "
        f"{_chapter_list(records_chapters)} read the committed records, which `camri_utils.records.find` "
        "locates beside the library or fetches from the book's repository.",
        "",
        "## How this page is made",
        "",
        "`python -m camri_utils.instructors --write book/instructors.md` generates it from "
        "`book/_toc.yml` (the chapters and parts, in order), the stored notebooks (text, code and the "
        "recorded run), `camri_utils.exercises` (dependencies, objectives, exercises) and the protocol "
        "records. To add or renumber a chapter: rename the notebooks, update `_toc.yml` and the "
        "chapters' names in `camri_utils/exercises`, and run the command again.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m camri_utils.instructors",
                                     description="Generate the book's page for instructors.")
    parser.add_argument("--write", type=Path, default=None, help="write the page here (default: print it)")
    args = parser.parse_args(argv)
    text = page()
    if args.write is None:
        print(text)
        return 0
    from camri_utils.io import write_text

    if args.write.is_dir():
        print(f"error: --write {args.write} is a folder; give the page's file name.", file=sys.stderr)
        return 2
    write_text(args.write, text)
    print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

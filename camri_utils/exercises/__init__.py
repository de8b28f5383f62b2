"""Exercises that check themselves: each chapter's exercises as objects with a checker, a hint
and a solution (the model of Kaggle's learntools).

In a chapter::

    from camri_utils.exercises import chapter
    ex = chapter(3)
    ex.check(2, shift)    # "correct", or what is wrong, without showing the answer
    ex.hint(2)
    ex.solution(2)

A checked exercise compares the student's value, array, function or loss object with the
reference the library computes (with tolerances), and names the common mistakes it recognises:
the wrong class's loss, degrees instead of radians, a missing scale, a wrong sign, probabilities
for losses. Open exercises (no single right answer) have a hint and a model solution.

Chapters are keyed by their notebook's name (``03_angular_margins``): ``chapter(3)``,
``chapter("03_angular_margins")`` and ``chapter("angular_margins")`` are the same. Part II's
take the chapter's results folder: ``chapter(7, results_dir=results_dir)`` (chapter 9 also the
balanced run's, ``balanced_dir``).
"""

from __future__ import annotations

from camri_utils.exercises.core import AnswerError, Chapter, Context, Exercise, Verdict

__all__ = ["chapter", "stems", "all_chapters", "Chapter", "Exercise", "Verdict", "AnswerError"]


def _declarations():
    from camri_utils.exercises import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, part3, rare

    # One module per chapter (Part III's three share one), each declaring its exercises; where a
    # chapter runs: closed forms and small trainings on a CPU, committed records, a GPU with the
    # dataset (Colab).
    where = [(ch01, "cpu"), (ch02, "cpu"), (ch03, "cpu"), (ch04, "cpu"), (ch05, "cpu"), (ch06, "cpu"),
             (ch07, "records"), (ch08, "records"), (rare, "records"), (part3, "gpu")]
    return {stem: (*rest, kind) for module, kind in where for stem, *rest in module.chapters()}


def stems():
    """The notebook names of the chapters with exercises, in reading order."""
    return sorted(_declarations())


def _stem_of(key):
    names = stems()
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise ValueError(f"a chapter is a number or a notebook name; got {key!r}.")
    if isinstance(key, int) or key.strip().isdigit():
        found = [s for s in names if int(s.split("_", 1)[0]) == int(key)]
    else:
        key = key.strip().removesuffix(".ipynb").rsplit("/", 1)[-1]
        found = [s for s in names if key in (s, s.split("_", 1)[1])]
    if not found:
        raise ValueError(f"no chapter {key!r} with exercises; the chapters are: {', '.join(names)}.")
    return found[0]


def chapter(key, **params):
    """The exercises of one chapter (a number or a notebook name). ``params`` are the chapter's
    parameters its references need (Part II: ``results_dir``)."""
    stem = _stem_of(key)
    title, exercises, objectives, depends_on, where = _declarations()[stem]
    allowed = ({"results_dir", "scale"} if stem.startswith(("07_", "08_"))
               else {"results_dir", "balanced_dir"} if stem.startswith("09_") else set())
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"chapter {stem} takes {', '.join(sorted(allowed)) or 'no parameters'}; got "
                         f"{', '.join(sorted(unknown))}.")
    return Chapter(int(stem.split("_", 1)[0]), stem, title, exercises, Context(dict(params)), objectives, depends_on,
                   where)


def all_chapters():
    """Every chapter with exercises, in reading order (default parameters)."""
    return [chapter(s) for s in stems()]

"""Exercises as objects: a question, a hint, a solution, and a checker that compares a student's
answer with the reference the library computes.

A checked exercise declares how its answer is read (:class:`Number`, :class:`Values`,
:class:`Function`, :class:`Custom`: each turns a student's answer into an array of numbers, or
says clearly why it cannot), the reference answer (a function of the chapter's context, written
as a student would write it, read the same way), and the common mistakes: each is an answer that
makes the mistake, or a test on the student's numbers, with the message that names it. Checking
never shows the reference: a wrong answer gets the message of the mistake it matches, or a plain
"not yet" with a pointer to the hint. Open exercises (no single right answer) have a hint and a
model solution but no checker.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["AnswerError", "Verdict", "Mistake", "Number", "Values", "Function", "Custom", "Exercise",
           "Chapter", "show"]


class AnswerError(ValueError):
    """A student's answer that cannot be read as the kind of answer the exercise asks for."""


def show(text, markdown=None):
    """Display ``text`` in a notebook (as Markdown where it renders), print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display({"text/plain": text, "text/markdown": markdown or text}, raw=True)
            return
    except ImportError:  # pragma: no cover - IPython comes with every notebook
        pass
    print(text)


@dataclass(frozen=True)
class Verdict:
    """What checking an answer found: ``status`` is ``correct``, ``incorrect``, ``unattempted``
    (the notebook's ``...`` placeholder), ``unreadable`` (wrong type, shape, NaN) or ``open``."""

    exercise: str
    status: str
    message: str

    @property
    def correct(self):
        return self.status == "correct"

    def __bool__(self):
        return self.correct

    def __str__(self):
        return f"Exercise {self.exercise}: {self.message}"


# --------------------------------------------------------------------------------------------
# Reading answers
# --------------------------------------------------------------------------------------------
def _type_name(value):
    return type(value).__name__


def _as_float(value, what):
    """One real number, or an AnswerError that says what was given instead."""
    if value is None:
        raise AnswerError(f"{what} is None: did a function end without `return`, or a cell print "
                          "its result instead of assigning it?")
    if isinstance(value, (bool, np.bool_)):
        raise AnswerError(f"{what} must be a number; got the boolean {value!r}.")
    if isinstance(value, str):
        raise AnswerError(f"{what} must be a number; got the text {value!r} (convert it with float()).")
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise AnswerError(f"{what} must be a real number; got the complex number {value!r}.")
    array = _numbers(value, what)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise AnswerError(f"{what} must be a number; got {_type_name(value)}.")
    if array.size != 1:
        raise AnswerError(f"{what} must be a single number; got {array.size} values (shape {array.shape}).")
    x = float(array.reshape(()))
    if math.isnan(x):
        raise AnswerError(f"{what} is NaN: a 0/0, a log of a negative number, or an empty mean upstream?")
    if math.isinf(x):
        raise AnswerError(f"{what} is infinite: an overflow (exp of a large number?) or a division by zero.")
    return x


def _to_numpy(value):
    """Tensors (TensorFlow, JAX, Keras) as NumPy; everything else unchanged."""
    if hasattr(value, "numpy") and callable(value.numpy):
        try:
            return value.numpy()
        except Exception:  # a symbolic tensor: let the caller's check say what it is
            return value
    return value


def _numbers(value, what):
    """``value`` as a NumPy array, or an AnswerError that says why it cannot be one: a
    symbolic tensor (no value yet) or a ragged list (rows of different lengths)."""
    value = _to_numpy(value)
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - NumPy's, TensorFlow's and Keras' own errors
        name = _type_name(value)
        if "symbolic" in str(exc).lower() or "Symbolic" in name or name == "KerasTensor":
            raise AnswerError(f"{what} is a symbolic tensor ({name}): a placeholder with a shape but no value. "
                              "Compute it on numbers (an array, or model(x) for real images), not on keras.Input "
                              "or inside a compiled function.") from None
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise AnswerError(f"{what} cannot be read as an array of numbers: its rows have different lengths "
                              "(a ragged list), or an element is itself a list.") from None
        raise AnswerError(f"{what} cannot be read as an array of numbers ({type(exc).__name__}: {exc}).") from None


def _as_array(value, what, shape):
    """An array of real numbers of ``shape`` (None: any length for that axis)."""
    if value is None:
        raise AnswerError(f"{what} is None: did a function end without `return`?")
    if isinstance(value, (str, bytes)):
        raise AnswerError(f"{what} must be numbers; got the text {value!r}.")
    if isinstance(value, dict):
        raise AnswerError(f"{what} must be a sequence of numbers, not a dict.")
    array = _numbers(value, what)
    if array.dtype == bool or array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise AnswerError(f"{what} must be numbers; got an array of {array.dtype} ({_type_name(value)}).")
    if np.iscomplexobj(array):
        raise AnswerError(f"{what} must be real numbers; got complex ones.")
    expected = tuple(shape)
    squeezed = array.reshape(-1) if len(expected) == 1 and array.ndim > 1 and array.size == array.shape[-1] else array
    if squeezed.ndim != len(expected) or any(e is not None and e != n for e, n in zip(expected, squeezed.shape)):
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        raise AnswerError(f"{what} must have shape {want}; got shape {array.shape}.")
    array = squeezed.astype(np.float64)
    if np.isnan(array).any():
        raise AnswerError(f"{what} contains NaN (at index {int(np.flatnonzero(np.isnan(array).ravel())[0])}).")
    if np.isinf(array).any():
        raise AnswerError(f"{what} contains an infinite value: an overflow or a division by zero?")
    return array


@dataclass(frozen=True)
class Number:
    """The answer is one real number: ``what`` names it in messages ("the distance ...")."""

    what: str

    def read(self, answer, context):
        return np.array([_as_float(answer, f"Your answer ({self.what})")])

    def describe(self):
        return f"a number: {self.what}"


@dataclass(frozen=True)
class Values:
    """The answer is an array of real numbers of ``shape`` (None for any length)."""

    what: str
    shape: tuple = (None,)

    def read(self, answer, context):
        return _as_array(answer, f"Your answer ({self.what})", self.shape)

    def describe(self):
        return f"an array: {self.what}"


@dataclass(frozen=True)
class Function:
    """The answer is a function; it is called with each argument tuple of ``inputs(context)``
    and each result read as a number (``shape=()``) or an array of ``shape``."""

    what: str
    inputs: Callable[[Any], list]
    shape: tuple = ()

    def read(self, answer, context):
        if answer is None:
            raise AnswerError(f"Your answer is None; a function was asked for ({self.what}).")
        if not callable(answer):
            raise AnswerError(f"Your answer must be a function ({self.what}); got {_type_name(answer)}. "
                              "Pass the function itself, without calling it.")
        out = []
        for args in self.inputs(context):
            shown = ", ".join(_short(a) for a in args)
            try:
                value = answer(*args)
            except Exception as exc:
                raise AnswerError(f"your function raised {type(exc).__name__} ({exc}) when called as "
                                  f"f({shown}).") from None
            what = f"Your function's result for f({shown})"
            out.append(_as_float(value, what) if self.shape == () else _as_array(value, what, self.shape))
        return np.array(out, dtype=np.float64).ravel()

    def describe(self):
        return f"a function: {self.what}"


def _short(value):
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{float(array):g}" if np.issubdtype(array.dtype, np.number) else repr(value)
    return "array(" + ", ".join(f"{x:.3g}" for x in array.ravel()[:4]) + (", ...)" if array.size > 4 else ")")


@dataclass(frozen=True)
class Custom:
    """The answer is read by ``reader(answer, context)``, which returns an array of numbers or
    raises :class:`AnswerError` (a loss object read as its curve, a mapping in a fixed key order)."""

    what: str
    reader: Callable[[Any, Any], np.ndarray]

    def read(self, answer, context):
        if answer is None:
            raise AnswerError(f"Your answer is None; {self.what} was asked for.")
        return np.asarray(self.reader(answer, context), dtype=np.float64)

    def describe(self):
        return self.what


# --------------------------------------------------------------------------------------------
# Exercises and chapters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mistake:
    """A common mistake: ``answer(context)`` is an answer that makes it (read like the student's
    and compared with the exercise's tolerance), or ``detect(got, reference)`` tests the
    student's numbers for it (then ``answer`` is an example, for the tests). ``message`` says
    what is wrong without giving the reference away."""

    message: str
    answer: Callable[[Any], Any]
    detect: Callable[[np.ndarray, np.ndarray], bool] | None = None


@dataclass
class Exercise:
    """One exercise (or one part of one: ids like ``"2a"``).

    ``answer`` is how the answer is read (None: an open exercise, not checked); ``reference``
    returns the reference answer in the form a student gives it; ``accept(got, context)``
    replaces the comparison with the reference where many answers are right (returns None when
    the answer is right, or a message). ``solution`` is Markdown text or a function of the
    context that computes it; ``code`` the solution's code, which assigns ``var``."""

    id: str
    question: str
    hint: str
    solution: str | Callable[[Any], str]
    code: str | None = None
    var: str | None = None
    answer: Any = None
    reference: Callable[[Any], Any] | None = None
    accept: Callable[[np.ndarray, Any], str | None] | None = None
    mistakes: tuple = ()
    rtol: float = 1e-3
    atol: float = 1e-9
    correct_note: str = ""  # said after "correct": what to think about next
    assignment: str | None = None  # why it suits a graded assignment (None: better as practice)

    @property
    def checked(self):
        return self.answer is not None

    def solution_text(self, context):
        text = self.solution(context) if callable(self.solution) else self.solution
        if self.code:
            text += f"\n\n```python\n{self.code.strip()}\n```"
        return text


class Chapter:
    """The exercises of one chapter, as a student uses them::

        from camri_utils.exercises import chapter
        ex = chapter(3)
        ex.check(2, shift)      # says whether `shift` is right, or what is wrong with it
        ex.hint(2)
        ex.solution(2)

    ``ex.verdict(id, answer)`` returns the :class:`Verdict` without displaying it (for tests and
    for instructors who grade a folder of notebooks)."""

    def __init__(self, number, stem, title, exercises, context=None, objectives=(), depends_on=(), where="cpu"):
        self.number, self.stem, self.title, self.where = number, stem, title, where
        self.exercises = list(exercises)
        self.context = context
        self.objectives, self.depends_on = tuple(objectives), tuple(depends_on)
        self._by_id = {e.id: e for e in self.exercises}
        self._references = {}

    def __repr__(self):
        lines = [f"Chapter {self.number}: {self.title}"]
        for e in self.exercises:
            kind = "checked" if e.checked else "open"
            lines.append(f"  {e.id:>3} ({kind}): {e.question.splitlines()[0]}")
        return "\n".join(lines)

    @property
    def ids(self):
        return [e.id for e in self.exercises]

    def exercise(self, id):
        """The :class:`Exercise` with this id (an int or a string such as ``"2a"``)."""
        key = str(id).strip().lower() if isinstance(id, (int, str)) and not isinstance(id, bool) else None
        if key in self._by_id:
            return self._by_id[key]
        parts = [e.id for e in self.exercises if key and e.id.rstrip("abcdefgh") == key]
        if parts:
            raise ValueError(f"exercise {key} of chapter {self.number} has parts {', '.join(parts)}: "
                             f"check each one, e.g. ex.check({parts[0]!r}, your_answer).")
        raise ValueError(f"chapter {self.number} has no exercise {id!r}; its exercises are "
                         f"{', '.join(self.ids)}.")

    def _reference(self, e):
        if e.id not in self._references:
            self._references[e.id] = e.answer.read(e.reference(self.context), self.context)
        return self._references[e.id]

    def _close(self, e, got, want):
        return got.shape == want.shape and np.allclose(got, want, rtol=e.rtol, atol=e.atol)

    def verdict(self, id, answer):
        """Check ``answer`` against exercise ``id``; return the :class:`Verdict` (nothing shown)."""
        e = self.exercise(id)
        if not e.checked:
            return Verdict(e.id, "open", "an open exercise: there is no single right answer to check. "
                                         f"Compare yours with ex.hint({e.id!r}) and ex.solution({e.id!r}).")
        if answer is Ellipsis:
            name = f"`{e.var} = ...`" if e.var else "the `...`"
            return Verdict(e.id, "unattempted", f"not attempted yet: replace the ... in {name} with your "
                                                f"answer ({e.answer.describe()}), then run this cell again.")
        try:
            try:
                got = e.answer.read(answer, self.context)
            except AnswerError:
                raise
            except Exception as exc:  # noqa: BLE001 - a reader met a form it does not name: say what it met
                raise AnswerError(f"your answer ({_type_name(answer)}) cannot be read: {type(exc).__name__} "
                                  f"({exc}).") from None
            want = None if e.accept is not None else self._reference(e)
        except AnswerError as exc:  # the answer's form, or what the reference needs (Part II's records)
            message = str(exc)
            return Verdict(e.id, "unreadable", "cannot check this answer: " + message[0].lower() + message[1:])
        if e.accept is not None:
            problem = e.accept(got, self.context)
            if problem is None:
                return Verdict(e.id, "correct", ("correct. " + e.correct_note).strip())
        else:
            if self._close(e, got, want):
                return Verdict(e.id, "correct", ("correct. " + e.correct_note).strip())
            problem = None
        for m in e.mistakes:
            if m.detect is not None:
                if m.detect(got, want):
                    return Verdict(e.id, "incorrect", "not yet. " + m.message)
                continue
            try:
                wrong = e.answer.read(m.answer(self.context), self.context)
            except AnswerError:  # pragma: no cover - a mistake that cannot be read is a bug in its declaration
                continue
            if self._close(e, got, wrong):
                return Verdict(e.id, "incorrect", "not yet. " + m.message)
        if problem:
            return Verdict(e.id, "incorrect", "not yet. " + problem)
        return Verdict(e.id, "incorrect", f"not yet: that is not what the library computes. Try ex.hint({e.id!r}).")

    def check(self, id, answer):
        """Check ``answer`` against exercise ``id`` and display what was found. Returns nothing,
        so that it can end a cell."""
        v = self.verdict(id, answer)
        mark = {"correct": "✔", "incorrect": "✘", "unattempted": "…", "unreadable": "?", "open": "·"}[v.status]
        show(f"{mark} {v}", f"**{mark} Exercise {v.exercise}:** {v.message}")

    def hint(self, id):
        e = self.exercise(id)
        show(f"Hint for exercise {e.id}: {e.hint}", f"**Hint for exercise {e.id}:** {e.hint}")

    def solution(self, id):
        e = self.exercise(id)
        text = e.solution_text(self.context)
        show(f"Solution of exercise {e.id}:\n{text}", f"**Solution of exercise {e.id}.** {text}")

    def question(self, id):
        e = self.exercise(id)
        show(f"Exercise {e.id}: {e.question}", f"**Exercise {e.id}.** {e.question}")


@dataclass
class Context:
    """What a chapter's references need beyond the library: its parameters (e.g. the results
    folder of Part II) and a cache for what is expensive to compute."""

    params: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)

    def get(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

"""Checks of arguments and labels, written once for the whole library.

Plain Python and NumPy: they run on values the caller hands over (constructor arguments,
arrays of labels), so their errors are ordinary ``ValueError``s that say what to pass instead.
The losses use :func:`label_format` and the messages here for tensors too, so a bad label reads
the same wherever it is caught.

Example:
    >>> from camri_utils import checks
    >>> checks.check_important_classes([3, 5], n_classes=10)
    (3, 5)
    >>> checks.class_labels([[0.0, 1.0], [0.9, 0.1]])  # label rows: their argmax
    array([1, 0])
    >>> checks.class_labels([0, 2.7], n_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: label 2.7 is not a whole number: labels must be class indices 0..2.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "ROW_SUM_TOLERANCE",
    "check_bool",
    "check_int",
    "check_number",
    "check_fraction",
    "check_env_dir",
    "plain",
    "check_n_classes",
    "check_class_index",
    "check_important_classes",
    "label_format",
    "label_message",
    "class_labels",
    "check_label_rows",
    "from_fields",
]

# How far a label row's sum may be from 1: loose enough for float16 or smoothed rows, tight
# enough to catch counts or unnormalised scores passed as labels.
ROW_SUM_TOLERANCE = 1e-3


def check_bool(value, name):
    """``value`` if it is ``True`` or ``False`` (a NumPy bool too); a string such as
    ``'False'`` would be truthy, and 0/1 are numbers, so both are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r} (a {type(value).__name__}).")
    return bool(value)


def _kind(value):
    return f"{value!r} (a {type(value).__name__})"


def check_int(value, name, minimum=None, maximum=None, none=False):
    """A Python ``int`` from an integer (NumPy integers too, so a value read from an array is
    accepted); booleans, floats and strings are refused. ``none``: None is allowed (returned)."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{' or None' if none else ''}; got {_kind(value)}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {bounds}; got {value}.")
    return value


def check_number(value, name, low=None, high=None, open_low=False, open_high=False):
    """A finite Python ``float`` from a real number (NumPy scalars too); booleans and strings
    (``"0.3"``) are refused. ``low``/``high``: bounds, closed unless ``open_low``/``open_high``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number; got {_kind(value)}.")
    value = float(value)
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and (value >= high if open_high else value > high)
    if not math.isfinite(value) or too_low or too_high:
        interval = (f"{'(' if open_low else '['}{-math.inf if low is None else low:g}, "
                    f"{math.inf if high is None else high:g}{')' if open_high else ']'}")
        raise ValueError(f"{name} must be a finite number in {interval}; got {value!r}.")
    return value


def check_fraction(value, name):
    """A number in the open interval (0, 1), as a float."""
    return check_number(value, name, 0, 1, open_low=True, open_high=True)


def check_env_dir(variable):
    """The folder the environment variable ``variable`` names, or None when it is unset or
    empty. A variable that names nothing, or a file, is an error naming the variable: a typo
    must not silently send the library elsewhere."""
    import os
    from pathlib import Path

    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    folder = Path(text).expanduser()
    if not folder.is_dir():
        what = "a file" if folder.exists() else "nothing (no such folder)"
        raise ValueError(f"the environment variable {variable}={text!r} names {what}; set it to an existing "
                         f"folder, or unset it (unset {variable}).")
    return folder


def plain(value, name="value"):
    """``value`` with NumPy scalars and arrays turned into Python numbers and lists, inside
    dicts, lists and tuples too: what JSON (records, configs) can store. Anything else that
    JSON cannot hold is an error naming ``name``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{name} keys must be strings; got {_kind(k)}.")
            out[k] = plain(v, f"{name}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), name)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{name} must hold numbers, strings, booleans, lists or dicts; got {_kind(value)}.")


def from_fields(cls, values, what):
    """``cls(**values)`` for a dataclass, with a clear error naming any unknown field (a typo
    in a JSON config) instead of a ``TypeError``."""
    import dataclasses

    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} fields: {sorted(unknown)}.")
    return cls(**values)


def check_n_classes(n_classes, name="n_classes"):
    """An integer number of classes >= 2."""
    if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, numbers.Integral) or n_classes < 2:
        raise ValueError(f"{name} must be an integer >= 2; got {n_classes!r}.")
    return int(n_classes)


def _indices(n_classes):
    return "0, 1, 2, ..." if n_classes is None else f"0..{n_classes - 1}"


def check_class_index(value, n_classes=None, name="class index"):
    """An integer in [0, n_classes) (in [0, inf) when ``n_classes`` is None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer class index; got {value!r}.")
    high = math.inf if n_classes is None else n_classes
    if not 0 <= value < high:
        raise ValueError(f"{name} {int(value)} is outside [0, {high}): class indices are {_indices(n_classes)}.")
    return int(value)


def check_important_classes(important_classes, n_classes):
    """A class index or a non-empty sequence of distinct class indices -> tuple of ints."""
    if isinstance(important_classes, (list, tuple, np.ndarray)):
        classes = list(np.asarray(important_classes, dtype=object).ravel())
    elif isinstance(important_classes, numbers.Integral) and not isinstance(important_classes, (bool, np.bool_)):
        classes = [important_classes]
    else:
        raise ValueError("important_classes must be a class index (int) or a sequence of class "
                         f"indices; got {important_classes!r}.")
    if not classes:
        raise ValueError("important_classes is empty; name at least one class index.")
    classes = tuple(check_class_index(c, n_classes, "important class") for c in classes)
    if len(set(classes)) != len(classes):
        raise ValueError(f"important_classes has duplicates: {list(classes)}.")
    return classes


def label_format(shape, n_classes=None, name="labels"):
    """``"indices"`` for labels of shape (N,) or (N, 1), ``"rows"`` for label rows (one-hot,
    soft, or scores) of shape (N, n_classes) (any N x C when ``n_classes`` is None)."""
    shape = tuple(shape)
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return "indices"
    if len(shape) == 2 and (n_classes is None or shape[1] == n_classes):
        return "rows"
    width = "n_classes" if n_classes is None else n_classes
    raise ValueError(
        f"{name} of shape {shape} do not fit {width} classes: give class indices of shape (N,) "
        f"or (N, 1), or one-hot or soft label rows of shape (N, {width})."
    )


def label_message(n_classes=None):
    """What a label must be: the end of every message about a bad label."""
    return f"labels must be class indices {_indices(n_classes)}"


def class_labels(y, n_classes=None, name="labels"):
    """Class indices, int64 of shape (N,), from class indices (N,) or (N, 1), checked to be
    whole numbers in [0, n_classes), or from rows (N, C) (one-hot or soft labels, or scores),
    whose argmax is taken."""
    y = np.asarray(y)
    if label_format(y.shape, n_classes, name) == "rows":
        if y.dtype.kind in "fc" and not np.isfinite(y).all():
            # An argmax over NaN would silently predict class 0: a diverged model is no prediction.
            row = int(np.argmax(~np.isfinite(y).all(axis=1)))
            raise ValueError(f"{name} hold non-finite values (NaN or inf), first in row {row}: scores of a model "
                             "whose training diverged predict nothing; retrain (e.g. a smaller learning rate).")
        return np.argmax(y, axis=1)
    y = y.reshape(-1)
    prefix = "" if name == "labels" else f"{name}: "
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"{prefix}{label_message(n_classes)}; got values of type {y.dtype}.")
    whole = np.isfinite(y) & (np.mod(y, 1) == 0) if y.dtype.kind == "f" else np.ones(y.shape, bool)
    if not whole.all():
        raise ValueError(f"{prefix}label {float(y[~whole][0]):g} is not a whole number: "
                         f"{label_message(n_classes)}.")
    y = y.astype(np.int64)
    high = math.inf if n_classes is None else n_classes
    outside = (y < 0) | (y >= high)
    if outside.any():
        raise ValueError(f"{prefix}label {y[outside][0]} is outside [0, {high}): {label_message(n_classes)}.")
    return y


def check_label_rows(rows, name="label rows"):
    """Label rows (N, C) that are probability distributions: >= 0 and summing to 1 (within
    :data:`ROW_SUM_TOLERANCE`). One-hot rows and smoothed or mixed labels pass."""
    rows = np.asarray(rows, dtype=np.float64)
    sums = rows.sum(axis=1)
    bad = ~(np.all(rows >= 0, axis=1) & (np.abs(sums - 1.0) <= ROW_SUM_TOLERANCE))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name} must be >= 0 and sum to 1 (one-hot or soft labels); row {i} sums to "
            f"{sums[i]:g} with smallest entry {rows[i].min():g}. For class indices, give shape (N,)."
        )
    return rows

"""Compact score files: of a run's (N, C) scores, what its analyses read, and no more.

A protocol run stores its test (and, for the shared runs, validation) scores as float16
arrays of N images by C classes; with many classes (GTSRB's 43) they make up most of a results
folder. The analyses of a run whose scores draw no threshold curve read, per image, only

- its best and second-best class and their scores (``<name>_top``, ``<name>_top_scores``): the
  prediction (the argmax: every metric, every confusion matrix) and, for any class, the best
  other class and its score (the angle code's decision gaps, a threshold curve's switch points);
- the score of its own class (``<name>_own``): its angle to its own class weight;
- the scores of a few classes for every image (``<name>_columns``, the classes in
  ``stored_classes``): a class-specific run keeps its important class, so that its own
  threshold curve stays exact.

:func:`compact` writes those, the very float16 values of the full arrays; :func:`expand`
rebuilds from them a dense (N, C) float32 array equal to the full one in every stored entry and
holding, everywhere else, one stand-in value below every stored score. The argmax, the best
other class of a stored class (ties broken as the argmax breaks them: the lower index wins) and
every own-class score are then the full array's, bit for bit: the same float16 values feed the
same float64 arithmetic. The dense array is a :class:`PartialScores`, which carries
``stored_classes``; :func:`camri_utils.protocol.curves.threshold_curve` refuses any other class.

The runs whose curves the analyses draw keep their full scores (:data:`FULL_METHODS`): CE and
normalized softmax are written before the CE ranking names the important classes, and CE's
post-hoc logit adjustment shifts every class. NumPy only: the lowest layer of the protocol.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FULL_METHODS", "SCORE_ARRAYS", "PartialScores", "compact", "is_compact", "expand", "compact_keys"]

# Methods (record labels) whose scores stay full in a compact folder: the threshold curves'
# sources (CE, normalized softmax: THRESHOLD_SOURCES of .selection) and post-hoc logit
# adjustment's (CE).
FULL_METHODS = ("CE", "NormSoftmax")
# The score arrays a record may store, each with the labels of its rows.
SCORE_ARRAYS = {"test": "y_test", "validation": "y_validation", "test_cosines": "y_test"}
_PARTS = ("top", "top_scores", "own", "columns")
_MARKER = "stored_classes"


class PartialScores(np.ndarray):
    """A dense (N, C) array rebuilt from compact scores (:func:`expand`): every image's scores
    of ``stored_classes``, of its own class and of its two best classes are the stored ones;
    the others are a stand-in below them all."""

    def __array_finalize__(self, obj):
        self.stored_classes = getattr(obj, "stored_classes", None)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # Scaled scores stay scores (and keep stored_classes); a reduction (a max, a mean, an
        # argmax) is a plain array or number.
        if array.shape == self.shape:
            return super().__array_wrap__(array, context, return_scalar)
        array = array.view(np.ndarray)
        return array[()] if return_scalar or array.ndim == 0 else array

    def argmax(self, *args, **kwargs):  # class indices, not scores
        return self.view(np.ndarray).argmax(*args, **kwargs)

    def argmin(self, *args, **kwargs):
        return self.view(np.ndarray).argmin(*args, **kwargs)


def compact_keys(name):
    """The arrays of a compact file that stand for the score array ``name``."""
    return [f"{name}_{part}" for part in _PARTS]


def is_compact(arrays):
    """Whether the arrays read from a score file are in the compact layout."""
    return _MARKER in arrays


def compact(arrays, classes=()):
    """The compact layout of a run's score file ``arrays`` ({name: array}, the full layout:
    float16 scores (N, C), their labels, class weights): every score array of
    :data:`SCORE_ARRAYS` replaced by its best two classes and scores, its own-class score and the
    scores of ``classes`` for every image; the other arrays kept as they are."""
    n_classes = {np.asarray(arrays[name]).shape[-1] for name in SCORE_ARRAYS if name in arrays}
    if len(n_classes) != 1 or min(n_classes) < 2:
        raise ValueError(f"compact needs score arrays (N, C) with one C >= 2; got {sorted(n_classes)} classes.")
    n = n_classes.pop()
    kept = sorted({int(c) for c in classes})
    if any(not 0 <= c < n for c in kept):
        raise ValueError(f"classes to keep must lie in [0, {n}); got {list(classes)!r}.")
    out = {key: value for key, value in arrays.items() if key not in SCORE_ARRAYS}
    out[_MARKER] = np.asarray(kept, np.int16)
    index = np.uint8 if n <= 256 else np.uint16
    for name, label in SCORE_ARRAYS.items():
        if name not in arrays:
            continue
        scores, y = np.asarray(arrays[name]), np.asarray(arrays[label]).astype(np.int64)
        if scores.dtype != np.float16 or scores.ndim != 2 or y.shape != (len(scores),):
            raise ValueError(f"{name} must be float16 scores (N, C) with one label per row (what a run stores); "
                             f"got {scores.dtype} {scores.shape} and labels {y.shape}.")
        rows = np.arange(len(scores))
        first = scores.argmax(axis=1)  # the lower index wins a tie, as every argmax of the analyses
        rest = scores.astype(np.float32)
        rest[rows, first] = -np.inf
        second = rest.argmax(axis=1)
        out[f"{name}_top"] = np.column_stack([first, second]).astype(index)
        out[f"{name}_top_scores"] = np.column_stack([scores[rows, first], scores[rows, second]])
        out[f"{name}_own"] = scores[rows, y]
        out[f"{name}_columns"] = scores[:, kept]
    return out


def _labels_problem(y, label, n):
    if y.ndim != 1 or y.dtype.kind not in "iu":
        return f"its {label!r} array is not one class index per image"
    if len(y) and (y.min() < 0 or y.max() >= n):
        return f"its {label} labels are not class indices 0..{n - 1}"
    return None


def expand(arrays, n_classes, required=("test",)):
    """(arrays in the full layout, None) from a compact file's ``arrays`` (float16 values
    already read as float32) for ``n_classes`` classes, each score array a
    :class:`PartialScores`; or (None, what is wrong) where the file is not a consistent compact
    file: an array missing (those of every name in ``required``, and of any other name it
    has), of the wrong shape or kind, stored classes outside the classes or repeated, or scores
    that disagree with each other (an entry stored twice with two values, top-2 classes that
    are not the two best)."""
    kept = arrays[_MARKER]
    if kept.ndim != 1 or kept.dtype.kind not in "iu":
        return None, f"its {_MARKER!r} array is not a list of class indices"
    kept = kept.astype(np.int64)
    if np.any(kept < 0) or np.any(kept >= n_classes) or np.any(np.diff(kept) <= 0):
        return None, (f"its stored classes {kept.tolist()} are not distinct class indices 0..{n_classes - 1} in "
                      "increasing order")
    out = {key: value for key, value in arrays.items()
           if key != _MARKER and not any(key in compact_keys(name) for name in SCORE_ARRAYS)}
    for name, label in SCORE_ARRAYS.items():
        keys = compact_keys(name)
        if name not in required and not any(k in arrays for k in keys):
            continue
        for key in [*keys, label]:
            if key not in arrays:
                return None, f"it has no {key!r} array (a compact file stores {', '.join(map(repr, keys))})"
        y = arrays[label]
        problem = _labels_problem(y, label, n_classes)
        if problem:
            return None, problem
        n = len(y)
        top, top_scores, own, columns = (arrays[k] for k in keys)
        shapes = {keys[0]: (n, 2), keys[1]: (n, 2), keys[2]: (n,), keys[3]: (n, len(kept))}
        for key, value in zip(keys, (top, top_scores, own, columns)):
            if value.shape != shapes[key]:
                return None, (f"its {key!r} array has shape {value.shape}, not {shapes[key]} (for {n} images and "
                              f"{len(kept)} stored classes)")
            if value.dtype.kind not in ("iu" if key == keys[0] else "f"):
                return None, (f"its {key!r} array holds {value.dtype}, not "
                              f"{'class indices' if key == keys[0] else 'scores'}")
        top = top.astype(np.int64)
        if n and (top.min() < 0 or top.max() >= n_classes or np.any(top[:, 0] == top[:, 1])):
            return None, f"its {keys[0]!r} array is not two distinct class indices 0..{n_classes - 1} per image"
        values = [top_scores, own, columns]
        if not all(np.isfinite(v).all() for v in values):
            return None, f"its {name} scores hold non-finite values (NaN or inf)"
        rows = np.arange(n)
        lowest = min([float(v.min()) for v in values if v.size] or [0.0])
        dense = np.full((n, n_classes), np.floor(lowest) - 1, np.float32)
        dense[:, kept] = columns
        dense[rows, y] = own
        dense[rows, top[:, 1]] = top_scores[:, 1]
        dense[rows, top[:, 0]] = top_scores[:, 0]
        rest = dense.copy()
        rest[rows, top[:, 0]] = -np.inf
        if not (np.array_equal(dense[:, kept], columns) and np.array_equal(dense[rows, y], own)
                and np.array_equal(dense.argmax(axis=1), top[:, 0]) and np.array_equal(rest.argmax(axis=1), top[:, 1])):
            return None, (f"its {name} arrays disagree with each other (a score stored twice with two values, or "
                          "top-2 classes that are not each image's two best)")
        dense = dense.view(PartialScores)
        dense.stored_classes = tuple(int(c) for c in kept)
        out[name] = dense
    return out, None

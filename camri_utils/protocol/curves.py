"""Threshold moving, computed exactly, and how a trained setting compares with it.

Adding a bias ``b`` to class ``c``'s score changes a prediction only where ``b`` crosses
``-d_i``, with ``d_i`` image i's score of ``c`` minus its best other score: sort the images by
``d`` and the whole curve of (accuracy, recall of c, precision of c) over every bias, negative
ones included, is a list of states, one per gap between consecutive switch points. No grid.

A setting is compared, per seed, with the curve of a reference model of the same seed on two
axes: its recall beyond the best recall the curve reaches at an accuracy at least its own, and
its accuracy beyond the best accuracy the curve reaches at a recall at least its own (plus
precision at the same recall). Where the setting is more accurate than every point of the
curve, the recall axis is undefined (NaN: "beyond the curve's end") and the accuracy axis
carries the comparison; no substitute value is ever reported. Per seed the two axes agree in
sign (the best-recall and best-accuracy frontiers are the same staircase): a setting is
*above* the curve when it beats it on one axis and is not worse on the other, *on* it when it
lies on the staircase, *below* otherwise. Their means over seeds need not agree in sign (the
axes are measured in different units and weigh the seeds differently).

The test curve's best point is an **oracle**: no practitioner can pick a bias on the test
images, so it is the upper bound of threshold moving (the envelope). Beside it,
:func:`out_of_sample` is the reference a practitioner can reach: the bias chosen on the same
reference model's *validation* curve to reach the setting's validation recall (respectively
accuracy), then scored on test. :func:`verdict` reads the two together: a setting is "above"
threshold moving only when it is above the oracle, "below" only when it is below the
out-of-sample reference, and otherwise not told apart from it.

Over seeds, differences are paired and summarised by a Student-t interval
(:func:`camri_utils.stats.paired_t`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The paired Student-t interval lives with the other statistics over seeds; importable from here
# too, as the chapters call it.
from camri_utils.stats import paired_t

__all__ = ["Curve", "threshold_curve", "moved_metrics", "choose_bias", "mean_curve", "frontier", "compare",
           "validation_bias", "out_of_sample", "verdict", "paired_t", "POSITIONS", "VERDICTS"]

POSITIONS = ("above", "on", "below")
# The three-way verdict against threshold moving, over seeds (see :func:`verdict`).
VERDICTS = ("above", "not told apart", "below")
_EPS = 1e-9  # metrics are ratios of counts: differences below this are equalities


@dataclass(frozen=True)
class Curve:
    """The exact threshold-moving curve of one model's scores for class ``c``: one entry per
    state, in increasing bias: before the first switch point, then for each switch point p the
    state at b = p and the one just after it. ``bias`` is a bias giving the state (in the
    units of the scores times ``scale``), ``switch`` the sorted switch points."""

    c: int
    bias: np.ndarray
    accuracy: np.ndarray
    recall: np.ndarray
    precision: np.ndarray  # NaN where nothing is predicted as c
    switch: np.ndarray

    def __len__(self):
        return len(self.bias)

    def state(self, bias):
        """The index of the state each of ``bias`` (an array) falls in."""
        bias = np.asarray(bias, float)
        below = np.searchsorted(self.switch, bias, side="left")  # switch points < bias
        exact = (below < len(self.switch)) & (self.switch[np.minimum(below, len(self.switch) - 1)] == bias)
        return 2 * below + exact


def _scores(scores, y, c, scale):
    stored = getattr(scores, "stored_classes", None)  # compact scores (.compact.PartialScores)
    s = np.asarray(scores, np.float64) * float(scale)
    y = np.asarray(y).astype(np.int64).ravel()
    if s.ndim != 2 or s.shape[0] != y.shape[0] or s.shape[0] == 0:
        raise ValueError(f"scores must be (N, C) with one label per row; got scores {s.shape}, labels {y.shape}.")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or infinite values (a diverged run?): no threshold curve.")
    n_classes = s.shape[1]
    if not (isinstance(c, (int, np.integer)) and 0 <= c < n_classes):
        raise ValueError(f"class {c!r} is outside [0, {n_classes}).")
    if stored is not None and c not in stored:
        raise ValueError(f"these scores were stored compactly (a protocol with score_storage 'compact'): every image's "
                         f"score is kept for classes {list(stored)} only, so class {c}'s threshold curve cannot be "
                         "computed exactly. Take the curve of a run that stores its scores in full (CE, normalized "
                         f"softmax) or of one made for class {c}.")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}).")
    if not (y == c).any():
        raise ValueError(f"no image of class {c}: its recall is undefined.")
    return s, y


def threshold_curve(scores, y, c, scale=1.0):
    """The exact curve of ``scores`` (N, C; cosines of a cosine head are multiplied by
    ``scale``, so biases are in logit units) and labels ``y`` for class ``c``. At a bias equal
    to a switch point, ties are broken as the argmax breaks them (the lower class index wins),
    so that state is on the curve too."""
    s, y = _scores(scores, y, c, scale)
    n = len(y)
    other = s.copy()
    other[:, c] = -np.inf
    best = other.argmax(axis=1)
    switch = -(s[:, c] - other[np.arange(n), best])  # image i is predicted c once b > switch_i
    late = (best < c).astype(np.int64)  # at b == switch_i exactly, c wins the tie only if c < best
    order = np.lexsort((late, switch))
    sorted_switch, late = switch[order], late[order]
    # Switch points that differ by rounding only (equal scores computed two ways) are one.
    new_point = np.diff(sorted_switch) > 1e-9 * np.maximum(1.0, np.abs(sorted_switch[1:]))
    group = np.concatenate([[0], np.cumsum(new_point)])
    points = sorted_switch[np.concatenate([[0], np.flatnonzero(new_point) + 1])]
    is_c = (y == c)[order]
    # Switching an image to c: right if it is a c, wrong if its other class was right.
    delta = is_c.astype(np.int64) - ((best == y) & (y != c))[order].astype(np.int64)
    # States: before every point; then per point p: at b == p (the tie winners switched), after p.
    event = 2 * group + late  # images switched by the end of state 2g+1 have event <= 2g
    cut = np.searchsorted(event, np.arange(2 * len(points)), side="right")  # switched count per state
    base = np.sum(best == y)
    csum_delta, csum_c = np.concatenate([[0], np.cumsum(delta)]), np.concatenate([[0], np.cumsum(is_c)])
    counts = np.concatenate([[0], cut])
    correct = base + csum_delta[counts]
    tp = csum_c[counts]
    mids = np.append((points[:-1] + points[1:]) / 2, points[-1] + 1.0)
    bias = np.concatenate([[points[0] - 1.0], np.column_stack([points, mids]).ravel()])
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(counts > 0, tp / np.maximum(counts, 1), np.nan)
    return Curve(int(c), bias, correct / n, tp / is_c.sum(), precision, points)


def moved_metrics(scores, y, c, bias, scale=1.0):
    """Accuracy, recall and precision of class ``c`` after adding ``bias`` to its (scaled)
    score: the argmax itself, so it agrees with the records' metrics at any bias."""
    s, y = _scores(scores, y, c, scale)
    s[:, c] += bias
    pred = s.argmax(axis=1)
    tp = np.sum((pred == c) & (y == c))
    n_pred = np.sum(pred == c)
    return {"accuracy": float(np.mean(pred == y)), "recall": float(tp / np.sum(y == c)),
            "precision": float(tp / n_pred) if n_pred else float("nan")}


def choose_bias(curves, threshold):
    """The protocol's rule applied to threshold moving, exactly: one bias for all seeds (as
    for a trained setting), among the biases whose mean accuracy over ``curves`` (one per
    seed, on validation) is at least ``threshold``, the one with the highest mean recall (ties:
    higher accuracy, then the bias nearest 0). Returns (bias, mean accuracy, mean recall), or
    None when no bias keeps the threshold."""
    if not curves:
        raise ValueError("no curves to choose a bias on.")
    points = np.unique(np.concatenate([cv.switch for cv in curves]))
    mids = np.append((points[:-1] + points[1:]) / 2, points[-1] + 1.0)
    bias = np.concatenate([[points[0] - 1.0], np.column_stack([points, mids]).ravel()])
    acc = np.mean([cv.accuracy[cv.state(bias)] for cv in curves], axis=0)
    rec = np.mean([cv.recall[cv.state(bias)] for cv in curves], axis=0)
    ok = acc >= threshold - _EPS
    if not ok.any():
        return None
    i = min(np.flatnonzero(ok), key=lambda k: (-round(rec[k], 12), -round(acc[k], 12), abs(bias[k])))
    return float(bias[i]), float(acc[i]), float(rec[i])


def mean_curve(curves, points=1500):
    """The curve one bias for all seeds traces (as :func:`choose_bias` picks on), for figures: at
    ``points`` biases spread over the seeds' switch points by quantile, and at both ends, the
    mean over ``curves`` of the exact accuracy, recall and precision (a DataFrame)."""
    import pandas as pd

    if not curves:
        raise ValueError("no curves to average.")
    switch = np.unique(np.concatenate([cv.switch for cv in curves]))
    inner = np.quantile(switch, np.linspace(0, 1, points))
    bias = np.unique(np.concatenate([[switch[0] - 1.0], (inner[:-1] + inner[1:]) / 2, [switch[-1] + 1.0]]))
    import warnings

    states = [cv.state(bias) for cv in curves]
    with warnings.catch_warnings():  # precision is undefined (NaN) in every seed where nothing is predicted as c
        warnings.simplefilter("ignore", RuntimeWarning)
        return pd.DataFrame({"bias": bias,
                             **{m: np.nanmean([getattr(cv, m)[st] for cv, st in zip(curves, states)], axis=0)
                                for m in ("accuracy", "recall", "precision")}})


def frontier(curve, accuracy=None, recall=None):
    """The curve's best: ``accuracy=a`` gives the highest recall reached at an accuracy of at
    least ``a`` (NaN beyond the curve's end); ``recall=r`` gives the highest accuracy and the
    highest precision reached at a recall of at least ``r`` (a pair)."""
    if (accuracy is None) == (recall is None):
        raise ValueError("pass exactly one of accuracy= and recall=.")
    if accuracy is not None:
        keep = curve.accuracy >= accuracy - _EPS
        return float(curve.recall[keep].max()) if keep.any() else float("nan")
    keep = curve.recall >= recall - _EPS  # never empty: recall 1 is reached at a large bias
    precision = curve.precision[keep]
    return float(curve.accuracy[keep].max()), (float(np.nanmax(precision)) if np.isfinite(precision).any()
                                               else float("nan"))


def compare(point, curve):
    """One setting's test ``point`` ({accuracy, recall, precision}) against one curve:
    ``recall_gap`` (recall beyond the curve at the same accuracy; NaN where the point is more
    accurate than the whole curve), ``accuracy_gap`` (accuracy beyond the curve at the same
    recall), ``precision_gap`` (precision beyond the curve at the same recall) and
    ``position``: above, on or below."""
    at_accuracy = frontier(curve, accuracy=point["accuracy"])
    best_accuracy, best_precision = frontier(curve, recall=point["recall"])
    accuracy_gap = point["accuracy"] - best_accuracy
    recall_gap = point["recall"] - at_accuracy
    if accuracy_gap > _EPS:
        position = "above"
    elif abs(accuracy_gap) <= _EPS and abs(recall_gap) <= _EPS:
        position = "on"
    else:
        position = "below"
    return {"recall_gap": float(recall_gap), "accuracy_gap": float(accuracy_gap),
            "precision_gap": float(point["precision"] - best_precision), "position": position,
            "beyond_end": bool(np.isnan(at_accuracy))}


def validation_bias(curve, accuracy=None, recall=None):
    """The bias a practitioner would pick on ``curve`` (a reference model's *validation* curve)
    to match a setting's validation point, as a state between switch points (a bias inside an
    open interval: one a practitioner can set without knowing the test images' switch points).

    ``recall=r``: the recall levels (runs of states of equal recall, between two images of the
    class) with a recall at least ``r``, each represented by its middle state; the most
    accurate of them (ties: the higher recall). The middle, not the level's most accurate
    first state: a point inside a level (as any bias on the reference's own curve is) must not
    be compared with the level's best corner, which on fresh images has less recall.
    ``accuracy=a``: where accuracy falls below ``a`` on the far side of the curve's most accurate
    state: of the states at least as accurate as ``a`` from the last one before the first fall
    below it to the last one at all (the highest recall at accuracy >= a), the middle one; the
    middle again, as the last state is the luckiest of a noisy crossing.
    Returns the state's representative bias, or None where no state qualifies (a setting more
    accurate than the whole curve)."""
    if (accuracy is None) == (recall is None):
        raise ValueError("pass exactly one of accuracy= and recall=.")
    for name, value in (("accuracy", accuracy), ("recall", recall)):
        if value is not None and not (isinstance(value, (int, float, np.floating)) and np.isfinite(value)):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
    states = np.arange(0, len(curve), 2)  # between switch points
    acc, rec = curve.accuracy[states], np.round(curve.recall[states], 12)
    if accuracy is not None:
        keep = np.flatnonzero(acc >= accuracy - _EPS)
        if not len(keep):
            return None
        last = keep[-1]  # recall is non-decreasing in the bias: the highest recall at accuracy >= a
        # Past the most accurate state, accuracy falls below a for the first time at `first`; the
        # crossing zone between it and `last` is noise, and its middle is the crossing.
        peak = int(np.argmax(acc))
        below = np.flatnonzero(acc[peak:] < accuracy - _EPS)
        first = peak + below[0] - 1 if len(below) else last
        zone = keep[keep >= min(first, last)]  # the states still at accuracy >= a in the crossing zone
        return float(curve.bias[states[zone[(len(zone) - 1) // 2]]])
    return _best_level(curve, recall, "accuracy")


def _best_level(curve, recall, metric):
    """The representative bias of the recall level, at recall >= ``recall``, whose middle state
    is best in ``metric`` (ties: the higher recall); None if none."""
    states = np.arange(0, len(curve), 2)
    rec = np.round(curve.recall[states], 12)
    value = np.nan_to_num(getattr(curve, metric)[states], nan=-np.inf)  # precision: NaN where nothing is predicted
    level_start = np.flatnonzero(np.concatenate([[True], rec[1:] != rec[:-1]]))
    level_end = np.append(level_start[1:], len(states)) - 1
    middle = (level_start + level_end) // 2
    keep = middle[rec[middle] >= recall - _EPS]
    if not len(keep):
        return None
    i = min(keep, key=lambda k: (-round(value[k], 12), -rec[k], k))
    return float(curve.bias[states[i]])


def out_of_sample(validation_point, test_point, validation_curve, test_curve):
    """One setting against the threshold moving a practitioner can do without the test set: the
    reference model's bias chosen on its validation curve (:func:`validation_bias`) to reach
    the setting's validation recall, respectively accuracy, then scored on the reference's test
    scores (``test_curve``, same model and class). ``validation_point`` and ``test_point`` are the
    setting's ({accuracy, recall, precision}; precision only on test).

    Returns ``oos_accuracy_gap`` (the setting's test accuracy minus the reference's at the bias
    chosen for the setting's validation recall), ``oos_precision_gap`` (test precision minus the
    reference's at its own bias chosen the same way for precision: the recall level, at a
    validation recall at least the setting's, of best precision),
    ``oos_recall_offset`` (the setting's test recall minus the reference's at that bias: where
    the two land on test, as the bias was matched on validation), ``oos_recall_gap`` (test
    recall minus the reference's at the bias chosen for the setting's validation accuracy; NaN
    where the setting is more accurate on validation than the whole validation curve,
    ``oos_beyond_end``), ``oos_accuracy_offset`` (test accuracy minus the reference's at that
    bias) and the two biases (``oos_bias_recall``, ``oos_bias_accuracy``)."""
    if validation_curve.c != test_curve.c:
        raise ValueError(f"the validation curve is of class {validation_curve.c}, the test curve of class "
                         f"{test_curve.c}: pass one reference model's two curves of the same class.")
    for name, point, keys in (("validation_point", validation_point, ("accuracy", "recall")),
                              ("test_point", test_point, ("accuracy", "recall", "precision"))):
        missing = [k for k in keys if k not in point]
        if missing:
            raise ValueError(f"{name} lacks {', '.join(missing)}: pass a dict with {', '.join(keys)}.")
    b_recall = validation_bias(validation_curve, recall=validation_point["recall"])
    if b_recall is None:  # recall 1 is reached at a large bias: only a recall above 1 gets here
        raise ValueError(f"validation_point's recall {validation_point['recall']!r} is above 1.")
    i = test_curve.state(np.array([b_recall]))[0]
    # Precision, as the oracle's: the best at a recall at least the setting's, its own bias.
    k = test_curve.state(np.array([_best_level(validation_curve, validation_point["recall"], "precision")]))[0]
    out = {"oos_accuracy_gap": float(test_point["accuracy"] - test_curve.accuracy[i]),
           "oos_precision_gap": float(test_point["precision"] - test_curve.precision[k]),
           "oos_recall_offset": float(test_point["recall"] - test_curve.recall[i]),
           "oos_bias_recall": b_recall}
    b_accuracy = validation_bias(validation_curve, accuracy=validation_point["accuracy"])
    if b_accuracy is None:
        out.update(oos_recall_gap=float("nan"), oos_accuracy_offset=float("nan"), oos_bias_accuracy=float("nan"),
                   oos_beyond_end=True)
    else:
        j = test_curve.state(np.array([b_accuracy]))[0]
        out.update(oos_recall_gap=float(test_point["recall"] - test_curve.recall[j]),
                   oos_accuracy_offset=float(test_point["accuracy"] - test_curve.accuracy[j]),
                   oos_bias_accuracy=b_accuracy, oos_beyond_end=False)
    return out


def verdict(oracle_interval, out_of_sample_interval):
    """The three-way verdict of a setting against threshold moving, from paired Student-t
    intervals (low, high) over seeds of one gap measured against the two references (the book
    reads accuracy at the same recall, defined for every seed): "above" when the gap to the
    oracle (the test curve's best) lies wholly above zero; "below" when the gap to the
    out-of-sample reference lies wholly below zero; otherwise "not told apart" (from threshold
    moving), which includes the case of no interval (fewer than 2 seeds: NaN bounds) and the
    contradictory one of both."""
    o_low, o_high = (float(v) for v in oracle_interval)
    s_low, s_high = (float(v) for v in out_of_sample_interval)
    if (not np.isnan(o_low) and not np.isnan(o_high) and o_low > o_high) or \
            (not np.isnan(s_low) and not np.isnan(s_high) and s_low > s_high):
        raise ValueError(f"an interval is (low, high) with low <= high; got {oracle_interval!r} and "
                         f"{out_of_sample_interval!r}.")
    above = o_low > _EPS  # NaN compares False: no interval, no verdict
    below = s_high < -_EPS
    if above == below:
        return "not told apart"
    return "above" if above else "below"


"""Angles between features and class weights.

CAMRI's claim, in geometry: the important class's features gather closer to, and more tightly
around, their class weight. These functions measure that from the features of a trained model
(the input of its :class:`~camri_utils.layers.CosineHead`) and the head's class weights. All in
float64 NumPy; angles in degrees unless ``degrees=False``.

A zero feature vector has cosine 0 with every class (angle 90 degrees), as in the head.

Example:
    >>> import numpy as np
    >>> from camri_utils import angles
    >>> weights = np.array([[1.0, 0.0], [0.0, 1.0]])          # (d, C): class 0 along x, class 1 along y
    >>> features = np.array([[1.0, 0.1], [0.2, 1.0], [1.0, -0.2]])
    >>> np.round(angles.own_class_angles(features, weights, [0, 1, 0]), 2)
    array([ 5.71, 11.31, 11.31])
    >>> stats = angles.per_class_angle_stats(features, weights, [0, 1, 0])
    >>> stats.round(2)
           count   mean    var
    class
    0          2   8.51   7.84
    1          1  11.31   0.00
    >>> float(angles.relative_variance(stats, 1).iloc[0])
    0.0
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import pandas as pd

from camri_utils import checks
from camri_utils.layers import CosineHead, unit_vectors
# The statistics over seeds live in camri_utils.stats; kept importable from here, where the
# chapters first met them.
from camri_utils.stats import VERDICTS, mean_interval, paired_verdict

__all__ = [
    "class_weights_of",
    "feature_class_angles",
    "own_class_angles",
    "per_class_angle_stats",
    "relative_variance",
    "angles_from_cosines",
    "weight_angles",
    "nearest_weight_angle",
    "decision_gap",
    "share_past_pi",
    "own_angles_from_cosines",
    "cosine_angle_stats",
    "relative_mean",
    "nearest_weight_angles",
    "class_geometry",
    "mean_interval",
    "epoch_angle_arrays",
    "QUANTILES",
    "spread",
    "class_spread",
    "paired_verdict",
    "VERDICTS",
]


def class_weights_of(model):
    """The class-weight matrix (d, n_classes) of a model's classifier: the last
    :class:`CosineHead`, or else a final ``Dense`` layer (a cross-entropy baseline, whose
    bias is ignored). ``model`` may also be the head layer itself. Returned as float64."""
    if isinstance(model, (CosineHead, keras.layers.Dense)):
        head = model
    else:
        layers = getattr(model, "layers", [])
        heads = [layer for layer in layers if isinstance(layer, CosineHead)]
        if heads:
            head = heads[-1]
        elif layers and isinstance(layers[-1], keras.layers.Dense):
            head = layers[-1]
        else:
            raise ValueError(
                "the model has no CosineHead and does not end in a Dense layer; angles need "
                "class weight vectors."
            )
    return np.asarray(keras.ops.convert_to_numpy(head.kernel), dtype=np.float64)


def feature_class_angles(features, class_weights, degrees=True):
    """Angle between every feature (N, d) and every class weight (columns of a (d, C) matrix):
    shape (N, C)."""
    z = np.asarray(features, dtype=np.float64)
    w = np.asarray(class_weights, dtype=np.float64)
    if z.ndim != 2 or w.ndim != 2 or z.shape[1] != w.shape[0]:
        raise ValueError(
            f"features must be (N, d) and class_weights (d, C) with the same d; got "
            f"{z.shape} and {w.shape}."
        )
    cos = np.clip(unit_vectors(z, 1) @ unit_vectors(w, 0), -1.0, 1.0)
    theta = np.arccos(cos)
    return np.degrees(theta) if degrees else theta


def _labels(labels, n, n_classes):
    y = checks.class_labels(labels, n_classes)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) (one per feature); got {np.asarray(labels).shape}.")
    return y


def own_class_angles(features, class_weights, labels, degrees=True):
    """Angle between each feature and the weight of its own class: shape (N,)."""
    angles = feature_class_angles(features, class_weights, degrees)
    y = _labels(labels, angles.shape[0], angles.shape[1])
    return angles[np.arange(len(y)), y]


def per_class_angle_stats(features, class_weights, labels, degrees=True, class_names=None):
    """Per class: number of samples, mean and variance (population, ddof=0) of the angle
    between each sample's feature and its own class weight."""
    angles = feature_class_angles(features, class_weights, degrees)
    return _stats_frame(angles, labels, degrees, class_names)


def _stats_frame(angles, labels, degrees, class_names):
    n_classes = angles.shape[1]
    y = _labels(labels, angles.shape[0], n_classes)
    own = angles[np.arange(len(y)), y]
    frame = pd.DataFrame({"class": y, "angle": own})
    stats = frame.groupby("class")["angle"].agg(count="size", mean="mean", var=lambda a: np.var(a))
    stats = stats.reindex(range(n_classes))
    stats["count"] = stats["count"].fillna(0).astype(int)
    if class_names is not None:
        if len(class_names) != n_classes:
            raise ValueError(f"class_names has {len(class_names)} names but there are {n_classes} classes.")
        stats.insert(0, "name", list(class_names))
    stats.attrs["unit"] = "degrees" if degrees else "radians"
    return stats


def _relative(stats, important_classes, column, name):
    if isinstance(important_classes, (numbers.Integral, np.integer)):
        important_classes = [important_classes]
    important = [checks.check_class_index(c, len(stats), "important class") for c in important_classes]
    others = stats.drop(index=important)[column].dropna()
    if others.empty:
        raise ValueError("no other class with samples to compare the important classes with.")
    ratio = stats.loc[important, column] / others.mean()
    ratio.name = name
    return ratio


def relative_variance(stats, important_classes):
    """Variance of each important class's angle divided by the mean variance of the other
    classes (from :func:`per_class_angle_stats`). Below 1: the important class is tighter."""
    return _relative(stats, important_classes, "var", "relative_variance")


def relative_mean(stats, important_classes):
    """Mean angle of each important class divided by the mean of the other classes' mean
    angles (from :func:`per_class_angle_stats` or :func:`cosine_angle_stats`). Below 1: the
    important class sits closer to its weight than the others do to theirs."""
    return _relative(stats, important_classes, "mean", "relative_mean")


# ----------------------------------------------------------------------------------------------
# From stored cosines (a run's cosines of each feature with each class weight) and class weights
# ----------------------------------------------------------------------------------------------
def angles_from_cosines(cosines, degrees=True):
    """Angles (N, C) from cosines (N, C), clipped to [-1, 1] first (stored float16 cosines may
    overshoot by a rounding step)."""
    cos = np.asarray(cosines, dtype=np.float64)
    if cos.ndim != 2:
        raise ValueError(f"cosines must be (N, C); got shape {cos.shape}.")
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    return np.degrees(theta) if degrees else theta


def weight_angles(class_weights, degrees=True):
    """The angle between every pair of class weights (columns of a (d, C) matrix): (C, C), zero
    on the diagonal."""
    w = unit_vectors(np.asarray(class_weights, dtype=np.float64), axis=0)
    if w.ndim != 2:
        raise ValueError(f"class_weights must be (d, C); got shape {w.shape}.")
    theta = np.arccos(np.clip(w.T @ w, -1.0, 1.0))
    np.fill_diagonal(theta, 0.0)
    return np.degrees(theta) if degrees else theta


def nearest_weight_angles(class_weights, degrees=True):
    """For every class: the angle from its weight to the nearest other class weight, and that
    class. Two arrays of shape (C,)."""
    theta = weight_angles(class_weights, degrees)
    if theta.shape[0] < 2:
        raise ValueError(f"a nearest class weight needs at least 2 classes; got {theta.shape[0]}.")
    off = theta + np.diag(np.full(theta.shape[0], np.inf))  # a weight is not its own neighbour
    nearest = np.argmin(off, axis=1)
    return off[np.arange(len(nearest)), nearest], nearest


def nearest_weight_angle(class_weights, c, degrees=True):
    """(angle, class) of the class weight nearest to class ``c``'s weight."""
    theta, nearest = nearest_weight_angles(class_weights, degrees)
    c = checks.check_class_index(c, theta.shape[0], "class")
    return float(theta[c]), int(nearest[c])


def decision_gap(cosines, labels, c, degrees=True):
    """For the samples of class ``c``: the angle to the nearest *other* class weight minus the
    angle to their own weight. Positive: the sample is on its own side of every boundary, by
    that many degrees; negative: it is misclassified."""
    theta = angles_from_cosines(cosines, degrees)
    y = _labels(labels, theta.shape[0], theta.shape[1])
    c = checks.check_class_index(c, theta.shape[1], "class")
    rows = theta[y == c]
    others = np.delete(rows, c, axis=1)
    return others.min(axis=1) - rows[:, c]


def share_past_pi(cosines, labels, c, margin):
    """Share of class ``c``'s samples whose angle to their own weight plus ``margin`` (radians)
    exceeds pi: where the paper's formula ``cos(theta + m)`` and ArcFace's monotonic fallback
    differ."""
    theta = angles_from_cosines(cosines, degrees=False)
    y = _labels(labels, theta.shape[0], theta.shape[1])
    c = checks.check_class_index(c, theta.shape[1], "class")
    own = theta[y == c, c]
    if own.size == 0:
        raise ValueError(f"no samples of class {c}.")
    return float(np.mean(own + margin > np.pi))


def own_angles_from_cosines(cosines, labels, degrees=True):
    """Angle between each sample and its own class weight, from stored cosines (N, C): (N,)."""
    theta = angles_from_cosines(cosines, degrees)
    y = _labels(labels, theta.shape[0], theta.shape[1])
    return theta[np.arange(len(y)), y]


def cosine_angle_stats(cosines, labels, degrees=True, class_names=None):
    """:func:`per_class_angle_stats` from stored cosines (N, C) instead of features and
    weights: per class, count, mean and variance (ddof=0) of the angle to the own weight."""
    return _stats_frame(angles_from_cosines(cosines, degrees), labels, degrees, class_names)


def _margin(margin):
    if isinstance(margin, (bool, np.bool_)) or not isinstance(margin, numbers.Real) or not 0 <= margin <= np.pi:
        raise ValueError(f"margin must be a number of radians in [0, pi]; got {margin!r}.")
    return float(margin)


def class_geometry(cosines, labels, class_weights, c, margin=0.0):
    """The geometry of class ``c`` in one trained model, from its cosines (N, C) of samples
    with every class weight and its class weights (d, C). Angles in degrees; ``margin`` in
    radians (the additive angular margin the run trained ``c`` with; 0 for none).

    Returns a dict:

    - ``count``, ``mean``, ``var``: class ``c``'s samples and their angle to the own weight;
    - ``relative_mean``, ``relative_variance``: those relative to the other classes
      (:func:`relative_mean`, :func:`relative_variance`);
    - ``max_angle``: the largest such angle;
    - ``nearest_angle``, ``nearest_class``: the room of ``c``'s weight
      (:func:`nearest_weight_angle`); ``others_nearest_angle``: the same, averaged over the
      other classes;
    - ``gap_median``: the median :func:`decision_gap` of ``c``'s samples;
      ``share_gap_positive``: the share with a positive gap (on their own side of every
      boundary: for a cosine head, the recall of ``c``); ``share_gap_over_margin``: the share
      whose gap exceeds the margin (the condition the margin loss asks for in training);
    - ``share_past_pi``: the share with angle + margin > pi (:func:`share_past_pi`).
    """
    theta = angles_from_cosines(cosines)
    w = np.asarray(class_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != theta.shape[1]:
        raise ValueError(f"class_weights must be (d, C) with C = {theta.shape[1]} (the cosines' columns); "
                         f"got shape {w.shape}.")
    c = checks.check_class_index(c, theta.shape[1], "class")
    margin = _margin(margin)
    y = _labels(labels, theta.shape[0], theta.shape[1])
    if not np.any(y == c):
        raise ValueError(f"no samples of class {c}.")
    stats = _stats_frame(theta, y, True, None)
    near, near_class = nearest_weight_angles(w)
    gap = decision_gap(cosines, y, c)
    return {
        "count": int(stats.loc[c, "count"]), "mean": float(stats.loc[c, "mean"]), "var": float(stats.loc[c, "var"]),
        "relative_mean": float(relative_mean(stats, c).iloc[0]),
        "relative_variance": float(relative_variance(stats, c).iloc[0]),
        "max_angle": float(theta[y == c, c].max()),
        "nearest_angle": float(near[c]), "nearest_class": int(near_class[c]),
        "others_nearest_angle": float(np.delete(near, c).mean()),
        "gap_median": float(np.median(gap)), "share_gap_positive": float(np.mean(gap > 0)),
        "share_gap_over_margin": float(np.mean(gap > np.degrees(margin))),
        "share_past_pi": share_past_pi(cosines, y, c, margin),
    }


def epoch_angle_arrays(angles_per_epoch):
    """A protocol record's ``angles_per_epoch`` ({"mean": [epoch][class], "std": ...}, in
    degrees) as two float arrays (epochs, C); a class without samples (None) becomes NaN."""
    try:
        mean, std = angles_per_epoch["mean"], angles_per_epoch["std"]
    except (TypeError, KeyError) as exc:
        raise ValueError("angles_per_epoch must be a dict with 'mean' and 'std' lists "
                         "([epoch][class], as a protocol record stores them).") from exc
    arrays = []
    for name, rows in (("mean", mean), ("std", std)):
        try:
            a = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"angles_per_epoch[{name!r}] must be [epoch][class] numbers.") from exc
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"angles_per_epoch[{name!r}] must be a non-empty [epoch][class] table; "
                             f"got shape {a.shape}.")
        arrays.append(a)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"angles_per_epoch 'mean' and 'std' differ in shape: {arrays[0].shape} and {arrays[1].shape}.")
    return arrays[0], arrays[1]


# ----------------------------------------------------------------------------------------------
# How spread a class's angles are, and verdicts on paired (per seed) differences
# ----------------------------------------------------------------------------------------------
QUANTILES = (5, 25, 50, 75, 95)  # percentiles that show a distribution's bulk and both tails


def _quantile_key(q):
    return f"q{q:g}"


def spread(values, quantiles=QUANTILES):
    """How a set of angles is spread: ``count``, ``mean``, ``var`` (population, ddof=0, as
    :func:`per_class_angle_stats`), ``std``, ``iqr`` (75th minus 25th percentile: the spread of
    the middle half, which a tail of a few far images does not move) and the percentiles
    ``quantiles`` (keys ``q5``, ``q25``, ...; NumPy's linear interpolation). An empty set gives
    count 0 and NaN for the rest.

    Example:
        >>> from camri_utils import angles
        >>> s = angles.spread([10.0, 20.0, 30.0, 40.0, 200.0])
        >>> s["iqr"], round(s["std"], 1), s["q50"]
        (20.0, 70.7, 30.0)
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"values must be numbers (angles); got {type(values).__name__}.") from exc
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"values must be a 1-D array of finite angles; got shape {x.shape}.")
    qs = []
    for q in quantiles:
        if isinstance(q, (bool, np.bool_)) or not isinstance(q, numbers.Real) or not 0 <= q <= 100:
            raise ValueError(f"quantiles must be percentiles in [0, 100]; got {q!r}.")
        qs.append(float(q))
    if x.size == 0:
        return {"count": 0, "mean": np.nan, "var": np.nan, "std": np.nan, "iqr": np.nan,
                **{_quantile_key(q): np.nan for q in qs}}
    q25, q75 = np.percentile(x, [25, 75])
    values = np.percentile(x, qs) if qs else []
    return {"count": int(x.size), "mean": float(x.mean()), "var": float(x.var()), "std": float(x.std()),
            "iqr": float(q75 - q25), **{_quantile_key(q): float(v) for q, v in zip(qs, values)}}


def class_spread(cosines, labels, c, predictions=None, quantiles=QUANTILES, degrees=True):
    """The spread (:func:`spread`) of class ``c``'s angle to its own weight, over all of its
    samples and over those the model classified correctly. ``cosines`` (N, C) as stored by a
    run; ``predictions`` the model's predicted classes (N,) -- default: the argmax of the
    cosines, which is a cosine head's own prediction; pass the argmax of a CE model's scores
    for CE, whose bias takes part in its decision. Returns a flat dict with the keys of
    :func:`spread` prefixed ``all_`` and ``correct_``."""
    theta = angles_from_cosines(cosines, degrees)
    y = _labels(labels, theta.shape[0], theta.shape[1])
    c = checks.check_class_index(c, theta.shape[1], "class")
    if predictions is None:
        pred = np.argmax(np.asarray(cosines, dtype=np.float64), axis=1)
    else:
        pred = _labels(predictions, theta.shape[0], theta.shape[1])
    mine = y == c
    if not mine.any():
        raise ValueError(f"no samples of class {c}.")
    out = {}
    for name, keep in (("all", mine), ("correct", mine & (pred == y))):
        out.update({f"{name}_{k}": v for k, v in spread(theta[keep, c], quantiles).items()})
    return out

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


def relative_variance(stats, important_classes):
    """Variance of each important class's angle divided by the mean variance of the other
    classes (from :func:`per_class_angle_stats`). Below 1: the important class is tighter."""
    if isinstance(important_classes, (numbers.Integral, np.integer)):
        important_classes = [important_classes]
    important = [checks.check_class_index(c, len(stats), "important class") for c in important_classes]
    others = stats.drop(index=important)["var"].dropna()
    if others.empty:
        raise ValueError("no other class with samples to compare the important classes with.")
    ratio = stats.loc[important, "var"] / others.mean()
    ratio.name = "relative_variance"
    return ratio


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


def nearest_weight_angle(class_weights, c, degrees=True):
    """(angle, class) of the class weight nearest to class ``c``'s weight."""
    theta = weight_angles(class_weights, degrees)
    c = checks.check_class_index(c, theta.shape[0], "class")
    others = np.delete(np.arange(theta.shape[0]), c)
    k = others[np.argmin(theta[c, others])]
    return float(theta[c, k]), int(k)


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

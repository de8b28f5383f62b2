"""Closed forms and curves used by the chapters on normalised softmax and angular margins.

Example:
    >>> import math
    >>> from camri_utils import ArcFaceLoss, theory
    >>> round(float(theory.max_probability(4.0, 10)), 4)   # the best normalized softmax can do
    0.9044
    >>> round(float(theory.min_scale(0.99, 10)), 3)
    6.113
    >>> round(math.degrees(theory.decision_angle(ArcFaceLoss(0.5, 1.0), math.pi / 2)), 3)
    30.676
"""

from __future__ import annotations

import math

import keras
import numpy as np

from camri_utils import checks

__all__ = ["max_probability", "min_scale", "simplex_cosines", "target_logit_curve", "decision_angle"]


def _check(scale=None, n_classes=None, probability=None):
    if n_classes is not None:
        checks.check_n_classes(n_classes)
    if scale is not None and np.any(np.asarray(scale) <= 0):
        raise ValueError("scale must be > 0.")
    if probability is not None and np.any((np.asarray(probability) <= 1 / n_classes) | (np.asarray(probability) >= 1)):
        raise ValueError(f"probability must be in (1/n_classes, 1) = ({1 / n_classes:.4g}, 1).")


def max_probability(scale, n_classes):
    """Highest softmax probability normalised softmax can give a sample: its feature on its
    class weight (cos = 1) and the C class weights spread as a regular simplex, so every other
    cosine is -1/(C-1) (NormFace; Ranjan et al.'s bound):

        p_max = e^s / (e^s + (C - 1) e^(-s/(C-1)))
    """
    _check(scale, n_classes)
    s = np.asarray(scale, dtype=np.float64)
    c = n_classes
    # Written as a logistic function of s*C/(C-1) for numerical stability.
    return 1.0 / (1.0 + (c - 1) * np.exp(-s * c / (c - 1)))


def min_scale(probability, n_classes):
    """Smallest scale for which normalised softmax can reach ``probability``:
    ``s = (C-1)/C * log((C-1) p / (1-p))`` (the inverse of :func:`max_probability`)."""
    _check(n_classes=n_classes, probability=probability)
    p = np.asarray(probability, dtype=np.float64)
    c = n_classes
    return (c - 1) / c * np.log((c - 1) * p / (1 - p))


def simplex_cosines(n_classes):
    """Cosines (C, C) of a sample lying on each class weight when the weights form a regular
    simplex: 1 on the diagonal, -1/(C-1) elsewhere."""
    _check(n_classes=n_classes)
    c = n_classes
    return np.full((c, c), -1.0 / (c - 1)) + np.eye(c) * (1 + 1.0 / (c - 1))


def target_logit_curve(loss, theta, target=0):
    """The target logit divided by the scale, ``cos(m1 theta + m2) - m3``, that ``loss`` gives
    a sample of class ``target`` at angle ``theta`` (radians) from its class weight."""
    theta = np.asarray(theta, dtype=np.float64)
    n_classes = getattr(loss, "n_classes", None) or target + 1
    target = checks.check_class_index(target, n_classes, "target")
    cos = np.zeros((theta.size, n_classes), np.float32)
    cos[:, target] = np.cos(theta.ravel())
    return keras.ops.convert_to_numpy(loss.target_cosine(cos))[:, target].reshape(theta.shape)


def decision_angle(loss, separation, target=0, other=1, tol=1e-7):
    """For two unit class weights ``separation`` radians apart and a sample of class
    ``target`` between them at angle ``a`` from its weight, the angle ``a`` where the loss's
    target logit equals the ``other`` class's logit: the boundary the loss trains towards
    (``separation / 2`` without a margin). Found by bisection on ``loss.target_cosine`` (the
    other logit is the plain cosine, times the same scale)."""
    n_classes = getattr(loss, "n_classes", None) or max(target, other) + 1
    target = checks.check_class_index(target, n_classes, "target")
    other = checks.check_class_index(other, n_classes, "other")
    if target == other:
        raise ValueError(f"target and other must be two different classes; both are {target}.")

    def gap(a):
        cos = np.zeros((1, n_classes), np.float32)
        cos[0, target] = math.cos(a)
        return float(keras.ops.convert_to_numpy(loss.target_cosine(cos))[0, target]) - math.cos(separation - a)

    lo, hi = 0.0, float(separation)
    if gap(lo) <= 0:
        return 0.0  # the margin is wider than the gap between the classes
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)

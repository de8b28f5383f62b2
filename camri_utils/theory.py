"""Closed forms and curves used by the chapters on normalised softmax and angular margins.

Example:
    >>> import math
    >>> from camri_utils import ArcFaceLoss, theory
    >>> round(float(theory.max_probability(4.0, 10)), 4)   # the best normalized softmax can do
    0.9044
    >>> round(float(theory.min_scale(0.99, 10)), 3)
    6.113
    >>> round(float(theory.min_scale(0.99, 1000, margin=0.5)), 1)   # with ArcFace's margin
    13.1
    >>> round(theory.best_balanced_loss(1.0, 10, dim=9), 4)          # = -log p_max(1, 10)
    1.3769
    >>> round(math.degrees(theory.decision_angle(ArcFaceLoss(0.5, 1.0), math.pi / 2)), 3)
    30.676
"""

from __future__ import annotations

import math

import keras
import numpy as np

from camri_utils import checks

__all__ = ["max_probability", "min_scale", "best_balanced_loss", "simplex_cosines", "target_logit_curve",
           "decision_angle"]


def _check(scale=None, n_classes=None, probability=None, margin=0.0):
    if n_classes is not None:
        checks.check_n_classes(n_classes)
    if scale is not None and np.any(np.asarray(scale) <= 0):
        raise ValueError("scale must be > 0.")
    margin = checks.check_number(margin, "margin", 0.0, math.pi)
    if n_classes is not None and math.cos(margin) + 1 / (n_classes - 1) <= 0:
        raise ValueError(f"margin {margin!r} leaves the target cosine cos(m) at or below the simplex's other "
                         f"cosines -1/(C-1): no scale makes the target class the most probable. Use a margin "
                         f"below {math.acos(-1 / (n_classes - 1)):.4g} rad.")
    if probability is not None and np.any((np.asarray(probability) <= 1 / n_classes) | (np.asarray(probability) >= 1)):
        raise ValueError(f"probability must be in (1/n_classes, 1) = ({1 / n_classes:.4g}, 1).")
    return margin


def max_probability(scale, n_classes, margin=0.0):
    """Highest softmax probability normalised softmax can give a sample that lies on its class
    weight (cos = 1) when the C class weights are spread as a regular simplex, so every other
    cosine is -1/(C-1) (NormFace; Ranjan et al.'s bound):

        p_max = e^s / (e^s + (C - 1) e^(-s/(C-1)))

    With ``margin`` m (radians), the probability ArcFace's (or CAMRI's) loss sees for that
    sample: its target logit is ``s cos(m)`` instead of ``s``.

    A bound for the average over a class-balanced set, not for one sample: one sample's other
    class weights may all point away from it (cosines -1). And the simplex needs feature
    dimension d >= C - 1; below that the best average is worse (:func:`best_balanced_loss`).
    """
    margin = _check(scale, n_classes, margin=margin)
    s = np.asarray(scale, dtype=np.float64)
    c = n_classes
    # A logistic function of s (cos m + 1/(C-1)), for numerical stability.
    return 1.0 / (1.0 + (c - 1) * np.exp(-s * (math.cos(margin) + 1 / (c - 1))))


def min_scale(probability, n_classes, margin=0.0):
    """Smallest scale for which normalised softmax can reach ``probability``:
    ``s = (C-1)/C * log((C-1) p / (1-p))`` (the inverse of :func:`max_probability`); with an
    additive angular ``margin`` m, ``s = log((C-1) p / (1-p)) / (cos m + 1/(C-1))``."""
    margin = _check(n_classes=n_classes, probability=probability, margin=margin)
    p = np.asarray(probability, dtype=np.float64)
    c = n_classes
    return np.log((c - 1) * p / (1 - p)) / (math.cos(margin) + 1 / (c - 1))


def _balanced_loss_and_grad(params, scale, n_classes, dim):
    """Mean normalised-softmax loss of one feature per class (rows of V) against the class
    weights (rows of U), both normalised, and its gradient with respect to (U, V)."""
    u, v = params.reshape(2, n_classes, dim)
    nu, nv = np.linalg.norm(u, axis=1, keepdims=True), np.linalg.norm(v, axis=1, keepdims=True)
    w, f = u / nu, v / nv
    logits = scale * (f @ w.T)  # row: the feature of class c; column: class k
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = -np.mean(np.diag(log_p))
    g = scale * (np.exp(log_p) - np.eye(n_classes)) / n_classes  # d loss / d cosines
    gw, gf = g.T @ f, g @ w
    # Through the normalisation: remove the radial part, divide by the length.
    gu = (gw - w * np.sum(gw * w, axis=1, keepdims=True)) / nu
    gv = (gf - f * np.sum(gf * f, axis=1, keepdims=True)) / nv
    return loss, np.concatenate([gu.ravel(), gv.ravel()])


def best_balanced_loss(scale, n_classes, dim, restarts=3, seed=0):
    """The lowest mean normalised-softmax loss over a class-balanced set: unit class weights
    and unit features in ``dim`` dimensions, minimised numerically (L-BFGS from ``restarts``
    random starts; one feature per class suffices, since each sample's loss can be minimised
    on its own). For ``dim >= n_classes - 1`` it is ``-log max_probability(scale, n_classes)``
    (the simplex); below, the classes cannot all be that far apart and it is higher."""
    from scipy.optimize import minimize

    scale = checks.check_number(scale, "scale", 0.0, open_low=True)
    n_classes = checks.check_n_classes(n_classes)
    dim = checks.check_int(dim, "dim", minimum=1)
    restarts = checks.check_int(restarts, "restarts", minimum=1)
    rng = np.random.default_rng(seed)
    best = math.inf
    for _ in range(restarts):
        start = rng.normal(size=2 * n_classes * dim)
        found = minimize(_balanced_loss_and_grad, start, args=(scale, n_classes, dim), jac=True,
                         method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-8, "ftol": 1e-12})
        best = min(best, float(found.fun))
    return best


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

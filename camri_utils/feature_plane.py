"""Losses evaluated over a 2-D feature plane: the geometry behind the book's contour figures.

A classifier with a 2-D feature ``z`` and class weights ``W`` (2, C) can be looked at directly:
put a sample of class ``label`` at every point ``z`` of a grid and evaluate a loss there. Margin
losses get the cosines between ``z`` and each column of ``W``; cross-entropy losses get the
logits ``z @ W`` (plus an optional bias).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from camri_utils.losses import AngularMarginLoss

__all__ = ["class_weights_2d", "feature_grid", "loss_on_plane", "logits_on_plane"]


def class_weights_2d(n_classes=3, first_angle_deg=0.0, norms=1.0):
    """Class weights (2, n_classes) spread evenly around the circle, class 0 at
    ``first_angle_deg`` (0 = along the z1 axis), with the given norm(s)."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2; got {n_classes}.")
    angles = np.radians(first_angle_deg) + 2 * math.pi * np.arange(n_classes) / n_classes
    norms = np.broadcast_to(np.asarray(norms, dtype=np.float64), (n_classes,))
    return np.stack([np.cos(angles), np.sin(angles)]) * norms


def feature_grid(limit=4.0, n=201):
    """A square grid over [-limit, limit]^2: returns (points (n*n, 2), z1 (n, n), z2 (n, n))."""
    axis = np.linspace(-limit, limit, n)
    z1, z2 = np.meshgrid(axis, axis)
    return np.stack([z1.ravel(), z2.ravel()], axis=1), z1, z2


def logits_on_plane(points, weights, bias=None, cosine=False):
    """Logits ``z @ W + b`` of every point, or the cosines between ``z`` and each class weight
    when ``cosine=True`` (0 at the origin, as in the CosineHead)."""
    z = np.asarray(points, np.float64)
    w = np.asarray(weights, np.float64)
    if cosine:
        zn = np.linalg.norm(z, axis=1, keepdims=True)
        wn = np.linalg.norm(w, axis=0, keepdims=True)
        return np.divide(z, zn, out=np.zeros_like(z), where=zn > 0) @ (w / wn)
    out = z @ w
    return out if bias is None else out + np.asarray(bias, np.float64)


def loss_on_plane(loss, weights, label, limit=4.0, n=201, bias=None):
    """Per-sample value of ``loss`` for a sample of class ``label`` placed at every point of a
    grid: returns (values (n, n), z1, z2). Margin losses (``AngularMarginLoss`` and its
    subclasses) are fed cosines; every other loss is fed logits."""
    points, z1, z2 = feature_grid(limit, n)
    w = np.asarray(weights, np.float64)
    if not 0 <= label < w.shape[1]:
        raise ValueError(f"label must be in [0, {w.shape[1]}); got {label}.")
    per_sample = type(loss).from_config({**loss.get_config(), "reduction": None})
    y_pred = logits_on_plane(points, w, bias, cosine=isinstance(loss, AngularMarginLoss))
    labels = np.full(len(points), label)
    values = keras.ops.convert_to_numpy(per_sample(labels, y_pred.astype(np.float32)))
    return values.reshape(z1.shape), z1, z2

"""The book's recurring figures: a loss over the 2-D feature plane (the poster's Fig. 2) and
normalized features with their class weights on the unit circle (the poster's Fig. 3)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from camri_utils.feature_plane import feature_grid, logits_on_plane

__all__ = ["class_colors", "draw_loss_on_plane", "draw_polar_features"]


def class_colors(n_classes):
    """One colour per class (matplotlib's tab10, then tab20)."""
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n_classes)]


def draw_loss_on_plane(ax, values, z1, z2, weights, target, title=None, vmax=8.0,
                       boundary_bias=None, colorbar=False):
    """Draw loss values over the feature plane (yellow = high, dark = low), the class weight
    vectors (the target's in red) and the softmax decision boundaries (grey)."""
    limit = float(np.max(np.abs(z1)))
    image = ax.pcolormesh(z1, z2, np.minimum(values, vmax), cmap="viridis", vmin=0, vmax=vmax,
                          shading="auto", rasterized=True)
    # Decision boundaries: where the argmax of the logits changes.
    points, g1, g2 = feature_grid(limit, 401)
    regions = np.argmax(logits_on_plane(points, weights, boundary_bias), axis=1).reshape(g1.shape)
    n_classes = weights.shape[1]
    ax.contour(g1, g2, regions, levels=np.arange(n_classes) + 0.5, colors="0.7", linewidths=2)
    scale = 0.7 * limit / np.max(np.linalg.norm(weights, axis=0))
    for k in range(n_classes):
        wx, wy = weights[:, k] * scale
        color = "red" if k == target else "black"
        ax.annotate("", xy=(wx, wy), xytext=(0, 0),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.5))
        ax.text(1.1 * wx, 1.1 * wy, f"$W_{k + 1}$", color=color, ha="center", va="center")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("feature $z_1$")
    ax.set_ylabel("feature $z_2$")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label="loss")
    return image


def draw_polar_features(ax, features, labels, weights, important=(), title=None, class_names=None,
                        max_points=2000, seed=0):
    """Normalised features (points on the unit circle, slightly jittered inwards so that
    overlaps show) and normalised class weights (lines), one colour per class. Important
    classes get thick weight lines."""
    z = np.asarray(features, np.float64)
    w = np.asarray(weights, np.float64)
    labels = np.asarray(labels)
    if z.shape[1] != 2 or w.shape[0] != 2:
        raise ValueError("draw_polar_features needs 2-D features and (2, C) weights.")
    important = {important} if np.isscalar(important) else set(important)
    n_classes = w.shape[1]
    colors = class_colors(n_classes)
    names = class_names or [str(c) for c in range(n_classes)]
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(z))[:max_points]
    norm = np.linalg.norm(z[keep], axis=1, keepdims=True)
    unit = np.divide(z[keep], norm, out=np.zeros_like(z[keep]), where=norm > 0)
    radius = 1.0 - 0.08 * rng.uniform(size=(len(keep), 1))
    pts = unit * radius
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.8", lw=1))
    ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.5, c=[colors[c] for c in labels[keep]],
               linewidths=0)
    wn = w / np.linalg.norm(w, axis=0, keepdims=True)
    for k in range(n_classes):
        lw = 3.5 if k in important else 1.5
        ax.plot([0, wn[0, k]], [0, wn[1, k]], color=colors[k], lw=lw,
                label=names[k] + (" (important)" if k in important else ""))
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_xlabel("normalized feature $z_1$")
    ax.set_ylabel("normalized feature $z_2$")
    if title:
        ax.set_title(title)
    return ax

"""The book's recurring figures: a loss over the 2-D feature plane (the poster's Fig. 2),
normalized features with their class weights on the unit circle (the poster's Fig. 3), and the
protocol's sweep and recall gains (from :mod:`camri_utils.protocol` records)."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np

from camri_utils import methods
from camri_utils.feature_plane import feature_grid, logits_on_plane

__all__ = ["BOOK_STYLE", "use_book_style", "class_colors", "draw_loss_on_plane", "draw_polar_features", "draw_protocol_sweep", "draw_recall_gains",
           "draw_angle_violins", "draw_weight_angles", "draw_tradeoff",
           "draw_angle_quantiles", "draw_sweep_grid", "curve_patterns"]

# One colour and marker per method, the same in every figure: methods.style(label), from the registry.
_METHOD_ORDER = [m.label for m in methods.REGISTRY.values()]


# The book's one figure style, stored as SVG: 5.6 in wide (about 540 px at 96 px per inch,
# within the text column's 700 px: shown at natural size on a laptop), with text of 10 pt or
# more, so that scaled down to a phone's 358-px column the smallest text is still 8 px (10 pt x
# 358 / (5.6 x 72) = 8.9 px, with room for what a tight bounding box adds: an outside legend;
# tests/test_browser.py measures it). Part II's figures are 5.2 in wide, with 9-pt text.
BOOK_STYLE = {
    "figure.figsize": (5.6, 3.4),
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 12,
    "lines.linewidth": 1.8,
    "axes.grid": False,
    "savefig.dpi": 150,          # rasterized parts of a vector figure (loss planes)
    "svg.hashsalt": "camri",     # stable ids: re-running a chapter does not churn its SVGs
}


def use_book_style(formats=("svg",)):
    """Apply :data:`BOOK_STYLE` and, in a notebook, store figures as ``formats`` (SVG by
    default: sharp at any zoom, and sized exactly to the text column). Every chapter calls it
    once, after its imports."""
    import matplotlib as mpl

    mpl.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - outside IPython there is nothing to configure
        return
    if get_ipython() is not None:
        set_matplotlib_formats(*formats)


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


def _setting_stats(frame, role, x, y):
    """Per method and setting of one role: mean and standard deviation over seeds of the
    columns ``x`` and ``y`` (as ``x``, ``x_sd``, ``y``, ``y_sd``)."""
    rows = frame[frame.role == role]
    if rows.empty:
        raise ValueError(f"no records for role {role!r}; roles present: {sorted(set(frame.role.dropna()))}.")
    return rows.groupby(["method", "setting"], sort=False).agg(
        x=(x, "mean"), x_sd=(x, "std"), y=(y, "mean"), y_sd=(y, "std"))


# The line patterns of one method's threshold curves, one per scale (largest first, as the
# markers of _SCALE_MARKERS): CE's curve is solid; normalized softmax's are dotted, then
# dash-dotted, then dashed with dots, so two scales are told apart at a glance, not by shade.
_CURVE_PATTERNS = (":", (0, (7, 2.5, 1.5, 2.5)), (0, (6, 2, 1, 2, 1, 2)))


def _curve_scale(label):
    """The scale in a curve's label, ``NormSoftmax + threshold (s = 8)`` or ``(s = 8, n = 3 of
    5)`` -> 8.0; None without."""
    match = re.search(r"\(s = ([0-9.eE+-]+)[,)]", label)
    return float(match.group(1)) if match else None


def curve_patterns(labels):
    """{label: line pattern} for threshold curves labelled as
    :func:`camri_utils.protocol.threshold_curve_frames` labels them: solid for CE's, and for one
    method's curves at several scales one pattern each of :data:`_CURVE_PATTERNS`, largest scale
    first (dotted), in the order drawn where there is no scale."""
    out, by_method = {}, {}
    for label in labels:
        method = label.split(" (")[0]
        if method.startswith("CE"):
            out[label] = "-"
        else:
            by_method.setdefault(method, []).append(label)
    for method, group in by_method.items():
        order = sorted(group, key=lambda k: (_curve_scale(k) is None, -(_curve_scale(k) or 0.0)))
        for k, label in enumerate(order):
            out[label] = _CURVE_PATTERNS[min(k, len(_CURVE_PATTERNS) - 1)]
    return out


def _draw_threshold_curves(ax, curves, x, y, stats, selection, role, ring_size):
    """The exact threshold-moving curves (``curves``: {label: DataFrame of bias, accuracy,
    recall, precision}, e.g. from :func:`camri_utils.protocol.threshold_curve_frames`), solid
    for CE; normalized softmax's one pattern per scale (:func:`curve_patterns`: dotted, then
    dash-dotted), named in the legend; the bias each post-hoc row chose ringed on it."""
    patterns = curve_patterns(list(curves or {}))
    for label, curve in (curves or {}).items():
        color, _ = methods.style(label.split(" (")[0])
        ax.plot(curve[x], curve[y], color=color, lw=1.6, ls=patterns[label], label=label)
    for method in [m for m in dict.fromkeys(stats.index.get_level_values(0)) if m.endswith("+ threshold")]:
        color, _ = methods.style(method)
        best = selection.chosen.get((method, role))
        key = json.dumps(best.params, sort_keys=True) if best is not None else None
        if key in stats.loc[method].index:
            st = stats.loc[method].loc[key]
            ax.plot(st.x, st.y, marker="o", ms=ring_size, mfc="none", mec=color, mew=1.5)


def _zoom_on_methods(ax, stats, x="x", y="y"):
    """Frame every trained method's point with its bars (a threshold curve spans far more than
    they do) and the threshold rows' chosen points, with the part of each curve that falls in
    that window: no plotted marker is cut by an axis."""
    trained = stats[[not m.endswith("+ threshold") for m in stats.index.get_level_values(0)]]
    if trained.empty:
        return
    sd_x, sd_y = stats[f"{x}_sd"].fillna(0.0), stats[f"{y}_sd"].fillna(0.0)
    lo, hi = (trained[x] - sd_x[trained.index]).min(), (trained[x] + sd_x[trained.index]).max()
    pad = max(0.15 * (hi - lo), 0.002)
    inside = stats[(stats[x] >= lo - pad) & (stats[x] <= hi + pad)]
    lo, hi = min(lo, (inside[x] - sd_x[inside.index]).min()), max(hi, (inside[x] + sd_x[inside.index]).max())
    ylo, yhi = (inside[y] - sd_y[inside.index]).min(), (inside[y] + sd_y[inside.index]).max()
    ypad = max(0.08 * (yhi - ylo), 0.01)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(ylo - ypad, yhi + ypad)


_SCALE_MARKERS = ("o", "s", "D", "v")  # a method's settings at its 2nd, 3rd... scale (the 1st: its own marker)


def _scales(settings):
    """The scales among a method's settings (JSON texts), largest first."""
    return sorted({json.loads(k).get("scale") for k in settings if k} - {None}, reverse=True)


def _outside_legend(ax, order=None):
    """The axes' legend below the figure, outside the data (the figures use constrained
    layout), each label once, in ``order`` where given."""
    if ax.figure.get_layout_engine() is None:  # "outside" needs constrained layout (the book style's)
        ax.figure.set_layout_engine("constrained")
    unique = dict(zip(*reversed(ax.get_legend_handles_labels())))
    labels = list(unique)
    if order:  # by method ("CAMRI (s = 8)" is CAMRI's), then as drawn
        rank = {m: i for i, m in enumerate(order)}
        labels.sort(key=lambda k: rank.get(k.split(" (")[0], len(rank)))
    return ax.figure.legend([unique[k] for k in labels], labels, fontsize=9, ncol=2, loc="outside lower center",
                            frameon=False)


def _spread_labels(ax, texts, step=7.0, tries=6):
    """Move annotations (offset in points, right of their marker) until no two overlap on the
    canvas and none covers a marker: each in turn is tried right of its marker, then left of
    it, then ``step`` points higher or lower on either side, nearest first."""
    renderer = ax.figure.canvas.get_renderer()
    markers = [line.get_window_extent(renderer) for line in ax.get_lines()
               if line.get_marker() not in (None, "None", "") and len(line.get_xdata()) == 1]
    placed = []
    for text in texts:
        x0, y0 = text.xyann
        width = text.get_window_extent(renderer).width * 72 / ax.figure.dpi
        candidates = [(dx, y0 + step * ((k + 1) // 2) * (1 if k % 2 else -1))
                      for k in range(2 * tries + 1) for dx in (x0, -x0 - width)]
        for dx, dy in candidates:
            text.xyann = (dx, dy)
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed + markers):
                break
        placed.append(text.get_window_extent(renderer))


def draw_protocol_sweep(ax, frame, selection, role, class_name=None, curves=None, legend=True):
    """Every setting of every method for one important class: mean accuracy (x) against the
    important class's mean recall (y), bars one standard deviation over seeds (the post-hoc
    threshold-moving baselines as their exact curves, ``curves`` on the selection split, from
    :func:`camri_utils.protocol.threshold_curve_frames`); the accuracy threshold of the
    selection rule as a dashed line, the chosen settings ringed.

    ``frame`` is :func:`camri_utils.protocol.records_frame`, ``selection`` what
    :func:`camri_utils.protocol.select` returns. Accuracy and recall are on the split the
    selection used (validation, or test for records made before the split). The legend goes
    below the figure, outside the data (``legend=False``: left to the caller)."""
    stats = _setting_stats(frame, role, "sel_accuracy", "sel_recall")
    _draw_threshold_curves(ax, curves, "accuracy", "recall", stats, selection, role, ring_size=12)
    for (method, setting), st in stats.fillna(0.0).iterrows():
        if method.endswith("+ threshold"):
            continue
        color, marker = methods.style(method)
        # A method swept at several scales: one marker per scale, named in the legend.
        scales = _scales(stats.loc[method].index)
        scale = json.loads(setting).get("scale") if setting else None
        k = scales.index(scale) if len(scales) > 1 and scale in scales else 0
        ax.errorbar(st.x, st.y, xerr=st.x_sd, yerr=st.y_sd, color=color, marker=_SCALE_MARKERS[k] if k else marker,
                    ms=7, lw=0.8, alpha=0.85, capsize=2,
                    label=method + (f" (s = {scale:g})" if len(scales) > 1 else ""))
        best = selection.chosen.get((method, role))
        if best is not None and setting == json.dumps(best.params, sort_keys=True):
            ax.plot(st.x, st.y, marker="o", ms=16, mfc="none", mec=color, mew=1.5)
    ax.axvline(selection.threshold, color="0.4", ls="--", lw=1, label="accuracy threshold")
    _zoom_on_methods(ax, stats)
    if legend:
        _outside_legend(ax, _METHOD_ORDER)
    c = selection.important[role]
    ax.set_title(f"{role}: class {c}" + (f" ({class_name})" if class_name else ""))
    ax.set_xlabel(f"{selection.split} accuracy (mean over seeds)")
    ax.set_ylabel(f"{selection.split} recall, class {c}")  # short: it must fit the axes' height
    return ax


def draw_recall_gains(ax, table, class_names=None):
    """The paired recall gain over CE of each method's chosen setting, per important class,
    with its paired Student-t 95% interval (``table`` is :attr:`camri_utils.protocol.Summary.table`).
    A method with no accuracy-maintaining setting is left out of its group. The legend sits
    above the axes, where it hides no interval."""
    if "recall_gain" not in table:  # no method kept accuracy anywhere: nothing to draw but the axis
        table = table.assign(recall_gain=np.nan, gain_ci_low=np.nan, gain_ci_high=np.nan)
    gains = table[(table.method != "CE") & table.recall_gain.notna()]
    roles = list(dict.fromkeys(table.role))
    shown = [m for m in _METHOD_ORDER if m != "CE" and m in set(table.method)]
    width = 0.8 / max(len(shown), 1)
    for i, method in enumerate(shown):
        color, marker = methods.style(method)
        rows = gains[gains.method == method].set_index("role")
        if rows.empty:
            continue
        xs = [r + (i - (len(shown) - 1) / 2) * width for r, role in enumerate(roles) if role in rows.index]
        ys = [rows.loc[role, "recall_gain"] for role in roles if role in rows.index]
        lo = [rows.loc[role, "recall_gain"] - rows.loc[role, "gain_ci_low"] for role in roles if role in rows.index]
        hi = [rows.loc[role, "gain_ci_high"] - rows.loc[role, "recall_gain"] for role in roles if role in rows.index]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, color=color, capsize=3, ms=7, label=method)
    ax.axhline(0.0, color="0.4", lw=1)
    classes = dict(zip(table.role, table["class"]))
    names = {c: class_names[c] for c in classes.values()} if class_names else {}
    ax.set_xticks(range(len(roles)), [f"{role}\n({names.get(classes[role], f'class {classes[role]}')})"
                                      for role in roles])
    ax.set_ylabel("recall gain over CE")  # paired by seed: the captions say so
    ax.legend(fontsize=9, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return ax


def _important_set(important):
    return {int(important)} if np.isscalar(important) else {int(c) for c in important}


def draw_angle_violins(ax, own_angles, labels, important=(), class_names=None, title=None):
    """One violin per class: the distribution of each sample's angle to its own class weight
    (degrees, e.g. :func:`camri_utils.angles.own_angles_from_cosines`), with its median as a
    bar; important classes in red, the others grey. Classes without samples are left empty."""
    theta = np.asarray(own_angles, np.float64)
    labels = np.asarray(labels)
    if theta.ndim != 1 or labels.shape != theta.shape:
        raise ValueError(f"own_angles and labels must be 1-D of one length; got {theta.shape} and {labels.shape}.")
    n_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
    important = _important_set(important)
    present = [c for c in range(n_classes) if np.any(labels == c)]
    parts = ax.violinplot([theta[labels == c] for c in present], positions=present, widths=0.8,
                          showmedians=True, showextrema=False)
    for c, body in zip(present, parts["bodies"]):
        body.set_facecolor("tab:red" if c in important else "0.6")
        body.set_edgecolor("none")
        body.set_alpha(0.8 if c in important else 0.6)
    parts["cmedians"].set_color("black")
    parts["cmedians"].set_linewidth(1.2)
    ax.set_xticks(range(n_classes), [str(c) for c in range(n_classes)])
    for c, tick in enumerate(ax.get_xticklabels()):
        if c in important:
            tick.set_color("tab:red")
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, n_classes - 0.4)
    ax.set_xlabel("class")
    ax.set_ylabel("angle to own class weight (deg)")
    if title:
        ax.set_title(title)
    return ax


def draw_weight_angles(ax, matrix, important=(), vmin=None, vmax=None, title=None, cmap="viridis"):
    """The angles between every pair of class weights (a (C, C) matrix in degrees, e.g.
    :func:`camri_utils.angles.weight_angles`) as a heatmap, the diagonal blank; the important
    classes' tick labels in red. Returns the image (for a shared colour bar)."""
    theta = np.array(matrix, np.float64)
    if theta.ndim != 2 or theta.shape[0] != theta.shape[1]:
        raise ValueError(f"matrix must be square (C, C); got shape {theta.shape}.")
    n = theta.shape[0]
    np.fill_diagonal(theta, np.nan)  # a weight's angle to itself says nothing
    image = ax.imshow(theta, cmap=cmap, vmin=vmin, vmax=vmax)
    important = _important_set(important)
    ax.set_xticks(range(n), [str(c) for c in range(n)])
    ax.set_yticks(range(n), [str(c) for c in range(n)])
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        for c, tick in enumerate(ticks):
            if c in important:
                tick.set_color("tab:red")
                tick.set_fontweight("bold")
    ax.set_xlabel("class")
    ax.set_ylabel("class")
    if title:
        ax.set_title(title)
    return image


_AXIS_NAMES = {"accuracy": "test accuracy", "recall": "test recall", "precision": "test precision",
               "sel_accuracy": "validation accuracy", "sel_recall": "validation recall"}


# What tells a method's settings apart, in the order looked for: CAMRI's and ArcFace's margin,
# WCE's weight, the logit-adjusted loss's tau, LDAM's largest margin, a scale.
_TAG_KEYS = ("margin", "weight", "tau", "max_margin", "scale")


def _setting_tag(params):
    """A setting's short label beside its marker: a margin in units of π/64, else the value of
    the first of :data:`_TAG_KEYS` it has ('' for none)."""
    if "margin" in params:
        return f"{params['margin'] * 64 / np.pi:.0f}"
    key = next((k for k in _TAG_KEYS if k in params), None)
    return f"{params[key]:g}" if key else ""


def draw_tradeoff(ax, frame, selection, role, x="accuracy", y="recall", class_name=None, show_all=("CAMRI",),
                  legend=True, curves=None):
    """The trade-off every method moves along, for one important class: the post-hoc
    threshold-moving baselines as their exact curves (``curves``: {label: DataFrame}, from
    :func:`camri_utils.protocol.threshold_curve_frames` on the test split; one bias for all
    seeds, mean over seeds) with the bias each chose on validation ringed, each method's
    chosen setting as a filled marker with one standard deviation over seeds, and every
    setting of the methods in ``show_all`` as hollow markers labelled with their margin (in
    π/64) or weight (a method swept at several scales: one marker per scale, named in the
    legend; labels moved apart where they would overlap). The axes hold every marker with its
    bars; the legend goes below the figure, outside the data. ``x`` and ``y`` are columns of
    :func:`camri_utils.protocol.records_frame` (test metrics: ``accuracy``, ``recall``,
    ``precision``). A point above a curve gets more of ``y`` at the same ``x`` than moving
    the threshold does. ``legend=False`` leaves the legend to the caller (several panels)."""
    for column in (x, y):
        if column not in _AXIS_NAMES:
            raise ValueError(f"x and y must be among {sorted(_AXIS_NAMES)}; got {column!r}.")
    stats = _setting_stats(frame, role, x, y).fillna(0.0)
    _draw_threshold_curves(ax, curves, x, y, stats, selection, role, ring_size=9)
    tags = []
    for method in dict.fromkeys(stats.index.get_level_values(0)):
        color, marker = methods.style(method)
        points = stats.loc[method]
        best = selection.chosen.get((method, role))
        chosen = json.dumps(best.params, sort_keys=True) if best is not None else None
        if method.endswith("+ threshold"):
            continue
        # A method swept at several scales: one hollow marker per scale, named in the legend.
        scales = _scales(points.index)
        for setting, st in points.iterrows():
            if method == "CE" or setting == chosen:
                ax.errorbar(st.x, st.y, xerr=st.x_sd, yerr=st.y_sd, color=color, marker=marker, ms=8, lw=0.8,
                            capsize=2, label=method if method == "CE" else f"{method} (chosen)", zorder=3)
            elif method in show_all:
                params = json.loads(setting)
                k = scales.index(params["scale"]) if len(scales) > 1 and "scale" in params else 0
                label = f"{method} (other settings" + (f", s = {params['scale']:g})" if len(scales) > 1 else ")")
                ax.plot(st.x, st.y, marker=_SCALE_MARKERS[k] if k else marker, ms=7, mfc="none", mec=color,
                        ls="none", label=label)
                tags.append(ax.annotate(_setting_tag(params), (st.x, st.y), xytext=(5, -4),
                                        textcoords="offset points", fontsize=9, color=color))
    _zoom_on_methods(ax, stats)
    _spread_labels(ax, sorted(tags, key=lambda t: t.xy[1]))
    if legend:
        _outside_legend(ax)
    c = selection.important[role]
    ax.set_title(f"{role}: class {c}" + (f" ({class_name})" if class_name else ""))
    ax.set_xlabel(f"{_AXIS_NAMES[x]} (mean over seeds)")
    ax.set_ylabel(f"{_AXIS_NAMES[y]}, class {c}")
    return ax


_GROUP_WORDS = {"all": "all images", "correct": "correctly classified images"}


def draw_angle_quantiles(ax, frame, groups=("all", "correct"), quantiles=(5, 25, 50, 75, 95), colors=None,
                         legend=True):
    """The distribution of an angle per row of ``frame`` (one row per setting, top to bottom),
    drawn by five percentiles: a thin line from the first to the last (the tails), a thick bar
    between the second and fourth (the middle half: its length is the interquartile range) and
    a tick at the middle one (the median). ``frame`` has columns ``{group}_q{q}`` for each
    group of ``groups`` (e.g. ``all_q5`` ... ``correct_q95``, as
    :func:`camri_utils.angles.class_spread` names them; means over seeds) and is indexed by the
    rows' labels. Each group is drawn slightly offset within its row, in its own colour."""
    qs = list(quantiles)
    if len(qs) != 5 or sorted(qs) != qs or len(set(qs)) != 5:
        raise ValueError(f"quantiles must be five increasing percentiles (tails, quartiles, median); got {quantiles!r}.")
    groups = list(groups)
    if not groups:
        raise ValueError("groups must name at least one group of columns (e.g. 'all').")
    missing = [f"{g}_q{q:g}" for g in groups for q in qs if f"{g}_q{q:g}" not in frame]
    if missing:
        raise ValueError(f"frame lacks the columns {missing}; it needs {{group}}_q{{percentile}} for each group.")
    colors = list(colors) if colors is not None else ["0.15", "tab:blue", "tab:orange", "tab:green"]
    if len(colors) < len(groups):
        raise ValueError(f"{len(groups)} groups need as many colours; got {len(colors)}.")
    step = 0.32 if len(groups) > 1 else 0.0
    for i, group in enumerate(groups):
        values = frame[[f"{group}_q{q:g}" for q in qs]].to_numpy(float)
        ys = np.arange(len(frame)) + (i - (len(groups) - 1) / 2) * step
        color = colors[i]
        label = f"{_GROUP_WORDS.get(group, group)}"
        for y, (lo, q1, med, q3, hi) in zip(ys, values):
            if not np.isfinite([lo, q1, med, q3, hi]).all():
                continue
            ax.plot([lo, hi], [y, y], color=color, lw=1.2, solid_capstyle="butt")
            ax.plot([q1, q3], [y, y], color=color, lw=6, solid_capstyle="butt", alpha=0.8, label=label)
            ax.plot([med, med], [y - 0.13, y + 0.13], color="white" if i == 0 else "black", lw=1.6)
            label = None
    ax.set_yticks(range(len(frame)), [str(k) for k in frame.index])
    ax.set_ylim(len(frame) - 0.5, -0.5)  # first row on top
    ax.set_xlabel("angle to own class weight (deg)")
    if legend and len(groups) > 1:
        ax.legend(loc="lower right", frameon=False)
    return ax


def draw_sweep_grid(ax, frame, column, title=None, label=None, percent=False, fontsize=10, vlim=None,
                    cmap="RdBu"):
    """A margin x scale grid (``frame`` from :func:`camri_utils.protocol.sweep_frame`; rows: the
    scale s, columns: the margin in π/64) of ``column``, each cell annotated with its value (in
    points, x100, where ``percent``) and ``label(row)`` (default: the seed count), on a
    diverging colour scale centred on 0, without a colour bar (the numbers are written), with
    the cells that maintain accuracy by the protocol's rule outlined in black. Empty cells and
    undefined values stay blank. Its text size is a parameter, so that the grid stays legible
    when a phone scales the figure down."""
    if column not in frame:
        raise ValueError(f"no column {column!r} in the sweep frame; columns: {list(frame.columns)}.")
    label = label or (lambda row: f"n={row.n_seeds}")
    factor = 100.0 if percent else 1.0
    scales = sorted(frame.scale.unique())
    margins = sorted(frame.margin_pi64.unique())
    grid = np.full((len(scales), len(margins)), np.nan)
    keep = np.zeros_like(grid, dtype=bool)
    notes = np.full(grid.shape, "", dtype=object)
    for r in frame.itertuples():
        i, j = scales.index(r.scale), margins.index(r.margin_pi64)
        value = getattr(r, column)
        grid[i, j] = factor * value if value is not None else np.nan
        keep[i, j] = bool(r.maintains_accuracy) if r.n_seeds else False
        notes[i, j] = label(r) if r.n_seeds and np.isfinite(grid[i, j]) else ""
    finite = np.isfinite(grid)
    limit = vlim if vlim is not None else (np.nanmax(np.abs(grid)) if finite.any() else 1.0) or 1.0
    ax.imshow(grid, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    digits = 2 if percent else 3
    for i in range(len(scales)):
        for j in range(len(margins)):
            if finite[i, j]:
                dark = abs(grid[i, j]) > 0.6 * limit
                text = f"{grid[i, j]:+.{digits}f}" + (f"\n{notes[i, j]}" if notes[i, j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                        color="white" if dark else "black")
            if keep[i, j]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=2.2))
    ax.set_xticks(range(len(margins)), [f"{m:g}" for m in margins])
    ax.set_yticks(range(len(scales)), [f"{s:g}" for s in scales])
    ax.set_xlabel("margin m (units of π/64)")
    ax.set_ylabel("scale s")
    if title:
        ax.set_title(title)
    return ax


"""Chapter 8's exercises (angles between features and class weights): the records with cosines
(CAMRI and the control), read through :mod:`camri_utils.exercises.protocol_records`."""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises import protocol_records as pr
from camri_utils.exercises.core import AnswerError, Custom, Exercise, Mistake

UPPER_BODY = (0, 2, 4, 6)  # Fashion-MNIST's T-shirt/top, Pullover, Coat, Shirt


def _geometry_runs(ctx):
    """(important classes by role, CAMRI records, NormSoftmax records, scale) of the protocol."""
    from camri_utils import protocol

    def make():
        folder = pr.results_folder(ctx)
        spec, kind = protocol.read_spec(folder)
        records = protocol.load_records(folder)
        if kind is not None:
            records, _ = protocol.current_records(spec, kind, records)
        ce = [r for r in records if r["method"] == "CE"]
        if not ce:
            raise AnswerError(f"the records in {folder} have no CE runs yet: nothing to check against.")
        important = protocol.rank_classes(ce)[1]
        scales = [p["scale"] for p in spec.camri_grid]
        scale = float(ctx.params.get("scale", scales[0] if scales else 16.0))
        camri = [r for r in records if r["method"] == "CAMRI" and r["params"].get("scale") == scale]
        control = [r for r in records if r["method"] == "NormSoftmax" and r["params"].get("scale") == scale]
        return important, camri, control, scale
    return ctx.get("geometry_runs", lambda: pr.readable(make, str(pr.results_folder(ctx))))


def _stored(ctx, record):
    from camri_utils import protocol

    return ctx.get(("stored", record["run_id"]),
                   lambda: pr.readable(lambda: protocol.load_scores(pr.results_folder(ctx), record), "stored scores"))


def _stats(ctx, record):
    from camri_utils import angles

    def make():
        s = _stored(ctx, record)
        return angles.cosine_angle_stats(s["test"], s["y_test"])
    return ctx.get(("stats", record["run_id"]), make)


def _relative(ctx, record, c, column="mean"):
    from camri_utils import angles

    stats = _stats(ctx, record)
    rel = angles.relative_mean if column == "mean" else angles.relative_variance
    return float(rel(stats, c).iloc[0])


def _camri_margins(ctx, role):
    important, camri, _, _ = _geometry_runs(ctx)
    return sorted({r["params"]["margin"] for r in camri if r["important_class"] == important[role]})


def _relative_by_margin(ctx, column="mean"):
    important, camri, _, _ = _geometry_runs(ctx)
    out = {}
    for role, c in important.items():
        for m in _camri_margins(ctx, role):
            runs = [r for r in camri if r["important_class"] == c and r["params"]["margin"] == m]
            out[(role, m)] = float(np.mean([_relative(ctx, r, c, column) for r in runs]))
    return out


def _room_keys(ctx):
    return [0.0] + _camri_margins(ctx, "worst1")


def _room(ctx, neighbours=None, degrees=True):
    """The room of worst1's weight against ``neighbours`` (default: the other upper-body
    garments), mean over seeds, for the control (margin 0) and each CAMRI margin."""
    from camri_utils import angles

    important, camri, control, _ = _geometry_runs(ctx)
    c = important["worst1"]
    near = [k for k in (UPPER_BODY if neighbours is None else neighbours) if k != c]

    def room(r):
        theta = angles.weight_angles(_stored(ctx, r)["class_weights"], degrees=degrees)
        return float(theta[c, near].min())

    out = {0.0: float(np.mean([room(r) for r in control]))}
    for m in _camri_margins(ctx, "worst1"):
        out[m] = float(np.mean([room(r) for r in camri if r["important_class"] == c and r["params"]["margin"] == m]))
    return out


def _room_all(ctx):
    from camri_utils import angles

    important, camri, control, _ = _geometry_runs(ctx)
    c = important["worst1"]

    def room(r):
        return angles.nearest_weight_angle(_stored(ctx, r)["class_weights"], c)[0]

    out = {0.0: float(np.mean([room(r) for r in control]))}
    for m in _camri_margins(ctx, "worst1"):
        out[m] = float(np.mean([room(r) for r in camri if r["important_class"] == c and r["params"]["margin"] == m]))
    return out


def _moved(ctx, column="mean", subtract=True, sign=1.0):
    """Every class's relative mean under CAMRI's largest margin on worst1, minus the control's."""
    important, camri, control, _ = _geometry_runs(ctx)
    c = important["worst1"]
    largest = max(_camri_margins(ctx, "worst1"))
    runs = [r for r in camri if r["important_class"] == c and r["params"]["margin"] == largest]
    n = len(_stats(ctx, runs[0]))
    mine = np.array([np.mean([_relative(ctx, r, k, column) for r in runs]) for k in range(n)])
    base = np.array([np.mean([_relative(ctx, r, k, column) for r in control]) for k in range(n)])
    return sign * (mine - base) if subtract else mine


def _no_geometry(ctx):
    important, camri, control, scale = _geometry_runs(ctx)
    if not control or not any(r["important_class"] == important["worst1"] for r in camri):
        raise AnswerError(f"the records have no CAMRI runs for worst1 or no normalized-softmax control at "
                          f"s = {scale:g}: nothing to check against.")


def _read_relative(answer, ctx):
    _no_geometry(ctx)
    keys = list(_relative_by_margin(ctx))
    return pr.read_series(answer, keys, "CAMRI's mean relative mean over seeds", "(role, margin)")


def _read_room(answer, ctx):
    _no_geometry(ctx)
    return pr.read_series(answer, _room_keys(ctx), "the mean room over seeds, in degrees",
                        "the margin in radians (0.0 for normalized softmax)")


def _read_moved(answer, ctx):
    _no_geometry(ctx)
    n = len(_moved(ctx))
    from camri_utils.exercises.core import _as_array

    return _as_array(answer, f"Your answer (one value per class, {n} classes)", (n,))


def _top_moved(ctx, threshold=0.1):
    important, *_ = _geometry_runs(ctx)
    moved = _moved(ctx)
    return [k for k in np.argsort(-np.abs(moved)) if abs(moved[k]) > threshold and k != important["worst1"]]


def _ch8():
    return [
        Exercise(
            "1",
            "Compute CAMRI's relative mean (Table 8.1) for each important class and margin, the mean over "
            "seeds, and plot it against m. Is the effect of the margin on the mean angle proportional to m? "
            "Your answer: a Series indexed by (role, margin in radians), at the protocol's first CAMRI scale.",
            "Per run, `angles.relative_mean(angles.cosine_angle_stats(cosines, y), c)` with the run's stored "
            "test cosines and labels (`protocol.load_scores`); keep CAMRI's runs at the grid's first scale and "
            "average over seeds.",
            lambda ctx: (
                "The relative mean of each CAMRI run at the grid's first scale, averaged over seeds per role and "
                "margin, plotted against the margin; compare the steps between consecutive margins. Here (s = "
                f"{_geometry_runs(ctx)[3]:g}): " + "; ".join(
                    f"{role} " + ", ".join(f"{v:.2f}" for (r, _), v in _relative_by_margin(ctx).items() if r == role)
                    for role in _geometry_runs(ctx)[0]) + " (margins in increasing order)."),
            code="""
import pandas as pd
from camri_utils import angles, protocol

scale = spec.camri_grid[0]["scale"]

def relative_mean(run, c):
    scores = protocol.load_scores(folder, run)
    stats = angles.cosine_angle_stats(scores["test"], scores["y_test"])
    return angles.relative_mean(stats, c).iloc[0]

rows = [(role, r["params"]["margin"], relative_mean(r, c))
        for role, c in sel.important.items() for r in records
        if r["method"] == "CAMRI" and r["important_class"] == c
        and r["params"]["scale"] == scale]
table = pd.DataFrame(rows, columns=["role", "margin", "rel"])
mean_by_margin = table.groupby(["role", "margin"]).rel.mean()
""",
            var="mean_by_margin",
            answer=Custom("a Series indexed by (role, margin)", _read_relative),
            reference=lambda ctx: _relative_by_margin(ctx),
            mistakes=(
                Mistake("That is the relative *variance*; Table 8.1 is the relative mean.",
                        lambda ctx: _relative_by_margin(ctx, "var")),
            ),
            rtol=1e-6, atol=1e-9,
        ),
        Exercise(
            "2",
            "Recompute the room of Shirt's weight (worst1) for each CAMRI margin and for normalized softmax, "
            "using only the other upper-body garments (classes 0, 2, 4) as neighbours. Does the verdict on room "
            "change? Your answer: the mean over seeds in degrees, as a Series or dict indexed by the margin in "
            "radians (0.0 for normalized softmax), at the protocol's first CAMRI scale.",
            "For each run, `angles.weight_angles(w)[6, [0, 2, 4]].min()` with `w` its stored class weights "
            "(`protocol.load_scores(folder, run)[\"class_weights\"]`); then the mean over the runs of each margin.",
            lambda ctx: (
                "For each run, `angles.weight_angles(w)[6, [0, 2, 4]].min()` with `w` its stored class weights; "
                "the mean over seeds: " + ", ".join(
                    ("normalized softmax" if m == 0 else f"m = {m * 64 / math.pi:g}π/64") + f" {v:.1f}°"
                    for m, v in _room(ctx).items())
                + ". Against all nine other classes: " + ", ".join(f"{v:.1f}°" for v in _room_all(ctx).values())
                + ". Where the nearest weight is an upper-body garment anyway, the two agree."),
            code="""
import numpy as np
from camri_utils import angles, protocol

scale = spec.camri_grid[0]["scale"]
c = sel.important["worst1"]                      # Shirt

def room(run):
    w = protocol.load_scores(folder, run)["class_weights"]
    return angles.weight_angles(w)[c, [0, 2, 4]].min()

at_scale = [r for r in records if r["params"].get("scale") == scale]
camri = [r for r in at_scale
         if r["method"] == "CAMRI" and r["important_class"] == c]
control = [r for r in at_scale if r["method"] == "NormSoftmax"]
upper_room = {0.0: np.mean([room(r) for r in control])}
for m in sorted({r["params"]["margin"] for r in camri}):
    upper_room[m] = np.mean([room(r) for r in camri if r["params"]["margin"] == m])
""",
            var="upper_room",
            answer=Custom("a Series or dict indexed by margin", _read_room),
            reference=lambda ctx: _room(ctx),
            mistakes=(
                Mistake("Those are radians; the chapter's angles (and this answer) are in degrees.",
                        lambda ctx: _room(ctx, degrees=False)),
                Mistake("That is the room against all nine other classes; only the upper-body garments "
                        "(0, 2, 4) count here.", lambda ctx: _room_all(ctx)),
                Mistake("Class indices are 0-based: T-shirt/top 0, Pullover 2, Coat 4 (you used 1, 3, 5).",
                        lambda ctx: _room(ctx, neighbours=(1, 3, 5))),
            ),
            rtol=1e-6, atol=1e-9,
        ),
        Exercise(
            "3",
            "For CAMRI with the largest margin on Shirt (worst1), compute every class's relative mean (each in "
            "turn as if it were important), mean over seeds, and subtract normalized softmax's. Which classes "
            "moved? Your answer: an array with one value per class.",
            "For each run, `stats = angles.cosine_angle_stats(cosines, y)` and `angles.relative_mean(stats, k)` "
            "for every class k; average over seeds, then subtract the control's average.",
            lambda ctx: (
                "For each run, `stats = angles.cosine_angle_stats(cosines, y)` from its stored test cosines and "
                "labels, then `angles.relative_mean(stats, k)` for every class k; "
                "average over seeds and subtract the control's. Classes (other than Shirt) whose relative mean "
                "moved by more than 0.1: " + (", ".join(str(k) for k in _top_moved(ctx)) or "none") + "."),
            code="""
import numpy as np
from camri_utils import angles, protocol

scale = spec.camri_grid[0]["scale"]
c = sel.important["worst1"]

def relative_means(run):
    scores = protocol.load_scores(folder, run)
    stats = angles.cosine_angle_stats(scores["test"], scores["y_test"])
    return [angles.relative_mean(stats, k).iloc[0] for k in range(len(stats))]

at_scale = [r for r in records if r["params"].get("scale") == scale]
camri = [r for r in at_scale
         if r["method"] == "CAMRI" and r["important_class"] == c]
largest_margin = max(r["params"]["margin"] for r in camri)
largest = [r for r in camri if r["params"]["margin"] == largest_margin]
control = [r for r in at_scale if r["method"] == "NormSoftmax"]
moved_by_margin = (np.mean([relative_means(r) for r in largest], axis=0)
                   - np.mean([relative_means(r) for r in control], axis=0))
""",
            var="moved_by_margin",
            answer=Custom("an array, one value per class", _read_moved),
            reference=lambda ctx: _moved(ctx),
            mistakes=(
                Mistake("Subtract the control's values (normalized softmax): the question is what the margin "
                        "changed.", lambda ctx: _moved(ctx, subtract=False)),
                Mistake("Wrong sign: CAMRI minus the control, not the control minus CAMRI.",
                        lambda ctx: _moved(ctx, sign=-1.0)),
                Mistake("That is the relative *variance*; the exercise asks for the relative mean.",
                        lambda ctx: _moved(ctx, column="var")),
            ),
            rtol=1e-6, atol=1e-9,
        ),
        Exercise(
            "4",
            "(Coursework) Run `camri protocol` on a dataset of Part III and re-run this chapter with "
            "`results_dir` pointing at its records. Which of the three claims hold there?",
            "Every verdict in section 5 is computed from the records: change `results_dir` and read them.",
            "Change `results_dir`; every verdict in section 5 is computed, so it reads the new run. Say which "
            "data (real or fixture) and profile produced it before reading anything into the verdicts.",
            assignment="needs a GPU and the data (Colab); grade the reading of the verdicts",
        ),
    ]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [
        ("08_angles_fashion_mnist", "Angles between features and class weights", _ch8(),
         ("read a run's geometry from its stored cosines and class weights",
          "test the paper's geometric claims (closer, tighter, more room) against the control",
          "read CAMRI's sensitivity to margin and scale"), ("07_protocol_fashion_mnist",)),
    ]

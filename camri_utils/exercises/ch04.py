"""Chapter 4's exercises (re-weighting versus margins): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Angles are in radians wherever an answer is a number."""

from __future__ import annotations

import math

import numpy as np

from camri_utils.exercises.core import Exercise, Function, Mistake, Number, Values


_SEP_4 = 2 * math.pi / 3


def _point(angle_deg, radius=3.0, degrees=True):
    a = math.radians(angle_deg) if degrees else angle_deg
    return np.array([[radius * math.cos(a), radius * math.sin(a)]])


def _level_row(class_weight=10.0, label=0, weighted=True, degrees=True):
    """The WCE row of chapter 4's table: a class-1 sample (label 0) at |z| = 3 and 0, 60, 90
    degrees from W_1, through the library's loss on the library's logits."""
    import keras

    from camri_utils import WeightedCrossEntropy
    from camri_utils import feature_plane as fp

    W = fp.class_weights_2d(3)
    if weighted:
        loss = WeightedCrossEntropy([class_weight, 1.0, 1.0])
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    row = []
    for a in (0, 60, 90):
        logits = fp.logits_on_plane(_point(a, degrees=degrees), W).astype("float32")
        row.append(float(keras.ops.convert_to_numpy(loss(np.array([label]), logits))))
    return row


def _floor_loss(scale=8.0, n_classes=3):
    from camri_utils import theory

    return float(-np.log(theory.max_probability(scale, n_classes)))


def _camri_boundaries(m):
    from camri_utils import CAMRILoss, theory

    loss = CAMRILoss(3, 0, m, 8.0)
    return [theory.decision_angle(loss, _SEP_4, target=0, other=1, tol=1e-10),
            theory.decision_angle(loss, _SEP_4, target=1, other=0, tol=1e-10)]


def _ce_boundary(norm2=2.0):
    """The angle from W_1 where class 1's and class 2's logits tie when |W_2| = norm2 (no bias):
    bisection on the library's logits between W_1 (0) and W_2 (120 degrees)."""
    from camri_utils import feature_plane as fp

    W = fp.class_weights_2d(3, norms=[1.0, norm2, 1.0])

    def gap(a):
        logits = fp.logits_on_plane(_point(a, 1.0, degrees=False), W)[0]
        return logits[0] - logits[1]

    lo, hi = 0.0, _SEP_4
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


_CH4 = [
    Exercise(
        "1",
        "Increase `class_weight` to 10 and rerun (papermill: `-p class_weight 10`). Which numbers of the "
        "table change, and which do not? Your answer: the WCE row's three losses (at 0°, 60° and 90°).",
        "WCE multiplies the cross-entropy of a class-1 sample by w; the boundary column is where the "
        "logits tie.",
        lambda ctx: (
            "Every loss value of WCE and CRWWCE grows (WCE's row is 10 times cross-entropy's: "
            + ", ".join(f"{v:.3f}" for v in _level_row()) + "); their boundary column stays at 60°, "
            "because for one sample with the weights W fixed the tie of the logits does not depend on the "
            "class weight. The dark-edge column moves further inside (the loss is larger everywhere, so it "
            "reaches 0.5 sooner): for well-classified samples the weight acts as a logit margin of log w. "
            "Training also moves the boundary a model *learns* (samples near it count more)."),
        code="""
import math
import numpy as np
from camri_utils import WeightedCrossEntropy
from camri_utils import feature_plane as fp

W = fp.class_weights_2d(3)
wce = WeightedCrossEntropy([10.0, 1.0, 1.0])
points = [[3 * math.cos(math.radians(a)), 3 * math.sin(math.radians(a))]
          for a in (0, 60, 90)]
logits = fp.logits_on_plane(np.array(points), W).astype("float32")
wce_row = np.array([float(wce(np.array([0]), logits[i:i + 1])) for i in range(3)])
""",
        var="wce_row",
        answer=Values("WCE's losses at 0°, 60° and 90°", (3,)),
        reference=lambda ctx: _level_row(),
        mistakes=(
            Mistake("That is the row for class_weight = 3 (the default): rerun with 10.",
                    lambda ctx: _level_row(3.0)),
            Mistake("That is plain cross-entropy: the weight multiplies the loss of a class-1 sample.",
                    lambda ctx: _level_row(weighted=False)),
            Mistake("Wrong class's loss: the sample is of class 1 (label 0).", lambda ctx: _level_row(label=1)),
            Mistake("The angles went into np.cos as radians: convert 60 and 90 degrees with np.radians.",
                    lambda ctx: _level_row(degrees=False)),
        ),
        rtol=1e-3,
        correct_note="Which column did not change, and why does a learned boundary move anyway?",
    ),
    Exercise(
        "2",
        "The table prints 0.000 for normalized softmax at 0°. Is it exactly zero? Compute the true value "
        "with the previous chapter's p_max (s = 8, three classes 120° apart).",
        "The three weights form a simplex, so the sample on W_1 reaches p_max(8, 3) exactly; the loss is "
        "-log p_max.",
        lambda ctx: (
            "No: the scale caps the probability. With s = 8 and three classes spread as a simplex, "
            "p_max = theory.max_probability(8, 3) < 1, so the loss is -log p_max = log(1 + 2e^{-12}) = "
            f"{_floor_loss():.2e}: positive, but below the table's three decimals."),
        code="""
import numpy as np
from camri_utils import theory

floor_loss = float(-np.log(theory.max_probability(8.0, 3)))
""",
        var="floor_loss",
        answer=Number("the loss at 0°"),
        reference=lambda ctx: _floor_loss(),
        mistakes=(
            Mistake("Not exactly zero: with a finite scale no probability reaches 1.", lambda ctx: 0.0),
            Mistake("That is p_max itself; the loss is -log p_max.",
                    lambda ctx: float(np.exp(-_floor_loss()))),
            Mistake("Wrong sign: a loss -log p is never negative.", lambda ctx: -_floor_loss()),
            Mistake("The chapter's normalized losses use s = 8 and three classes.",
                    lambda ctx: _floor_loss(scale=1.0)),
        ),
        rtol=0.05,
    ),
    Exercise(
        "3",
        "Write the boundary of CAMRI for a class-1 sample when class 1 is important with margin m, and "
        "for a class-2 sample. Write `boundaries(m)`: the two angles in radians, each measured from the "
        "sample's own class weight (weights 120° apart); check with `theory.decision_angle`.",
        "The margin sits on the target logit of the important class only. A class-2 sample's target "
        "logit has no margin; its other logits never have one.",
        "Class 1: π/3 - m/2 (the boundary moves by half the margin towards W_1). Class 2 (not "
        "important): π/3, since its logits are those of normalized softmax. With "
        "`camri = CAMRILoss(3, 0, m, s)`: `theory.decision_angle(camri, sep, target=0, other=1)` gives "
        "the former and `theory.decision_angle(camri, sep, target=1, other=0)` the latter.",
        code="""
import math

def boundaries(m):
    return (math.pi / 3 - m / 2, math.pi / 3)
""",
        var="boundaries",
        answer=Function("boundaries(m): two angles in radians", lambda ctx: [(m,) for m in (0.1, 0.3, 0.5, 0.8)],
                        shape=(2,)),
        reference=lambda ctx: _camri_boundaries,
        mistakes=(
            Mistake("Those are degrees; radians were asked (as the library's margins are).",
                    lambda ctx: lambda m: (60 - math.degrees(m) / 2, 60.0)),
            Mistake("The boundary moves by half the margin, not the whole margin: at the tie "
                    "θ + m = 2π/3 - θ.", lambda ctx: lambda m: (math.pi / 3 - m, math.pi / 3)),
            Mistake("Class 2 is not important: its samples see normalized softmax's logits, and a margin "
                    "only ever sits on a sample's own target logit.",
                    lambda ctx: lambda m: (math.pi / 3 - m / 2, math.pi / 3 - m / 2)),
            Mistake("A class-2 sample's boundary does not move at all: the important class's margin is "
                    "not on the logits a class-2 sample is compared with.",
                    lambda ctx: lambda m: (math.pi / 3 - m / 2, math.pi / 3 + m / 2)),
        ),
        rtol=1e-6, atol=1e-7,
        assignment="the chapter's central claim (CAMRI moves only the important class's boundary) as a "
                   "function checked against the library",
    ),
    Exercise(
        "4",
        "(Coursework) Give class 2 a weight vector of norm 2 (change `W`). What happens to the "
        "cross-entropy panels, and what to the normalized ones? Your answer: the angle from W_1, in "
        "radians, of the boundary between classes 1 and 2 under cross-entropy (no bias).",
        "The logits are |W_k| |z| cos θ_k: solve cos a = 2 cos(2π/3 - a).",
        lambda ctx: (
            "Cross-entropy: class 2's region grows at the others' expense. The 1|2 boundary solves "
            f"cos a = 2 cos(2π/3 - a), i.e. tan a = 2/√3: a = {_ce_boundary():.4f} rad "
            f"({math.degrees(_ce_boundary()):.1f}°) from W_1, instead of π/3. The normalized losses divide "
            "by the norms: nothing changes."),
        code="""
import math

ce_boundary = math.atan(2 / math.sqrt(3))
""",
        var="ce_boundary",
        answer=Number("the angle from W_1, in radians"),
        reference=lambda ctx: _ce_boundary(),
        mistakes=(
            Mistake("π/3 is where the normalized losses put it: they ignore norms, but cross-entropy's "
                    "logits include |W_2|.", lambda ctx: math.pi / 3),
            Mistake("That is in degrees; radians were asked.", lambda ctx: math.degrees(_ce_boundary())),
            Mistake("That angle is measured from W_2; the exercise measures from W_1.",
                    lambda ctx: _SEP_4 - _ce_boundary()),
        ),
        rtol=1e-4,
        assignment="a change to the chapter's figure plus one computed angle and an explanation",
    ),
]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("04_reweighting_vs_margins", "Re-weighting versus margins", _CH4,
        ("see a class weight w as a logit margin log w for well-classified samples, and where it differs "
         "from an angular margin (at the boundary, and in what can pay it)",
         "draw every loss of the paper over a feature plane"),
        ("01_softmax_geometry", "02_normalized_softmax", "03_angular_margins"))]

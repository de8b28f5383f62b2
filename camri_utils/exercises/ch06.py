"""Chapter 6's exercises (CAMRI in two dimensions, on real digits): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Exercises 1-4 ask about training outcomes (open); exercise 5,
the easy margin of the section on training practice, checks itself. Angles are in radians
wherever an answer is a number."""

from __future__ import annotations

import numpy as np

from camri_utils.exercises.core import Exercise, Function, Mistake

# Exercise 5: cosines of a feature with its own class weight, with the cases that tell the
# forms apart (beyond 90 degrees, exactly 90, past pi - m, +-1), at two margins.
_COS_5 = np.array([1.0, 0.95, 0.7, 0.3, 0.05, 0.0, -0.05, -0.4, -0.8, -0.97, -1.0])


def _inputs_5(ctx):
    return [(_COS_5.copy(), m) for m in (0.3, 0.9)]


def _easy_reference(cos, m):
    from camri_utils.losses import margin_cosine

    return np.asarray(margin_cosine(np.asarray(cos, "float32")[None, :], m2=m, easy_margin=True))[0]


def _with_margin(cos, m):
    return np.cos(np.arccos(np.clip(cos, -1.0, 1.0)) + m)


_CH6 = [
    Exercise(
        "1",
        "Make another digit important: 8, CE's worst digit in these runs (`-p important_class 8` with "
        "papermill), then 0, CE's best. Is the effect the same?",
        "Look at CE's recall of the new digit first (the chapter prints it for every digit): how much is "
        "there to gain? Compare CAMRI with the control (normalized softmax) and with CE, paired by seed.",
        "Digit 8 has the most recall to gain (CE's mean recall 0.721 in the chapter's runs); 0, at 0.960, "
        "leaves little, and there the margin mostly widens the angle to its neighbours. Compare with the "
        "control and with CE: the cosine head alone may move the recall. With about 45 test images per "
        "digit and five seeds, compare the per-seed differences, not the means alone.",
    ),
    Exercise(
        "2",
        "Double `camri_margin`. What happens to the accuracy, and why is the 2-D case sensitive to it?",
        "Read every seed's accuracy (one failed seed can drive a mean) and the angle from W_3 to its "
        "nearest class weight: do the learned weights stay where they were?",
        "In 2-D ten classes share 2π (36° each), and a margin of 0.6 rad (34°) is almost a whole share. "
        "The weights are learned too: under the larger margin they move apart around the important digit "
        "(its nearest-weight angle grows), so the margin is paid for by the neighbours' room, and accuracy "
        "can drop. Read the per-seed table before attributing a lower mean to the margin: one seed can "
        "drive it. In high dimensions classes have far more room.",
    ),
    Exercise(
        "3",
        "Give ArcFace the same margin as CAMRI. What happens to the other classes in the polar plot?",
        "Describe the polar plot first (where do the features of each digit sit relative to their "
        "weight?), then check every seed's accuracy with the margin and without.",
        "ArcFace's margin applies to every class, so every class's features are pushed inside its own "
        "region, and all weights compete for room on the circle. Whether a run trains depends on the seed "
        "as well as on the margin: a seed that fails at the smaller margin too (or with monotonic=True) "
        "says the failure is not the margin's. Show a failed run as failed and keep it out of the means, "
        "or give the means with and without it.",
    ),
    Exercise(
        "4",
        "(Coursework) Replace the 2-D feature layer by a 16-D one (`feature_dim=16` in the training cell's "
        "`TrainConfig`) and compare recall and accuracy. Which figures can you still draw?",
        "Everything computed from angles (angles.per_class_angle_stats, nearest_weight_angle) works in any "
        "dimension; only the polar plot needs 2-D.",
        "With 16 dimensions the ten class weights can form a simplex (chapter 2), so a sample on its weight "
        "can reach a far higher probability at the same scale and the pull can vanish as in chapter 5. "
        "Whether recall and accuracy improve is for the run to show (compare paired by seed). The polar "
        "plot needs 2-D features; the angle statistics, the variance bars and the nearest-weight angles "
        "work in any dimension (`angles.own_class_angles`, `angles.per_class_angle_stats`, "
        "`angles.nearest_weight_angles`).",
        assignment="an open experiment with a clear protocol (seeds, control, paired differences): grade "
                   "the method and the write-up",
    ),
    Exercise(
        "5",
        "Write `easy_target(cos, m)`: ArcFace's easy-margin target cosine for an array `cos` of cosines "
        "between features and their own class weight and a margin `m` in radians: cos(θ + m) where "
        "cos θ > 0, cos θ itself elsewhere. Then compare its slope with the paper's formula at θ = π - m: "
        "which of the two still pulls a feature lying there towards its class weight?",
        "θ = arccos(cos) (clip to [-1, 1] first). `np.where(condition, a, b)` picks per entry; the "
        "condition is on the cosine, strictly positive. For the slope: d cos(θ + m)/dθ = -sin(θ + m).",
        "Where cos θ > 0 the target is cos(θ + m), elsewhere cos θ: a feature more than 90° from its "
        "weight is pulled back as without a margin, and the target never rises again as θ grows. At "
        "θ = π - m the paper's cos(θ + m) has slope -sin π = 0: no pull at all, and beyond it the slope "
        "changes sign (the trap of chapter 3). The easy margin's slope there is -sin(π - m) = -sin m, a "
        "pull back. The price is a jump at 90° (from -sin m to 0) and no margin for a feature that is "
        "still far from its weight. `margin_cosine(cos, m2=m, easy_margin=True)` (and "
        "`CAMRILoss(..., easy_margin=True)`) compute the same.",
        code="""
import numpy as np

def easy_target(cos, m):
    cos = np.clip(np.asarray(cos, float), -1.0, 1.0)
    return np.where(cos > 0, np.cos(np.arccos(cos) + m), cos)
""",
        var="easy_target",
        answer=Function("easy_target(cos, m): one target cosine per cosine", _inputs_5, shape=(None,)),
        reference=lambda ctx: _easy_reference,
        mistakes=(
            Mistake("That applies the margin at every angle: it is the paper's formula, cos(θ + m). The easy "
                    "margin keeps the plain cos θ wherever cos θ ≤ 0.", lambda ctx: _with_margin),
            Mistake("That is cos θ everywhere: no margin at all. The easy margin keeps cos(θ + m) where "
                    "cos θ > 0.", lambda ctx: lambda cos, m: np.asarray(cos, float)),
            Mistake("The condition is the wrong way round: the margin belongs where cos θ > 0 (the feature "
                    "within 90° of its weight), the plain cosine beyond.",
                    lambda ctx: lambda cos, m: np.where(np.asarray(cos) > 0, cos, _with_margin(cos, m))),
            Mistake("At exactly 90° (cos θ = 0) the easy margin keeps the plain cosine: the condition is "
                    "cos θ > 0, strictly.",
                    lambda ctx: lambda cos, m: np.where(np.asarray(cos) >= 0, _with_margin(cos, m), cos)),
            Mistake("That is ArcFace's monotonic fallback past θ + m > π (chapter 3), a different remedy: the "
                    "easy margin switches the margin off at 90°.",
                    lambda ctx: lambda cos, m: np.where(np.arccos(np.clip(cos, -1, 1)) + m > np.pi,
                                                        np.asarray(cos) - m * np.sin(m), _with_margin(cos, m))),
        ),
        rtol=1e-5, atol=1e-5,  # the library computes in float32
        correct_note="Now plot it against θ next to the paper's formula and mark θ = π - m.",
    ),
]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("06_camri_digits_2d", "CAMRI in two dimensions, on real digits", _CH6,
        ("train CE, the control, ArcFace and CAMRI over seeds", "measure recall, angle variance and room",
         "compare a margin with its control, paired by seed",
         "recognise a margin that does not train and try a warm-up, a ramp and the easy margin"),
        ("05_camri_loss",))]

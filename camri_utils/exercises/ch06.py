"""Chapter 6's exercises (CAMRI in two dimensions, on real digits (training outcomes: open)): the declarations; checking is
:mod:`camri_utils.exercises.core`'s. Angles are in radians wherever an answer is a number."""

from __future__ import annotations


from camri_utils.exercises.core import Exercise


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
]


def chapters():
    """(stem, title, exercises, objectives, the stems it depends on)."""
    return [("06_camri_digits_2d", "CAMRI in two dimensions, on real digits", _CH6,
        ("train CE, the control, ArcFace and CAMRI over seeds", "measure recall, angle variance and room",
         "compare a margin with its control, paired by seed"), ("05_camri_loss",))]

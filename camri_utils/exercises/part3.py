"""Part III's exercises (chapters 10-12): experiments on the user's own GPU run. Their answers
depend on that run (seeds, margin, precision), so they are open: a hint and what to look for."""

from __future__ import annotations

from camri_utils.exercises.core import Exercise

_WHAT_TO_LOOK_FOR = "There is no single right answer: it depends on your run. What to look for: "


def _exercises(dataset):
    return [
        Exercise(
            "1",
            "Run the experiment with two more seeds (`seed = 1`, `seed = 2`). How large is the spread of the "
            "important class's recall across seeds, compared with CAMRI's gain over CE?",
            "The paper averages ten trials because one run's recall of a single class moves by several points "
            "from seed to seed.",
            _WHAT_TO_LOOK_FOR + "a gain smaller than the seed-to-seed spread is not a gain yet; compare the gain "
            "per seed (paired), with a Student-t interval over the seeds.",
            assignment=f"needs a GPU and the {dataset} data (one Colab session per seed); grade the comparison "
                       "of gain and spread",
        ),
        Exercise(
            "2",
            "Double the margin (`margin_deno = 8`). What happens to the recall, the precision and the angle "
            "histogram of the important class?",
            "A larger margin pushes more images into the important class.",
            _WHAT_TO_LOOK_FOR + "recall up, precision down, and beyond some point accuracy falls too. The paper "
            "keeps only settings that maintain accuracy; compare with moving CE's threshold (chapter 7).",
        ),
        Exercise(
            "3",
            "Turn off mixed precision (`mixed_precision = False`) and compare the time per epoch with the "
            "estimate printed in the chapter. What efficiency did your GPU reach (`camri_utils.cost`)?",
            "The FLOPs of an epoch are `comparison.session_estimate(exp).epoch_flops`; divide by your measured "
            "seconds per epoch and by the GPU's float32 peak.",
            _WHAT_TO_LOOK_FOR + "the efficiency is the epoch's FLOPs over (seconds per epoch × the GPU's peak); "
            "it depends on your GPU and session. The losses compute the margin in float32, so mixed precision "
            "should change the results only within seed noise.",
        ),
    ]


_OBJECTIVES = ("load the dataset (or its fixture) with camri_utils.data",
               "run CE, the control and CAMRI in one Colab session and read recall, precision, confusions "
               "and angles", "plan the full protocol's cost and shard it")


def chapters():
    return [
        ("10_cifar10", "CIFAR-10: raising the recall of cat", _exercises("CIFAR-10"), _OBJECTIVES, ("05_camri_loss", "07_protocol_fashion_mnist")),
        ("11_gtsrb", "GTSRB: raising the recall of the stop sign", _exercises("GTSRB"), _OBJECTIVES, ("05_camri_loss", "07_protocol_fashion_mnist")),
        ("12_awa2", "AwA2: fifty animals, and the worst of them", _exercises("AwA2"), _OBJECTIVES, ("05_camri_loss", "07_protocol_fashion_mnist")),
    ]

"""Chapter 9's computed prose (camri_utils.rare_findings): on a hand-made rare-class summary (a
table, a comparison, a rarity table and angles written here, so every number the text must name
is known), the text names the numbers it was given, formatted independently here, and picks its
words from them: turn the numbers the other way and the words turn too."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from camri_utils import rare_findings

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SEEDS = [0, 1, 2, 3, 4]
M = math.pi / 64
CAMRI = {"margin": 8 * M, "scale": 16.0}
LDAM = {"max_margin": 0.25, "scale": 16.0}
DRW = {"drw_start_epoch": 9, "max_margin": 0.25, "scale": 16.0}
DRW5 = {"drw_start_epoch": 9, "max_margin": 0.5, "scale": 16.0}


def _key(params):
    return json.dumps(params, sort_keys=True)


def _ci(values):
    """Mean and Student-t 95% interval, by SciPy (independent of camri_utils.stats)."""
    v = np.asarray(values, float)
    half = st.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def _interval(values, digits, scale=1.0):
    mean, low, high = (scale * x for x in _ci(values))
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _comp(method, params, reference, acc, oos, verdict, prec=(0.001, -0.01, 0.012), below=5, offset=-0.05):
    """A comparison row: (mean, low, high) gaps against the oracle and out of sample."""
    return {"role": "rare", "method": method, "setting": _key(params), "reference": reference, "important_class": 6,
            "n": 5, "accuracy_gap": acc[0], "accuracy_gap_low": acc[1], "accuracy_gap_high": acc[2],
            "oos_accuracy_gap": oos[0], "oos_accuracy_gap_low": oos[1], "oos_accuracy_gap_high": oos[2],
            "oos_recall_offset": offset, "precision_gap": prec[0], "precision_gap_low": prec[1],
            "precision_gap_high": prec[2], "above": 5 - below, "on": 0, "below": below, "verdict": verdict}


def _row(method, params, gain, accuracy, recall=0.5):
    return {"method": method, "role": "rare", "setting": _key(params) if params is not None else "-",
            "recall_gain": gain if params is not None else np.nan, "gain_ci_low": gain - 0.02,
            "gain_ci_high": gain + 0.02, "accuracy_mean": accuracy, "recall_mean": recall, "precision_mean": 0.8}


BELOW = (-0.0061, -0.0077, -0.0044)
CAMRI_CE = dict(acc=BELOW, oos=(-0.0047, -0.0072, -0.0022), verdict="below", prec=(0.0248, 0.0048, 0.0448))


def make_summary(camri_ce=CAMRI_CE, drw5_control="above", wce_gain=0.155, ce_curves=None):
    table = pd.DataFrame([
        _row("CAMRI", CAMRI, 0.152, 0.8958), _row("LDAM", LDAM, 0.011, 0.8884), _row("LDAM-DRW", DRW, 0.213, 0.8995),
        _row("NormSoftmax", None, 0.0, 0.88), _row("CE + logit adjustment", {"tau": 1.0}, 0.256, 0.9011, 0.598),
        _row("Logit-adjusted CE", {"tau": 2.0}, 0.449, 0.8888), _row("WCE", {"weight": 10.0}, wce_gain, 0.8942),
        {"method": "CE", "role": "rare", "setting": "", "recall_gain": np.nan, "accuracy_mean": 0.8859,
         "recall_mean": 0.342}])
    comp = pd.DataFrame([
        _comp("NormSoftmax", {"scale": 16.0}, "CE", (-0.0168, -0.0188, -0.0148), (-0.015, -0.017, -0.013), "below"),
        _comp("NormSoftmax", {"scale": 8.0}, "CE", (-0.0170, -0.0188, -0.0152), (-0.015, -0.017, -0.013), "below"),
        _comp("LDAM", LDAM, "CE", (-0.0135, -0.0163, -0.0108), (-0.0122, -0.0145, -0.0099), "below"),
        _comp("LDAM-DRW", DRW, "CE", (-0.0024, -0.0046, -0.0001), (-0.0010, -0.0028, 0.0008), "not told apart",
              below=4),
        _comp("LDAM-DRW", DRW5, "CE", (0.0007, -0.0005, 0.0019), (0.0021, 0.0004, 0.0037), "not told apart",
              below=1, offset=-0.049),
        _comp("Logit-adjusted CE", {"tau": 2.0}, "CE", (0.0004, -0.0009, 0.0017), (0.0023, 0.0005, 0.0040),
              "not told apart", below=2, offset=-0.009),
        _comp("CAMRI", CAMRI, "CE", camri_ce["acc"], camri_ce["oos"], camri_ce["verdict"], camri_ce["prec"]),
        _comp("CAMRI", {**CAMRI, "margin": 2 * M}, "CE", (-0.01, -0.012, -0.008), (-0.009, -0.011, -0.007), "below"),
        _comp("WCE", {"weight": 10.0}, "CE", (-0.0077, -0.0099, -0.0056), (-0.0064, -0.0085, -0.0043), "below",
              prec=(0.0135, 0.0030, 0.0239)),
        _comp("CE + logit adjustment", {"tau": 1.0}, "CE", (-0.0008, -0.0014, -0.0003), (0.0003, -0.0008, 0.0014),
              "not told apart"),
        _comp("CAMRI", CAMRI, "control", (-0.0042, -0.0069, -0.0015), (-0.0029, -0.0050, -0.0009), "below"),
        _comp("CAMRI", {**CAMRI, "margin": 2 * M}, "control", (-0.011, -0.013, -0.009), (-0.01, -0.012, -0.008),
              "below"),
        _comp("LDAM-DRW", DRW5, "control", (0.0026, 0.0009, 0.0043), (0.0038, 0.0028, 0.0049), drw5_control,
              below=0),
    ])
    curves = ce_curves or {s: [0.88, 0.885, 0.889, 0.8892, 0.8893] for s in SEEDS}
    ce = [{"seed": s, "history": {"val_accuracy": curves[s]}, "accuracy": 0.8835 + 0.001 * s} for s in SEEDS]
    selection = SimpleNamespace(important={"rare": 6}, ce=ce)
    counts = [5000] * 6 + [500] + [5000] * 3
    records = [{"class_names": NAMES, "method": "CE", "params": {}, "seed": s, "train_class_counts": counts}
               for s in SEEDS]
    return SimpleNamespace(selection=selection, table=table, comparison=comp, records=records,
                           spec=SimpleNamespace(seeds=SEEDS, epochs=12), status={("CE", None): (5, 5)})


RECALL_BALANCED = [0.744, 0.728, 0.739, 0.714, 0.720]
RECALL_RARE = [0.325, 0.359, 0.336, 0.347, 0.343]
GAP = [0.0152, 0.0146, 0.0155, 0.0115, 0.0053]


def make_rarity(precision_rare=(0.9003, 0.8953, 0.9081, 0.9036, 0.9171), gap=GAP):
    return pd.DataFrame({"recall_balanced": RECALL_BALANCED, "recall_rare": RECALL_RARE,
                         "accuracy_balanced": [0.9117, 0.9109, 0.9094, 0.9106, 0.9081],
                         "accuracy_rare": [0.8835, 0.8843, 0.8841, 0.8881, 0.8893],
                         "precision_balanced": [0.7646, 0.7753, 0.7698, 0.7532, 0.7524],
                         "precision_rare": list(precision_rare), "accuracy_gap": gap,
                         "beyond_end": [True] * 5}, index=pd.Index(SEEDS, name="seed"))


ROOM_RARE = [80.0, 79.0, 81.0, 78.5, 80.5]


def make_geometry(room_rare=ROOM_RARE, camri_gap=(-1.0, 0.0, 1.0, -0.5, 0.5)):
    rows = []

    def add(training, setting, method, scale, room, own, gap):
        rows.extend({"training": training, "setting": setting, "method": method, "scale": scale, "seed": s,
                     "room": room[i], "own angle": own[i], "median gap": gap[i]} for i, s in enumerate(SEEDS))

    add("balanced", "NormSoftmax s=16", "NormSoftmax", 16.0, [74.0, 75.0, 73.0, 74.5, 76.0], [51.0] * 5,
        [12.0, 13.0, 12.5, 12.4, 13.1])
    add("rare", "NormSoftmax s=16", "NormSoftmax", 16.0, room_rare, [64.0, 65.0, 63.5, 64.8, 64.2],
        [-7.0, -8.0, -7.5, -8.5, -8.0])
    add("rare", "CAMRI m=8π/64 s=16", "CAMRI", 16.0, [76.0, 77.0, 75.0, 77.5, 76.5], [56.0] * 5, camri_gap)
    return pd.DataFrame(rows)


FRAME = pd.DataFrame({"method": ["LDAM-DRW", "CE + logit adjustment"], "role": "rare",
                      "setting": [_key(DRW5), _key({"tau": 1.0})], "accuracy": [0.9026, 0.9011]})


def story(summary=None, rarity=None, geometry=None):
    return rare_findings.RareFindings(summary or make_summary(), rarity=make_rarity() if rarity is None else rarity,
                                      geometry=make_geometry() if geometry is None else geometry, frame=FRAME)


def test_baseline_names_the_miss_and_turns_with_the_criterion():
    text = story().baseline()  # seed 0: 0.889 - 0.885 ... last three epochs 0.889, 0.8892, 0.8893: converged
    assert text.startswith("**The baseline is trained.** All five CE seeds")
    late = {s: [0.88, 0.885, 0.889, 0.8892, 0.8893] for s in SEEDS}
    late[0] = [0.88, 0.885, 0.8841, 0.8892, 0.8830]  # range 0.0062 over the last three: above 0.005 * 1.1
    text = story(make_summary(ce_curves=late)).baseline()
    assert text.startswith("**The baseline misses its criterion.** Four of the five")
    assert "seed 0's validation accuracy moved by 0.0062" in text and "0.8835, is the lowest of the five" in text
    late[0] = [0.88, 0.885, 0.8841, 0.8892, 0.8870]  # range 0.0051: a miss within a tenth of the tolerance
    assert "nearly to the letter" in story(make_summary(ce_curves=late)).baseline()


def test_rarity_names_its_intervals_and_turns_its_words():
    text = story().rarity_cost()
    assert f"changes by {_interval(np.subtract(RECALL_RARE, RECALL_BALANCED), 4)}" in text
    assert f"to {np.mean(RECALL_RARE):.3f}" in text and "With 500 Shirt images instead of 5,000" in text
    assert f"exact curve is {_interval(GAP, 4)} less accurate" in text and "in all 5 seeds" in text
    assert text.startswith("**Rarity costs CE most of Shirt's recall, and some of it no threshold returns.**")
    assert "precision rises by" in text and "is right when it does" in text
    lower = story(rarity=make_rarity(precision_rare=[0.70, 0.71, 0.69, 0.70, 0.72], gap=[0.01, -0.01, 0.0, 0.005,
                                                                                          -0.004])).rarity_cost()
    assert "precision falls by" in lower and "is right when it does" not in lower
    assert "a threshold returns it.**" in lower and "not told apart from zero" in lower


def test_against_threshold_counts_the_verdicts_and_names_the_gaps():
    text = story().against_threshold()
    assert text.startswith("**No method reaches above threshold moving on CE; three are not told apart from it.**")
    assert "none of the 9 trained settings is above" in text and "six are below" in text
    assert "CAMRI ($m = 8\\pi/64$, $s = 16$) by -0.47 points [-0.72, -0.22] (-0.61 [-0.77, -0.44]" in text
    assert "LDAM-DRW with `max_m` = 0.5 (+0.21 [+0.04, +0.37] out of sample" in text
    assert "at 4.9 points less recall" in text and "Those two may be" in text
    assert "loses nothing measurable" in text and "LDAM-DRW with `max_m` = 0.5 is more accurate, 0.9026" in text
    above = dict(acc=(0.004, 0.002, 0.006), oos=(0.005, 0.003, 0.007), verdict="above", prec=(0.01, 0.0, 0.02))
    text = story(make_summary(camri_ce=above)).against_threshold()
    assert text.startswith("**CAMRI ($m = 8\\pi/64$, $s = 16$) reaches above threshold moving on CE.**")
    assert "one of the 9 trained settings is above: CAMRI" in text and "+0.40 [+0.20, +0.60]" in text
    assert "loses nothing measurable" not in text


def test_margins_against_the_control_follow_the_verdicts():
    text = story().margins()
    assert "starts far below CE's curve (normalized softmax at $s = 16$: -1.68 points [-1.88, -1.48]" in text
    assert "; at $s = 8$: -1.70)" in text and "no scale kept the accuracy floor" in text
    assert "every one of CAMRI's 2 settings is below its control" in text
    assert "only LDAM-DRW with `max_m` = 0.5 is above its control (+0.26 points [+0.09, +0.43]" in text
    assert "None of the" in story(make_summary(drw5_control="not told apart")).margins()


def test_precision_names_who_keeps_it():
    text = story().precision()
    assert text.startswith("**What CAMRI and WCE keep is precision.**")
    assert "+2.48 points [+0.48, +4.48] (CAMRI) and +1.35 [+0.30, +2.39] (WCE)" in text
    assert "while they lose accuracy against it" in text
    none = dict(CAMRI_CE, prec=(0.01, -0.01, 0.03))
    text = story(make_summary(camri_ce=none)).precision()
    assert "**What WCE keeps is precision.**" in text and "CAMRI +1.00 [-1.00, +3.00]" in text


def test_angles_name_the_paired_changes_and_turn_when_the_room_shrinks():
    geo = make_geometry()
    text = story(geometry=geo).angles()
    room = np.subtract(ROOM_RARE, [74.0, 75.0, 73.0, 74.5, 76.0])
    mean, low, high = _ci(room)
    assert f"*grows* when Shirt is rare: by {mean:+.1f} degrees [{low:+.1f}, {high:+.1f}]" in text
    assert "turns from positive (12.6 degrees balanced) to negative (-7.8 rare" in text
    gap = np.subtract([-1.0, 0.0, 1.0, -0.5, 0.5], [-7.0, -8.0, -7.5, -8.5, -8.0])
    assert f"CAMRI does (median gap {_interval(gap, 1)} degrees over its control" in text
    shrinks = story(geometry=make_geometry(room_rare=[70.0, 71.0, 69.0, 70.5, 72.0],
                                           camri_gap=(-9.0, -8.5, -8.8, -9.2, -9.1))).angles()
    assert shrinks.startswith("**The angles: the rare weight gets less room") and "CAMRI does not (" in shrinks
    assert "*grows*" not in shrinks and "Neither pull" not in shrinks


def test_paper_compares_camri_with_wce_by_their_intervals():
    assert "as much as WCE (+0.155)" in story().paper()
    assert "more than WCE (+0.050)" in story(make_summary(wce_gain=0.05)).paper()
    assert "even with the bias chosen on validation" in story().paper()


def test_bad_input_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="rarity lacks the column\\(s\\) \\['beyond_end'\\]"):
        story(rarity=make_rarity().drop(columns="beyond_end"))
    two = make_summary()
    two.selection.important = {"worst1": 6, "worst2": 0}
    with pytest.raises(ValueError, match="one important class"):
        story(two)


def _points(values, digits=2, sign=True):
    """``-2.43 points [-2.89, -1.97]``: a fraction's mean and interval in points, formatted here."""
    mean, low, high = (100 * x for x in _ci(values))
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{f.format(mean)} points [{f.format(low)}, {f.format(high)}]"


def test_summary_line_names_rarity_and_what_a_threshold_gives_back():
    first = story().summary_points()[0]
    acc = np.subtract(make_rarity().accuracy_rare, make_rarity().accuracy_balanced)
    assert f"recall of Shirt by {_interval(np.subtract(RECALL_RARE, RECALL_BALANCED), 3)}" in first
    assert f"(from {np.mean(RECALL_BALANCED):.3f} to {np.mean(RECALL_RARE):.3f})" in first
    assert f"its accuracy by {_points(acc)}." in first
    assert "gives the recall back, at an accuracy that stays below the balanced model's" in first
    assert f"exact curve is {_points(GAP, sign=False)} less accurate" in first
    back = -100 * (np.mean(acc) + np.mean(GAP))  # the accuracy the bias returns, of what rarity cost
    assert f"the bias gives back {back:.2f} of the {-100 * np.mean(acc):.2f} points of accuracy" in first
    assert "in all 5 seeds" in first
    # The balanced model on the rare model's curve: the bias returns everything, and the words say so.
    level = story(rarity=make_rarity(gap=[0.01, -0.01, 0.0, 0.005, -0.004])).summary_points()[0]
    assert "gives the recall back at the balanced model's accuracy" in level and "not told apart" in level
    assert "stays below" not in level and "no threshold the rest" not in level


def test_summary_line_states_the_verdicts_against_threshold_moving():
    text = story().summary_line()
    assert text.startswith("- ") and text.count("\n- ") == 2  # three bullets
    second = story().summary_points()[1]
    assert second.startswith("On this run no method is above threshold moving on CE: none of the 9 trained "
                             "settings is above the oracle")
    assert ("LDAM-DRW and the logit-adjusted loss are not told apart from it: at the same recall LDAM-DRW with "
            "`max_m` = 0.25 is -0.24 points [-0.46, -0.01] from the oracle and -0.10 [-0.28, +0.08]") in second
    assert ("Two trained settings are more accurate than CE's bias chosen on validation, though not than the "
            "oracle: LDAM-DRW with `max_m` = 0.5 (+0.21 points [+0.04, +0.37]) and the logit-adjusted loss at "
            "$\\tau = 2$ (+0.23 [+0.05, +0.40])") in second
    assert ("CAMRI, WCE and LDAM without DRW are below it: at the same recall their chosen settings are -0.47 "
            "points [-0.72, -0.22] (CAMRI), -0.64 [-0.85, -0.43] (WCE) and -1.22 [-1.45, -0.99]") in second
    assert ("Post-hoc adjustment of CE at $\\tau = 1$, which costs no training, is not below CE's bias chosen on "
            "validation (+0.03 points [-0.08, +0.14]): as good a trade-off as any loss tried.") in second


def test_summary_line_turns_when_camri_is_above_or_post_hoc_below():
    above = dict(acc=(0.004, 0.002, 0.006), oos=(0.005, 0.003, 0.007), verdict="above", prec=(0.01, 0.0, 0.02))
    second = story(make_summary(camri_ce=above)).summary_points()[1]
    assert second.startswith("On this run CAMRI is above threshold moving on CE, even against the oracle")
    assert "CAMRI ($m = 8\\pi/64$, $s = 16$) by +0.40 points [+0.20, +0.60] of accuracy" in second
    assert "WCE and LDAM without DRW are below it" in second and "CAMRI, WCE" not in second
    assert "but CAMRI reaches past CE's curve, and so past post-hoc adjustment at any $\\tau$." in second
    assert "no method is above" not in second and "as good a trade-off" not in second
    # A setting the rule did not choose above the oracle: the chosen ones are what the methods are judged by.
    summary = make_summary()
    comp = summary.comparison
    other = (comp.method == "CAMRI") & (comp.setting == _key({**CAMRI, "margin": 2 * M})) & (comp.reference == "CE")
    comp.loc[other, ["accuracy_gap", "accuracy_gap_low", "accuracy_gap_high", "verdict"]] = [0.003, 0.001, 0.005,
                                                                                            "above"]
    posthoc = (comp.method == "CE + logit adjustment") & (comp.reference == "CE")
    comp.loc[posthoc, ["oos_accuracy_gap", "oos_accuracy_gap_low", "oos_accuracy_gap_high", "verdict"]] = [
        -0.002, -0.003, -0.001, "below"]
    second = story(summary).summary_points()[1]
    assert second.startswith("On this run no method's chosen setting is above threshold moving on CE, though one "
                              "of the 9 trained settings is above its oracle")
    assert "CAMRI ($m = 2\\pi/64$, $s = 16$) (+0.30 [+0.10, +0.50])" in second
    assert "is below CE's bias chosen on validation (-0.20 points [-0.30, -0.10])." in second


def test_summary_line_angles_follow_the_room_and_the_pull():
    third = story().summary_points()[2]
    room = np.subtract(ROOM_RARE, [74.0, 75.0, 73.0, 74.5, 76.0])
    own = np.subtract([64.0, 65.0, 63.5, 64.8, 64.2], 51.0)
    gap = np.subtract([-1.0, 0.0, 1.0, -0.5, 0.5], [-7.0, -8.0, -7.5, -8.5, -8.0])
    assert third.startswith(f"The rare class's weight does not lose room: it gains {np.mean(room):+.1f} degrees "
                            "(for normalized softmax at $s = 16$; rare minus balanced")
    assert f"its images drift away from it: their mean angle to it grows by {np.mean(own):+.1f} degrees" in third
    assert f"The margin of CAMRI pulls them back towards the weight (median decision gap {_interval(gap, 1)}" in third
    assert "but no further than a threshold would move them across the boundary: it is not above" in third
    shrinks = story(geometry=make_geometry(room_rare=[70.0, 71.0, 69.0, 70.5, 72.0],
                                           camri_gap=(-9.0, -8.5, -8.8, -9.2, -9.1))).summary_points()[2]
    less = np.subtract([70.0, 71.0, 69.0, 70.5, 72.0], [74.0, 75.0, 73.0, 74.5, 76.0])
    assert shrinks.startswith(f"The rare class's weight loses room, as the intuition says: {np.mean(less):+.1f}")
    assert "No margin pulls them back towards the weight" in shrinks and "does not lose room" not in shrinks
    assert "no further than a threshold" not in shrinks

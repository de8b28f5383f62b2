"""Chapter 7's computed prose (camri_utils.findings): on a hand-made protocol summary (a table, a
comparison and per-seed gaps written here, so every number the text must name is known), the
text names the numbers it was given, formatted independently here, and picks its words from
them: turn the numbers the other way and the words turn too."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from camri_utils import findings

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMPORTANT = {"worst1": 6, "worst2": 0, "median": 3}
SEEDS = [0, 1, 2, 3, 4]
M = math.pi / 64


def _key(params):
    return json.dumps(params, sort_keys=True)


def _ci(values):
    """Mean and Student-t 95% interval, by SciPy (independent of camri_utils.stats)."""
    v = np.asarray(values, float)
    half = st.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def _row(method, role, gain, params, accuracy=0.91):
    return {"method": method, "role": role, "setting": _key(params) if params is not None else "-",
            "recall_gain": gain if params is not None else np.nan, "gain_ci_low": gain - 0.01,
            "gain_ci_high": gain + 0.01, "accuracy_mean": accuracy, "recall_mean": 0.5 + gain}


def _comparison(role, method, params, reference, gaps, verdict):
    mean, low, high = _ci(gaps)
    return {"role": role, "method": method, "setting": _key(params), "reference": reference,
            "important_class": IMPORTANT[role], "n": len(gaps), "accuracy_gap": mean, "accuracy_gap_low": low,
            "accuracy_gap_high": high, "oos_accuracy_gap": mean - 0.001, "oos_accuracy_gap_low": low - 0.001,
            "oos_accuracy_gap_high": high - 0.001, "precision_gap": mean * 5, "precision_gap_low": low * 5,
            "precision_gap_high": high * 5, "oos_precision_gap": mean * 4, "oos_precision_gap_low": low * 4,
            "oos_precision_gap_high": high * 4, "above": int(sum(g > 0 for g in gaps)), "on": 0,
            "below": int(sum(g < 0 for g in gaps)), "verdict": verdict}


CAMRI = {"worst1": {"margin": 6 * M, "scale": 8.0}, "worst2": {"margin": 8 * M, "scale": 8.0},
         "median": {"margin": 8 * M, "scale": 16.0}}
CAMRI_GAIN = {"worst1": 0.084, "worst2": 0.062, "median": 0.047}
ARCFACE_GAIN = {"worst1": -0.001, "worst2": 0.017, "median": 0.007}
# Per seed: CAMRI's pick's accuracy gap to CE's oracle curve and to the control's.
TO_CE = {"worst1": [0.004, 0.006, 0.002, 0.0056, 0.002], "worst2": [0.003, 0.004, 0.002, 0.005, 0.003],
         "median": [-0.003, 0.002, 0.001, -0.002, 0.0]}
TO_CONTROL = {"worst1": [0.005, -0.004, 0.006, 0.001, 0.004], "worst2": [0.0, 0.001, -0.001, 0.001, 0.0005],
              "median": [0.001, -0.001, 0.0, 0.002, -0.002]}


def make_summary(camri_gain=CAMRI_GAIN, arcface_gain=ARCFACE_GAIN, threshold_gain=0.05, to_ce=TO_CE,
                 ce_curves=None, verdicts=None):
    rows = []
    for role in IMPORTANT:
        rows += [_row("CAMRI", role, camri_gain[role], CAMRI[role]),
                 _row("ArcFace", role, arcface_gain[role], {"margin": 4 * M, "scale": 8.0}),
                 _row("CRWWCE", role, 0.03, {"weight": 2.0}),
                 _row("WCE", role, 0.03, {"weight": 4.0} if role == "median" else None),
                 _row("CE + threshold", role, threshold_gain, {"bias": 1.0}),
                 _row("NormSoftmax + threshold", role, threshold_gain, {"bias": 1.0, "scale": 8.0}),
                 {"method": "CE", "role": role, "setting": "", "recall_gain": np.nan, "accuracy_mean": 0.9101}]
    verdicts = verdicts or {"worst1": "above", "worst2": "above", "median": "not told apart"}
    comparison, per_seed = [], []
    for role in IMPORTANT:
        for ref, gaps in (("CE", to_ce[role]), ("control", TO_CONTROL[role])):
            comparison.append(_comparison(role, "CAMRI", CAMRI[role], ref, gaps,
                                          verdicts[role] if ref == "CE" else "not told apart"))
            per_seed += [{"role": role, "method": "CAMRI", "setting": _key(CAMRI[role]), "reference": ref,
                          "seed": s, "accuracy_gap": g} for s, g in zip(SEEDS, gaps)]
        for method in ("CRWWCE", "WCE"):
            params = {"weight": 4.0 if method == "WCE" else 2.0}
            if method == "CRWWCE" or role == "median":
                comparison.append(_comparison(role, method, params, "CE", [-0.001, 0.001, 0.0, -0.002, 0.001],
                                              "not told apart"))
    curves = ce_curves or {s: [0.88, 0.90, 0.910, 0.9101, 0.9102] for s in SEEDS}
    ce = [{"seed": s, "history": {"val_accuracy": curves[s]}, "accuracy": 0.9101,
           "confusion_matrix": np.eye(10, dtype=int).tolist()} for s in SEEDS]
    chosen = {("CAMRI", role): SimpleNamespace(params=CAMRI[role], accuracy_mean=0.9141) for role in IMPORTANT}
    selection = SimpleNamespace(important=IMPORTANT, chosen=chosen, threshold=0.914, ce=ce)
    spec = SimpleNamespace(seeds=SEEDS, epochs=12, dataset="fashion_mnist")
    records = [{"class_names": NAMES, "method": "CE", "params": {}, "seed": s, "run_id": f"ce{s}"} for s in SEEDS]
    return SimpleNamespace(selection=selection, table=pd.DataFrame(rows), comparison=pd.DataFrame(comparison),
                           comparisons=pd.DataFrame(per_seed), records=records, spec=spec)


def test_points_and_words():
    assert findings.points(0.084, 0.0768, 0.0912) == "+8.4 [+7.7, +9.1]"
    assert findings.points(0.084, 0.0768, 0.0912, unit=" points") == "+8.4 points [+7.7, +9.1]"
    assert findings.points(-0.0005, digits=2) == "-0.05"  # no interval: the mean alone
    assert findings.join_words(["a"]) == "a" and findings.join_words(["a", "b", "c"]) == "a, b and c"
    assert findings.count_words(3) == "three" and findings.count_words(12) == "12"
    assert findings.sentence_case("four of five") == "Four of five"
    assert findings.sentence_case("CE and WCE") == "CE and WCE" and findings.sentence_case("") == ""
    # 6 pi/64 in whole units of pi/64; 0.1 is no whole number of them: the radians, 4 digits
    assert findings.margin_math({"margin": 6 * math.pi / 64, "scale": 8.0}) == "$m = 6\\pi/64$"
    assert findings.margin_math({"margin": 0.1}) == "$m = 0.1$" and findings.margin_math({"scale": 8.0}) == ""


def test_gains_name_their_numbers_and_rank_camri_above_its_rivals():
    text = findings.Findings(make_summary()).gains()
    for role in IMPORTANT:  # every gain with its interval, formatted here
        g = CAMRI_GAIN[role]
        assert f"{100 * g:+.1f}" in text and f"[{100 * (g - 0.01):+.1f}, {100 * (g + 0.01):+.1f}]" in text
    assert "ArcFace's gains (-0.1, +1.7, +0.7)" in text
    assert "WCE kept accuracy only for Dress, +3.0" in text
    assert "$s = 8$ for Shirt ($m = 6\\pi/64$) and T-shirt/top ($m = 8\\pi/64$), $s = 16$ for Dress" in text
    assert "That is larger than" in text and "holds here." in text


def test_gains_turn_their_words_when_a_rival_gains_more():
    text = findings.Findings(make_summary(arcface_gain={**ARCFACE_GAIN, "median": 0.06})).gains()
    assert "holds here except for ArcFace for Dress" in text
    everywhere = {role: 0.2 for role in IMPORTANT}
    text = findings.Findings(make_summary(arcface_gain=everywhere)).gains()
    assert "That is smaller than ArcFace's gains (+20.0, +20.0, +20.0) and larger than the re-weighting" in text
    assert "holds here except for ArcFace for Shirt, T-shirt/top and Dress" in text
    low = {role: 0.01 for role in IMPORTANT}  # below every rival's gain (CRWWCE +3.0)
    text = findings.Findings(make_summary(camri_gain=low, arcface_gain=everywhere)).gains()
    assert "That is smaller than ArcFace's gains" in text and "does not hold here." in text
    assert "and the re-weighting losses'" in text  # one word for both when they agree


def test_cheap_alternatives_heading_says_how_much_of_camris_gain_they_reach():
    # CAMRI gains 8.4, 6.2 and 4.7 points; a threshold row that gains 5.0 reaches most of the
    # first two (at least half) and all of the third.
    mixed = findings.Findings(make_summary(threshold_gain=0.05)).cheap()
    assert mixed.startswith("**But moving CE's threshold reaches all of CAMRI's recall gain or more for Dress and "
                            "most of it for Shirt and T-shirt/top, at no training cost, and the head without a "
                            "margin, moved the same way, all of it or more for Dress.**")
    assert "more than CAMRI for Dress" in mixed  # 5.0 > 4.7, and only there
    assert "(CAMRI: +8.4, +6.2 and +4.7)" in mixed
    # The records' case: less than CAMRI everywhere, but more than half of it: "most", not "as much".
    most = findings.Findings(make_summary(threshold_gain=0.045)).cheap()
    assert most.startswith("**But moving CE's threshold reaches most of CAMRI's recall gain, at no training cost.**")
    everywhere = findings.Findings(make_summary(threshold_gain=0.09)).cheap()
    assert everywhere.startswith("**But moving CE's threshold reaches all of CAMRI's recall gain or more, at no "
                                 "training cost, and the head without a margin, moved the same way, all of it or "
                                 "more for every class.**")
    less = findings.Findings(make_summary(threshold_gain=0.01)).cheap()
    assert less.startswith("**Moving CE's threshold reaches less than half of CAMRI's recall gain, at no training "
                           "cost.**")
    assert "less than CAMRI for every class" in less
    # Half of a gain is "most"; just under half is "less"; as much is "all", a negative CAMRI gain too.
    share = findings.Findings.share
    assert share(0.042, 0.084) == "most" and share(0.0419, 0.084) == "less" and share(0.084, 0.084) == "all"
    assert share(-0.01, -0.02) == "all" and share(-0.03, -0.02) == "less"


def test_baseline_words_follow_the_convergence_criterion():
    assert "**The baseline is trained" in findings.Findings(make_summary()).baseline()
    moving = {s: [0.88, 0.90, 0.910, 0.9101, 0.9102] for s in SEEDS}
    moving[2] = [0.80, 0.85, 0.89, 0.90, 0.91]  # 0.02 over the last three epochs: not converged
    text = findings.Findings(make_summary(ce_curves=moving)).baseline()
    assert "**The baseline misses its criterion.**" in text and "seed(s) 2 still moved" in text


def test_against_threshold_names_the_gaps_and_follows_the_verdicts():
    summary = make_summary()
    text = findings.Findings(summary).against_threshold()
    assert "CAMRI's picks at $s = 8$ are above it" in text
    mean, low, high = _ci(TO_CE["worst1"])
    assert f"{100 * mean:.2f} accuracy points [{100 * low:.2f}, {100 * high:.2f}]" in text
    assert "The pick at $s = 16$ for Dress is not told apart from CE's threshold moving" in text
    text = findings.Findings(make_summary(verdicts={r: "not told apart" for r in IMPORTANT})).against_threshold()
    assert "no CAMRI pick is above it" in text and "even against the oracle" not in text


def test_whose_lead_splits_the_gap_per_seed():
    f = findings.Findings(make_summary())
    lead, margin, head = f.lead_parts("worst2")
    expected_head = _ci(np.subtract(TO_CE["worst2"], TO_CONTROL["worst2"]))
    # Means of five floats along two paths: equal to rounding (1e-12 is far below a printed digit).
    assert np.allclose(head[:3], expected_head, atol=1e-12) and np.allclose(margin[:3], _ci(TO_CONTROL["worst2"]))
    assert f.credit("worst2") == "head" and f.credit("worst1") == "unresolved" and f.credit("median") is None
    text = f.whose_lead()
    assert "the head's for T-shirt/top, not resolved for Shirt" in text
    assert f"the head's: {findings.points(*expected_head, digits=2)}" in text
    assert "Where each is measured" not in text  # no row of the control model itself: nothing to set beside


def test_whose_lead_says_where_the_heads_part_and_the_controls_own_row_are_measured():
    summary = make_summary()
    # The control model itself (normalized softmax at the pick's scale) against CE's curve, at its
    # own test recall, per seed; T-shirt/top's head's part is resolved, so its numbers are named.
    gaps, recalls = [0.0032, -0.0011, 0.0003, 0.0055, 0.0018], [0.867, 0.882, 0.865, 0.887, 0.865]
    key = json.dumps({"scale": 8.0}, sort_keys=True)
    summary.comparison = pd.concat([summary.comparison, pd.DataFrame(
        [_comparison("worst2", "NormSoftmax", {"scale": 8.0}, "CE", gaps, "not told apart")])], ignore_index=True)
    summary.comparisons = pd.concat([summary.comparisons, pd.DataFrame(
        [{"role": "worst2", "method": "NormSoftmax", "setting": key, "reference": "CE", "seed": s,
          "accuracy_gap": g, "recall": r} for s, g, r in zip(SEEDS, gaps, recalls)])], ignore_index=True)
    text = findings.Findings(summary).whose_lead()
    mean, low, high = _ci(gaps)
    assert (f"for T-shirt/top the control at $s = 8$ itself is {100 * mean:+.2f} [{100 * low:+.2f}, "
            f"{100 * high:+.2f}] against CE's curve at its own test recall, {np.mean(recalls):.3f}, where the "
            f"head's part is read at the pick's, {0.5 + CAMRI_GAIN['worst2']:.3f}.") in text
    assert text.count("Where each is measured") == 1


def test_unknown_sweep_role_is_refused():
    with pytest.raises(ValueError, match="sweep_role must be one of"):
        findings.Findings(make_summary(), sweep_role="worst3")


def test_summary_line_says_where_the_picks_lie_and_whose_lead_it_is():
    text = findings.Findings(make_summary()).summary_line()
    assert text.startswith("On this run CAMRI's picks at $s = 8$ lie above CE's threshold moving for Shirt and "
                           "T-shirt/top, even against the oracle, but none is told apart from the same head")
    assert "for T-shirt/top the lead is the head's, for Shirt five seeds cannot split it." in text
    assert "do not all keep measurably more precision" in text  # Dress's precision interval includes zero
    # Precision gaps are five times the accuracy gaps (make_summary): formatted here from the gaps given.
    up = {**TO_CE, "median": [0.003, 0.002, 0.001, 0.002, 0.004]}
    gaps = [5 * 100 * _ci(up[r])[0] for r in IMPORTANT]
    resolved = findings.Findings(make_summary(to_ce=up)).summary_line()
    assert f"CAMRI's picks keep {min(gaps):.1f} to {max(gaps):.1f} points more precision" in resolved
    assert "entered the grid" not in text  # no sweep given
    text = findings.Findings(make_summary(verdicts={r: "not told apart" for r in IMPORTANT})).summary_line()
    assert text.startswith("On this run no CAMRI pick lies above CE's threshold moving.")


def test_against_the_paper_points_to_part_three_as_it_is():
    text = findings.Findings(make_summary()).paper()
    # Part III holds the book's own CPU-scale runs and the paper's network on Colab; it claims no result.
    assert ("chapters 10 and 11 run this protocol, with the same control and threshold baseline, on CIFAR-10 and "
            "GTSRB with a network sized for this book's CPU") in text
    assert "a run gets no verdict before it is complete" in text and "the paper's network on Colab" in text
    assert "give a reader with a GPU the same control" not in text

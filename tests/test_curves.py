"""Exact threshold curves and the two-axis comparison, against brute force."""

from pathlib import Path

import numpy as np
import pytest

from camri_utils.protocol import curves

ROOT = Path(__file__).resolve().parents[1]


def _brute(scores, y, c, biases):
    """Metrics at every bias by the argmax itself (float64)."""
    out = []
    for b in biases:
        s = np.array(scores, np.float64)
        s[:, c] += b
        p = s.argmax(1)
        tp, npred = np.sum((p == c) & (y == c)), np.sum(p == c)
        out.append((np.mean(p == y), tp / np.sum(y == c), tp / npred if npred else np.nan))
    return np.array(out)


def _random_scores(rng, n=300, k=5, ties=False):
    scores = rng.normal(size=(n, k))
    if ties:  # coarse, exactly representable values: many equal switch points, as float16 scores have
        scores = np.round(scores * 4) / 4
    y = rng.integers(0, k, size=n)
    scores[np.arange(n), y] += 1.0
    return scores, y


@pytest.mark.parametrize("ties", [False, True])
def test_the_curve_is_every_state_a_dense_bias_sweep_reaches(ties):
    rng = np.random.default_rng(1)
    scores, y = _random_scores(rng, ties=ties)
    curve = curves.threshold_curve(scores, y, 2)
    # Each state's representative bias gives the state's metrics (the states at a switch point
    # exactly only where the arithmetic is exact, as with the stored float16 scores).
    states = slice(None) if ties else slice(0, None, 2)
    brute = _brute(scores, y, 2, curve.bias[states])
    np.testing.assert_allclose(brute[:, 0], curve.accuracy[states])
    np.testing.assert_allclose(brute[:, 1], curve.recall[states])
    np.testing.assert_allclose(brute[:, 2], curve.precision[states], equal_nan=True)
    # A dense sweep (negative biases included) finds no point the curve lacks.
    dense = _brute(scores, y, 2, np.linspace(-8, 8, 6401))  # hits every multiple of 1/4: ties
    states = {(round(a, 12), round(r, 12)) for a, r in zip(curve.accuracy, curve.recall)}
    assert {(round(a, 12), round(r, 12)) for a, r, _ in dense} <= states
    # Its ends: nothing predicted as the class, then everything.
    assert curve.recall[0] == 0 and np.isnan(curve.precision[0]) and curve.recall[-1] == 1
    assert curve.accuracy[-1] == pytest.approx(np.mean(y == 2))


def test_the_curves_maximum_accuracy_can_lie_at_a_negative_bias():
    # Class 0 is over-predicted: the most accurate threshold lowers it.
    scores = np.array([[1.0, 0.8], [1.0, 0.9], [1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 1, 0, 1])
    curve = curves.threshold_curve(scores, y, 0)
    best = curve.bias[np.argmax(curve.accuracy)]
    assert best < 0 and curve.accuracy.max() == 1.0


def test_a_cosine_heads_curve_is_in_logit_units():
    rng = np.random.default_rng(2)
    cos, y = _random_scores(rng, n=100, k=4)
    cos = np.tanh(cos)
    plain, scaled = curves.threshold_curve(cos, y, 1), curves.threshold_curve(cos, y, 1, scale=16)
    np.testing.assert_allclose(plain.recall, scaled.recall)
    np.testing.assert_allclose(scaled.switch, 16 * plain.switch)


def test_moved_metrics_agree_with_the_curve_inside_each_state():
    rng = np.random.default_rng(3)
    scores, y = _random_scores(rng)
    curve = curves.threshold_curve(scores, y, 0)
    for i in (0, 6, 2 * (len(curve) // 4), len(curve) - 1):  # states between switch points
        m = curves.moved_metrics(scores, y, 0, curve.bias[i])
        assert (m["accuracy"], m["recall"]) == pytest.approx((curve.accuracy[i], curve.recall[i]))


def test_choose_bias_is_the_rule_applied_to_every_bias_exactly():
    rng = np.random.default_rng(4)
    runs = [_random_scores(rng, n=200) for _ in range(3)]
    cvs = [curves.threshold_curve(s, y, 1) for s, y in runs]
    threshold = np.mean([cv.accuracy.max() for cv in cvs]) - 0.03
    bias, acc, rec = curves.choose_bias(cvs, threshold)
    # Brute force over a fine grid of common biases: nothing keeps the threshold with more recall.
    grid = np.linspace(-6, 6, 6001)
    per_seed = np.array([_brute(s, y, 1, grid) for s, y in runs])
    mean_acc, mean_rec = per_seed[:, :, 0].mean(0), per_seed[:, :, 1].mean(0)
    ok = mean_acc >= threshold - 1e-12
    assert mean_rec[ok].max() <= rec + 1e-12 and acc >= threshold
    # The chosen bias, applied, gives what it promised.
    got = np.mean([_brute(s, y, 1, [bias])[0] for s, y in runs], axis=0)
    assert got[:2] == pytest.approx((acc, rec))
    assert curves.choose_bias(cvs, 1.01) is None


def _staircase():
    # A hand-made curve: accuracy rises then falls as recall rises.
    return curves.Curve(0, np.arange(5.0), np.array([0.80, 0.85, 0.90, 0.88, 0.10]),
                        np.array([0.0, 0.4, 0.6, 0.8, 1.0]), np.array([np.nan, 0.9, 0.8, 0.7, 0.1]),
                        np.arange(4.0) + 0.5)


def test_compare_on_hand_made_points():
    curve = _staircase()
    above = curves.compare({"accuracy": 0.89, "recall": 0.75, "precision": 0.8}, curve)
    # At accuracy >= 0.89 the curve's best recall is 0.6; at recall >= 0.75 its best accuracy 0.88.
    assert above["recall_gap"] == pytest.approx(0.15) and above["accuracy_gap"] == pytest.approx(0.01)
    assert above["precision_gap"] == pytest.approx(0.1) and above["position"] == "above"
    below = curves.compare({"accuracy": 0.86, "recall": 0.5, "precision": 0.5}, curve)
    assert below["recall_gap"] == pytest.approx(-0.3) and below["accuracy_gap"] == pytest.approx(-0.04)
    assert below["position"] == "below"
    on = curves.compare({"accuracy": 0.88, "recall": 0.8, "precision": 0.7}, curve)
    assert on["position"] == "on" and on["recall_gap"] == 0 and on["accuracy_gap"] == 0


def test_a_point_more_accurate_than_the_whole_curve_gets_no_substitute_recall_gap():
    curve = _staircase()
    beyond = curves.compare({"accuracy": 0.95, "recall": 0.3, "precision": 0.9}, curve)
    assert np.isnan(beyond["recall_gap"]) and beyond["beyond_end"]
    # The accuracy axis carries it: at recall >= 0.3 the curve's best accuracy is 0.90.
    assert beyond["accuracy_gap"] == pytest.approx(0.05) and beyond["position"] == "above"


def test_the_two_axes_agree_in_sign_on_real_shaped_data():
    rng = np.random.default_rng(5)
    scores, y = _random_scores(rng, n=400)
    curve = curves.threshold_curve(scores, y, 3)
    for _ in range(200):
        p = {"accuracy": rng.uniform(0.3, 1), "recall": rng.uniform(0, 1), "precision": 0.5}
        got = curves.compare(p, curve)
        if not np.isnan(got["recall_gap"]) and abs(got["recall_gap"]) > 1e-9:
            assert np.sign(got["recall_gap"]) == np.sign(got["accuracy_gap"]) or got["accuracy_gap"] == 0


def test_paired_t_against_a_closed_form():
    d = [0.01, 0.03, -0.01, 0.02, 0.00]
    mean, low, high, n = curves.paired_t(d)
    half = 2.7764451051977987 * np.std(d, ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert (mean, low, high, n) == pytest.approx((0.01, 0.01 - half, 0.01 + half, 5))
    assert curves.paired_t([0.1, np.nan])[1:] == pytest.approx((np.nan, np.nan, 1), nan_ok=True)


@pytest.mark.parametrize("bad, match", [
    (dict(scores=np.full((3, 2), np.nan), y=[0, 1, 0], c=0), "NaN"),
    (dict(scores=np.zeros((3, 2)), y=[0, 0, 0], c=1), "no image of class 1"),
    (dict(scores=np.zeros((3, 2)), y=[0, 1, 0], c=2), "outside"),
    (dict(scores=np.zeros((3, 2)), y=[0, 1], c=0), "one label per row"),
])
def test_bad_inputs_are_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        curves.threshold_curve(**bad)


def test_the_committed_ce_runs_curves_match_a_dense_sweep_and_reach_past_the_old_grid():
    from camri_utils import protocol

    folder = ROOT / "results" / "fashion_mnist"
    ce = [r for r in protocol.load_records(folder) if r["method"] == "CE"]
    if not ce:
        pytest.skip("no committed records")
    r = sorted(ce, key=lambda r: r["seed"])[0]
    s = protocol.load_scores(folder, r)
    curve = curves.threshold_curve(s["test"], s["y_test"], 6)
    dense = _brute(s["test"], s["y_test"], 6, np.linspace(-4, 6, 2001))
    states = {(round(a, 10), round(rc, 10)) for a, rc in zip(curve.accuracy, curve.recall)}
    assert {(round(a, 10), round(rc, 10)) for a, rc, _ in dense} <= states
    # The bias-0 state is the record itself.
    at0 = curve.state(np.array([1e-7]))[0]
    assert curve.accuracy[at0] == pytest.approx(r["accuracy"]) and curve.recall[at0] == pytest.approx(r["recall"][6])


# The out-of-sample reference and the verdict. One reference model, class 0 of two, scored on a
# validation and a test split of four images each (score of class 0 minus class 1: d; an image
# is predicted 0 once the bias b > -d), small enough to work out by hand.
_VAL_D, _VAL_Y = [1.0, 0.5, -0.5, -1.0], [0, 0, 1, 1]
_TEST_D, _TEST_Y = [0.2, 0.8, -0.9, -2.0], [0, 1, 0, 1]


def _two_class(d, y):
    return curves.threshold_curve(np.column_stack([d, np.zeros(len(d))]), np.array(y), 0)


def test_the_out_of_sample_reference_on_hand_made_scores_where_it_differs_from_the_oracle():
    val, test = _two_class(_VAL_D, _VAL_Y), _two_class(_TEST_D, _TEST_Y)
    # Validation states between switch points (-1, -0.5, 0.5, 1): (accuracy, recall)
    # (0.5, 0), (0.75, 0.5), (1, 1), (0.75, 1), (0.5, 1). Test (switch points -0.8, -0.2,
    # 0.9, 2): (0.5, 0), (0.25, 0), (0.5, 0.5), (0.75, 1), (0.5, 1).
    setting_val = {"accuracy": 0.75, "recall": 0.5}
    setting_test = {"accuracy": 0.6, "recall": 0.5, "precision": 0.6}
    # Recall levels 0, 0.5 and 1 (three states: its middle one is (0.75, 1)); at recall >= 0.5
    # the middles (0.75, 0.5) and (0.75, 1) tie on accuracy and the higher recall wins: the
    # state between 0.5 and 1, bias 0.75.
    assert curves.validation_bias(val, recall=0.5) == pytest.approx(0.75)
    # Accuracy >= 0.75: past the peak (1, 1) accuracy falls to 0.75 and then below: bias 0.75.
    assert curves.validation_bias(val, accuracy=0.75) == pytest.approx(0.75)
    assert curves.validation_bias(val, accuracy=1.0) == pytest.approx(0.0)  # the peak itself
    assert curves.validation_bias(val, accuracy=1.01) is None  # more accurate than the whole curve
    oos = curves.out_of_sample(setting_val, setting_test, val, test)
    # On test, bias 0.75 falls between -0.2 and 0.9: accuracy 0.5, recall 0.5.
    assert oos["oos_accuracy_gap"] == pytest.approx(0.6 - 0.5)
    # Precision's own bias: of the levels' middles at recall >= 0.5, (0.75, 0.5) has precision 1
    # (image 0 alone predicted 0), (0.75, 1) 2/3: bias -0.75, where on test only image 1 (a 1)
    # is predicted 0: precision 0.
    assert oos["oos_precision_gap"] == pytest.approx(0.6 - 0.0)
    assert oos["oos_recall_offset"] == pytest.approx(0.0)
    assert oos["oos_recall_gap"] == pytest.approx(0.0) and oos["oos_accuracy_offset"] == pytest.approx(0.1)
    assert not oos["oos_beyond_end"]
    # The oracle (the test curve's best at recall >= 0.5 is 0.75) puts the same point below.
    oracle = curves.compare(setting_test, test)
    assert oracle["accuracy_gap"] == pytest.approx(0.6 - 0.75) and oracle["position"] == "below"
    # More accurate on validation than every validation state: no recall gap, no substitute.
    beyond = curves.out_of_sample({"accuracy": 1.01, "recall": 0.5}, setting_test, val, test)
    assert np.isnan(beyond["oos_recall_gap"]) and beyond["oos_beyond_end"]
    assert beyond["oos_accuracy_gap"] == pytest.approx(0.1)


def test_on_one_split_the_oracle_bounds_the_out_of_sample_reference():
    # Scored on the split it was chosen on, the out-of-sample reference is a state of the curve,
    # so never better than the curve's best on either axis: the oracle is the envelope.
    rng = np.random.default_rng(6)
    scores, y = _random_scores(rng, n=400)
    curve = curves.threshold_curve(scores, y, 3)
    strictly = 0
    for _ in range(100):
        p = {"accuracy": rng.uniform(0.3, 0.95), "recall": rng.uniform(0, 1), "precision": rng.uniform(0, 1)}
        oracle, oos = curves.compare(p, curve), curves.out_of_sample(p, p, curve, curve)
        assert oos["oos_accuracy_gap"] >= oracle["accuracy_gap"] - 1e-12
        strictly += oos["oos_accuracy_gap"] > oracle["accuracy_gap"] + 1e-12
        assert oos["oos_beyond_end"] == oracle["beyond_end"]
        if not oracle["beyond_end"]:
            assert oos["oos_recall_gap"] >= oracle["recall_gap"] - 1e-12
    assert strictly > 0  # the middle of a recall level is not its best corner


def test_a_point_of_the_references_own_curve_is_not_below_its_out_of_sample_reference():
    # Post-hoc adjustment with one rare class is a bias on CE's logit: a point of CE's curve. On
    # fresh validation and test splits its gap to the out-of-sample reference is noise around
    # zero on both axes (the reference picks the middle of a recall level, not its best corner),
    # while against the oracle it can only lose. 20 replicates of 3,000 + 3,000 images per bias;
    # "more than noise": a mean below zero by more than 3 standard errors (fixed generator seeds,
    # so the test is deterministic; with the best-corner rule 1.2, 1.6 and 2.0 fail, z down to -5.4).
    def split(rng, n):
        y = rng.choice(4, size=n, p=[0.1, 0.3, 0.3, 0.3])
        scores = rng.normal(size=(n, 4))
        scores[np.arange(n), y] += 1.5
        scores[:, 0] -= 0.8  # the rare class is under-predicted: its most accurate bias is about 0.2
        return scores, y

    for bias in (0.8, 1.2, 1.6, 2.0):  # past the most accurate bias, as tau = 1 is in the rare run
        gaps = {"oos_accuracy_gap": [], "oos_recall_gap": []}
        for seed in range(20):
            rng = np.random.default_rng(100 + seed)
            (sv, yv), (st, yt) = split(rng, 3000), split(rng, 3000)
            val, test = curves.threshold_curve(sv, yv, 0), curves.threshold_curve(st, yt, 0)
            point_val = curves.moved_metrics(sv, yv, 0, bias)
            point_test = curves.moved_metrics(st, yt, 0, bias)
            assert curves.compare(point_test, test)["accuracy_gap"] <= 1e-12  # never above its own curve
            oos = curves.out_of_sample(point_val, point_test, val, test)
            for k in gaps:
                gaps[k].append(oos[k])
        for k, g in gaps.items():
            g = np.array(g)
            se = g.std(ddof=1) / np.sqrt(len(g))
            assert g.mean() >= -3 * se - 1e-12, (bias, k, g.mean(), se)


@pytest.mark.parametrize("oracle, oos, expected", [
    ((0.001, 0.004), (0.002, 0.006), "above"),
    ((-0.004, -0.001), (-0.003, -0.001), "below"),
    ((-0.004, -0.001), (-0.001, 0.002), "not told apart"),  # below the oracle only: not a loss
    ((-0.002, 0.003), (0.001, 0.004), "not told apart"),  # above the out-of-sample point only: not a win
    ((np.nan, np.nan), (-0.003, -0.001), "below"),
    ((np.nan, np.nan), (np.nan, np.nan), "not told apart"),  # one seed: no interval, no verdict
    ((0.001, 0.002), (-0.003, -0.001), "not told apart"),  # contradictory: neither said
])
def test_the_three_way_verdict(oracle, oos, expected):
    assert curves.verdict(oracle, oos) == expected
    assert expected in curves.VERDICTS


@pytest.mark.parametrize("call, match", [
    (lambda v, t: curves.validation_bias(v), "exactly one"),
    (lambda v, t: curves.validation_bias(v, accuracy=0.5, recall=0.5), "exactly one"),
    (lambda v, t: curves.validation_bias(v, recall=float("nan")), "finite"),
    (lambda v, t: curves.validation_bias(v, accuracy="0.5"), "finite"),
    (lambda v, t: curves.out_of_sample({"accuracy": 0.5}, {"accuracy": 0.5, "recall": 0.5, "precision": 0.5}, v, t),
     "validation_point lacks recall"),
    (lambda v, t: curves.out_of_sample({"accuracy": 0.5, "recall": 0.5}, {"accuracy": 0.5, "recall": 0.5}, v, t),
     "test_point lacks precision"),
    (lambda v, t: curves.out_of_sample({"accuracy": 0.5, "recall": 1.5},
                                       {"accuracy": 0.5, "recall": 0.5, "precision": 0.5}, v, t), "above 1"),
    (lambda v, t: curves.out_of_sample({"accuracy": 0.5, "recall": 0.5},
                                       {"accuracy": 0.5, "recall": 0.5, "precision": 0.5}, v,
                                       curves.threshold_curve(np.zeros((2, 2)), np.array([0, 1]), 1)),
     "same class"),
    (lambda v, t: curves.verdict((0.2, 0.1), (0.0, 0.1)), "low <= high"),
])
def test_bad_input_to_the_out_of_sample_reference_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(_two_class(_VAL_D, _VAL_Y), _two_class(_TEST_D, _TEST_Y))

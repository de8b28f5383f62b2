import keras
import numpy as np
import pytest

from camri_utils import CosineHead
from camri_utils import angles as A


def polar(deg, r=1.0):
    t = np.radians(deg)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=-1)


def test_angles_against_known_geometry():
    weights = polar(np.array([0.0, 90.0, 180.0])).T          # (2, 3): class weights at 0, 90, 180 deg
    features = polar(np.array([10.0, 80.0, 200.0]), r=np.array([1.0, 5.0, 0.1]))
    angles = A.feature_class_angles(features, 3.0 * weights)
    np.testing.assert_allclose(angles, [[10, 80, 170], [80, 10, 100], [160, 110, 20]], atol=1e-9)
    np.testing.assert_allclose(A.own_class_angles(features, weights, [0, 1, 2]), [10, 10, 20], atol=1e-9)
    np.testing.assert_allclose(A.own_class_angles(features, weights, np.eye(3)), [10, 10, 20], atol=1e-9)  # one-hot
    np.testing.assert_allclose(A.feature_class_angles(features, weights, degrees=False),
                               np.radians(angles), atol=1e-12)


def test_per_class_stats_and_relative_variance():
    weights = polar(np.array([0.0, 120.0, 240.0])).T
    own = {0: [5.0, 15.0], 1: [10.0, 10.0, 10.0], 2: [0.0, 40.0]}
    feats, labels = [], []
    for c, offsets in own.items():
        for o in offsets:
            feats.append(polar(120.0 * c + o))
            labels.append(c)
    stats = A.per_class_angle_stats(np.array(feats), weights, np.array(labels), class_names=["a", "b", "c"])
    assert stats["count"].tolist() == [2, 3, 2]
    np.testing.assert_allclose(stats["mean"], [10, 10, 20], atol=1e-9)
    np.testing.assert_allclose(stats["var"], [25, 0, 400], atol=1e-7)
    rel = A.relative_variance(stats, 0)
    assert rel.loc[0] == pytest.approx(25 / 200)
    assert A.relative_variance(stats, 1).loc[1] == pytest.approx(0.0)
    both = A.relative_variance(stats, [0, 1])
    assert both.loc[0] == pytest.approx(25 / 400) and both.loc[1] == pytest.approx(0.0)


def test_class_without_samples_is_nan_and_excluded():
    weights = polar(np.array([0.0, 120.0, 240.0])).T
    feats = polar(np.array([5.0, 15.0, 115.0, 135.0]))
    stats = A.per_class_angle_stats(feats, weights, [0, 0, 1, 1])
    assert stats.loc[2, "count"] == 0 and np.isnan(stats.loc[2, "var"])
    assert A.relative_variance(stats, 0).loc[0] == pytest.approx(25 / 25)


def test_class_weights_of_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, CosineHead(3)(keras.layers.Dense(2)(inputs)))
    w = A.class_weights_of(model)
    assert w.shape == (2, 3) and w.dtype == np.float64
    np.testing.assert_array_equal(w, model.layers[-1].kernel.numpy())
    dense = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    np.testing.assert_array_equal(A.class_weights_of(dense), dense.layers[-1].kernel.numpy())
    with pytest.raises(ValueError, match="no CosineHead"):
        A.class_weights_of(keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Softmax()]))


@pytest.mark.parametrize("call,match", [
    (lambda: A.feature_class_angles(np.zeros((3, 2)), np.zeros((4, 3))), "same d"),
    (lambda: A.own_class_angles(np.ones((3, 2)), np.ones((2, 3)), [0, 1]), r"shape \(3,\)"),
    (lambda: A.own_class_angles(np.ones((2, 2)), np.ones((2, 3)), [0, 3]), r"label 3 is outside \[0, 3\)"),
    (lambda: A.own_class_angles(np.ones((2, 2)), np.ones((2, 3)), [0, 1.5]), "label 1.5 is not a whole number"),
    (lambda: A.own_class_angles(np.ones((2, 2)), np.ones((2, 3)), np.zeros((2, 4))), r"do not fit 3 classes"),
    (lambda: A.relative_variance(A.per_class_angle_stats(np.ones((2, 2)), np.ones((2, 3)), [0, 1]), 5),
     r"important class 5 is outside \[0, 3\)"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_angles_from_stored_cosines_and_weight_geometry():
    weights = polar(np.array([0.0, 50.0, 180.0])).T  # (2, 3)
    features = polar(np.array([10.0, 30.0, 175.0, 60.0]))
    labels = np.array([0, 0, 2, 1])
    cos = features @ weights  # unit vectors: the cosines a cosine head would output
    np.testing.assert_allclose(A.angles_from_cosines(cos), A.feature_class_angles(features, weights), atol=1e-6)
    np.testing.assert_allclose(A.angles_from_cosines(np.array([[1.0004, -1.0004]])), [[0.0, 180.0]])  # float16 overshoot
    np.testing.assert_allclose(A.weight_angles(2.0 * weights), [[0, 50, 180], [50, 0, 130], [180, 130, 0]], atol=1e-6)
    assert A.nearest_weight_angle(weights, 2) == (pytest.approx(130.0), 1)
    assert A.nearest_weight_angle(weights, 0) == (pytest.approx(50.0), 1)
    # Class 0: sample at 10 deg is 40 deg from W1 (gap 30); at 30 deg, 20 from W1 (gap -10: misclassified).
    np.testing.assert_allclose(A.decision_gap(cos, labels, 0), [30.0, -10.0], atol=1e-6)
    np.testing.assert_allclose(A.decision_gap(cos, labels, 2), [125.0 - 5.0], atol=1e-6)
    # theta + m > pi: class 2's sample is 5 deg from its weight; class 0's at 10 and 30 deg.
    assert A.share_past_pi(cos, labels, 0, margin=np.radians(160.0)) == 0.5  # 170 no, 190 yes
    assert A.share_past_pi(cos, labels, 2, margin=0.1) == 0.0
    with pytest.raises(ValueError, match="class"):
        A.decision_gap(cos, labels, 3)
    with pytest.raises(ValueError, match="no samples of class"):
        A.share_past_pi(cos, np.array([0, 0, 0, 0]), 2, margin=0.1)


def _three_class_plane():
    """Weights at 0, 60 and 180 degrees; class 0's samples at 10, 20, -30 and 40 degrees (own
    angles 10, 20, 30, 40), class 1's at 65 and 45 (5, 15), class 2's at 190 and 150 (10, 30)."""
    weights = polar(np.array([0.0, 60.0, 180.0])).T
    at = np.array([10.0, 20.0, -30.0, 40.0, 65.0, 45.0, 190.0, 150.0])
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    return polar(at) @ weights, labels, weights


def test_stats_from_cosines_match_features_and_closed_forms():
    cos, labels, weights = _three_class_plane()
    np.testing.assert_allclose(A.own_angles_from_cosines(cos, labels), [10, 20, 30, 40, 5, 15, 10, 30], atol=1e-6)
    np.testing.assert_allclose(A.own_angles_from_cosines(cos, labels, degrees=False),
                               np.radians([10, 20, 30, 40, 5, 15, 10, 30]), atol=1e-8)
    stats = A.cosine_angle_stats(cos, labels, class_names=["a", "b", "c"])
    np.testing.assert_allclose(stats["mean"], [25, 10, 20], atol=1e-6)
    np.testing.assert_allclose(stats["var"], [125, 25, 100], atol=1e-5)
    assert stats["name"].tolist() == ["a", "b", "c"] and stats.attrs["unit"] == "degrees"
    at = np.array([10.0, 20.0, -30.0, 40.0, 65.0, 45.0, 190.0, 150.0])
    from_features = A.per_class_angle_stats(polar(at), weights, labels)
    np.testing.assert_allclose(stats[["count", "mean", "var"]], from_features, atol=1e-5)
    # Relative to the other two classes: 25 / mean(10, 20) and 125 / mean(25, 100).
    assert A.relative_mean(stats, 0).loc[0] == pytest.approx(5 / 3)
    assert A.relative_variance(stats, 0).loc[0] == pytest.approx(2.0)
    assert A.relative_mean(stats, [1]).loc[1] == pytest.approx(10 / 22.5)
    with pytest.raises(ValueError, match=r"important class 3 is outside \[0, 3\)"):
        A.relative_mean(stats, 3)


def test_nearest_weight_angles_of_every_class():
    weights = polar(np.array([0.0, 60.0, 180.0])).T
    angle, nearest = A.nearest_weight_angles(5.0 * weights)
    np.testing.assert_allclose(angle, [60, 60, 120], atol=1e-6)
    assert nearest.tolist() == [1, 0, 1]
    np.testing.assert_allclose(A.nearest_weight_angles(weights, degrees=False)[0], np.radians([60, 60, 120]))
    assert A.nearest_weight_angle(weights, 2) == (pytest.approx(120.0), 1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        A.nearest_weight_angles(np.ones((3, 1)))


def test_class_geometry_on_hand_made_plane():
    cos, labels, weights = _three_class_plane()
    # Class 0: nearest other weight W1 (60 deg): its samples are 50, 40, 90, 20 deg from it,
    # so their gaps are 40, 20, 60, -20 (the sample at 40 deg is on W1's side).
    g = A.class_geometry(cos, labels, weights, 0, margin=np.radians(25.0))
    assert g["count"] == 4
    assert g["mean"] == pytest.approx(25.0) and g["var"] == pytest.approx(125.0)
    assert g["relative_mean"] == pytest.approx(5 / 3) and g["relative_variance"] == pytest.approx(2.0)
    assert g["max_angle"] == pytest.approx(40.0)
    assert g["nearest_angle"] == pytest.approx(60.0) and g["nearest_class"] == 1
    assert g["others_nearest_angle"] == pytest.approx((60.0 + 120.0) / 2)
    assert g["gap_median"] == pytest.approx(30.0)
    assert g["share_gap_positive"] == 0.75 and g["share_gap_over_margin"] == 0.5
    assert g["share_past_pi"] == 0.0
    # A cosine head predicts the argmax of the cosines: a positive gap is a correct prediction.
    assert g["share_gap_positive"] == np.mean(np.argmax(cos[labels == 0], axis=1) == 0)
    # 145 deg of margin: only the sample at 40 deg passes pi (185 > 180; 30 + 145 = 175).
    past = A.class_geometry(cos, labels, weights, 0, margin=np.radians(145.0))
    assert past["share_past_pi"] == 0.25 and past["share_gap_over_margin"] == 0.0
    # No margin: the gap only has to be positive.
    assert A.class_geometry(cos, labels, weights, 0)["share_gap_over_margin"] == 0.75
    # Stored as float16, as the protocol stores scores: the same to a fraction of a degree.
    g16 = A.class_geometry(cos.astype(np.float16), labels, weights, 0, margin=np.radians(25.0))
    assert g16["mean"] == pytest.approx(25.0, abs=0.2) and g16["gap_median"] == pytest.approx(30.0, abs=0.3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(class_weights=np.ones((2, 4))), r"C = 3"),
    (dict(c=3), r"class 3 is outside \[0, 3\)"),
    (dict(margin=-0.1), r"margin must be a number of radians in \[0, pi\]"),
    (dict(margin=4.0), r"margin must be a number"),
    (dict(margin=True), r"margin must be a number"),
    (dict(margin="0.2"), r"margin must be a number"),
    (dict(labels=np.array([0, 0, 0, 0, 1, 1, 1, 1])), "no samples of class 2"),
    (dict(labels=np.array([0, 1])), r"shape \(8,\)"),
])
def test_class_geometry_bad_input(kwargs, match):
    cos, labels, weights = _three_class_plane()
    args = dict(cosines=cos, labels=labels, class_weights=weights, c=kwargs.get("c", 2), margin=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        A.class_geometry(**args)


def test_mean_interval_closed_forms():
    # Two values: t with 1 degree of freedom is the Cauchy distribution, quantile tan(pi (p - 1/2)).
    mean, low, high = A.mean_interval([0.0, 2.0])  # sd sqrt(2), standard error 1
    assert mean == 1.0
    assert high - mean == pytest.approx(np.tan(np.pi * 0.475)) and mean - low == pytest.approx(np.tan(np.pi * 0.475))
    assert A.mean_interval([0.0, 2.0], level=0.5) == pytest.approx((1.0, 0.0, 2.0))
    # Five values: t(0.975, 4) = 2.7764451 (tables); standard error sqrt(2.5 / 5).
    mean, low, high = A.mean_interval(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert (mean, high - mean) == pytest.approx((3.0, 2.7764451 * np.sqrt(0.5)))
    one = A.mean_interval([0.7])
    assert one[0] == 0.7 and np.isnan(one[1]) and np.isnan(one[2])


def test_t_multiplier_closed_forms_and_bad_input():
    from camri_utils import stats

    # Closed forms of the t quantile: 1 degree of freedom (Cauchy) tan(pi (p - 1/2)); 2 degrees
    # (2p - 1) / sqrt(2p(1 - p)); 4 degrees from tables. Float64 along other paths: 1e-6 relative.
    assert stats.t_multiplier(2) == pytest.approx(np.tan(np.pi * 0.475), rel=1e-6)
    assert stats.t_multiplier(3) == pytest.approx(0.95 / np.sqrt(2 * 0.975 * 0.025), rel=1e-6)
    assert stats.t_multiplier(5) == pytest.approx(2.7764451, rel=1e-6)
    assert stats.t_multiplier(3, level=0.5) == pytest.approx(0.5 / np.sqrt(2 * 0.75 * 0.25), rel=1e-6)
    # mean_interval's half-width is this multiplier times the standard error
    values = np.array([1.0, 2.0, 4.0])
    mean, low, high = A.mean_interval(values)
    assert high - mean == pytest.approx(stats.t_multiplier(3) * values.std(ddof=1) / np.sqrt(3), rel=1e-12)
    for n, match in ((1, "at least 2"), (2.5, "whole number"), (True, "whole number"), ("5", "whole number")):
        with pytest.raises(ValueError, match=match):
            stats.t_multiplier(n)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        stats.t_multiplier(5, level=1.0)


def test_signed_numbers_never_print_a_negative_zero():
    from camri_utils import stats

    assert stats.signed(0.2412, 2) == "+0.24" and stats.signed(-1.236, 1) == "-1.2"
    # An interval end just above or below zero keeps its sign, with the decimals its first digit needs...
    assert stats.signed(0.0031, 2) == "+0.003" and stats.signed(-0.004, 2) == "-0.004"
    assert stats.signed(0.04, 1) == "+0.04" and stats.signed(0.00023, 2) == "+0.0002"
    assert stats.signed(-0.000012, 2) == "-0.00001"  # three decimals more at most...
    # ...and what still rounds to zero, like an exact zero, prints unsigned: never "-0.00".
    assert stats.signed(-0.000004, 2) == "0.00" and stats.signed(1e-17, 2) == "0.00"
    assert stats.signed(0.0, 2) == "0.00" and stats.signed(-0.0, 1) == "0.0"
    assert stats.signed(0.43, 2, sign=False) == "0.43" and stats.signed(-0.43, 2, sign=False) == "-0.43"
    assert stats.signed(np.float32(0.5), 1) == "+0.5" and stats.signed(float("nan"), 2) == "nan"
    # Over many values: no "-0" prefix ever, and the printed number is the value to its decimals.
    for value in np.random.default_rng(0).normal(scale=0.01, size=2000):
        text = stats.signed(value, 2)
        assert float(text) != 0.0 or text == "0.00"  # a zero printed is unsigned
        places = len(text.split(".")[1])
        assert abs(float(text) - value) <= 0.5 * 10.0 ** -places + 1e-15  # rounding to its own decimals
    for digits in (-1, 1.5, True):
        with pytest.raises(ValueError, match="digits must be a whole number"):
            stats.signed(1.0, digits)


@pytest.mark.parametrize("values,level,match", [
    ([], 0.95, "non-empty"),
    ([1.0, np.nan], 0.95, "finite"),
    ([[1.0, 2.0]], 0.95, "1-D"),
    (["a", "b"], 0.95, "must be numbers"),
    ([1.0, 2.0], 1.0, r"level must be in \(0, 1\)"),
    ([1.0, 2.0], 0.0, r"level must be in \(0, 1\)"),
])
def test_mean_interval_bad_input(values, level, match):
    with pytest.raises(ValueError, match=match):
        A.mean_interval(values, level)


def test_epoch_angle_arrays():
    mean, std = A.epoch_angle_arrays({"mean": [[50.0, None], [40.0, 30.0]], "std": [[5.0, None], [4.0, 3.0]]})
    assert mean.shape == std.shape == (2, 2) and mean.dtype == np.float64
    np.testing.assert_array_equal(mean, [[50.0, np.nan], [40.0, 30.0]])
    np.testing.assert_array_equal(std[1], [4.0, 3.0])
    with pytest.raises(ValueError, match="'mean' and 'std' lists"):
        A.epoch_angle_arrays({"mean": [[1.0]]})
    with pytest.raises(ValueError, match="differ in shape"):
        A.epoch_angle_arrays({"mean": [[1.0, 2.0]], "std": [[1.0]]})
    with pytest.raises(ValueError, match=r"\[epoch\]\[class\]"):
        A.epoch_angle_arrays({"mean": [[1.0, 2.0], [1.0]], "std": [[1.0, 2.0], [1.0]]})
    with pytest.raises(ValueError, match="non-empty"):
        A.epoch_angle_arrays({"mean": [], "std": []})


def test_angle_figures_draw_what_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from camri_utils import plots

    fig, (a, b) = plt.subplots(1, 2)
    theta = np.array([10.0, 20.0, 30.0, 5.0, 15.0, 40.0])
    labels = np.array([0, 0, 0, 2, 2, 2])  # class 1 has no samples: no violin
    plots.draw_angle_violins(a, theta, labels, important=2, class_names=["a", "b", "c"])
    bodies = [c for c in a.collections if c.get_paths() and len(c.get_paths()[0].vertices) > 10]
    assert len(bodies) == 2
    assert tuple(bodies[1].get_facecolor()[0][:3]) == to_rgba("tab:red")[:3]
    assert tuple(bodies[0].get_facecolor()[0][:3]) != to_rgba("tab:red")[:3]
    assert [t.get_text() for t in a.get_xticklabels()] == ["0", "1", "2"]
    matrix = np.array([[0.0, 60.0, 180.0], [60.0, 0.0, 120.0], [180.0, 120.0, 0.0]])
    image = plots.draw_weight_angles(b, matrix, important=[1], vmin=0, vmax=180)
    shown = np.ma.filled(image.get_array(), np.nan)
    assert np.isnan(np.diag(shown)).all() and shown[0, 2] == 180.0
    assert matrix[0, 0] == 0.0  # the caller's matrix is left as it was
    assert b.get_yticklabels()[1].get_color() == "tab:red"
    with pytest.raises(ValueError, match="one length"):
        plots.draw_angle_violins(a, theta, labels[:3])
    with pytest.raises(ValueError, match="square"):
        plots.draw_weight_angles(b, np.ones((3, 2)))
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Spread by robust measures, and verdicts on paired differences
# ----------------------------------------------------------------------------------------------
def test_spread_against_numpy_and_hand_computed_percentiles():
    s = A.spread([40.0, 10.0, 200.0, 30.0, 20.0])  # order does not matter
    assert s["count"] == 5 and s["mean"] == pytest.approx(60.0)
    assert s["var"] == pytest.approx(5000.0) and s["std"] == pytest.approx(np.sqrt(5000.0))  # ddof 0
    # Linear interpolation between order statistics: the 5th percentile sits 0.2 of the way from 10 to 20.
    assert (s["q5"], s["q25"], s["q50"], s["q75"]) == pytest.approx((12.0, 20.0, 30.0, 40.0))
    assert s["q95"] == pytest.approx(40.0 + 0.8 * 160.0)
    # The far image moves the variance a lot and the interquartile range not at all.
    assert s["iqr"] == 20.0 and A.spread([10.0, 20.0, 30.0, 40.0, 50.0])["iqr"] == 20.0
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 10.0, 501)
    t = A.spread(x, quantiles=(10, 90))
    assert t["iqr"] == pytest.approx(np.subtract(*np.percentile(x, [75, 25])))
    assert t["q10"] == pytest.approx(np.percentile(x, 10)) and "q5" not in t
    empty = A.spread([])
    assert empty["count"] == 0 and np.isnan(empty["iqr"]) and np.isnan(empty["q95"])


@pytest.mark.parametrize("values,quantiles,match", [
    ([[1.0, 2.0]], (50,), "1-D"),
    ([1.0, np.nan], (50,), "finite"),
    (["a"], (50,), "must be numbers"),
    ([1.0, 2.0], (101,), r"percentiles in \[0, 100\]"),
    ([1.0, 2.0], (True,), r"percentiles in \[0, 100\]"),
    ([1.0, 2.0], ("50",), r"percentiles in \[0, 100\]"),
])
def test_spread_bad_input(values, quantiles, match):
    with pytest.raises(ValueError, match=match):
        A.spread(values, quantiles)


def _spread_case():
    # Class 0's images at 10, 20, 30, 80 degrees from their weight; the one at 80 degrees is
    # nearer class 1's weight (cosine 0.5 > cos 80), so a cosine head misclassifies it.
    own = np.array([10.0, 20.0, 30.0, 80.0])
    cos = np.full((6, 2), 0.0)
    cos[:4, 0] = np.cos(np.radians(own))
    cos[3, 1] = 0.5
    cos[4:, 1] = 1.0
    labels = np.array([0, 0, 0, 0, 1, 1])
    return own, cos, labels


def test_class_spread_on_all_and_on_correctly_classified_images():
    own, cos, labels = _spread_case()
    s = A.class_spread(cos, labels, 0)
    ref_all, ref_correct = A.spread(own), A.spread(own[:3])
    for key, value in ref_all.items():
        assert s[f"all_{key}"] == pytest.approx(value)
    for key, value in ref_correct.items():
        assert s[f"correct_{key}"] == pytest.approx(value)
    assert s["correct_count"] == 3 and s["all_var"] > 5 * s["correct_var"]
    # A model whose own decision differs (CE: its bias takes part) is judged by its predictions.
    everything_right = A.class_spread(cos, labels, 0, predictions=labels)
    assert everything_right["correct_count"] == 4
    assert everything_right["correct_iqr"] == pytest.approx(ref_all["iqr"])
    nothing_right = A.class_spread(cos, labels, 0, predictions=np.ones(6, int))
    assert nothing_right["correct_count"] == 0 and np.isnan(nothing_right["correct_mean"])
    rad = A.class_spread(cos, labels, 0, degrees=False)
    assert rad["all_q50"] == pytest.approx(np.radians(ref_all["q50"]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(c=2), r"class 2 is outside \[0, 2\)"),
    (dict(predictions=np.zeros(5, int)), r"shape \(6,\)"),
    (dict(predictions=np.full(6, 7)), r"label 7 is outside"),
    (dict(labels=np.array([1, 1, 1, 1, 1, 1])), "no samples of class 0"),
])
def test_class_spread_bad_input(kwargs, match):
    _, cos, labels = _spread_case()
    args = dict(cosines=cos, labels=labels, c=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        A.class_spread(**args)


def test_paired_verdict_on_closed_forms():
    # Differences -1, -2, -3: mean -2, sd 1, t(0.975, 2) = 4.302653 (tables): [-4.484, 0.484].
    v = A.paired_verdict({0: 1.0, 1: 2.0, 2: 3.0, 9: 100.0}, {0: 2.0, 1: 4.0, 2: 6.0}, "lower")
    assert v["n"] == 3 and v["diff"] == pytest.approx(-2.0)  # seed 9 has no control: left out
    assert v["mean"] == pytest.approx(2.0) and v["control_mean"] == pytest.approx(4.0)
    assert (v["low"], v["high"]) == pytest.approx((-2.0 - 4.302653 / np.sqrt(3), -2.0 + 4.302653 / np.sqrt(3)))
    assert v["verdict"] == "unresolved"
    # Consistent differences: the claimed side holds, the other is reversed.
    a, b = {s: 10.0 + s for s in range(5)}, {s: 10.5 + s + 0.01 * (-1) ** s for s in range(5)}
    assert A.paired_verdict(a, b, "lower")["verdict"] == "holds"
    assert A.paired_verdict(a, b, "higher")["verdict"] == "reversed"
    one = A.paired_verdict({0: 1.0}, {0: 2.0}, "lower")
    assert one["n"] == 1 and np.isnan(one["low"]) and one["verdict"] == "unresolved"
    none = A.paired_verdict({0: 1.0}, {1: 2.0}, "lower")
    assert none["n"] == 0 and none["verdict"] == "unresolved"


def test_paired_verdict_pairs_seeds_where_unpaired_intervals_overlap():
    # Seeds differ a lot, the setting is 1 above its control in every seed: separate intervals
    # overlap widely, the paired difference is clear.
    base = {0: 10.0, 1: 30.0, 2: 50.0, 3: 20.0, 4: 40.0}
    setting = {s: v + 1.0 + 0.05 * s for s, v in base.items()}
    _, low_a, high_a = A.mean_interval(list(setting.values()))
    _, low_b, high_b = A.mean_interval(list(base.values()))
    assert low_a < high_b and low_b < high_a  # the intervals overlap
    assert A.paired_verdict(setting, base, "higher")["verdict"] == "holds"


def test_paired_verdict_agrees_with_scipys_paired_t_test():
    from scipy import stats

    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(200):
        n = int(rng.integers(2, 8))
        control = rng.normal(50.0, 5.0, n)
        setting = control + rng.normal(rng.normal(0.0, 1.0), 1.0, n)
        v = A.paired_verdict(dict(enumerate(setting)), dict(enumerate(control)), "higher")
        p = stats.ttest_rel(setting, control).pvalue
        if abs(p - 0.05) < 1e-9:
            continue
        expected = "unresolved" if p > 0.05 else ("holds" if setting.mean() > control.mean() else "reversed")
        assert v["verdict"] == expected
        seen.add(expected)
    assert seen == set(A.VERDICTS)  # every verdict was exercised


@pytest.mark.parametrize("values,control,claimed,level,match", [
    ({0: 1.0}, {0: 2.0}, "less", 0.95, "claimed must be 'lower' or 'higher'"),
    ([1.0, 2.0], {0: 2.0}, "lower", 0.95, "values must map a seed"),
    ({0: 1.0}, [2.0], "lower", 0.95, "control must map a seed"),
    ({0: 1.0, 1: np.nan}, {0: 2.0, 1: 1.0}, "lower", 0.95, "finite"),
    ({0: "a"}, {0: 2.0}, "lower", 0.95, "map seeds to numbers"),
    ({0: 1.0, 1: 2.0}, {0: 2.0, 1: 1.0}, "lower", 1.0, r"level must be in \(0, 1\)"),
])
def test_paired_verdict_bad_input(values, control, claimed, level, match):
    with pytest.raises(ValueError, match=match):
        A.paired_verdict(values, control, claimed, level)

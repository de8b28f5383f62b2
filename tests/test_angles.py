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

"""The loss family against float64 NumPy references, gradients, special cases, mixed
precision, serialization and input validation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from camri_utils import (
    AngularMarginLoss,
    ArcFaceLoss,
    CAMRILoss,
    CosFaceLoss,
    CosineHead,
    NormalizedSoftmaxLoss,
    RealWorldWeightedCrossEntropy,
    SphereFaceLoss,
    WeightedCrossEntropy,
)
from tests import reference as ref

N_CLASSES = 6
PI = math.pi


def random_batch(rng, n=64, n_classes=N_CLASSES):
    """Cosines in [-1, 1] with exact -1, 0 and 1 planted, also at the target; labels over all classes."""
    cos = rng.uniform(-1.0, 1.0, size=(n, n_classes)).astype(np.float32)
    labels = rng.integers(0, n_classes, size=n)
    labels[:n_classes] = np.arange(n_classes)
    for i, value in enumerate([-1.0, 1.0, 0.0, -1.0, 1.0, 0.0]):
        cos[i, labels[i]] = value          # at the target
        cos[i + 6, (labels[i + 6] + 1) % n_classes] = value  # at a non-target
    cos[12, :] = 1.0
    cos[13, :] = -1.0
    return cos, labels


def label_formats(labels, n_classes=N_CLASSES):
    return {
        "int": labels.astype(np.int64),
        "column": labels.reshape(-1, 1).astype(np.int32),
        "one_hot": np.eye(n_classes, dtype=np.float32)[labels],
    }


# (name, loss factory, reference per-sample function)
MARGIN_CASES = [
    ("normsoftmax", lambda: NormalizedSoftmaxLoss(scale=16.0),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 16.0), y)),
    ("sphereface", lambda: SphereFaceLoss(margin=4.0, scale=30.0),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m1=4.0), y)),
    ("sphereface_monotonic", lambda: SphereFaceLoss(margin=3.0, scale=20.0, monotonic=True),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 20.0, m1=3.0, monotonic=True), y)),
    ("cosface", lambda: CosFaceLoss(margin=0.35, scale=30.0),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m3=0.35), y)),
    ("arcface", lambda: ArcFaceLoss(margin=0.5, scale=30.0),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m2=0.5), y)),
    ("arcface_monotonic", lambda: ArcFaceLoss(margin=0.5, scale=30.0, monotonic=True),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m2=0.5, monotonic=True), y)),
    ("camri_one", lambda: CAMRILoss(N_CLASSES, 3, 4 * PI / 64, 16.0),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [3], [4 * PI / 64], 16.0)),
    ("camri_large_margin", lambda: CAMRILoss(N_CLASSES, 2, 1.2, 8.0),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [2], [1.2], 8.0)),
    ("camri_several", lambda: CAMRILoss(N_CLASSES, [0, 4], [0.3, 0.7], 16.0),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [0, 4], [0.3, 0.7], 16.0)),
    ("camri_monotonic", lambda: CAMRILoss(N_CLASSES, (1, 5), 1.0, 16.0, monotonic=True),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [1, 5], [1.0, 1.0], 16.0, monotonic=True)),
    ("combined_per_class", lambda: AngularMarginLoss(
        scale=12.0, m1=[1, 1, 2, 1, 1, 1], m2=[0, 0.2, 0, 0.4, 0, 0], m3=[0, 0, 0, 0.1, 0.3, 0],
        n_classes=N_CLASSES),
     lambda c, y: ref.softmax_ce(ref.margin_logits(
         c, y, 12.0, m1=[1, 1, 2, 1, 1, 1], m2=[0, 0.2, 0, 0.4, 0, 0], m3=[0, 0, 0, 0.1, 0.3, 0]), y)),
]


@pytest.mark.parametrize("fmt", ["int", "column", "one_hot"])
@pytest.mark.parametrize("name,make,reference", MARGIN_CASES, ids=[c[0] for c in MARGIN_CASES])
def test_margin_losses_match_float64_reference(name, make, reference, fmt, rng):
    cos, labels = random_batch(rng)
    y = label_formats(labels)[fmt]
    loss = make()
    expected = reference(cos, labels)
    per_sample = keras.ops.convert_to_numpy(loss.call(keras.ops.convert_to_tensor(y, "float32"), cos))
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss(y, cos)), expected.mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,make,reference", MARGIN_CASES, ids=[c[0] for c in MARGIN_CASES])
def test_logits_method_matches_reference(name, make, reference, rng):
    cos, labels = random_batch(rng)
    loss = make()
    logits = keras.ops.convert_to_numpy(loss.logits(labels, cos))
    assert logits.dtype == np.float32 and logits.shape == cos.shape
    # The logits are what the loss feeds to softmax cross-entropy.
    np.testing.assert_allclose(ref.softmax_ce(logits, labels), reference(cos, labels), rtol=1e-5, atol=1e-5)


def test_camri_margin_lands_only_on_important_targets(rng):
    cos, labels = random_batch(rng)
    loss = CAMRILoss(N_CLASSES, 3, 0.4, 10.0)
    logits = keras.ops.convert_to_numpy(loss.logits(labels, cos))
    changed = ~np.isclose(logits, 10.0 * cos, atol=1e-5)
    rows, cols = np.nonzero(changed)
    assert len(rows) > 0
    assert np.all(labels[rows] == 3) and np.all(cols == 3)
    assert np.all(changed[labels == 3, 3])  # every sample of class 3, theta = 0 and pi included


def test_paper_formula_is_not_monotonic_past_pi_and_fallback_is():
    m = 1.0
    theta = np.linspace(0.0, PI, 721)
    cos = np.stack([np.cos(theta), np.zeros_like(theta)], axis=1).astype(np.float32)
    labels = np.zeros(len(theta), dtype=np.int64)
    paper = keras.ops.convert_to_numpy(ArcFaceLoss(m, 1.0).logits(labels, cos))[:, 0]
    fallback = keras.ops.convert_to_numpy(ArcFaceLoss(m, 1.0, monotonic=True).logits(labels, cos))[:, 0]
    past = theta + m > PI
    assert np.all(np.diff(paper[past]) > 0)          # the paper's target logit rises again
    assert np.all(np.diff(fallback) <= 1e-6)         # the fallback keeps decreasing
    np.testing.assert_allclose(fallback[past], np.cos(theta[past]) - m * np.sin(m), atol=1e-6)
    np.testing.assert_allclose(paper[~past], fallback[~past], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Special cases that tie the family together
# ---------------------------------------------------------------------------------------------
def test_camri_without_important_samples_equals_normalized_softmax(rng):
    cos, labels = random_batch(rng)
    labels = np.where(labels == 2, 0, labels)
    camri = CAMRILoss(N_CLASSES, 2, 0.8, 16.0)
    assert float(camri(labels, cos)) == pytest.approx(float(NormalizedSoftmaxLoss(16.0)(labels, cos)), abs=1e-6)
    # ... and does not once class 2 appears.
    labels[20] = 2
    assert float(camri(labels, cos)) != pytest.approx(float(NormalizedSoftmaxLoss(16.0)(labels, cos)), abs=1e-4)


def test_camri_with_every_class_important_equals_arcface(rng):
    cos, labels = random_batch(rng)
    for monotonic in (False, True):
        camri = CAMRILoss(N_CLASSES, list(range(N_CLASSES)), 0.6, 20.0, monotonic=monotonic)
        arcface = ArcFaceLoss(0.6, 20.0, monotonic=monotonic)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(camri.logits(labels, cos)),
            keras.ops.convert_to_numpy(arcface.logits(labels, cos)), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------
ALL_LOSSES = [case[1] for case in MARGIN_CASES]


@pytest.mark.parametrize("make", ALL_LOSSES, ids=[c[0] for c in MARGIN_CASES])
@pytest.mark.parametrize("value", [-1.0, 0.0, 1.0])
def test_gradients_finite_at_special_cosines(make, value, rng):
    cos = rng.uniform(-0.9, 0.9, size=(N_CLASSES, N_CLASSES)).astype(np.float32)
    labels = np.arange(N_CLASSES)
    cos[labels, labels] = value          # the target cosine
    cos[labels, (labels + 1) % N_CLASSES] = value  # and a non-target one
    x = tf.Variable(cos)
    with tf.GradientTape() as tape:
        loss = make()(labels, x)
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(float(loss)) and np.all(np.isfinite(grad))


def test_gradients_finite_for_zero_feature_vector():
    head = CosineHead(4)
    features = tf.Variable(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0]], np.float32))
    head.build((None, 3))
    with tf.GradientTape() as tape:
        cos = head(features)
        loss = CAMRILoss(4, 1, 0.5, 16.0)(np.array([1, 0]), cos)
    grads = tape.gradient(loss, [features, head.kernel])
    np.testing.assert_array_equal(cos.numpy()[0], 0.0)
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_camri_gradient_matches_finite_differences_of_reference(rng):
    n_classes, important, margin, scale = 5, [1, 3], [0.5, 0.9], 8.0
    cos = rng.uniform(-0.95, 0.95, size=(12, n_classes))
    labels = np.array([1, 3, 0, 1, 2, 3, 4, 1, 3, 0, 2, 4])
    loss = CAMRILoss(n_classes, important, margin, scale)
    x = tf.Variable(cos.astype(np.float32))
    with tf.GradientTape() as tape:
        value = loss(labels, x)
    analytic = tape.gradient(value, x).numpy()

    def f(c):
        return ref.camri_per_sample(c, labels, n_classes, important, margin, scale).mean()

    numeric = np.zeros_like(cos)
    h = 1e-6
    for idx in np.ndindex(cos.shape):
        up, down = cos.copy(), cos.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (f(up) - f(down)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-5)


def test_camri_gradient_with_respect_to_angle_closed_form():
    # One sample of the important class, two classes: d loss / d theta_t = -s sin(theta+m) (1 - p_t).
    s, m, theta = 16.0, 0.4, 0.7
    theta_var = tf.Variable(theta, dtype=tf.float32)
    other = tf.constant(0.3)
    with tf.GradientTape() as tape:
        cos = tf.stack([tf.cos(theta_var), other])[None, :]
        loss = CAMRILoss(2, 0, m, s)(np.array([0]), cos)
    grad = float(tape.gradient(loss, theta_var))
    zt, zo = s * np.cos(theta + m), s * 0.3
    p_t = np.exp(zt) / (np.exp(zt) + np.exp(zo))
    assert grad == pytest.approx(s * np.sin(theta + m) * (1 - p_t), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# Mixed precision
# ---------------------------------------------------------------------------------------------
def _tiny_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    features = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, CosineHead(N_CLASSES)(features))


def _loss_and_grads(model, loss, x, y):
    with tf.GradientTape() as tape:
        value = loss(y, model(x))
    grads = tape.gradient(value, model.trainable_variables)
    return float(value), [g.numpy().astype(np.float64) for g in grads]


@pytest.mark.usefixtures("float32_policy")
@pytest.mark.parametrize("make", [lambda: CAMRILoss(N_CLASSES, 2, 0.5, 64.0),
                                  lambda: ArcFaceLoss(0.5, 64.0, monotonic=True)])
def test_mixed_float16_stays_finite_and_close_to_float32(make, rng):
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=32)
    y[:4] = 2
    reference_model = _tiny_model(1)
    ref_loss, ref_grads = _loss_and_grads(reference_model, make(), x, y)

    keras.config.set_dtype_policy("mixed_float16")
    mixed_model = _tiny_model(1)
    mixed_model.set_weights(reference_model.get_weights())
    assert mixed_model.layers[1].compute_dtype == "float16"
    assert mixed_model.layers[-1].compute_dtype == "float32"   # the head stays in float32
    loss, grads = _loss_and_grads(mixed_model, make(), x, y)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)
    assert loss == pytest.approx(ref_loss, rel=2e-2)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=0.1, atol=2e-2 * np.abs(r).max())


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------
SERIALIZABLE = [case[1] for case in MARGIN_CASES] + [
    lambda: WeightedCrossEntropy([1.0, 2.0, 1.0, 1.0, 0.5, 1.0]),
    lambda: RealWorldWeightedCrossEntropy([1, 3, 1, 1, 1, 1], [1, 1, 0.5, 1, 1, 1], name="crwwce"),
]


@pytest.mark.parametrize("make", SERIALIZABLE)
def test_get_config_round_trip(make, rng):
    cos, labels = random_batch(rng)
    loss = make()
    clone = type(loss).from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert float(clone(labels, cos)) == float(loss(labels, cos))


def test_model_with_camri_saves_and_loads_without_custom_objects(tmp_path, rng):
    model = _tiny_model(3)
    loss = CAMRILoss(N_CLASSES, [1, 4], [0.3, 0.5], 16.0, monotonic=True)
    model.compile(optimizer="adam", loss=loss)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=40)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "camri.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.loss, CAMRILoss)
    assert loaded.loss.get_config() == loss.get_config()
    assert isinstance(loaded.layers[-1], CosineHead)


# ---------------------------------------------------------------------------------------------
# Baselines on ordinary logits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["int", "column", "one_hot"])
def test_weighted_cross_entropy_matches_reference(fmt, rng):
    logits = rng.normal(scale=3.0, size=(50, N_CLASSES)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, size=50)
    w = [1.0, 2.5, 1.0, 0.5, 1.0, 3.0]
    y = label_formats(labels)[fmt]
    np.testing.assert_allclose(float(WeightedCrossEntropy(w)(y, logits)),
                               ref.weighted_ce(logits, labels, w).mean(), rtol=1e-5)
    probs = np.exp(ref.log_softmax(logits)).astype(np.float32)
    np.testing.assert_allclose(float(WeightedCrossEntropy(w, from_logits=False)(y, probs)),
                               ref.weighted_ce(logits, labels, w).mean(), rtol=1e-4)


@pytest.mark.parametrize("fmt", ["int", "column", "one_hot"])
def test_real_world_weighted_cross_entropy_matches_reference(fmt, rng):
    logits = rng.normal(scale=2.0, size=(50, N_CLASSES)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, size=50)
    fn, fp = [1.0, 4.0, 1.0, 1.0, 2.0, 1.0], [1.0, 0.5, 2.0, 1.0, 1.0, 0.0]
    y = label_formats(labels)[fmt]
    np.testing.assert_allclose(float(RealWorldWeightedCrossEntropy(fn, fp)(y, logits)),
                               ref.rwwce(logits, labels, fn, fp).mean(), rtol=1e-5)


def test_weighted_losses_with_unit_weights_reduce_to_cross_entropy(rng):
    logits = rng.normal(size=(30, N_CLASSES)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, size=30)
    ce = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits))
    assert float(WeightedCrossEntropy([1.0] * N_CLASSES)(labels, logits)) == pytest.approx(ce, rel=1e-6)
    assert float(RealWorldWeightedCrossEntropy([1.0] * N_CLASSES, [0.0] * N_CLASSES)(labels, logits)) \
        == pytest.approx(ce, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: CAMRILoss(10, 10, 0.2, 16), r"important class 10 is outside \[0, 10\)"),
    (lambda: CAMRILoss(10, -1, 0.2, 16), r"important class -1 is outside"),
    (lambda: CAMRILoss(10, [3, 3], 0.2, 16), "duplicates"),
    (lambda: CAMRILoss(10, [], 0.2, 16), "empty"),
    (lambda: CAMRILoss(10, 2.5, 0.2, 16), "important_classes"),
    (lambda: CAMRILoss(10, [1, 2], [0.2, 0.3, 0.4], 16), "one margin per important class"),
    (lambda: CAMRILoss(10, 3, -0.1, 16), r"margin must be in \[0, 3.14159"),
    (lambda: CAMRILoss(10, 3, PI, 16), r"pi or more"),
    (lambda: CAMRILoss(10, [3], [4.0], 16), r"pi or more"),
    (lambda: CAMRILoss(10, 3, 0.2, 0.0), r"scale must be a finite number > 0"),
    (lambda: CAMRILoss(10, 3, 0.2, -5), r"scale must be"),
    (lambda: CAMRILoss(1, 0, 0.2, 16), r"n_classes must be an integer >= 2"),
    (lambda: ArcFaceLoss(margin=3.5), r"margin must be in \[0, 3.14159"),
    (lambda: ArcFaceLoss(margin=-0.5), r"margin must be in"),
    (lambda: ArcFaceLoss(scale=float("nan")), r"scale must be"),
    (lambda: CosFaceLoss(margin=-0.1), r"margin must be in \[0, 2\]"),
    (lambda: SphereFaceLoss(margin=0.5), r"margin must be in \[1, inf\)"),
    (lambda: NormalizedSoftmaxLoss(scale=0), r"scale must be"),
    (lambda: AngularMarginLoss(m2=[0.1, 0.2]), "n_classes is not set"),
    (lambda: AngularMarginLoss(m2=[0.1, 0.2], n_classes=3), "one value per class"),
    (lambda: WeightedCrossEntropy([1.0, -1.0, 1.0]), ">= 0"),
    (lambda: RealWorldWeightedCrossEntropy([1, 1, 1], [1, 1]), "fp_weights has 2 values"),
])
def test_bad_parameters_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: CAMRILoss(N_CLASSES, 1, 0.3, 16),
    lambda: ArcFaceLoss(0.3, 16),
    lambda: WeightedCrossEntropy([1.0] * N_CLASSES),
    lambda: RealWorldWeightedCrossEntropy([1.0] * N_CLASSES, [1.0] * N_CLASSES),
])
@pytest.mark.parametrize("labels,match", [
    (np.zeros((8, 3)), r"labels of shape \(8, 3\) do not match predictions with 6 classes"),
    (np.zeros((8, 6, 1)), r"do not match predictions"),
    (np.zeros(5), r"batch size 5 but predictions have batch size 8"),
    (np.full(8, 6), r"label 6 is outside \[0, 6\)"),
    (np.full(8, -1), r"label -1 is outside"),
])
def test_labels_that_do_not_match_the_predictions_raise(make, labels, match, rng):
    cos = rng.uniform(-1, 1, size=(8, N_CLASSES)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        make()(labels, cos)


def test_loss_built_for_other_class_count_raises(rng):
    cos = rng.uniform(-1, 1, size=(4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="n_classes=6"):
        CAMRILoss(6, 1, 0.3, 16)(np.zeros(4), cos)


def test_shape_errors_also_raise_when_compiled(rng):
    loss = CAMRILoss(N_CLASSES, 1, 0.3, 16)

    @tf.function
    def f(y, c):
        return loss(y, c)

    with pytest.raises(ValueError, match="do not match predictions"):
        f(tf.zeros((4, 3)), tf.zeros((4, N_CLASSES)))

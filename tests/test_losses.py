"""The loss family against float64 NumPy references, gradients, special cases, mixed
precision, serialization and input validation."""

import inspect
import math
import re

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
from camri_utils.losses import ScheduledMarginLoss, angular_margin_logits, margin_cosine
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
    ("sphereface", lambda: SphereFaceLoss(margin=4.0, scale=30.0),  # default: monotonic psi
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m1=4.0, monotonic=True), y)),
    ("sphereface_plain", lambda: SphereFaceLoss(margin=3.0, scale=20.0, monotonic=False),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 20.0, m1=3.0), y)),
    ("cosface", lambda: CosFaceLoss(margin=0.35, scale=30.0),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m3=0.35), y)),
    ("arcface", lambda: ArcFaceLoss(margin=0.5, scale=30.0),  # default: monotonic fallback
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m2=0.5, monotonic=True), y)),
    ("arcface_paper", lambda: ArcFaceLoss(margin=0.5, scale=30.0, monotonic=False),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m2=0.5), y)),
    ("camri_one", lambda: CAMRILoss(N_CLASSES, 3, 4 * PI / 64, 16.0),  # default: the paper's formula
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [3], [4 * PI / 64], 16.0)),
    ("camri_large_margin", lambda: CAMRILoss(N_CLASSES, 2, 1.2, 8.0),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [2], [1.2], 8.0)),
    ("camri_several", lambda: CAMRILoss(N_CLASSES, [0, 4], [0.3, 0.7], 16.0),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [0, 4], [0.3, 0.7], 16.0)),
    ("camri_monotonic", lambda: CAMRILoss(N_CLASSES, (1, 5), 1.0, 16.0, monotonic=True),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [1, 5], [1.0, 1.0], 16.0, monotonic=True)),
    ("arcface_easy", lambda: ArcFaceLoss(margin=0.5, scale=30.0, monotonic=False, easy_margin=True),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 30.0, m2=0.5, easy_margin=True), y)),
    ("camri_easy", lambda: CAMRILoss(N_CLASSES, [1, 4], [0.9, 0.3], 8.0, easy_margin=True),
     lambda c, y: ref.camri_per_sample(c, y, N_CLASSES, [1, 4], [0.9, 0.3], 8.0, easy_margin=True)),
    ("sphereface_easy_monotonic", lambda: AngularMarginLoss(8.0, m1=4.0, monotonic=True, easy_margin=True),
     lambda c, y: ref.softmax_ce(ref.margin_logits(c, y, 8.0, m1=4.0, monotonic=True, easy_margin=True), y)),
    ("combined_per_class", lambda: AngularMarginLoss(
        scale=12.0, m1=[1, 1, 2, 1, 1, 1], m2=[0, 0.2, 0, 0.4, 0, 0], m3=[0, 0, 0, 0.1, 0.3, 0],
        n_classes=N_CLASSES),
     lambda c, y: ref.softmax_ce(ref.margin_logits(
         c, y, 12.0, m1=[1, 1, 2, 1, 1, 1], m2=[0, 0.2, 0, 0.4, 0, 0], m3=[0, 0, 0, 0.1, 0.3, 0]), y)),
]
CASE_IDS = [c[0] for c in MARGIN_CASES]


@pytest.mark.parametrize("fmt", ["int", "column", "one_hot"])
@pytest.mark.parametrize("name,make,reference", MARGIN_CASES, ids=CASE_IDS)
def test_margin_losses_match_float64_reference(name, make, reference, fmt, rng):
    cos, labels = random_batch(rng)
    y = label_formats(labels)[fmt]
    loss = make()
    expected = reference(cos, labels)
    per_sample = keras.ops.convert_to_numpy(loss.call(keras.ops.convert_to_tensor(y, "float32"), cos))
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss(y, cos)), expected.mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,make,reference", MARGIN_CASES, ids=CASE_IDS)
def test_logits_method_matches_reference(name, make, reference, rng):
    cos, labels = random_batch(rng)
    loss = make()
    logits = keras.ops.convert_to_numpy(loss.logits(labels, cos))
    assert logits.dtype == np.float32 and logits.shape == cos.shape
    # The logits are what the loss feeds to softmax cross-entropy.
    np.testing.assert_allclose(ref.softmax_ce(logits, labels), reference(cos, labels), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,make,reference", MARGIN_CASES, ids=CASE_IDS)
def test_soft_labels_match_float64_reference(name, make, reference, rng):
    """Label smoothing: every column's margin weighted by its label mass, cross-entropy against the row."""
    cos, labels = random_batch(rng)
    rows = 0.9 * np.eye(N_CLASSES)[labels] + 0.1 / N_CLASSES
    rows[20] = [0.5, 0.3, 0.2, 0.0, 0.0, 0.0]  # a mixup-like row
    loss = make()
    m1, m2, m3 = (getattr(loss, slot) for slot in ("m1", "m2", "m3"))
    expected = ref.soft_ce(ref.soft_margin_logits(cos, rows, loss.scale, m1, m2, m3, loss.monotonic,
                                                  loss.easy_margin), rows)
    per_sample = keras.ops.convert_to_numpy(loss.call(rows.astype(np.float32), cos))
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5, atol=1e-5)
    # The same reference with one-hot rows is the per-sample reference written with acos per row.
    np.testing.assert_allclose(ref.soft_ce(ref.soft_margin_logits(
        cos, np.eye(N_CLASSES)[labels], loss.scale, m1, m2, m3, loss.monotonic, loss.easy_margin),
        np.eye(N_CLASSES)[labels]),
        reference(cos, labels), atol=1e-9)


def test_soft_labels_change_the_loss_and_keep_gradients_finite(rng):
    cos, labels = random_batch(rng)
    smoothed = (0.8 * np.eye(N_CLASSES)[labels] + 0.2 / N_CLASSES).astype(np.float32)
    loss = CAMRILoss(N_CLASSES, 2, 0.5, 16.0)
    assert float(loss(smoothed, cos)) != pytest.approx(float(loss(labels, cos)), rel=1e-3)
    x = tf.Variable(cos)
    with tf.GradientTape() as tape:
        value = loss(smoothed, x)
    assert np.all(np.isfinite(tape.gradient(value, x).numpy()))


def test_function_and_methods_are_the_loss(rng):
    cos, labels = random_batch(rng)
    m = dict(m1=[1, 1, 2, 1, 1, 1], m2=[0, 0.2, 0, 0.4, 0, 0], m3=[0, 0, 0, 0.1, 0.3, 0])
    loss = AngularMarginLoss(scale=12.0, n_classes=N_CLASSES, **m)
    logits = keras.ops.convert_to_numpy(angular_margin_logits(labels, cos, 12.0, **m))
    np.testing.assert_array_equal(logits, keras.ops.convert_to_numpy(loss.logits(labels, cos)))
    np.testing.assert_allclose(logits, ref.margin_logits(cos, labels, 12.0, **m), atol=2e-5)
    # target_cosine: every column with its own class's margins, no labels needed.
    target = keras.ops.convert_to_numpy(loss.target_cosine(cos))
    np.testing.assert_allclose(target, ref.soft_margin_logits(cos, np.ones_like(cos), 1.0, **m), atol=2e-6)
    np.testing.assert_array_equal(target, keras.ops.convert_to_numpy(margin_cosine(cos, **m)))


@pytest.mark.parametrize("cls,slot,margin", [(SphereFaceLoss, "m1", 3.0), (ArcFaceLoss, "m2", 0.3),
                                             (CosFaceLoss, "m3", 0.2)])
def test_named_losses_set_their_slot_only(cls, slot, margin):
    loss = cls(margin, 8.0)
    assert cls.margin_slot == slot and loss.margin == margin
    assert {s: getattr(loss, s) for s in ("m1", "m2", "m3")} == {"m1": 1.0, "m2": 0.0, "m3": 0.0, slot: margin}
    camri = CAMRILoss(4, [2, 0], [0.3, 0.1], 8.0)
    assert camri.m2 == (0.1, 0.0, 0.3, 0.0) and camri.margin == (0.3, 0.1) and camri.important_classes == (2, 0)
    with pytest.raises(AttributeError, match="no single margin"):
        NormalizedSoftmaxLoss().margin


# ---------------------------------------------------------------------------------------------
# theta + m > pi: the defaults
# ---------------------------------------------------------------------------------------------
MONOTONIC_DEFAULTS = [  # (loss class, a factory with the required arguments, default)
    (AngularMarginLoss, lambda **kw: AngularMarginLoss(**kw), False),
    (SphereFaceLoss, lambda **kw: SphereFaceLoss(**kw), True),
    (ArcFaceLoss, lambda **kw: ArcFaceLoss(**kw), True),
    (CAMRILoss, lambda **kw: CAMRILoss(4, 1, **kw), False),
]


@pytest.mark.parametrize("cls,make,default", MONOTONIC_DEFAULTS, ids=[c[0].__name__ for c in MONOTONIC_DEFAULTS])
def test_monotonic_defaults_are_what_the_docstrings_say(cls, make, default):
    assert inspect.signature(cls).parameters["monotonic"].default is default
    assert make().monotonic is default
    assert re.findall(r"monotonic: ``(True|False)`` \(default\)", cls.__doc__) == [str(default)]


def test_orthogonal_feature_does_not_score_well_by_default():
    """SphereFace's cos(4 theta) is 1 at 90 degrees: a perfect score for a feature orthogonal to its
    class. The default (monotonic psi) gives it a large loss instead."""
    orthogonal = np.array([[0.0, -1.0]], "float32")
    assert float(SphereFaceLoss(4, 30.0)([0], orthogonal)) == pytest.approx(60.0, abs=1e-4)
    assert float(SphereFaceLoss(4, 30.0, monotonic=False)([0], orthogonal)) == pytest.approx(0.0, abs=1e-6)
    on_class = np.array([[1.0, 0.0]], "float32")
    assert float(SphereFaceLoss(4, 30.0)([0], on_class)) < 1e-6


def _free_feature_accuracy(loss, seed=0, n_classes=10, dim=32, per_class=20, steps=200):
    """Train free 32-D feature vectors (an Embedding, one per sample) and a CosineHead with
    ``loss``; return the training accuracy of argmax cosine."""
    keras.utils.set_random_seed(seed)
    n = n_classes * per_class
    index, labels = np.arange(n), np.arange(n) % n_classes
    inputs = keras.Input((), dtype="int32")
    features = keras.layers.Embedding(n, dim, embeddings_initializer="random_normal")(inputs)
    model = keras.Model(inputs, CosineHead(n_classes)(features))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    model.fit(np.tile(index, steps), np.tile(labels, steps), batch_size=n, shuffle=False, verbose=0)
    return float(np.mean(np.argmax(keras.ops.convert_to_numpy(model(index)), axis=1) == labels))


@pytest.mark.parametrize("make", [NormalizedSoftmaxLoss, SphereFaceLoss, CosFaceLoss, ArcFaceLoss,
                                  lambda: CAMRILoss(10, 3)], ids=["normsoftmax", "sphereface", "cosface",
                                                                  "arcface", "camri"])
def test_every_margin_loss_trains_at_its_defaults(make):
    assert _free_feature_accuracy(make()) >= 0.95


def test_non_monotonic_sphereface_does_not_train():
    # Features settle at 90 degrees from their class weight, where cos(4 theta) = 1 (about chance).
    assert _free_feature_accuracy(SphereFaceLoss(monotonic=False)) < 0.5


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
    paper = keras.ops.convert_to_numpy(ArcFaceLoss(m, 1.0, monotonic=False).logits(labels, cos))[:, 0]
    fallback = keras.ops.convert_to_numpy(ArcFaceLoss(m, 1.0, monotonic=True).logits(labels, cos))[:, 0]
    past = theta + m > PI
    assert np.all(np.diff(paper[past]) > 0)          # the paper's target logit rises again
    assert np.all(np.diff(fallback) <= 1e-6)         # the fallback keeps decreasing
    np.testing.assert_allclose(fallback[past], np.cos(theta[past]) - m * np.sin(m), atol=1e-6)
    np.testing.assert_allclose(paper[~past], fallback[~past], atol=1e-6)


def test_easy_margin_keeps_the_plain_cosine_beyond_90_degrees_and_the_margin_before():
    """insightface's easy margin: cos(theta + m) where cos(theta) > 0, cos(theta) elsewhere; so
    the target logit is never raised past pi - m (nothing to be trapped in) and jumps at 90 deg."""
    m = 0.9
    theta = np.linspace(0.0, PI, 721)
    cos = np.stack([np.cos(theta), np.zeros_like(theta)], axis=1).astype(np.float32)
    labels = np.zeros(len(theta), dtype=np.int64)
    easy = keras.ops.convert_to_numpy(CAMRILoss(2, 0, m, 1.0, easy_margin=True).logits(labels, cos))[:, 0]
    inside = cos[:, 0] > 0
    # The reference angle from the float32 cosines the loss sees (near 0 deg a float32 cosine
    # fixes the angle only to about 1e-3 rad).
    np.testing.assert_allclose(easy[inside], np.cos(np.arccos(cos[inside, 0].astype(np.float64)) + m), atol=2e-6)
    np.testing.assert_array_equal(easy[~inside], cos[~inside, 0])
    assert np.all(np.diff(easy[~inside]) <= 0)  # decreasing where the paper's formula rises again
    # The jump at 90 degrees is sin(m): from cos(pi/2 + m) = -sin(m) up to cos(pi/2) = 0.
    # (The grid's last point inside is 90 deg itself, its first outside 90.25 deg: 0.02 covers the step.)
    assert easy[~inside][0] - easy[inside][-1] == pytest.approx(math.sin(m), abs=0.02)
    # Off by default, everywhere: the loss is the paper's.
    assert inspect.signature(CAMRILoss).parameters["easy_margin"].default is False
    assert inspect.signature(ArcFaceLoss).parameters["easy_margin"].default is False
    assert CAMRILoss(2, 0, m, 1.0).get_config()["easy_margin"] is False


@pytest.mark.parametrize("factor", [0.0, 0.25, 1.0])
def test_a_scheduled_margin_is_the_loss_with_every_margin_scaled(factor, rng):
    cos, labels = random_batch(rng)
    m = dict(m1=[1, 1, 2, 1, 1, 1], m2=[0, 0.2, 0, 0.4, 0, 0], m3=[0, 0, 0, 0.1, 0.3, 0])
    scaled = {k: [factor * v if k != "m1" else 1 + factor * (v - 1) for v in vals] for k, vals in m.items()}
    loss = ScheduledMarginLoss(AngularMarginLoss(scale=12.0, n_classes=N_CLASSES, monotonic=True, **m), factor)
    expected = ref.softmax_ce(ref.margin_logits(cos, labels, 12.0, monotonic=True, **scaled), labels)
    per_sample = keras.ops.convert_to_numpy(loss.call(labels, cos))
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss(labels, cos)), expected.mean(), rtol=1e-5)


def test_a_scheduled_margin_at_0_half_and_1_is_normalized_softmax_half_the_margin_and_the_loss(rng):
    cos, labels = random_batch(rng)
    loss = ScheduledMarginLoss(CAMRILoss(N_CLASSES, 2, 0.8, 16.0, easy_margin=True), margin_factor=0.0)
    at = {}
    for f in (0.0, 0.5, 1.0):
        loss.margin_factor.assign(f)
        at[f] = keras.ops.convert_to_numpy(loss.call(labels, cos))
    np.testing.assert_allclose(at[0.0], ref.softmax_ce(ref.margin_logits(cos, labels, 16.0), labels), atol=1e-5)
    np.testing.assert_allclose(at[0.5], ref.camri_per_sample(cos, labels, N_CLASSES, [2], [0.4], 16.0,
                                                             easy_margin=True), atol=1e-5)
    # Factor 1 is the loss itself, bit for bit (1 * m = m).
    np.testing.assert_array_equal(at[1.0], keras.ops.convert_to_numpy(loss.base_loss.call(labels, cos)))


def test_a_scheduled_margin_changes_inside_a_compiled_function_without_retracing(rng):
    cos, labels = random_batch(rng)
    loss = ScheduledMarginLoss(ArcFaceLoss(0.5, 16.0), margin_factor=0.0)

    @tf.function
    def f(y, c):
        return loss(y, c)

    values = []
    for factor in (0.0, 0.5, 1.0):
        loss.margin_factor.assign(factor)
        values.append(float(f(labels, cos)))
    assert f.experimental_get_tracing_count() == 1
    expected = [ref.softmax_ce(ref.margin_logits(cos, labels, 16.0, m2=0.5 * k, monotonic=True), labels).mean()
                for k in (0.0, 0.5, 1.0)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)


@pytest.mark.parametrize("make,match", [
    (lambda: ScheduledMarginLoss(NormalizedSoftmaxLoss(8.0)), "has no margin"),
    (lambda: ScheduledMarginLoss(CAMRILoss(4, 1, 0.0, 8.0)), "has no margin"),
    (lambda: ScheduledMarginLoss(WeightedCrossEntropy([1.0, 2.0])), "needs an angular-margin loss"),
    (lambda: ScheduledMarginLoss("camri"), "needs an angular-margin loss"),
    (lambda: ScheduledMarginLoss(ArcFaceLoss(), 1.5), r"margin_factor must be a number in \[0, 1\]"),
    (lambda: ScheduledMarginLoss(ArcFaceLoss(), -0.1), r"margin_factor must be"),
    (lambda: ScheduledMarginLoss(ArcFaceLoss(), float("nan")), r"margin_factor must be"),
    (lambda: ScheduledMarginLoss(ArcFaceLoss(), True), r"margin_factor must be"),
    (lambda: ScheduledMarginLoss(ArcFaceLoss(), "0.5"), r"margin_factor must be"),
    (lambda: CAMRILoss(4, 1, 0.3, 8.0, easy_margin="True"), r"easy_margin must be True or False"),
    (lambda: ArcFaceLoss(easy_margin=1), r"easy_margin must be True or False"),
    (lambda: margin_cosine([[0.5, 0.2]], m2=0.3, easy_margin=None), r"easy_margin must be True or False"),
])
def test_bad_margin_practice_options_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_model_with_a_scheduled_margin_saves_and_loads(tmp_path, rng):
    model = _tiny_model(3)
    loss = ScheduledMarginLoss(CAMRILoss(N_CLASSES, [1, 4], [0.3, 0.5], 16.0, easy_margin=True), 0.25)
    model.compile(optimizer="adam", loss=loss)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=40)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "scheduled.keras")
    loaded = keras.saving.load_model(tmp_path / "scheduled.keras")
    assert isinstance(loaded.loss, ScheduledMarginLoss) and loaded.loss.get_config() == loss.get_config()
    assert loaded.loss.base_loss.easy_margin is True and float(loaded.loss.margin_factor.numpy()) == 0.25


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


@pytest.mark.parametrize("make", ALL_LOSSES, ids=CASE_IDS)
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
    lambda: ScheduledMarginLoss(CAMRILoss(N_CLASSES, 2, 0.6, 8.0, easy_margin=True), margin_factor=0.3),
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


def test_weighted_losses_take_soft_label_rows(rng):
    logits = rng.normal(scale=2.0, size=(40, N_CLASSES)).astype(np.float32)
    rows = rng.dirichlet(np.ones(N_CLASSES), size=40)
    w, fn, fp = [1.0, 2.5, 1.0, 0.5, 1.0, 3.0], [1.0, 4.0, 1.0, 1.0, 2.0, 1.0], [1.0, 0.5, 2.0, 1.0, 1.0, 0.0]
    log_p = ref.log_softmax(logits)
    wce = -(np.asarray(w) * rows * log_p).sum(axis=1)
    rwwce = -(np.asarray(fn) * rows * log_p + np.asarray(fp) * (1 - rows) * np.log(1 - np.exp(log_p))).sum(axis=1)
    y = rows.astype(np.float32)
    np.testing.assert_allclose(float(WeightedCrossEntropy(w)(y, logits)), wce.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(RealWorldWeightedCrossEntropy(fn, fp)(y, logits)), rwwce.mean(), rtol=1e-5)


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
    (lambda: CAMRILoss(10, 3, 0.2, 0.0), r"scale must be a finite number in \(0, 10000\] \(typical values 8 to 64\)"),
    (lambda: ArcFaceLoss(scale=1e300), r"scale must be a finite number in \(0, 10000\]"),
    (lambda: CosFaceLoss(scale=2e4), r"scale must be"),
    (lambda: ArcFaceLoss(monotonic="False"), r"monotonic must be True or False; got 'False' \(a str\)"),
    (lambda: SphereFaceLoss(monotonic=0), r"monotonic must be True or False"),
    (lambda: CAMRILoss(10, 3, monotonic=None), r"monotonic must be True or False"),
    (lambda: AngularMarginLoss(monotonic="yes"), r"monotonic must be True or False"),
    (lambda: WeightedCrossEntropy([1.0, 1.0], from_logits="True"), r"from_logits must be True or False"),
    (lambda: CAMRILoss(10, 3, 0.2, -5), r"scale must be"),
    (lambda: CAMRILoss(1, 0, 0.2, 16), r"n_classes must be an integer >= 2"),
    (lambda: ArcFaceLoss(margin=3.5), r"margin must be in \[0, 3.14159"),
    (lambda: ArcFaceLoss(margin=-0.5), r"margin must be in"),
    (lambda: ArcFaceLoss(scale=float("nan")), r"scale must be"),
    (lambda: CosFaceLoss(margin=-0.1), r"margin must be in \[0, 2\]"),
    (lambda: SphereFaceLoss(margin=0.5), r"margin must be in \[1, inf\)"),
    (lambda: NormalizedSoftmaxLoss(scale=0), r"scale must be"),
    (lambda: AngularMarginLoss(m2=[0.1, 0.2]), "n_classes is not set"),
    (lambda: AngularMarginLoss(m2=[0.1, 0.2], n_classes=3), "one m2 per class"),
    (lambda: AngularMarginLoss(m3=2.5), r"m3 must be in \[0, 2\] \(an additive cosine margin\)"),
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
    (np.zeros((8, 3)), r"labels of shape \(8, 3\) do not fit 6 classes: give class indices"),
    (np.zeros((8, 6, 1)), r"do not fit 6 classes"),
    (np.full((8, 6), 0.5), r"label rows must be >= 0 and sum to 1 \(one-hot or soft labels\); row 0 sums to 3"),
    (np.full(8, 2.7), r"label 2.7 is not a whole number: labels must be class indices 0..5"),
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

    with pytest.raises(ValueError, match="do not fit 6 classes"):
        f(tf.zeros((4, 3)), tf.zeros((4, N_CLASSES)))


@pytest.mark.parametrize("make", [lambda: ArcFaceLoss(0.3, 16), lambda: CAMRILoss(N_CLASSES, 1, 0.3, 16)])
def test_cosines_that_are_nan_or_no_cosines_raise_when_eager_and_give_nan_when_compiled(make, rng):
    cos = rng.uniform(-1, 1, size=(4, N_CLASSES)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    cos[2, 1] = np.nan
    with pytest.raises(ValueError, match="the cosines contain NaN"):
        make()(labels, cos)
    # In a compiled function a NaN passes through (documented): the loss is NaN, as in Keras' own losses.
    loss = make()
    assert np.isnan(float(tf.function(lambda y, c: loss(y, c))(labels, cos)))
    cos[2, 1] = 3.5
    with pytest.raises(ValueError, match=r"must be cosines in \[-1, 1\].*got 3.5"):
        make()(labels, cos)


# ---------------------------------------------------------------------------------------------
# Bad labels inside fit (a compiled graph, not run_eagerly)
# ---------------------------------------------------------------------------------------------
FIT_LOSSES = [
    ("arcface", lambda: ArcFaceLoss(0.3, 16.0), "cosine"),
    ("camri", lambda: CAMRILoss(N_CLASSES, 1, 0.3, 16.0), "cosine"),
    ("wce", lambda: WeightedCrossEntropy([1.0] * N_CLASSES), "dense"),
    ("crwwce", lambda: RealWorldWeightedCrossEntropy([1.0] * N_CLASSES, [1.0] * N_CLASSES), "dense"),
]


def _fit_with_label(make, head, bad, jit_compile=False, run_eagerly=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    features = keras.layers.Dense(8)(inputs)
    outputs = CosineHead(N_CLASSES)(features) if head == "cosine" else keras.layers.Dense(N_CLASSES)(features)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=make(), jit_compile=jit_compile, run_eagerly=run_eagerly)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    y = (np.arange(32) % N_CLASSES).astype(np.float32)
    y[11] = bad
    return model.fit(x, y, epochs=1, batch_size=16, verbose=0).history["loss"]


@pytest.mark.parametrize("name,make,head", FIT_LOSSES, ids=[c[0] for c in FIT_LOSSES])
@pytest.mark.parametrize("bad,shown", [(-1, "-1"), (N_CLASSES, "6"), (2.7, "2.7")])
def test_bad_labels_fail_inside_fit_with_a_clear_message(name, make, head, bad, shown):
    expected = (r"a label is outside \[0, 6\) or not a whole number: labels must be class indices 0..5\. "
                rf"First bad label:\] \[{shown}\]")
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        _fit_with_label(make, head, bad)


def test_bad_labels_raise_the_eager_message_with_run_eagerly():
    make, head = FIT_LOSSES[1][1:]
    with pytest.raises(ValueError, match=r"label 6 is outside \[0, 6\): labels must be class indices 0..5"):
        _fit_with_label(make, head, N_CLASSES, run_eagerly=True)


@pytest.mark.parametrize("name,make,head", FIT_LOSSES, ids=[c[0] for c in FIT_LOSSES])
def test_bad_labels_give_a_nan_loss_under_xla(name, make, head):
    """XLA compiles assertions away; the bad sample's loss is NaN instead of silently 0."""
    assert np.isnan(_fit_with_label(make, head, N_CLASSES, jit_compile=True)[-1])


def test_bad_soft_label_rows_fail_inside_a_compiled_function(rng):
    loss = CAMRILoss(N_CLASSES, 1, 0.3, 16.0)
    rows = np.eye(N_CLASSES, dtype=np.float32)[[0, 1, 2, 3]]
    rows[2] *= 0.5
    cos = rng.uniform(-1, 1, size=(4, N_CLASSES)).astype(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label rows must be >= 0 and sum to 1.*\[0.5\]"):
        tf.function(lambda y, c: loss(y, c))(rows, cos)


# ---------------------------------------------------------------------------------------------
# No NaN anywhere: 1e5 cosines with exact +-1, 0 and 1 +- 1e-7, in float32 and float16
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
@pytest.mark.parametrize("make", ALL_LOSSES + [lambda: ArcFaceLoss(3.0, 64.0), lambda: SphereFaceLoss(7, 64.0),
                                               FIT_LOSSES[2][1], FIT_LOSSES[3][1]],
                         ids=CASE_IDS + ["arcface_wide", "sphereface_7", "wce", "crwwce"])
def test_no_non_finite_loss_or_gradient_over_1e5_cosines(make, dtype, rng):
    n = 100_000 // N_CLASSES
    special = np.array([-1.0, 1.0, 0.0, 1 - 1e-7, 1 + 1e-7, -1 + 1e-7, -1 - 1e-7], np.float32)
    cos = rng.uniform(-1.0, 1.0, size=(n, N_CLASSES)).astype(np.float32)
    cos.flat[rng.choice(cos.size, 20_000, replace=False)] = rng.choice(special, 20_000)
    labels = rng.integers(0, N_CLASSES, size=n)
    cos[np.arange(len(special)), labels[:len(special)]] = special  # each value at a target, too
    x = tf.Variable(cos.astype("float16" if dtype == "mixed_float16" else "float32"))
    loss = make()
    loss = type(loss).from_config({**loss.get_config(), "reduction": None, "dtype": dtype})
    with tf.GradientTape() as tape:
        values = loss(labels, x)
    grad = tape.gradient(values, x).numpy()
    assert np.isfinite(values.numpy()).all() and np.isfinite(grad).all()

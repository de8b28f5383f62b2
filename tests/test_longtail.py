"""The rare-class setting and the long-tail methods (issue 24): a rare class's training images
subsampled, LDAM's margins, the logit-adjusted loss, deferred re-weighting and post-hoc logit
adjustment, each against float64 references written from the papers, with their gradients,
serialization, hostile inputs, and the protocol's rare-class preset on a fixture."""

import dataclasses
import doctest
import json
import math

import keras
import numpy as np
import pytest
from keras import ops

from camri_utils import imbalance, losses, methods, protocol, training
from camri_utils.data import fixtures
from camri_utils.layers import CosineHead
from camri_utils.losses import AngularMarginLoss, ClassReweightedLoss, LogitAdjustedLoss
from tests import reference as ref

N = 6
COUNTS = [5000, 5000, 500, 5000, 2000, 5000]  # class 2 rare, class 4 in between


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


def _batch(rng, n=40):
    return rng.uniform(-1, 1, size=(n, N)).astype(np.float32), rng.integers(0, N, size=n)


def _np(x):
    return ops.convert_to_numpy(x)


def test_imbalance_examples_run():
    result = doctest.testmod(imbalance, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------
# LDAM: margins from the paper's formula, the registry's loss against a float64 reference
# ---------------------------------------------------------------------------------------------
def _paper_margins(counts, max_m):
    """Cao et al., eq. (12): Delta_j = C / n_j^(1/4), C chosen so that max_j Delta_j = max_m."""
    n = np.asarray(counts, np.float64)
    c = max_m * n.min() ** 0.25
    return c / n ** 0.25


@pytest.mark.parametrize("max_m", [0.5, 0.25, 1.0])
def test_ldam_margins_follow_the_papers_formula(max_m):
    m = losses.ldam_margins(COUNTS, max_m)
    np.testing.assert_allclose(m, _paper_margins(COUNTS, max_m), rtol=1e-12)
    assert m.max() == pytest.approx(max_m) and m.argmax() == 2
    # Ten times fewer images: a margin 10^(1/4) = 1.778 times larger.
    assert m[2] / m[0] == pytest.approx(10 ** 0.25)


def _ldam(max_m=0.5, scale=16.0):
    return methods.get("ldam").build_loss(N, (), {"max_margin": max_m, "scale": scale}, class_counts=COUNTS)


@pytest.mark.parametrize("fmt", ["int", "one_hot"])
def test_ldam_is_the_margin_family_with_a_cosine_margin_per_class(fmt, rng):
    cos, y = _batch(rng)
    loss = _ldam(0.5, 16.0)
    assert type(loss) is AngularMarginLoss and loss.m1 == 1.0 and loss.m2 == 0.0
    np.testing.assert_allclose(loss.m3, _paper_margins(COUNTS, 0.5), rtol=1e-12)
    # Target logit s (cos theta_y - Delta_y), others s cos theta_j, softmax cross-entropy.
    logits = 16.0 * cos.astype(np.float64)
    logits[np.arange(len(y)), y] -= 16.0 * _paper_margins(COUNTS, 0.5)[y]
    expected = ref.softmax_ce(logits, y)
    labels = y if fmt == "int" else np.eye(N)[y]
    np.testing.assert_allclose(_np(loss.call(ops.convert_to_tensor(labels, "float32"), cos)), expected, rtol=1e-5,
                               atol=1e-5)
    assert float(loss(labels, cos)) == pytest.approx(expected.mean(), rel=1e-5)


def _finite_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[idx] += eps
        lo[idx] -= eps
        grad[idx] = (f(hi) - f(lo)) / (2 * eps)
    return grad


def _gradient(loss, y, x):
    import tensorflow as tf

    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = loss(y, x)
    return tape.gradient(value, x).numpy()


def test_ldam_gradient_matches_finite_differences_of_the_reference(rng):
    cos, y = _batch(rng, 8)
    cos = np.clip(cos, -0.95, 0.95)
    margins = _paper_margins(COUNTS, 0.5)

    def reference(c):
        logits = 16.0 * c
        logits[np.arange(len(y)), y] -= 16.0 * margins[y]
        return ref.softmax_ce(logits, y).mean()

    expected = _finite_difference(reference, cos.astype(np.float64))
    np.testing.assert_allclose(_gradient(_ldam(0.5, 16.0), y, cos), expected, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The logit-adjusted loss: cross-entropy on shifted logits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("fmt", ["int", "one_hot"])
def test_logit_adjusted_loss_is_cross_entropy_on_shifted_logits(tau, fmt, rng):
    z = rng.normal(scale=3.0, size=(50, N)).astype(np.float32)
    y = rng.integers(0, N, size=50)
    prior = np.asarray(COUNTS, np.float64) / np.sum(COUNTS)
    expected = ref.softmax_ce(z.astype(np.float64) + tau * np.log(prior), y)
    loss = LogitAdjustedLoss(COUNTS, tau=tau)
    labels = y if fmt == "int" else np.eye(N)[y]
    np.testing.assert_allclose(_np(loss.call(ops.convert_to_tensor(labels, "float32"), z)), expected, rtol=1e-5,
                               atol=1e-5)
    if tau == 0:  # no adjustment: plain cross-entropy
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        assert float(loss(y, z)) == pytest.approx(float(ce(y, z)), rel=1e-6)


def test_logit_adjusted_gradient_is_softmax_of_the_shifted_logits_minus_the_label(rng):
    z = rng.normal(size=(8, N)).astype(np.float32)
    y = rng.integers(0, N, size=8)
    shifted = z.astype(np.float64) + np.log(np.asarray(COUNTS) / np.sum(COUNTS))
    p = np.exp(ref.log_softmax(shifted))
    expected = (p - np.eye(N)[y]) / len(y)  # the batch mean's gradient
    np.testing.assert_allclose(_gradient(LogitAdjustedLoss(COUNTS, 1.0), y, z), expected, rtol=1e-4, atol=1e-6)


def test_registry_builds_the_long_tail_losses_from_the_training_counts():
    la = methods.get("logit_adjusted").build_loss(N, (), {"tau": 1.5}, class_counts=np.array(COUNTS))
    assert type(la) is LogitAdjustedLoss and la.class_counts == tuple(float(c) for c in COUNTS) and la.tau == 1.5
    for key in ("ldam", "logit_adjusted"):
        m = methods.get(key)
        assert m.needs_class_counts and not m.class_specific and not m.posthoc
        with pytest.raises(ValueError, match="needs the training class counts"):
            m.build_loss(N, (), {})
        with pytest.raises(ValueError, match="set from the training labels; remove it"):
            m.build_loss(N, (), {"class_counts": COUNTS}, class_counts=COUNTS)
    # A method that needs no counts ignores them.
    assert type(methods.get("ce").build_loss(N, (), {}, class_counts=COUNTS)).__name__ == \
        "SparseCategoricalCrossentropy"
    posthoc = methods.get("posthoc_adjustment")
    assert posthoc.posthoc and "threshold" in posthoc.description
    assert "posthoc_adjustment" not in methods.trainable()


# ---------------------------------------------------------------------------------------------
# Deferred re-weighting
# ---------------------------------------------------------------------------------------------
def test_effective_number_weights_closed_form():
    beta = 0.9999
    n = np.asarray(COUNTS, np.float64)
    raw = (1 - beta) / (1 - beta ** n)
    expected = raw / raw.sum() * N
    w = imbalance.effective_number_weights(COUNTS, beta)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert w.sum() == pytest.approx(N) and w.argmax() == 2
    np.testing.assert_allclose(imbalance.effective_number_weights(COUNTS, 0.0), np.ones(N))  # beta 0: no weights
    # beta -> 1: inverse frequency.
    w = imbalance.effective_number_weights(COUNTS, 1 - 1e-12)
    np.testing.assert_allclose(w / w[0], n[0] / n, rtol=1e-3)


def test_reweighted_loss_is_the_weighted_mean_of_the_base_loss(rng):
    z = rng.normal(size=(30, N)).astype(np.float32)
    y = rng.integers(0, N, size=30)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss = ClassReweightedLoss(ce, [1.0] * N)
    assert float(loss(y, z)) == pytest.approx(float(ce(y, z)), rel=1e-6)  # all ones: the loss itself
    w = np.array([1.0, 0.5, 4.0, 1.0, 2.0, 0.0])
    loss.class_weights.assign(w)
    per_sample = ref.softmax_ce(z.astype(np.float64), y)
    expected = (w[y] * per_sample).sum() / w[y].sum()  # PyTorch's cross_entropy(weight=w), as the authors use
    assert float(loss(y, z)) == pytest.approx(expected, rel=1e-5)


def _tiny_model(head="dense"):
    inputs = keras.Input((8,))
    features = keras.layers.Dense(4)(inputs)
    out = CosineHead(N)(features) if head == "cosine" else keras.layers.Dense(N)(features)
    return keras.Model(inputs, out)


def test_a_compiled_model_reads_the_weights_the_callback_sets(rng):
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, N, size=64)
    loss = ClassReweightedLoss(LogitAdjustedLoss(COUNTS, 1.0), [1.0] * N)
    model = _tiny_model()
    model.compile(optimizer="adam", loss=loss)  # compiled: no run_eagerly
    assert not model.run_eagerly
    before = model.evaluate(x, y, verbose=0, batch_size=64)
    w = imbalance.effective_number_weights(COUNTS)
    loss.class_weights.assign(w)
    after = model.evaluate(x, y, verbose=0, batch_size=64)  # the same traced function
    per_sample = ref.softmax_ce(model.predict(x, verbose=0).astype(np.float64)
                                + np.log(np.asarray(COUNTS) / np.sum(COUNTS)), y)
    assert before == pytest.approx(per_sample.mean(), rel=1e-4)
    assert after == pytest.approx((w[y] * per_sample).sum() / w[y].sum(), rel=1e-4)


def test_deferred_reweighting_switches_on_at_its_epoch_inside_fit(rng):
    x = rng.normal(size=(48, 8)).astype(np.float32)
    y = rng.integers(0, N, size=48)
    loss = ClassReweightedLoss(_ldam(), [1.0] * N)
    model = _tiny_model("cosine")
    model.compile(optimizer="adam", loss=loss)
    w = imbalance.effective_number_weights(COUNTS)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(_np(loss.class_weights).copy())

    model.fit(x, y, epochs=4, batch_size=16, verbose=0,
              callbacks=[imbalance.DeferredReweighting(loss, w, start_epoch=2), Probe()])
    for epoch, weights in enumerate(seen):
        np.testing.assert_allclose(weights, w if epoch >= 2 else np.ones(N), rtol=1e-6)
    with pytest.raises(ValueError, match="needs a ClassReweightedLoss"):
        imbalance.DeferredReweighting(_ldam(), w, 1)
    with pytest.raises(ValueError, match="class_weights has shape"):
        imbalance.DeferredReweighting(loss, w[:3], 1)


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: _ldam(0.25, 16.0),
    lambda: LogitAdjustedLoss(COUNTS, tau=0.5),
    lambda: ClassReweightedLoss(_ldam(), imbalance.effective_number_weights(COUNTS)),
    lambda: ClassReweightedLoss(keras.losses.SparseCategoricalCrossentropy(from_logits=True), [1, 2, 3, 1, 1, 1]),
], ids=["ldam", "logit_adjusted", "drw_ldam", "drw_ce"])
def test_get_config_round_trip(make, rng):
    cos, y = _batch(rng)
    loss = make()
    again = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert float(again(y, cos)) == float(loss(y, cos))


@pytest.mark.parametrize("head,make", [
    ("cosine", lambda: ClassReweightedLoss(_ldam(), imbalance.effective_number_weights(COUNTS))),
    ("dense", lambda: LogitAdjustedLoss(COUNTS, 2.0)),
])
def test_models_with_the_long_tail_losses_save_and_load_without_custom_objects(head, make, tmp_path, rng):
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = rng.integers(0, N, size=32)
    model = _tiny_model(head)
    model.compile(optimizer="adam", loss=make())
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert type(loaded.loss) is type(model.loss) and loaded.loss.get_config() == model.loss.get_config()


# ---------------------------------------------------------------------------------------------
# Post-hoc logit adjustment is threshold moving for one rare class
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_posthoc_adjustment_of_one_rare_class_is_threshold_moving(tau, rng):
    counts = [5000] * N
    counts[2] = 500
    z = rng.normal(scale=2.0, size=(2000, N))
    adjusted = imbalance.posthoc_logit_adjustment(z, counts, tau)
    np.testing.assert_allclose(adjusted, z - tau * np.log(np.asarray(counts) / np.sum(counts)), rtol=1e-12)
    b = imbalance.equivalent_bias(counts, 2, tau)
    assert b == pytest.approx(tau * math.log(10))
    moved = z.copy()
    moved[:, 2] += b
    np.testing.assert_array_equal(adjusted.argmax(axis=1), moved.argmax(axis=1))
    assert (adjusted.argmax(axis=1) == 2).sum() > (z.argmax(axis=1) == 2).sum()
    with pytest.raises(ValueError, match="no single bias"):
        imbalance.equivalent_bias(COUNTS, 2, tau)  # class 4 differs too
    with pytest.raises(ValueError, match=r"scores must have shape \(n, 6\)"):
        imbalance.posthoc_logit_adjustment(z[:, :4], counts)


def _ce_record(run_id, seed, counts, n=N):
    return {"method": "CE", "run_id": run_id, "seed": seed, "params": {}, "recall": [0.0] * n,
            "train_class_counts": counts, "data_source": {"kind": "real", "location": "x"},
            "environment": {"camri_utils": "0"}}


@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_posthoc_records_are_the_argmax_of_adjusted_logits_and_a_point_of_ces_curve(tau, rng):
    from camri_utils.protocol import curves
    from camri_utils.protocol.selection import posthoc_records

    counts = [5000] * N
    counts[2] = 500
    stored = {}
    for seed in range(2):
        y_test, y_val = rng.integers(0, N, 600), rng.integers(0, N, 300)
        stored[f"ce{seed}"] = {"test": rng.normal(scale=2.0, size=(600, N)) + 2 * np.eye(N)[y_test], "y_test": y_test,
                               "validation": rng.normal(scale=2.0, size=(300, N)), "y_validation": y_val}
    records = [_ce_record(f"ce{seed}", seed, counts) for seed in range(2)]
    records.append(_ce_record("old", 0, None))  # a balanced-era CE record without counts: no post-hoc row
    out = posthoc_records(records, [tau], lambda r: stored[r["run_id"]])
    assert [(r["method"], r["source_run"], r["params"]) for r in out] == [
        ("CE + logit adjustment", f"ce{seed}", {"tau": tau}) for seed in range(2)]
    b = imbalance.equivalent_bias(counts, 2, tau)
    for r in out:
        s = stored[r["source_run"]]
        for split, block in (("test", r), ("validation", r["validation"])):
            y = s["y_test" if split == "test" else "y_validation"]
            # Independent reference: float64 logits minus tau log(n_j / n), argmax.
            pred = (s[split] - tau * np.log(np.asarray(counts, float) / sum(counts))).argmax(axis=1)
            assert block["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-12)
            assert block["recall"][2] == pytest.approx(np.mean(pred[y == 2] == 2), abs=1e-12)
        # ... and the same point as CE's exact threshold curve at the equivalent bias.
        moved = curves.moved_metrics(s["test"], s["y_test"], 2, b)
        assert (r["accuracy"], r["recall"][2]) == pytest.approx((moved["accuracy"], moved["recall"]), abs=1e-12)


def test_ldam_with_drw_is_its_own_row():
    from camri_utils.protocol.selection import variant_label

    assert variant_label({"method": "LDAM", "params": {"max_margin": 0.5, "scale": 16.0}}) == "LDAM"
    assert variant_label({"method": "LDAM", "params": {"max_margin": 0.5, "drw_start_epoch": 9}}) == "LDAM-DRW"
    assert variant_label({"method": "WCE", "params": {"weight": 2.0, "drw_start_epoch": 9}}) == "WCE"
    assert methods.by_label("LDAM-DRW") is methods.get("ldam")
    assert methods.style("LDAM-DRW") != methods.style("LDAM")
    with pytest.raises(ValueError, match="no method labelled 'LDAM-XYZ'"):
        methods.by_label("LDAM-XYZ")


# ---------------------------------------------------------------------------------------------
# The rare-class variant of a dataset
# ---------------------------------------------------------------------------------------------
def test_subsample_keeps_a_seeded_fraction_of_one_class_and_everything_else_in_order():
    y = np.repeat(np.arange(4), 50)
    x = np.arange(200)
    xs, ys = imbalance.subsample_class(x, y, {"class": 1, "fraction": 0.1}, seed=0, n_classes=4)
    assert np.bincount(ys).tolist() == [50, 5, 50, 50]
    np.testing.assert_array_equal(xs, np.sort(xs))  # order kept
    np.testing.assert_array_equal(ys, y[xs])  # images stay with their labels
    again, _ = imbalance.subsample_class(x, y, {"class": 1, "fraction": 0.1}, seed=0, n_classes=4)
    other, _ = imbalance.subsample_class(x, y, {"class": 1, "fraction": 0.1}, seed=1, n_classes=4)
    np.testing.assert_array_equal(again, xs)
    assert set(other[ys == 1]) != set(xs[ys == 1])
    assert np.bincount(imbalance.subsample_class(x, y, {"class": 3, "fraction": 0.001}, 0, 4)[1]).tolist()[3] == 1
    assert imbalance.subsample_class(x, y, None, 0, 4)[0] is x
    assert len(imbalance.subsample_class(x, y, {"class": 0, "fraction": 1.0}, 0, 4)[0]) == 200
    with pytest.raises(ValueError, match=r"rare_class\['class'\] = 4 is not a class of toy \(classes 0..3\)"):
        imbalance.subsample_class(x, y, {"class": 4, "fraction": 0.5}, 0, 4, "toy")
    with pytest.raises(ValueError, match="no training images of class 2"):
        imbalance.subsample_class(x[y != 2], y[y != 2], {"class": 2, "fraction": 0.5}, 0, 4)


@pytest.mark.parametrize("bad,match", [
    ({"class": 6, "fraction": 0.0}, r"fraction'\] must be a number in \(0, 1\]"),
    ({"class": 6, "fraction": 1.5}, r"fraction'\] must be a number in \(0, 1\]"),
    ({"class": 6, "fraction": float("nan")}, r"fraction'\] must be"),
    ({"class": 6, "fraction": "0.1"}, r"fraction'\] must be"),
    ({"class": 6, "fraction": True}, r"fraction'\] must be"),
    ({"class": -1, "fraction": 0.1}, r"class'\] must be a class index"),
    ({"class": 2.0, "fraction": 0.1}, r"class'\] must be a class index"),
    ({"class": "6", "fraction": 0.1}, r"class'\] must be a class index"),
    ({"class": 6}, "rare_class must be None or"),
    ({"class": 6, "fraction": 0.1, "seed": 3}, "rare_class must be None or"),
    (6, "rare_class must be None or"),
])
def test_bad_rare_class_is_a_clear_error_when_the_config_is_made(bad, match):
    with pytest.raises(ValueError, match=match):
        training.TrainConfig(rare_class=bad)


@pytest.mark.parametrize("bad,match", [
    ({"start_epoch": 10}, r"start_epoch'\] must be an integer in \[0, epochs=10\)"),
    ({"start_epoch": -1}, r"start_epoch'\] must be an integer"),
    ({"start_epoch": 2.0}, r"start_epoch'\] must be an integer"),
    ({"start_epoch": 2, "beta": 1.0}, r"beta'\] must be a number in \[0, 1\)"),
    ({"start_epoch": 2, "beta": -0.1}, r"beta'\] must be"),
    ({"beta": 0.99}, "drw must be None or"),
    ({"start_epoch": 2, "gamma": 1}, "drw must be None or"),
    (True, "drw must be None or"),
])
def test_bad_drw_is_a_clear_error_when_the_config_is_made(bad, match):
    with pytest.raises(ValueError, match=match):
        training.TrainConfig(drw=bad, epochs=10)


@pytest.mark.parametrize("make,match", [
    (lambda: LogitAdjustedLoss([10, 0, 5]), r"class_counts must be finite numbers > 0 \(every class needs"),
    (lambda: LogitAdjustedLoss([10, -1, 5]), "class_counts must be finite numbers > 0"),
    (lambda: LogitAdjustedLoss([10, float("nan")]), "class_counts must be finite numbers > 0"),
    (lambda: LogitAdjustedLoss([10, True]), "class_counts must be finite numbers > 0"),
    (lambda: LogitAdjustedLoss(10), "class_counts must be a 1-D sequence"),
    (lambda: LogitAdjustedLoss([10, 5], tau=-1), r"tau must be a finite number >= 0"),
    (lambda: LogitAdjustedLoss([10, 5], tau=float("inf")), r"tau must be"),
    (lambda: losses.ldam_margins(COUNTS, 2.5), r"max_margin must be in \[0, 2\]"),
    (lambda: losses.ldam_margins(COUNTS, -0.1), r"max_margin must be in"),
    (lambda: methods.get("ldam").build_loss(N, (), {"margin": 0.5}, class_counts=COUNTS),
     r"LDAM takes max_margin and scale .*\['margin'\]"),
    (lambda: methods.get("ldam").build_loss(N, (), {}, class_counts=COUNTS[:4]), "has 4 values but there are 6"),
    (lambda: methods.get("ldam").build_loss(N, (), {"scale": 0.0}, class_counts=COUNTS), "scale must be"),
    (lambda: ClassReweightedLoss("mse", [1, 1]), "loss must be a Keras loss object"),
    (lambda: ClassReweightedLoss(LogitAdjustedLoss([1, 1]), [1, -1]), ">= 0"),
    (lambda: imbalance.effective_number_weights(COUNTS, 1.0), r"beta must be a number in \[0, 1\)"),
    (lambda: imbalance.effective_number_weights([5, 0], 0.9), "finite numbers > 0"),
])
def test_bad_long_tail_parameters_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_predictions_with_another_class_count_than_the_counts_raise(rng):
    z = rng.normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="class_counts has 6 values but predictions have 3 classes"):
        LogitAdjustedLoss(COUNTS)([0, 1, 2, 0], z)
    with pytest.raises(ValueError, match="class_weights has 6 values but predictions have 3 classes"):
        ClassReweightedLoss(keras.losses.SparseCategoricalCrossentropy(from_logits=True), [1.0] * N)([0, 1, 2, 0], z)


# ---------------------------------------------------------------------------------------------
# Training: identity, the rare-class data, the counts reaching the loss, DRW in a real run
# ---------------------------------------------------------------------------------------------
def test_the_new_options_are_off_by_default_and_join_no_existing_identity():
    base = training.TrainConfig()
    assert base.rare_class is None and base.drw is None
    assert "rare_class" not in training.identity(base) and "drw" not in training.identity(base)
    assert training.IDENTITY_BASELINE["rare_class"] is None and training.IDENTITY_BASELINE["drw"] is None
    rare = training.TrainConfig(rare_class={"class": 6, "fraction": 0.1}, drw={"start_epoch": 3})
    assert training.identity(rare)["rare_class"] == {"class": 6, "fraction": 0.1}
    assert training.identity(rare)["drw"] == {"start_epoch": 3, "beta": imbalance.DRW_BETA}  # beta filled in
    again = training.TrainConfig.from_json(rare.to_json())
    assert training.identity(again) == training.identity(rare)


@pytest.fixture
def fixture_dir(tmp_path):
    return fixtures.write("fashion_mnist", tmp_path / "f", per_class=20)


def test_a_rare_class_ldam_drw_run_trains_on_the_subsample_with_its_counts(fixture_dir, tmp_path):
    config = training.TrainConfig(dataset="fashion_mnist", data_dir=str(fixture_dir), validation_size=50,
                                  model="mlp", feature_dim=4, loss="ldam",
                                  loss_params={"max_margin": 0.5, "scale": 16.0},
                                  rare_class={"class": 6, "fraction": 0.2}, drw={"start_epoch": 1},
                                  epochs=2, batch_size=32, verbose=0, output_dir=str(tmp_path / "run"))
    result = training.train(config)
    counts = result.metrics["train_class_counts"]
    # 15 images per class after the split; the shirts cut to a fifth.
    assert counts == [15] * 6 + [3] + [15] * 3
    # Validation and test stay balanced.
    assert np.bincount(result.labels["validation"], minlength=10).tolist() == [5] * 10
    assert len(set(np.bincount(result.labels["test"], minlength=10).tolist())) == 1
    loss = result.model.loss
    assert type(loss) is ClassReweightedLoss and type(loss.base_loss) is AngularMarginLoss
    np.testing.assert_allclose(loss.base_loss.m3, losses.ldam_margins(counts, 0.5), rtol=1e-12)
    # DRW was on in the last epoch: the weights of the effective number of samples.
    np.testing.assert_allclose(_np(loss.class_weights), imbalance.effective_number_weights(counts), rtol=1e-6)
    assert np.isfinite(result.history["loss"]).all() and result.metrics["epochs_run"] == 2
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["train_class_counts"] == counts
    # The same split seed picks the same shirts; the logit-adjusted loss gets the same counts.
    la = training.train(dataclasses.replace(config, loss="logit_adjusted", loss_params={"tau": 1.0}, drw=None,
                                            output_dir=None))
    assert la.metrics["train_class_counts"] == counts
    assert la.model.loss.class_counts == tuple(float(c) for c in counts)


def test_an_unknown_rare_class_is_a_clear_error_at_training(fixture_dir):
    config = training.TrainConfig(dataset="fashion_mnist", data_dir=str(fixture_dir), model="mlp",
                                  rare_class={"class": 10, "fraction": 0.5}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"rare_class\['class'\] = 10 is not a class of fashion_mnist"):
        training.train(config)


# ---------------------------------------------------------------------------------------------
# The protocol's rare-class preset
# ---------------------------------------------------------------------------------------------
def test_rare_preset_plans_each_method_once_for_the_fixed_rare_class():
    spec = protocol.preset("fashion_mnist", "rare")
    full = protocol.preset("fashion_mnist", "full")
    assert (spec.rare_class, spec.important_class) == ({"class": 6, "fraction": 0.1}, 6)
    for name in ("epochs", "batch_size", "learning_rate", "lr_schedule", "seeds", "model", "feature_dim",
                 "validation_size", "camri_grid"):
        assert getattr(spec, name) == getattr(full, name), name
    shared = protocol.plan(spec, "real")
    specific = protocol.plan(spec, "real", protocol.runner.important_classes(spec, []))
    runs = shared + specific
    counts = {m: sum(p.method == m for p in runs) for m in {p.method for p in runs}}
    assert counts == {"CE": 5, "NormSoftmax": 10, "CAMRI": 40, "LDAM": 20, "Logit-adjusted CE": 15, "WCE": 15}
    assert len(runs) == 105 and len({p.run_id for p in runs}) == 105
    assert all(p.config.rare_class == spec.rare_class for p in runs)
    assert {p.important_class for p in specific} == {6}
    drw = [p for p in runs if p.method == "LDAM" and "drw_start_epoch" in p.params]
    assert len(drw) == 10 and all(p.config.drw == {"start_epoch": 9, "beta": 0.9999} for p in drw)
    assert all(p.config.loss_params == {"max_margin": p.params["max_margin"], "scale": 16.0} for p in drw)
    assert all(p.config.drw is None for p in runs if p not in drw)
    # None of them is a run of the balanced protocol.
    assert not {p.run_id for p in runs} & {p.run_id for p in protocol.plan(full, "real")}


def test_existing_specs_do_not_change(tmp_path):
    spec = protocol.preset("fashion_mnist", "full")
    assert spec.rare_class is None and spec.important_class is None and spec.ldam_grid == []
    old = {k: v for k, v in spec.to_dict().items()
           if k not in ("rare_class", "important_class", "ldam_grid", "logit_adjusted_taus", "posthoc_taus")}
    assert protocol.ProtocolSpec.from_dict(old).to_dict() == spec.to_dict()  # a protocol.json from before loads


@pytest.mark.parametrize("change,match", [
    ({"rare_class": {"class": 6, "fraction": 0}}, "fraction"),
    ({"important_class": -1}, "important_class must be None"),
    ({"important_class": "6"}, "important_class must be None"),
    ({"ldam_grid": [{"max_m": 0.5}]}, "ldam_grid must be a list"),
    ({"ldam_grid": [{"max_margin": 0.5, "drw": {"start_epoch": 3}}]}, "ldam_grid must be a list"),
    ({"ldam_grid": [{"max_margin": 0.5, "drw_start_epoch": 99}]}, r"start_epoch'\] must be an integer in"),
    ({"ldam_grid": [{"max_margin": 0.5, "drw_start_epoch": 3, "drw_beta": 1.5}]}, r"beta'\] must be a number"),
    ({"ldam_grid": [{"max_margin": 0.5, "drw_beta": 0.9}]}, "drw must be None or"),
    ({"logit_adjusted_taus": [-1.0]}, "logit_adjusted_taus must be a list of finite numbers >= 0"),
    ({"posthoc_taus": [float("nan")]}, "posthoc_taus must be"),
])
def test_bad_rare_specs_are_clear_errors(change, match):
    values = {**protocol.preset("fashion_mnist", "rare").to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        protocol.ProtocolSpec.from_dict(values)


def _tiny_rare_spec():
    return dataclasses.replace(
        protocol.preset("fashion_mnist", "rare-quick"), model="mlp", feature_dim=4, batch_size=32,
        train_subset=None, test_subset=None, validation_size=50, rare_class={"class": 6, "fraction": 0.2},
        ldam_grid=[{"max_margin": 0.5, "scale": 16.0, "drw_start_epoch": 1, "drw_beta": 0.999}])


def test_rare_protocol_runs_on_a_fixture_with_its_fixed_class_and_resumes(fixture_dir, tmp_path):
    from camri_utils import data

    ds = data.load("fashion_mnist", data_dir=fixture_dir)
    spec = _tiny_rare_spec()
    out = tmp_path / "r"
    # The second of two shards goes straight on to the class-specific runs: the important class
    # is fixed, so it does not wait for the other shard's CE runs.
    second = protocol.run(spec, out, shard=(1, 2), progress=False, dataset=ds)
    first = protocol.run(spec, out, shard=(0, 2), progress=False, dataset=ds)
    records = protocol.load_records(out)
    assert second + first == len(records) == 6  # CE, NormSoftmax, LDAM-DRW, LA; CAMRI, WCE for class 6
    assert {r["method"] for r in records} == {"CE", "NormSoftmax", "CAMRI", "LDAM", "Logit-adjusted CE", "WCE"}
    for r in records:
        assert r["train_class_counts"] == [15] * 6 + [3] + [15] * 3
        assert r["config"]["rare_class"] == spec.rare_class
        assert r["important_class"] == (6 if methods.by_label(r["method"]).class_specific else None)
    ldam = next(r for r in records if r["method"] == "LDAM")
    assert ldam["params"] == {"max_margin": 0.5, "scale": 16.0, "drw_start_epoch": 1, "drw_beta": 0.999}
    assert ldam["config"]["drw"] == {"start_epoch": 1, "beta": 0.999}
    assert ldam["config"]["loss_params"] == {"max_margin": 0.5, "scale": 16.0}
    assert protocol.read_spec(out)[0].to_dict() == spec.to_dict()
    assert protocol.run(spec, out, progress=False, dataset=ds) == 0  # resumed: nothing left
    # The report: LDAM-DRW is its own row, post-hoc logit adjustment a row (no training) that
    # the report places on CE's threshold curve at its equivalent bias.
    summary = protocol.summarize(out)
    rows = set(summary.table.method)
    assert {"LDAM-DRW", "CE + logit adjustment", "Logit-adjusted CE"} <= rows and "LDAM" not in rows
    assert "| LDAM-DRW |" in summary.markdown and "| CE + logit adjustment |" in summary.markdown
    assert f"at the bias tau 1: {math.log(5):.4f}" in summary.markdown  # 15 images against 3
    assert len([r for r in summary.records if r["method"] == "CE + logit adjustment"]) == len(spec.seeds)
    assert all(r["method"] == "LDAM" for r in protocol.load_records(out) if "drw_start_epoch" in r["params"])

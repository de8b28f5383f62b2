"""TrainConfig's throughput knobs (steps_per_execution, eval_batch_size, angle_sample; measured
by benchmarks/throughput.py): at their defaults they leave every run id and result as before;
set, they do what they say and change only what they should; bad values are clear errors."""

import dataclasses

import keras
import numpy as np
import pytest

from camri_utils import protocol, training
from camri_utils.training import TrainConfig

KNOBS = {"steps_per_execution": 1, "eval_batch_size": None, "angle_sample": 2000}


def _config(**knobs):
    return TrainConfig(**{"dataset": "digits", "model": "mlp", "feature_dim": 8, "loss": "camri",
                          "loss_params": {"margin": 0.2, "scale": 16.0}, "important_classes": 3, "epochs": 2,
                          "batch_size": 32, "seed": 1, "verbose": 0, **knobs})


def test_defaults_are_the_identity_baseline_and_leave_run_ids_alone():
    config = _config()
    for name, default in KNOBS.items():
        assert getattr(config, name) == default == training.IDENTITY_BASELINE[name]
        assert name not in training.identity(config)
    before = protocol.run_id(config, "CAMRI", "real")
    for name, value in {"steps_per_execution": 8, "eval_batch_size": 1024, "angle_sample": 500}.items():
        changed = dataclasses.replace(config, **{name: value})
        assert training.identity(changed)[name] == value  # a record says what it ran with
        assert protocol.run_id(changed, "CAMRI", "real") != before


@pytest.mark.parametrize("name, value", [
    ("steps_per_execution", 0), ("steps_per_execution", -2), ("steps_per_execution", 1.5),
    ("steps_per_execution", True), ("steps_per_execution", "8"), ("steps_per_execution", None),
    ("eval_batch_size", 0), ("eval_batch_size", 256.0), ("eval_batch_size", "big"), ("eval_batch_size", False),
    ("angle_sample", -1), ("angle_sample", 2.5), ("angle_sample", None), ("angle_sample", True),
])
def test_bad_values_are_clear_errors(name, value):
    with pytest.raises(ValueError, match=name):
        _config(**{name: value})
    with pytest.raises(ValueError, match=name):  # as read from a stored config
        TrainConfig.from_dict({**_config().to_dict(), name: value})


@pytest.fixture(scope="module")
def trained():
    """The same run with each knob set, on digits (seconds each)."""
    out = {}
    for key, knobs in {"default": {}, "spe": {"steps_per_execution": 4}, "eval": {"eval_batch_size": 500},
                       "angles_off": {"angle_sample": 0}, "angles_50": {"angle_sample": 50}}.items():
        out[key] = training.train(_config(**knobs))
        keras.backend.clear_session()
    return out


# Scores computed with another evaluation batch size go through other matrix-product kernels: the
# CPU's kernels split a float32 sum by the batch's shape, so each cosine may be summed in another
# order and differ in its last places (seen: 0.19025086 vs 0.19025093 on another machine of the
# same kind). 1e-5 is about 80 float32 units at |cos| <= 1, enough for those reorderings over the
# MLP's few layers and far below what any change to training moves a cosine (1e-3 and more).
REORDERED_SUM_ATOL = 1e-5


def _same_training(a, b, *, same_eval_batch=True):
    for key in ("loss", "accuracy"):  # the same training batches through the same kernels: exact
        assert a.history[key] == b.history[key]
    if same_eval_batch:  # the same batches through the same compiled graph: the same floats
        np.testing.assert_array_equal(a.scores["test"], b.scores["test"])
    else:
        np.testing.assert_allclose(a.scores["test"], b.scores["test"], rtol=0, atol=REORDERED_SUM_ATOL)


def test_steps_per_execution_compiles_several_steps_and_changes_no_number(trained):
    default, spe = trained["default"], trained["spe"]
    assert spe.model.steps_per_execution == 4 and default.model.steps_per_execution == 1
    # Exact on purpose: several steps per call loop over the same compiled one-step function on
    # batches of the same shape, so every sum is made in the same order.
    assert spe.history == default.history
    for split in default.scores:
        assert np.array_equal(spe.scores[split], default.scores[split])
    assert spe.metrics["angles_per_epoch"] == default.metrics["angles_per_epoch"]


def test_eval_batch_size_is_the_validation_and_test_batch(monkeypatch):
    from camri_utils import data

    batches = []
    real = data.pipeline

    def spy(x, y, batch_size, training, **kw):
        batches.append((len(x), batch_size, training))
        return real(x, y, batch_size, training, **kw)

    monkeypatch.setattr(data, "pipeline", spy)
    config = _config(eval_batch_size=500, epochs=1)
    training.train(config)
    train_batches = [b for _, b, is_training in batches if is_training]
    eval_batches = [b for _, b, is_training in batches if not is_training]
    assert train_batches == [32] and eval_batches == [500, 500]  # validation and test


def test_eval_batch_size_leaves_training_and_scores_as_they_were(trained):
    default, other = trained["default"], trained["eval"]
    _same_training(default, other, same_eval_batch=False)
    # Validation metrics: the loss is a mean over other batches (its sums reordered as the scores'
    # are, see REORDERED_SUM_ATOL, then averaged in another order); the accuracy is a count of argmax
    # over the reordered cosines, so it moves only if a cosine gap was under that tolerance.
    np.testing.assert_allclose(other.history["val_loss"], default.history["val_loss"], rtol=1e-5, atol=1e-6)
    n_val = len(default.labels["validation"])
    np.testing.assert_allclose(other.history["val_accuracy"], default.history["val_accuracy"], rtol=0,
                               atol=1.5 / n_val)  # at most one image's prediction may tip over


def test_angle_sample_sets_or_turns_off_the_summary_and_nothing_else(trained):
    default = trained["default"]
    assert len(default.metrics["angles_per_epoch"]["mean"]) == 2
    assert "angles_per_epoch" not in trained["angles_off"].metrics
    _same_training(default, trained["angles_off"])
    fewer = trained["angles_50"]
    _same_training(default, fewer)
    assert fewer.metrics["angles_per_epoch"] != default.metrics["angles_per_epoch"]
    assert len(fewer.metrics["angles_per_epoch"]["mean"]) == 2

"""A committed record's first epoch, retrained: the check the Part II and Part III record tests
share (a whole run would take minutes each; its first epoch, under the whole run's
configuration, shows that the stored config reproduces the training that made the record)."""

import keras
import pytest

from camri_utils import training


class _StopAfterOneEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def assert_first_epoch_reproduced(record, dataset):
    """Retrain ``record`` from its stored config on ``dataset`` (its learning-rate schedule spans
    all its epochs), stopped after one epoch, and compare with the first epoch of its history."""
    config = training.TrainConfig.from_dict({**record["config"], "verbose": 0})
    result = training.train(config, dataset=dataset, callbacks=[_StopAfterOneEpoch()])
    first = {k: v[0] for k, v in record["history"].items()}
    again = {k: v[0] for k, v in result.history.items()}
    assert set(first) == set(again), record["run_id"]
    # One epoch (hundreds of steps) summed in another order (the record states its thread count;
    # this process uses TensorFlow's default) drifts by float rounding compounded through training,
    # not by more: accuracies within 0.03, losses within 5%.
    for key in first:
        if "loss" in key:
            assert again[key] == pytest.approx(first[key], rel=0.05), (record["run_id"], key)
        else:
            assert again[key] == pytest.approx(first[key], abs=0.03), (record["run_id"], key)

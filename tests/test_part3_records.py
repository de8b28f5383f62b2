"""Part III's committed records (results/cifar10-cpu, results/gtsrb-cpu): one record, picked at
random, retrained for one epoch on the real data from ``../shared/data`` reproduces the first
epoch of its history."""

import json
import random
from pathlib import Path

import keras
import pytest

from camri_utils import data, training

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FOLDERS = {"cifar10": ("cifar10-cpu", "cifar10-png.tar.xz"), "gtsrb": ("gtsrb-cpu", "gtsrb-final.tar.xz")}


def committed():
    """[(dataset, record)] of every finished, non-diverged Part III record committed."""
    found = []
    for dataset, (folder, _) in FOLDERS.items():
        for path in sorted((REPO / "results" / folder / "runs").glob("*.json")):
            record = json.loads(path.read_text())
            if not record.get("diverged"):
                found.append((dataset, record))
    return found


class _StopAfterOneEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def test_a_committed_record_picked_at_random_retrains_its_first_epoch():
    records = committed()
    if not records:
        pytest.skip("no CIFAR-10 or GTSRB record is committed under results/ yet")
    dataset, record = random.choice(records)
    archive = SHARED / FOLDERS[dataset][1]
    if not archive.is_file():
        pytest.skip(f"the real {dataset} copy ({FOLDERS[dataset][1]} in ../shared/data beside the checkout) is not "
                    "on this machine")
    ds = data.load(dataset, data_dir=archive, **record["config"]["dataset_options"])
    config = training.TrainConfig.from_dict({**record["config"], "verbose": 0})
    # The whole run's configuration (its learning-rate schedule spans all epochs), stopped after one.
    result = training.train(config, dataset=ds, callbacks=[_StopAfterOneEpoch()])
    first = {k: v[0] for k, v in record["history"].items()}
    again = {k: v[0] for k, v in result.history.items()}
    assert set(first) == set(again)
    # One epoch (hundreds of steps) summed in another order (the record states its thread count;
    # this process uses TensorFlow's default) drifts by float rounding compounded through training,
    # not by more: accuracies within 0.03, losses within 5%.
    for key in first:
        if "loss" in key:
            assert again[key] == pytest.approx(first[key], rel=0.05), (record["run_id"], key)
        else:
            assert again[key] == pytest.approx(first[key], abs=0.03), (record["run_id"], key)

"""Part III's committed records (results/cifar10-cpu, results/gtsrb-cpu): one record, picked at
random, retrained for one epoch on the real data from ``../shared/data`` reproduces the first
epoch of its history: its running averages over the epoch's steps (tests/retrain.py says why not
its validation metrics)."""

import json
import random
from pathlib import Path

import pytest

from camri_utils import data
from tests.retrain import assert_first_epoch_reproduced

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
    assert_first_epoch_reproduced(record, ds)

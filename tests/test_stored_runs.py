"""Stored runs (camri_utils.stored_runs): a run is read back only when it is the run asked for,
bound to its arrays; every damaged, copied or foreign file is an error naming it; and the
committed runs of chapter 6 are what its full profile trains (one, picked at random, retrained)."""

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from camri_utils import data, stored_runs
from camri_utils.stored_runs import RunStore, StoredRunError, train_or_read
from camri_utils.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "digits_2d"


@pytest.fixture(scope="module")
def digits():
    ds = data.load("digits")
    return ds, ds.x_test.astype("float32") / 255.0


def _config(**changes):
    values = dict(dataset="digits", model="mlp", feature_dim=2, loss="camri",
                  loss_params={"margin": 0.3, "scale": 8.0, "monotonic": False}, important_classes=[3],
                  epochs=2, batch_size=64, learning_rate=3e-3, seed=0, verbose=0)
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def stored(tmp_path_factory, digits):
    """A store with one trained run: (store folder, config, the run as trained)."""
    ds, x = digits
    folder = tmp_path_factory.mktemp("runs") / "store"
    run = train_or_read(_config(), x, RunStore.create(folder, "a test store"), dataset=ds)
    return folder, _config(), run


def _copy(stored, tmp_path):
    folder, config, run = stored
    shutil.copytree(folder, tmp_path / "store")
    store = RunStore(tmp_path / "store")
    rid = stored_runs.run_id(config, "real")
    return store, config, run, store.folder / f"{rid}.json", store.folder / f"{rid}.npz"


def test_a_stored_run_is_read_back_exactly_without_training(stored, digits, tmp_path, monkeypatch):
    store, config, run, record, arrays = _copy(stored, tmp_path)
    assert run.trained and len(store) == 1 and store.ids() == [record.stem]
    import camri_utils.training

    monkeypatch.setattr(camri_utils.training, "train", lambda *a, **k: pytest.fail("trained a stored run"))
    again = train_or_read(config, digits[1], store, dataset=digits[0])
    assert not again.trained
    np.testing.assert_array_equal(again.features, run.features)
    np.testing.assert_array_equal(again.weights, run.weights)
    assert again.weights.dtype == np.float64 and again.features.shape == (len(digits[1]), 2)
    assert again.metrics["accuracy"] == run.metrics["accuracy"] and again.metrics["recall"] == run.metrics["recall"]
    assert json.loads(record.read_text())["arrays_sha256"] == hashlib.sha256(arrays.read_bytes()).hexdigest()
    # A field that changes nothing (verbose) finds it; one that changes the run (seed) or the data's kind does not.
    assert store.get(_config(verbose=1), "real") is not None
    assert store.get(_config(seed=1), "real") is None
    assert store.get(config, "synthetic fixture") is None


def test_the_stored_metrics_are_those_the_training_gave(stored, digits):
    from camri_utils import metrics as m

    folder, config, run = stored
    # The features and weights give back the stored test predictions: argmax of the cosines.
    f = run.features / np.linalg.norm(run.features, axis=1, keepdims=True)
    w = run.weights / np.linalg.norm(run.weights, axis=0, keepdims=True)
    again = m.split_metrics(digits[0].y_test, f @ w, 10)
    assert abs(again["accuracy"] - run.metrics["accuracy"]) < 1e-6


def test_without_a_store_every_run_is_trained(digits):
    run = train_or_read(_config(epochs=1), digits[1], None, dataset=digits[0])
    assert run.trained and run.features.shape == (len(digits[1]), 2) and run.weights.shape == (2, 10)


@pytest.mark.parametrize("damage, message", [
    (lambda rec, arr: rec.write_text("{not json"), "is not valid JSON"),
    (lambda rec, arr: rec.write_text(json.dumps([1, 2])), "is not a stored run of schema 1"),
    (lambda rec, arr: rec.write_text(json.dumps({**json.loads(rec.read_text()), "schema": 2})), "schema 1"),
    (lambda rec, arr: arr.unlink(), "is missing"),
    (lambda rec, arr: arr.write_bytes(arr.read_bytes() + b"x"), "SHA-256 differs"),
    (lambda rec, arr: rec.write_text(json.dumps(_edit(rec, config={**json.loads(rec.read_text())["config"],
                                                                    "seed": 7}))), "a copied or edited record"),
    (lambda rec, arr: rec.write_text(json.dumps(_edit(rec, config="a string"))), "its config cannot be read"),
    (lambda rec, arr: rec.write_text(json.dumps(_edit(rec, metrics={"accuracy": "high"}))), "its metrics need"),
    (lambda rec, arr: _rewrite_arrays(rec, arr, features=np.zeros((5, 3), "float32")), "are not (N, D)"),
    (lambda rec, arr: _rewrite_arrays(rec, arr, weights=np.full((2, 10), np.nan)), "non-finite"),
])
def test_a_damaged_stored_run_is_an_error_naming_the_file_and_the_remedy(stored, tmp_path, damage, message):
    store, config, _, record, arrays = _copy(stored, tmp_path)
    damage(record, arrays)
    with pytest.raises(StoredRunError, match="Delete") as err:
        store.get(config, "real")
    assert message in str(err.value) and record.name in str(err.value)


def _edit(record, **fields):
    return {**json.loads(record.read_text()), **fields}


def _rewrite_arrays(record, arrays, **replace):
    """Arrays of the wrong content, with the digest updated: only the content check can catch them."""
    with np.load(arrays) as stored:
        values = {k: stored[k] for k in stored.files} | replace
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **values)
    arrays.write_bytes(buffer.getvalue())
    record.write_text(json.dumps(_edit(record, arrays_sha256=hashlib.sha256(buffer.getvalue()).hexdigest())))


def _set(record, *keys, value):
    """The record with metrics[keys...] set to value (the digest of the arrays unchanged)."""
    values = json.loads(record.read_text())
    target = values["metrics"]
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    record.write_text(json.dumps(values))


@pytest.mark.parametrize("keys, value, message", [
    (("accuracy",), 1.7, "metrics.accuracy must be a number in [0, 1]"),
    (("accuracy",), float("nan"), "metrics.accuracy must be a number in [0, 1]"),
    (("accuracy",), "0.9", "metrics.accuracy must be a number in [0, 1]"),
    (("accuracy",), True, "metrics.accuracy must be a number in [0, 1]"),
    (("recall",), [-0.1] + [0.5] * 9, "metrics.recall must be a list of 10 numbers in [0, 1]"),
    (("recall",), [0.5] * 9, "metrics.recall must be a list of 10 numbers in [0, 1]"),
    (("precision",), ["high"] * 10, "metrics.precision must be a list of 10 numbers in [0, 1]"),
    (("validation", "accuracy"), float("inf"), "metrics.validation.accuracy must be a number in [0, 1]"),
    (("validation", "recall"), [0.5] * 11, "metrics.validation.recall must be a list of 10"),
    (("accuracy",), 0.9, "metrics.accuracy is not what metrics.confusion_matrix gives"),
    (("recall", 3), 1.0, "metrics.recall is not what metrics.confusion_matrix gives"),
    (("confusion_matrix",), [[1] * 10] * 9, "metrics.confusion_matrix must be 10 x 10 counts"),
    (("confusion_matrix",), [[1] * 10] * 10, "metrics.confusion_matrix counts 100 images"),
    (("notes",), "mine", "metrics a stored run does not keep: ['notes']"),
])
def test_edited_metrics_are_refused_naming_the_field(stored, tmp_path, keys, value, message):
    store, config, _, record, _ = _copy(stored, tmp_path)
    _set(record, *keys, value=value)
    with pytest.raises(StoredRunError, match="Delete") as err:
        store.get(config, "real")
    assert message in str(err.value) and record.name in str(err.value)


def test_two_runs_swapped_metrics_and_an_unknown_field_are_refused(tmp_path):
    """Chapter 6's committed runs: every piece consistent on its own, the metrics of one run
    under another's record disagree with the predictions of its stored features and weights."""
    shutil.copytree(COMMITTED, tmp_path / "store")
    store = RunStore(tmp_path / "store")
    cosine = [rid for rid in store.ids() if json.loads((store.folder / f"{rid}.json").read_text())["config"]["loss"]
              in ("camri", "normsoftmax")]
    a, b = (store.folder / f"{rid}.json" for rid in cosine[:2])
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    a.write_text(json.dumps({**ra, "metrics": rb["metrics"]}))
    with pytest.raises(StoredRunError, match="the metrics of another run") as err:
        store.read(a)
    assert a.name in str(err.value)
    b.write_text(json.dumps({**rb, "source_run": "x"}))
    with pytest.raises(StoredRunError, match=r"fields a stored run does not have: \['source_run'\]"):
        store.read(b)


def test_only_files_named_by_a_run_id_are_runs(stored, tmp_path):
    store, config, _, record, _ = _copy(stored, tmp_path)
    (store.folder / "notes.json").write_text('{"mine": 1}')
    (store.folder / "copy of run.json").write_text(record.read_text())
    assert store.ids() == [record.stem] and len(store) == 1


@pytest.mark.parametrize("edit, message", [
    (lambda m: {**m, "accuracy": 1.7}, "metrics.accuracy must be a number in [0, 1]"),
    (lambda m: {**m, "recall": m["recall"][:5]}, "metrics.recall must be a list of 10"),
    (lambda m: {**m, "accuracy": np.float32(m["accuracy"])}, "not JSON values"),
    (lambda m: {**m, "confusion_matrix": np.roll(m["confusion_matrix"], 1, axis=1).tolist()},
     "metrics.accuracy is not what metrics.confusion_matrix gives"),
])
def test_put_checks_a_run_before_writing_it(stored, tmp_path, edit, message):
    store, _, run, *_ = _copy(stored, tmp_path)
    before = sorted(p.name for p in store.folder.iterdir())
    with pytest.raises(StoredRunError, match=re.escape(message)) as err:
        store.put(_config(seed=5), "real", edit(run.metrics), run.features, run.weights)
    assert "Not written" in str(err.value) or "not written" in str(err.value)
    assert sorted(p.name for p in store.folder.iterdir()) == before  # nothing half-written, nothing invalid


def test_a_dense_heads_run_keeps_its_bias_and_its_predictions_are_checked(tmp_path, rng):
    from camri_utils import metrics as m

    store = RunStore.create(tmp_path / "store", "dense")
    config = _config(loss="ce", loss_params={})
    features, weights, bias = rng.normal(size=(200, 2)), rng.normal(size=(2, 10)), rng.normal(size=10)
    y = rng.integers(0, 10, size=200)
    logits = features @ weights + bias
    metrics = {**m.split_metrics(y, logits, 10), "confusion_matrix": m.confusion_matrix(y, logits, 10).tolist()}
    run = store.put(config, "real", metrics, features, weights, bias)
    assert run.metrics["accuracy"] == metrics["accuracy"]
    with pytest.raises(StoredRunError, match="the metrics of another run"):
        store.put(_config(loss="ce", loss_params={}, seed=9), "real", metrics, features, weights, -bias)
    with pytest.raises(StoredRunError, match="bias"):
        store.put(_config(loss="ce", loss_params={}, seed=9), "real", metrics, features, weights, bias[:3])


def test_a_record_copied_under_another_runs_name_is_refused(stored, tmp_path):
    store, config, _, record, arrays = _copy(stored, tmp_path)
    other = stored_runs.run_id(_config(seed=1), "real")
    shutil.copy(record, store.folder / f"{other}.json")
    shutil.copy(arrays, store.folder / f"{other}.npz")
    with pytest.raises(StoredRunError, match="a copied or edited record"):
        store.get(_config(seed=1), "real")


def test_stored_features_of_other_images_are_refused(stored, digits, tmp_path):
    store, config, *_ = _copy(stored, tmp_path)
    with pytest.raises(StoredRunError, match="another set of images"):
        train_or_read(config, digits[1][:100], store, dataset=digits[0])


@pytest.mark.parametrize("marker, message", [
    (None, "has no runs.json"),
    ("{oops", "is not valid JSON"),
    (json.dumps({"kind": "something else", "schema": 1}), "does not describe stored runs"),
    (json.dumps([1]), "does not describe stored runs"),
])
def test_a_folder_that_is_not_a_store_is_refused(tmp_path, marker, message):
    if marker is not None:
        (tmp_path / "runs.json").write_text(marker)
    with pytest.raises(StoredRunError, match=message):
        RunStore(tmp_path)


def test_a_store_is_not_made_over_a_file_and_find_says_where_it_looked(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoredRunError, match="is a file"):
        RunStore.create(tmp_path / "file", "x")
    with pytest.raises(FileNotFoundError, match="no_such_runs"):
        RunStore.find(str(tmp_path / "no_such_runs"))


def test_a_diverged_run_is_not_stored_and_a_failed_write_leaves_no_record(stored, tmp_path, monkeypatch):
    store, config, run, *_ = _copy(stored, tmp_path)
    with pytest.raises(StoredRunError, match="diverged"):
        store.put(_config(seed=3), "real", {"diverged": True}, run.features, run.weights)
    with pytest.raises(StoredRunError, match="diverged"):
        store.put(_config(seed=3), "real", run.metrics, np.full_like(run.features, np.nan), run.weights)

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(stored_runs, "write_json", refuse)
    with pytest.raises(OSError):
        store.put(_config(seed=4), "real", run.metrics, run.features, run.weights)
    assert store.get(_config(seed=4), "real") is None and len(store) == 1
    assert sorted(p.name for p in store.folder.iterdir()) == sorted(["runs.json", *(f"{r}.{e}" for r in store.ids()
                                                                             for e in ("json", "npz"))])


# ------------------------------------------------------------------------------------------------
# The committed runs of chapter 6
# ------------------------------------------------------------------------------------------------
def _committed():
    store = RunStore(COMMITTED)
    return store, [store.read(COMMITTED / f"{rid}.json") for rid in store.ids()]


def test_every_committed_run_of_chapter_6_reads_back():
    store, runs = _committed()
    # 4 methods x 5 seeds, the exercises' 2 margins x 5 seeds, the runs retrained monotonic, and
    # the training-practice section's 5 variants x 5 seeds.
    assert len(runs) >= 58
    assert {r.config["dataset"] for r in runs} == {"digits"} and {r.config["epochs"] for r in runs} == {60}
    # Every run's predictions were checked against its arrays: the dense heads' too (their bias is kept).
    for rid, run in zip(store.ids(), runs):
        if run.config["loss"] == "ce":
            with np.load(COMMITTED / f"{rid}.npz") as arrays:
                assert "bias" in arrays.files, rid


def test_a_committed_run_of_chapter_6_picked_at_random_retrains_to_its_record(digits):
    """The chapter's numbers come from training: one stored run that trained (accuracy >= 0.5;
    the runs that failed sit where a last digit decides), trained again from its config,
    reaches its record's accuracy and recall of "3". (On the machine that made them the runs
    retrain bit for bit, with one thread or two; another CPU may sum in another order, hence the
    tolerance of the protocol's retraining test.) The run is the first such by id, not one
    picked at random: a test that picks at random may pass on one run and fail on the next."""
    store, runs = _committed()
    run = next(r for r in runs if r.metrics["accuracy"] >= 0.5)
    again = train_or_read(run.config, digits[1], None, dataset=digits[0])
    where = (run.config["loss"], run.config["loss_params"], run.config["seed"], again.metrics["accuracy"])
    assert again.trained and abs(again.metrics["accuracy"] - run.metrics["accuracy"]) < 0.01, where
    assert abs(again.metrics["recall"][3] - run.metrics["recall"][3]) < 0.05, where

"""Trained runs kept on disk, for a chapter that trains many small models (chapter 6).

A run is read back instead of trained again when a run of the same configuration is stored::

    from camri_utils import stored_runs
    store = stored_runs.RunStore.find("results/digits_2d")     # as camri_utils.records.find looks
    run = stored_runs.train_or_read(config, x_test, store, dataset=digits)
    run.metrics["accuracy"], run.features, run.weights, run.trained

A stored run is two files in the store's folder, named by the run's id (a hash of
:func:`camri_utils.training.identity` of its config and of the kind of its data, so that a run
on a synthetic fixture is never taken for one on the real images): ``<id>.json`` (the config, the test and
validation metrics, what computed them, and the SHA-256 of the arrays) and ``<id>.npz`` (the
features of the images the chapter passed, the class weights and a dense head's bias). The folder holds a
``runs.json`` that says what it is; only files named ``<id>.json`` are runs. Nothing is taken on
trust: a record whose config is not its file's id, with fields it should not have, arrays that
are not the record's (their digest), of the wrong shape or non-finite, metrics that are not
fractions in [0, 1] of one per class, that disagree with the record's confusion matrix, or whose
predictions are not those of its stored features and weights (the argmax of their cosines), or
a file that is not a record, is an error naming the file and what to do (delete the run's two
files: the chapter then trains it again). A run is checked the same way before it is written,
so the store never holds a run it would refuse; a run that diverged is never stored.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camri_utils.io import atomic_path, sha256, write_json

__all__ = ["MARKER", "SCHEMA", "StoredRunError", "StoredRun", "RunStore", "run_id", "train_or_read"]

MARKER = "runs.json"
SCHEMA = 1
_KIND = "camri stored runs"
# What a record keeps of a run's metrics: the test and validation metrics and what computed them.
_KEPT = ("accuracy", "recall", "precision", "confusion_matrix", "validation", "important_classes",
         "train_class_counts", "epochs_run", "wall_time_s", "environment", "compute")
_FIELDS = {"schema", "run_id", "config", "data_kind", "metrics", "arrays_sha256"}
_ID = re.compile(r"[0-9a-f]{20}")  # run_id(): the first 20 hex digits of a SHA-256
# Predictions recomputed here (float64) from float32 features may differ from the model's own
# where two classes' cosines are closer than float32 rounding allows to tell apart: such images
# may count for either class.
_TIE = 1e-5


class StoredRunError(ValueError):
    """A stored run or a store's folder that cannot be used as it is."""


@dataclass
class StoredRun:
    """One run: its config (``TrainConfig.to_dict()``), metrics (``accuracy``, ``recall``,
    ``precision``, ... as :func:`camri_utils.training.train` gives them), the features of the
    images it was asked for, the class weights (D, C), and whether it was ``trained`` now (else
    read from the store)."""

    config: dict
    metrics: dict
    features: np.ndarray
    weights: np.ndarray
    trained: bool


def run_id(config, data_kind):
    """A run's id: a hash of its config's identity (fields that change what it computes) and
    of its data's kind (``Dataset.source.kind``: ``"real"``, ``"synthetic fixture"``, ...);
    :func:`camri_utils.training.run_id`, as the protocol's records are named."""
    from camri_utils import training

    return training.run_id(config, data_kind)


def _remedy(path):
    return f"Delete {path.with_suffix('.json').name} and {path.with_suffix('.npz').name} in {path.parent} to train " \
           "that run again, or restore them (git checkout)."


def _arrays_bytes(features, weights, bias=None):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=features, weights=weights, **({} if bias is None else {"bias": bias}))
    return buffer.getvalue()


class RunStore:
    """The folder of a chapter's stored runs (it holds :data:`MARKER`)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        marker = self.folder / MARKER
        if not marker.is_file():
            raise StoredRunError(f"{self.folder} has no {MARKER}: not a folder of stored runs. Make one with "
                                 "RunStore.create(folder, description).")
        try:
            values = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoredRunError(f"{marker} is not valid JSON ({exc}); restore it (git checkout).") from None
        if not isinstance(values, dict) or values.get("kind") != _KIND or values.get("schema") != SCHEMA:
            raise StoredRunError(f"{marker} does not describe stored runs of schema {SCHEMA} (kind {_KIND!r}); "
                                 "restore it (git checkout) or use another folder.")
        self.description = values.get("description", "")

    @classmethod
    def create(cls, folder, description):
        """Make ``folder`` a store (an existing store is opened as it is)."""
        folder = Path(folder)
        if not (folder / MARKER).exists():
            if folder.exists() and not folder.is_dir():
                raise StoredRunError(f"{folder} is a file, not a folder; pass another path.")
            write_json(folder / MARKER, {"kind": _KIND, "schema": SCHEMA, "description": str(description)}, indent=1)
        return cls(folder)

    @classmethod
    def find(cls, path, cache_dir=None):
        """The store at ``path`` where :func:`camri_utils.records.find` finds a results folder
        (as given, ``$CAMRI_RESULTS_DIR``, the checkout, the book's repository on Colab, fetched
        into ``cache_dir``)."""
        from camri_utils import records

        return cls(records.find(path, marker=MARKER, cache_dir=cache_dir))

    def ids(self):
        """The ids of the stored runs."""
        return sorted(p.stem for p in self.folder.glob("*.json") if _ID.fullmatch(p.stem))

    def __len__(self):
        return len(self.ids())

    def get(self, config, data_kind):
        """The stored run of ``config`` (a TrainConfig or its dict) on data of ``data_kind``,
        checked, or None."""
        path = self.folder / f"{run_id(config, data_kind)}.json"
        return self.read(path) if path.exists() else None

    def read(self, path):
        """The run stored in ``path`` (``<id>.json``), checked against its id and its arrays."""
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoredRunError(f"{path} is not valid JSON ({exc}). {_remedy(path)}") from None
        if not isinstance(record, dict) or not _FIELDS <= set(record) or record["schema"] != SCHEMA:
            raise StoredRunError(f"{path} is not a stored run of schema {SCHEMA} (it needs {sorted(_FIELDS)}). "
                                 f"{_remedy(path)}")
        if record["run_id"] != path.stem:
            raise StoredRunError(f"{path} holds the run {record['run_id']!r}: a copied or edited record. "
                                 f"{_remedy(path)}")
        arrays = path.with_suffix(".npz")
        if not arrays.is_file():
            raise StoredRunError(f"{arrays} (the arrays of {path.name}) is missing. {_remedy(path)}")
        content = arrays.read_bytes()
        if sha256(content) != record["arrays_sha256"]:
            raise StoredRunError(f"{arrays} is not the file written with {path.name} (its SHA-256 differs from the "
                                 f"record's arrays_sha256). {_remedy(path)}")
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as stored:
                features, weights = stored["features"], stored["weights"]
                bias = stored["bias"] if "bias" in stored.files else None
        except (ValueError, KeyError, OSError) as exc:
            raise StoredRunError(f"{arrays} is not the run's arrays ({exc}). {_remedy(path)}") from None
        _check(record, features, weights, bias, path, arrays)
        metrics = record["metrics"]
        return StoredRun(record["config"], metrics, features, weights, trained=False)

    def put(self, config, data_kind, metrics, features, weights, bias=None):
        """Store a trained run: the arrays first, then the record (a record never points to
        missing arrays; arrays whose record cannot be written are removed). ``bias``: a dense
        head's bias (so that its predictions can be recomputed). A diverged run (non-finite
        metrics or arrays) and a run that read() would refuse are refused before anything is
        written."""
        features, weights = np.asarray(features), np.asarray(weights)  # kept as computed: the same numbers
        bias = None if bias is None else np.asarray(bias)
        if metrics.get("diverged") or not (np.isfinite(features).all() and np.isfinite(weights).all()):
            raise StoredRunError("a diverged run (non-finite features or weights) is not stored; train it again with "
                                 "a smaller learning rate.")
        config = config if isinstance(config, dict) else config.to_dict()
        rid = run_id(config, data_kind)
        content = _arrays_bytes(features, weights, bias)
        record = {"schema": SCHEMA, "run_id": rid, "config": config, "data_kind": data_kind,
                  "metrics": {k: metrics[k] for k in _KEPT if k in metrics},
                  "arrays_sha256": sha256(content)}
        # Checked as read() will check it, before anything is written: never a file it would refuse.
        try:
            record = json.loads(json.dumps(record))  # as it will read back: tuples as lists
        except (TypeError, ValueError) as exc:
            raise StoredRunError(f"the run's config or metrics are not JSON values ({exc}); not written.") from None
        path = self.folder / f"{rid}.json"
        _check(record, features, weights, bias, path, path.with_suffix(".npz"), writing=True)
        with atomic_path(self.folder / f"{rid}.npz") as tmp:
            tmp.write_bytes(content)
        try:
            write_json(self.folder / f"{rid}.json", record, indent=1)
        except BaseException:  # no arrays without their record
            (self.folder / f"{rid}.npz").unlink(missing_ok=True)
            raise
        return self.read(self.folder / f"{rid}.json")


def _fraction(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _check(record, features, weights, bias, path, arrays, writing=False):
    """Everything a run's record states that can be checked: its id from its config, its fields,
    its arrays' shapes and values, its metrics' types and ranges, their agreement with its
    confusion matrix, and the matrix's predictions against those of its arrays."""
    def refuse(what):
        remedy = "Not written: the training's result is not a run this store keeps." if writing else _remedy(path)
        raise StoredRunError(f"{path}: {what}. {remedy}")

    unknown = sorted(set(record) - _FIELDS)
    if unknown:
        refuse(f"fields a stored run does not have: {unknown} (an edited record)")
    if not isinstance(record["data_kind"], str):
        refuse(f"data_kind must be a string (the data's kind, e.g. 'real'); got {record['data_kind']!r}")
    try:
        own = run_id(record["config"], record["data_kind"])
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        refuse(f"its config cannot be read ({exc})")
    if own != record["run_id"]:
        refuse(f"it holds the run {record['run_id']!r} of a config whose id is {own!r}: a copied or edited record")
    metrics = record["metrics"]
    if not (isinstance(metrics, dict) and {"accuracy", "recall", "precision"} <= set(metrics)):
        refuse("its metrics need accuracy (a number), recall and precision (lists)")
    unknown = sorted(set(metrics) - set(_KEPT))
    if unknown:
        refuse(f"metrics a stored run does not keep: {unknown} (an edited record)")
    if features.ndim != 2 or weights.ndim != 2 or weights.shape[0] != features.shape[1]:
        refuse(f"features {features.shape} and weights {weights.shape} in {arrays.name} are not (N, D) and (D, C)")
    if bias is not None and bias.shape != (weights.shape[1],):
        refuse(f"the bias {bias.shape} in {arrays.name} is not one per class of its weights {weights.shape}")
    if not all(np.isfinite(a).all() for a in (features, weights, bias) if a is not None):
        refuse(f"{arrays.name} holds non-finite values")
    n, n_classes = len(features), weights.shape[1]
    splits = {"test": metrics, **({"validation": metrics["validation"]} if "validation" in metrics else {})}
    for split, values in splits.items():
        where = "metrics" if split == "test" else "metrics.validation"
        if not isinstance(values, dict) or not _fraction(values.get("accuracy")):
            refuse(f"{where}.accuracy must be a number in [0, 1]; got "
                   f"{values.get('accuracy') if isinstance(values, dict) else values!r}")
        for key in ("recall", "precision"):
            got = values.get(key)
            if not (isinstance(got, list) and len(got) == n_classes and all(map(_fraction, got))):
                refuse(f"{where}.{key} must be a list of {n_classes} numbers in [0, 1] (one per class of "
                       f"{arrays.name}); got {got!r}")
    matrix = metrics.get("confusion_matrix")
    if matrix is None:
        return
    try:
        cm = np.array(matrix, dtype=object)
        ok = cm.shape == (n_classes, n_classes) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in cm.ravel())
    except ValueError:  # a ragged list
        ok = False
    if not ok:
        refuse(f"metrics.confusion_matrix must be {n_classes} x {n_classes} counts")
    cm = cm.astype(np.int64)
    if cm.sum() != n:
        refuse(f"metrics.confusion_matrix counts {cm.sum()} images; {arrays.name} holds the features of {n}")
    true, predicted, right = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
    stated = {"accuracy": [metrics["accuracy"]], "recall": metrics["recall"], "precision": metrics["precision"]}
    implied = {"accuracy": [right.sum() / n],
               "recall": np.divide(right, true, out=np.zeros(n_classes), where=true > 0),
               "precision": np.divide(right, predicted, out=np.zeros(n_classes), where=predicted > 0)}
    for key in stated:
        if not np.allclose(stated[key], implied[key], rtol=0, atol=1e-9):  # one division each: exact to rounding
            refuse(f"metrics.{key} is not what metrics.confusion_matrix gives ({np.round(implied[key], 4).tolist()}): "
                   "an edited record, or another run's metrics")
    scores = _scores(record["config"], features, weights, bias)
    if scores is None:  # a dense head stored without its bias (runs stored before it was kept)
        return
    top = np.sort(scores, axis=1)
    counts = np.bincount(scores.argmax(axis=1), minlength=n_classes)
    near_ties = int((top[:, -1] - top[:, -2] < _TIE * np.maximum(1.0, np.abs(top[:, -1]))).sum())
    if np.abs(counts - predicted).max() > near_ties:
        refuse(f"its confusion matrix predicts {predicted.tolist()} images per class, its features and weights in "
               f"{arrays.name} {counts.tolist()}: the metrics of another run")


def _scores(config, features, weights, bias):
    """The head's outputs from the stored arrays (float64): cosines for a cosine head, logits
    for a dense head with its bias; None for a dense head whose bias was not stored."""
    from camri_utils import methods

    f, w = features.astype(np.float64), weights.astype(np.float64)
    if methods.get(config["loss"]).head == "cosine":
        return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)) @ \
            (w / np.maximum(np.linalg.norm(w, axis=0, keepdims=True), 1e-12))
    return None if bias is None else f @ w + bias.astype(np.float64)


def train_or_read(config, x, store=None, dataset=None):
    """The run of ``config``: read from ``store`` when it holds it, else trained (and stored
    there, when there is a store). ``x``: the images whose features are kept (the chapter's
    test images, scaled as training scales them). Returns a :class:`StoredRun`."""
    import keras

    from camri_utils import angles, data, models
    from camri_utils.training import TrainConfig, train

    config = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    if dataset is None:
        dataset = data.load(config.dataset, config.data_dir, **config.dataset_options)
    kind = dataset.source.kind
    stored = store.get(config, kind) if store is not None else None
    if stored is not None:
        if len(stored.features) != len(x):
            raise StoredRunError(f"{store.folder / run_id(config, kind)}.npz holds features of {len(stored.features)} "
                                 f"images, not of the {len(x)} passed: another set of images.")
        return stored
    result = train(config, dataset=dataset)
    features = keras.ops.convert_to_numpy(models.feature_model(result.model)(x))
    weights = angles.class_weights_of(result.model)
    head = result.model.get_layer(models.HEAD)
    bias = keras.ops.convert_to_numpy(head.bias) if getattr(head, "use_bias", False) else None
    keras.backend.clear_session()  # a fresh graph per run: flat memory over many runs
    if store is not None and not result.metrics.get("diverged"):
        stored = store.put(config, kind, result.metrics, features, weights, bias)
        return StoredRun(stored.config, stored.metrics, stored.features, stored.weights, trained=True)
    return StoredRun(config.to_dict(), result.metrics, features, weights, trained=True)

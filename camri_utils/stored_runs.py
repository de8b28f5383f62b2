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
features of the images the chapter passed and the class weights). The folder holds a
``runs.json`` that says what it is. Nothing is taken on trust: a record whose config is not its
file's id, arrays that are not the record's (their digest), of the wrong shape or non-finite,
or a file that is not a record is an error naming the file and what to do (delete the run's two
files: the chapter then trains it again). A run that diverged is never stored.
"""

from __future__ import annotations

import io
import json
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


def _arrays_bytes(features, weights):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=features, weights=weights)
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
        return sorted(p.stem for p in self.folder.glob("*.json") if p.name != MARKER)

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
        fields = {"schema", "run_id", "config", "data_kind", "metrics", "arrays_sha256"}
        if not isinstance(record, dict) or not fields <= set(record) or record["schema"] != SCHEMA:
            raise StoredRunError(f"{path} is not a stored run of schema {SCHEMA} (it needs {sorted(fields)}). "
                                 f"{_remedy(path)}")
        try:
            own = run_id(record["config"], record["data_kind"])
        except (TypeError, KeyError, ValueError) as exc:
            raise StoredRunError(f"{path}: its config cannot be read ({exc}). {_remedy(path)}") from None
        if record["run_id"] != path.stem or own != path.stem:
            raise StoredRunError(f"{path} holds the run {record['run_id']!r} of a config whose id is {own!r}: a copied "
                                 f"or edited record. {_remedy(path)}")
        metrics = record["metrics"]
        if not (isinstance(metrics, dict) and isinstance(metrics.get("accuracy"), float)
                and isinstance(metrics.get("recall"), list) and isinstance(metrics.get("precision"), list)):
            raise StoredRunError(f"{path}: its metrics need accuracy (a number), recall and precision (lists). "
                                 f"{_remedy(path)}")
        arrays = path.with_suffix(".npz")
        if not arrays.is_file():
            raise StoredRunError(f"{arrays} (the arrays of {path.name}) is missing. {_remedy(path)}")
        content = arrays.read_bytes()
        if sha256(content) != record["arrays_sha256"]:
            raise StoredRunError(f"{arrays} is not the file written with {path.name} (its SHA-256 differs from the "
                                 f"record's arrays_sha256). {_remedy(path)}")
        with np.load(io.BytesIO(content), allow_pickle=False) as stored:
            features, weights = stored["features"], stored["weights"]
        n_classes = len(metrics["recall"])
        if features.ndim != 2 or weights.ndim != 2 or weights.shape != (features.shape[1], n_classes):
            raise StoredRunError(f"{arrays}: features {features.shape} and weights {weights.shape} are not (N, D) and "
                                 f"(D, {n_classes}). {_remedy(path)}")
        if not (np.isfinite(features).all() and np.isfinite(weights).all()):
            raise StoredRunError(f"{arrays} holds non-finite values. {_remedy(path)}")
        return StoredRun(record["config"], metrics, features, weights, trained=False)

    def put(self, config, data_kind, metrics, features, weights):
        """Store a trained run: the arrays first, then the record (a record never points to
        missing arrays; arrays whose record cannot be written are removed). A diverged run
        (non-finite metrics or arrays) is refused."""
        features, weights = np.asarray(features), np.asarray(weights)  # kept as computed: the same numbers
        if metrics.get("diverged") or not (np.isfinite(features).all() and np.isfinite(weights).all()):
            raise StoredRunError("a diverged run (non-finite features or weights) is not stored; train it again with "
                                 "a smaller learning rate.")
        config = config if isinstance(config, dict) else config.to_dict()
        rid = run_id(config, data_kind)
        content = _arrays_bytes(features, weights)
        with atomic_path(self.folder / f"{rid}.npz") as tmp:
            tmp.write_bytes(content)
        record = {"schema": SCHEMA, "run_id": rid, "config": config, "data_kind": data_kind,
                  "metrics": {k: metrics[k] for k in _KEPT if k in metrics},
                  "arrays_sha256": sha256(content)}
        try:
            write_json(self.folder / f"{rid}.json", record, indent=1)
        except BaseException:  # no arrays without their record
            (self.folder / f"{rid}.npz").unlink(missing_ok=True)
            raise
        return self.read(self.folder / f"{rid}.json")


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
    keras.backend.clear_session()  # a fresh graph per run: flat memory over many runs
    if store is not None and not result.metrics.get("diverged"):
        stored = store.put(config, kind, result.metrics, features, weights)
        return StoredRun(stored.config, stored.metrics, stored.features, stored.weights, trained=True)
    return StoredRun(config.to_dict(), result.metrics, features, weights, trained=True)

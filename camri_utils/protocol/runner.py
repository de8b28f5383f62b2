"""Plan and run the protocol: the runs that do not depend on the important class first (CE,
normalized softmax, ArcFace: trained once per setting and seed, shared by every important
class), then, once every CE run is recorded, the class-specific runs (CAMRI, WCE, CRWWCE) for
the classes the CE ranking picks. Each run is written as soon as it finishes; a rerun skips
finished runs; ``shard=(i, n)`` runs every n-th run, so a sweep can be spread over machines."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from camri_utils import methods, metrics
from camri_utils.protocol.store import SCHEMA, load_records, open_output, run_id, write_record

__all__ = ["PlannedRun", "plan", "run", "train_config"]

SHARED = ("ce", "normsoftmax", "arcface")
CLASS_SPECIFIC = ("camri", "wce", "crwwce")


@dataclass(frozen=True)
class PlannedRun:
    method: str  # the method's label, as records store it
    important_class: int | None
    params: dict
    seed: int
    config: object  # TrainConfig
    run_id: str


def _settings(spec, key):
    policy = {"monotonic": spec.monotonic}
    return {"ce": [{}], "normsoftmax": spec.normsoftmax_grid,
            "arcface": [{**p, **policy} for p in spec.arcface_grid],
            "camri": [{**p, **policy} for p in spec.camri_grid],
            "wce": [{"weight": w} for w in spec.wce_weights],
            "crwwce": [{"weight": w} for w in spec.crwwce_weights]}[key]


def train_config(spec, key, important_class, params, seed):
    """The :class:`~camri_utils.training.TrainConfig` of one run of ``spec``."""
    from camri_utils.training import TrainConfig

    return TrainConfig(
        dataset=spec.dataset, dataset_options=spec.dataset_options, validation_size=spec.validation_size,
        split_seed=spec.split_seed, train_subset=spec.train_subset, test_subset=spec.test_subset, model=spec.model,
        feature_dim=spec.feature_dim, loss=key, loss_params=dict(params),
        important_classes=[] if important_class is None else [important_class], epochs=spec.epochs,
        batch_size=spec.batch_size, learning_rate=spec.learning_rate, lr_schedule=spec.lr_schedule,
        warmup_epochs=spec.warmup_epochs, seed=seed, verbose=0)


def plan(spec, data_kind, classes=None):
    """The runs of one stage: the shared ones (``classes=None``), or the class-specific ones
    for each of ``classes`` (each class once, whatever roles it plays)."""
    keys, targets = (SHARED, [None]) if classes is None else (CLASS_SPECIFIC, list(dict.fromkeys(classes)))
    runs = []
    for c in targets:
        for key in keys:
            label = methods.get(key).label
            for params in _settings(spec, key):
                for seed in spec.seeds:
                    config = train_config(spec, key, c, params, seed)
                    runs.append(PlannedRun(label, c, dict(params), seed, config, run_id(config, label, data_kind)))
    return runs


def _run_one(spec, output, planned, ds):
    from camri_utils import angles
    from camri_utils.training import train

    start = time.perf_counter()
    result = train(planned.config, dataset=ds)
    # Scores are stored in float16; the record's metrics are computed from exactly what is
    # stored, so they can always be reproduced from it (rounding only decides near-ties).
    stored = {split: s.astype(np.float16) for split, s in result.scores.items()}
    test = metrics.split_metrics(result.labels["test"], stored["test"], ds.n_classes)
    record = {
        "schema": SCHEMA, "run_id": planned.run_id, "dataset": spec.dataset, "profile": spec.profile,
        "method": planned.method, "important_class": planned.important_class, "params": planned.params,
        "seed": planned.seed, "config": planned.config.to_dict(), "history": result.history, **test,
        "confusion_matrix": metrics.confusion_matrix(result.labels["test"], stored["test"], ds.n_classes).tolist(),
        "epochs_run": result.metrics["epochs_run"], "wall_time_s": time.perf_counter() - start,
        "environment": result.metrics["environment"], "compute": result.metrics.get("compute"),
        "data_source": result.metrics["data_source"],
        "class_names": list(ds.class_names),
    }
    if "validation" in stored:
        record["validation"] = metrics.split_metrics(result.labels["validation"], stored["validation"],
                                                     ds.n_classes)
    if "angles_per_epoch" in result.metrics:
        record["angles_per_epoch"] = result.metrics["angles_per_epoch"]
    # The shared runs keep their validation scores (threshold moving re-reads them); the
    # class-specific ones keep test scores only, their validation metrics being in the record:
    # that keeps a full sweep's scores within the repository's budget.
    splits = list(stored) if planned.important_class is None else ["test"]
    arrays = {split: stored[split] for split in splits}
    arrays.update({f"y_{split}": np.asarray(result.labels[split], np.int16) for split in splits})
    arrays["class_weights"] = angles.class_weights_of(result.model).astype(np.float32)
    if methods.get(planned.config.loss).head == "dense" and planned.important_class is None:
        # For the angle analysis: a dense head's outputs are logits, not cosines.
        arrays["test_cosines"] = result.test_cosines.astype(np.float16)
    write_record(output, record, arrays)


def run(spec, output, shard=(0, 1), progress=True, dataset=None):
    """Run (what is left of) the protocol into ``output``. Returns the number of runs trained.
    With several shards, the class-specific stage starts once every CE run is recorded."""
    import keras
    from tqdm import tqdm

    from camri_utils import data
    from camri_utils.protocol.selection import rank_classes

    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ValueError(f"shard must be i/n with 1 <= i <= n; got {index + 1}/{count}.")
    ds = dataset if dataset is not None else data.load(spec.dataset, **spec.dataset_options)
    open_output(spec, output, ds.source.kind)
    trained = 0
    for stage in ("shared", "class-specific"):
        done = {r["run_id"]: r for r in load_records(output)}
        planned = plan(spec, ds.source.kind)
        if stage == "class-specific":
            ce = [done[p.run_id] for p in planned if p.method == "CE" and p.run_id in done]
            if len(ce) < len(spec.seeds):
                print(f"the class-specific runs wait for the CE runs of every shard ({len(ce)}/{len(spec.seeds)} "
                      "recorded); rerun when they are done.")
                break
            planned = plan(spec, ds.source.kind, rank_classes(ce)[1].values())
        mine = planned[index::count]
        todo = [p for p in mine if p.run_id not in done]
        bar = tqdm(todo, desc=f"{stage} runs ({len(mine) - len(todo)} of {len(mine)} done)", unit="run",
                   disable=not progress)
        for planned_run in bar:
            _run_one(spec, output, planned_run, ds)
            trained += 1
            keras.backend.clear_session()
    return trained

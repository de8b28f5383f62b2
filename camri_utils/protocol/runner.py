"""Plan and run the protocol: the runs that do not depend on the important class first (CE,
normalized softmax, ArcFace: trained once per setting and seed, shared by every important
class), then, once every CE run is recorded, the class-specific runs (CAMRI, WCE, CRWWCE) for
the classes the CE ranking picks. Each run is written as soon as it finishes; a rerun skips
finished runs (and trains again a run whose stored scores are missing, damaged or not its
own); ``shard=(i, n)`` runs every n-th run, so a sweep can be spread over machines;
``workers=n`` trains in n processes on this machine (:mod:`.workers`). Each run is trained
under its lock, so shards, workers and a second process on the same folder never train a run
twice. A run whose loss or scores become non-finite is recorded as diverged (``"diverged":
true`` and ``"diverged_reason"``; its metrics null, no scores stored)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from camri_utils import checks, methods, metrics
from camri_utils.protocol.compact import FULL_METHODS
from camri_utils.protocol.locks import folder_lock
from camri_utils.protocol.selection import rank_classes
# train_config is the spec's (what defines a run); kept importable from here.
from camri_utils.protocol.spec import ROLES, ProtocolError, train_config
from camri_utils.protocol.store import SCHEMA, data_pins, load_records, open_output, run_id, scores_problem, write_record
from camri_utils.protocol.workers import busy_message, execute

__all__ = ["PlannedRun", "plan", "run", "train_config", "important_classes", "train_one", "kept_classes"]

SHARED = ("ce", "normsoftmax", "arcface", "ldam", "logit_adjusted")
CLASS_SPECIFIC = ("camri", "wce", "crwwce")


@dataclass(frozen=True)
class PlannedRun:
    method: str  # the method's label, as records store it
    important_class: int | None
    params: dict
    seed: int
    config: object  # TrainConfig
    run_id: str


def _settings(spec, key, roles=(None,)):
    """The settings of method ``key``; for a class playing ``roles``, those of each role
    (``ProtocolSpec.role_grids``), each setting once."""
    if len(roles) != 1:
        merged = [p for role in roles for p in _settings(spec, key, (role,))]
        return [p for i, p in enumerate(merged) if p not in merged[:i]]
    role = roles[0]
    policy = {"monotonic": spec.monotonic}
    return {"ce": [{}], "normsoftmax": spec.normsoftmax_grid,
            "arcface": [{**p, **policy} for p in spec.arcface_grid],
            "camri": [{**p, **policy} for p in spec.grid("camri_grid", role)],
            "wce": [{"weight": w} for w in spec.grid("wce_weights", role)],
            "crwwce": [{"weight": w} for w in spec.grid("crwwce_weights", role)],
            "ldam": spec.ldam_grid, "logit_adjusted": [{"tau": t} for t in spec.logit_adjusted_taus]}[key]


def important_classes(spec, ce_records):
    """The classes the class-specific runs are for: the spec's fixed ``important_class``, or
    those the CE ranking picks (worst1, worst2, median)."""
    if spec.important_class is not None:
        return [spec.important_class]
    return list(rank_classes(ce_records)[1].values())


def plan(spec, data_kind, classes=None):
    """The runs of one stage: the shared ones (``classes=None``), or the class-specific ones
    for each of ``classes`` (each class once, whatever roles it plays; ``classes`` in the order
    :func:`important_classes` gives them, so that each gets its role's grids)."""
    keys, targets = (SHARED, [None]) if classes is None else (CLASS_SPECIFIC, list(dict.fromkeys(classes)))
    roles = {}
    if classes is not None and spec.role_grids:
        for role, c in zip(ROLES, classes):
            roles.setdefault(c, []).append(role)
    runs = []
    for c in targets:
        for key in keys:
            label = methods.get(key).label
            for params in _settings(spec, key, tuple(roles.get(c, [None]))):
                for seed in spec.seeds:
                    config = train_config(spec, key, c, params, seed)
                    runs.append(PlannedRun(label, c, dict(params), seed, config, run_id(config, label, data_kind)))
    return runs


def train_one(spec, output, planned, ds):
    """Train the planned run ``planned`` of ``spec`` on the dataset ``ds`` and write its record
    and scores into ``output`` (a diverged run: its record only). The caller holds its lock
    (:func:`camri_utils.protocol.workers.execute`)."""
    from camri_utils import angles
    from camri_utils.training import train

    start = time.perf_counter()
    result = train(planned.config, dataset=ds)
    if result.metrics.get("diverged"):
        return _record_diverged(spec, output, planned, ds, result, time.perf_counter() - start)
    # Scores are stored in float16; the record's metrics are computed from exactly what is
    # stored, so they can always be reproduced from it (rounding only decides near-ties).
    stored = {split: s.astype(np.float16) for split, s in result.scores.items()}
    if not all(np.isfinite(s).all() for s in stored.values()):  # beyond float16's range
        result.metrics.update(diverged=True, diverged_reason="the scores overflow float16 (beyond 65504)")
        return _record_diverged(spec, output, planned, ds, result, time.perf_counter() - start)
    test = metrics.split_metrics(result.labels["test"], stored["test"], ds.n_classes)
    record = {
        "schema": SCHEMA, "run_id": planned.run_id, "dataset": spec.dataset, "profile": spec.profile,
        "method": planned.method, "important_class": planned.important_class, "params": planned.params,
        "seed": planned.seed, "config": planned.config.to_dict(), "history": result.history, **test,
        "train_class_counts": result.metrics["train_class_counts"],
        "confusion_matrix": metrics.confusion_matrix(result.labels["test"], stored["test"], ds.n_classes).tolist(),
        "epochs_run": result.metrics["epochs_run"], "wall_time_s": time.perf_counter() - start,
        "environment": result.metrics["environment"], "compute": result.metrics.get("compute"),
        "data_source": {**result.metrics["data_source"], "fingerprint": ds.fingerprint},
        "class_names": list(ds.class_names),
    }
    if "validation" in stored:
        record["validation"] = metrics.split_metrics(result.labels["validation"], stored["validation"],
                                                     ds.n_classes)
    record["split_sizes"] = {split: int(len(labels)) for split, labels in result.labels.items()}
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
    write_record(output, record, arrays, compact_classes=kept_classes(spec, planned))


def kept_classes(spec, planned):
    """The classes whose every score ``planned``'s compact score file keeps (its important
    class, or the spec's fixed one), or None where the run stores its scores in full: in a
    spec with ``score_storage="full"``, and for the runs whose threshold curves the analyses
    draw (:data:`~camri_utils.protocol.compact.FULL_METHODS`), written before the CE ranking
    names the classes those curves are for."""
    if spec.score_storage != "compact" or planned.method in FULL_METHODS:
        return None
    return sorted({planned.important_class, spec.important_class} - {None})


def _finite_or_none(value):
    """``value`` with every non-finite number made None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _record_diverged(spec, output, planned, ds, result, wall):
    """The record of a diverged run: what it did (history, epochs, where it diverged), no
    metrics (an argmax of NaN scores is no prediction) and no scores."""
    record = {
        "schema": SCHEMA, "run_id": planned.run_id, "dataset": spec.dataset, "profile": spec.profile,
        "method": planned.method, "important_class": planned.important_class, "params": planned.params,
        "seed": planned.seed, "config": planned.config.to_dict(), "history": _finite_or_none(result.history),
        "diverged": True, "diverged_reason": result.metrics["diverged_reason"],
        "accuracy": None, "recall": None, "precision": None, "confusion_matrix": None,
        "epochs_run": result.metrics["epochs_run"], "wall_time_s": wall,
        "environment": result.metrics["environment"], "compute": result.metrics.get("compute"),
        "data_source": {**result.metrics["data_source"], "fingerprint": ds.fingerprint},
        "class_names": list(ds.class_names),
    }
    for key in ("train_class_counts",):  # fields other parts of the library add to every record
        if key in result.metrics:
            record[key] = result.metrics[key]
    write_record(output, record)


def usable_records(output):
    """(the records of ``output`` whose stored scores are usable, {run id: problem} of those
    whose scores are missing, damaged or not their own: a resume trains those again)."""
    done, broken = {}, {}
    for r in load_records(output):
        problem = scores_problem(output, r)
        if problem is None:
            done[r["run_id"]] = r
        else:
            broken[r["run_id"]] = problem
    return done, broken


def expected_threads(workers, threads):
    """The ``compute.threads`` the records of this invocation will state: ``threads`` each, or
    TensorFlow's default in workers, or this process's current setting when it trains itself."""
    workers = checks.check_int(workers, "workers", minimum=1)
    if threads is not None:
        threads = checks.check_int(threads, "threads", minimum=1)
        return {"intra_op": threads, "inter_op": threads}
    if workers > 1:
        return {"intra_op": None, "inter_op": None}
    from camri_utils.training import threads as current

    return current()


def run(spec, output, shard=(0, 1), progress=True, dataset=None, workers=1, threads=None):
    """Run (what is left of) the protocol into ``output``. Returns the number of runs trained.
    With several shards, the class-specific stage starts once every CE run is recorded.
    ``workers``: processes that train side by side on this machine, each with ``threads``
    TensorFlow threads (None: TensorFlow's default); see :mod:`.workers`."""
    from camri_utils import data

    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ValueError(f"shard must be i/n with 1 <= i <= n; got {index + 1}/{count}.")
    ds = dataset if dataset is not None else data.load(spec.dataset, **spec.dataset_options)
    if spec.important_class is not None and spec.important_class >= ds.n_classes:
        raise ProtocolError(f"important_class {spec.important_class} is not a class of {spec.dataset} ({ds.n_classes} "
                            f"classes, 0 to {ds.n_classes - 1}); fix the protocol's important_class.")
    with folder_lock(output):
        open_output(spec, output, ds.source.kind, data_pins(ds, expected_threads(workers, threads)))
    trained = 0
    for stage in ("shared", "class-specific"):
        done, broken = usable_records(output)
        for problem in broken.values():
            print(f"training again: {problem}")
        planned = plan(spec, ds.source.kind)
        if stage == "class-specific":
            ce = [done[p.run_id] for p in planned if p.method == "CE" and p.run_id in done]
            if spec.important_class is None and len(ce) < len(spec.seeds):
                print(f"the class-specific runs wait for the CE runs of every shard ({len(ce)}/{len(spec.seeds)} "
                      "recorded); rerun when they are done.")
                break
            ranked = [r for r in ce if not r.get("diverged")]  # a diverged run ranks nothing
            if spec.important_class is None and not ranked and plan(spec, ds.source.kind, [0]):
                raise ProtocolError(f"every CE run in {output} diverged: there is no ranking to pick the "
                                    "important classes from. Change the protocol (e.g. its learning rate).")
            planned = plan(spec, ds.source.kind, important_classes(spec, ranked))
        mine = planned[index::count]
        todo = [p for p in mine if p.run_id not in done]
        ran, busy = execute(spec, output, todo, ds, workers, threads, progress,
                            f"{stage} runs ({len(mine) - len(todo)} of {len(mine)} done)", train_one=train_one)
        trained += len(ran)
        if busy:
            print(busy_message(busy))
    return trained

"""The results store: one JSON record per training run under ``<output>/runs/``, its scored
outputs beside it (``<run id>.npz``), and the protocol's ``protocol.json``.

A run's id (:func:`run_id`, defined with the spec in :mod:`.spec`; the same hash as every stored
run's, :func:`camri_utils.training.run_id`) is derived from what defines it: its training
configuration (as :func:`camri_utils.training.identity` gives it), the method and the kind of
data (real or synthetic); so a new, unrelated field of the protocol's spec changes no id, and a record made
for another important class, configuration or data source is never taken for this one.
Records of schema 1 (made before the validation split) keep the ids they were written with.

One folder, one data set and one thread setting: ``protocol.json`` pins (``data``) the data's
location, its fingerprint (:attr:`camri_utils.data.Dataset.fingerprint`, a SHA-256 of the
arrays) and the TensorFlow threads its runs train with (threads change results in the last
digits); a run on another copy of the data or with other threads is refused before it trains
(:func:`open_output`), and a record that states another fingerprint or thread setting is
refused when read (:func:`load_records`). A folder made before the pins existed gets them on
its next run, once its records' locations and threads agree with that run's.

Nothing is taken on trust: every record, ``protocol.json`` and ``sweep.json`` is validated
when read (:mod:`.schema`), and a run's scores are bound to its record: the record stores the
SHA-256 of its ``.npz`` (``scores_sha256``, :func:`camri_utils.io.sha256`) and its split sizes, and :func:`load_scores`
checks them, and for records written before the digest existed, that the stored scores give
the record's own confusion matrix and validation metrics. Several processes may share a folder:
:mod:`.locks` holds one lock per run while it trains.

A protocol with ``score_storage="compact"`` (many classes) stores the scores of every run but
CE and normalized softmax in the compact layout of :mod:`.compact` (per image: its two best
classes, its own class, the run's important class); :func:`load_scores` reads either layout
and returns the same dense arrays, so no caller needs to know which a file holds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from camri_utils.io import atomic_path, sha256, write_json
from camri_utils.protocol import compact
from camri_utils.protocol.locks import Lock, make_runs_folder
from camri_utils.protocol.schema import (SCHEMA, SCHEMAS, check_pins, check_protocol_file, check_record, check_sweep_file,
                                         remedy)
from camri_utils.protocol.spec import ProtocolError, ProtocolSpec, run_id, train_config
# Imported from below and kept importable from here: the run id is the spec's, the folder lookup
# the library's (camri_utils.records), the folder's creation comes with its locks.
from camri_utils.records import results_folder

__all__ = ["ProtocolError", "SCHEMA", "run_id", "load_records", "write_record", "load_scores", "scores_problem",
           "read_spec", "read_pins", "data_pins", "settle_pins", "read_sweep", "open_output", "rerun", "add_digests", "results_folder", "make_runs_folder"]


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path} is not valid JSON ({exc}): it is not {what}. Restore it (git checkout, or "
                            "your copy) or use a fresh output folder.") from exc


def read_spec(output):
    """(spec, data kind or None for schema 1) of the protocol folder ``output``, validated:
    every field of the spec is checked as the runs it plans would check it."""
    path = Path(output) / "protocol.json"
    if not path.exists():
        raise ProtocolError(f"{output} has no protocol.json: not a protocol results folder.")
    values, data_kind = check_protocol_file(_read_json(path, "a protocol description"), path)
    try:
        spec = ProtocolSpec.from_dict(values)
        for seed in spec.seeds:  # every field a run's config is made of, checked as TrainConfig checks it
            train_config(spec, "ce", None, {}, seed)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"{path} is not a valid protocol description ({exc}). Restore it (git checkout, or your "
                            "copy) or use a fresh output folder.") from exc
    return spec, data_kind


def read_pins(output):
    """The data and threads ``output``'s ``protocol.json`` (or a sweep's ``sweep.json``) pins
    (see :func:`data_pins`), or None (a folder made before pins, or without either file)."""
    for name, check in (("protocol.json", check_protocol_file), ("sweep.json", check_sweep_file)):
        path = Path(output) / name
        if path.exists():
            stored = _read_json(path, "a protocol description" if name == "protocol.json" else "a sweep description")
            check(stored, path)
            # (checked: an object; a protocol.json of schema 1 is a bare spec, made before pins)
            return stored.get("data") if name == "sweep.json" or "spec" in stored else None
    return None


def data_pins(ds, threads):
    """What a folder pins for runs on the dataset ``ds`` with ``threads``, the
    ``compute.threads`` its records will state (``{"intra_op": n or None, "inter_op": ...}``)."""
    return {"location": ds.source.location, "fingerprint": ds.fingerprint, "threads": dict(threads)}


def _threads_text(threads):
    if threads is None:
        return "unstated threads"
    if threads["intra_op"] is None and threads["inter_op"] is None:
        return "TensorFlow's default threads"
    return f"{threads['intra_op']} intra-op and {threads['inter_op']} inter-op threads"


def _data_text(pins):
    return f"{pins['location']} (fingerprint {pins['fingerprint'][:12]})"


def pin_problem(pins, record, like="the folder's runs"):
    """Why ``record`` does not belong with runs pinned to ``pins`` (``like`` names those runs
    in the text), or None. A record made before fingerprints existed is compared by its data's
    location."""
    source = record.get("data_source") or {}
    if "fingerprint" in source:
        if source["fingerprint"] != pins["fingerprint"]:
            return (f"its field data_source.fingerprint says it was trained on {source.get('location')} (fingerprint "
                    f"{source['fingerprint'][:12]}), not on {_data_text(pins)} like {like}")
    elif source.get("location") != pins["location"]:
        return (f"its field data_source.location says it was trained on {source.get('location')}, not on "
                f"{_data_text(pins)} like {like}")
    threads = (record.get("compute") or {}).get("threads")
    if threads is not None and threads != pins["threads"]:
        return (f"its field compute.threads says it was trained with {_threads_text(threads)}, not with "
                f"{_threads_text(pins['threads'])} like {like}")
    return None


def read_sweep(output):
    """(the stored sweep as a dict, data kind) of a sensitivity sweep's folder, validated;
    None when the folder has no ``sweep.json`` yet."""
    path = Path(output) / "sweep.json"
    if not path.exists():
        return None
    return check_sweep_file(_read_json(path, "a sweep description"), path)


def check_sweep_folder(output, sweep, data_kind=None):
    """Refuse a sweep folder that holds another sweep (``sweep``: the sweep's ``to_dict()``) or
    runs on other data than ``data_kind`` (None: any)."""
    stored = read_sweep(output)
    if stored is None:
        raise ProtocolError(f"{output} has no sweep.json: not a sensitivity sweep's folder (run `camri sensitivity` "
                            "to make one).")
    previous, kind = stored
    if data_kind is not None and kind != data_kind:
        raise ProtocolError(f"{output} holds runs on {kind} data, but this data is {data_kind}; use another output "
                            "folder.")
    if previous != json.loads(json.dumps(sweep)):
        raise ProtocolError(f"{Path(output) / 'sweep.json'} describes another sweep; use a fresh output folder (or "
                            "the folder of this sweep).")


GRIDS = ("camri_grid", "arcface_grid", "normsoftmax_grid", "wce_weights", "crwwce_weights", "ldam_grid",
         "logit_adjusted_taus", "posthoc_taus")


def extends(new, old):
    """Whether the spec ``new`` (a JSON-ready dict) only adds grid cells to ``old``: every
    field equal but the grids (each a superset of the old one) and the note that describes
    them. Such a spec may resume ``old``'s folder: no recorded run changes meaning."""
    if set(new) != set(old):
        return False
    for key in new:
        if key in GRIDS:
            if not isinstance(new[key], list) or any(v not in new[key] for v in old[key]):
                return False
        elif key != "note" and new[key] != old[key]:
            return False
    return True


def open_output(spec, output, data_kind, pins=None):
    """Create ``output`` for ``spec`` or check that it holds this very protocol on the same
    kind of data; an unwritable folder or another protocol is a :class:`ProtocolError`. A
    spec that only extends the stored one's grids (:func:`extends`) replaces it. ``pins``
    (:func:`data_pins`): the data and threads of the runs about to train; a folder pinned to
    others is refused, naming both; a folder without pins gets these (once its records agree).
    The caller holds the folder's lock."""
    output = make_runs_folder(output)
    path = output / "protocol.json"
    stored_pins = None
    if path.exists():
        stored, source = read_spec(output)
        old, new = (json.loads(json.dumps(s.to_dict())) for s in (stored, spec))
        if old != new and not extends(new, old):
            raise ProtocolError(f"{path} describes another protocol; use a fresh output folder.")
        if source is None:
            raise ProtocolError(f"{output} holds records made before the validation split (schema 1); they can be "
                                "reported but not resumed. Use a fresh output folder.")
        if source != data_kind:
            raise ProtocolError(f"{output} holds runs on {source} data, but this data is {data_kind}; a table must "
                                "not mix them. Use another output folder for this data.")
        stored_pins = read_pins(output)
        settle_pins(output, path, stored_pins, pins)
        if old == new and (stored_pins is not None or pins is None):
            return
    kept = stored_pins if stored_pins is not None else pins
    write_json(path, {"spec": spec.to_dict(), "data_source": data_kind, **({"data": kept} if kept else {})},
               indent=1)


def settle_pins(output, path, stored, pins):
    """Check the runs about to train (``pins``; None: nothing to check) against the folder's
    file ``path`` pinning ``stored`` (None: a folder made before pins, whose records must then
    agree with ``pins`` before it gets them)."""
    if pins is None:
        return
    if stored is not None:
        _refuse_other_pins(path, stored, pins)
        return
    for record in load_records(output):
        problem = pin_problem(pins, record, like="this run")
        if problem:
            raise ProtocolError(f"{Path(output) / 'runs' / (record['run_id'] + '.json')} does not belong with this "
                                f"run: {problem}. A table must not mix them: use another output folder, or run with "
                                "the folder's data and threads.")


def _refuse_other_pins(path, stored, pins):
    if stored["fingerprint"] != pins["fingerprint"]:
        raise ProtocolError(f"{path} holds runs on {_data_text(stored)}, but this data is {_data_text(pins)}: another "
                            "copy or version of the data, and a table must not mix them. Use another output folder "
                            "for this data, or run on the folder's.")
    if stored["threads"] != pins["threads"]:
        raise ProtocolError(f"{path} holds runs trained with {_threads_text(stored['threads'])}, but this run would "
                            f"train with {_threads_text(pins['threads'])} (threads change results in the last "
                            "digits). Resume with the folder's setting (--threads-per-worker), or use another "
                            "output folder.")


def folder_kind(output):
    """The kind of data a schema-2 folder's runs are on (from its ``protocol.json`` or
    ``sweep.json``), or None (schema 1, or a folder without either)."""
    if (Path(output) / "protocol.json").exists():
        return read_spec(output)[1]
    stored = read_sweep(output)
    return None if stored is None else stored[1]


def read_record(path, kind=None):
    """The record in ``path``, validated (:func:`~camri_utils.protocol.schema.check_record`)."""
    try:
        record = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path} is not valid JSON ({exc}). {remedy(Path(path))}") from exc
    return check_record(record, Path(path), kind)


def load_records(output):
    """Every record under ``<output>/runs``, validated against the schema and, in a folder
    that names its data, against the folder; a foreign, corrupt or edited file is an error."""
    folder = Path(output) / "runs"
    records = []
    if not folder.exists():
        return records
    kind = folder_kind(output)
    pins = read_pins(output)
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix == ".npz":
            continue  # an atomic write in progress (or one killed: never a record), or scores
        if path.suffix != ".json":
            raise ProtocolError(f"{path} is not a protocol record (only <run id>.json files belong in {folder}).")
        record = read_record(path, kind)
        problem = pins and pin_problem(pins, record)
        if problem:
            raise ProtocolError(f"{path} does not belong in this folder: {problem} (protocol.json pins them). A table "
                                f"must not mix them: move it (with its .npz) to its own folder, or delete both and "
                                "resume to train that run again here.")
        records.append(record)
    return records


def write_record(output, record, scores=None, compact_classes=None):
    """Write the scores (first: a record never points to missing scores) and then the record,
    each atomically; the record gets the scores' SHA-256 (``scores_sha256``), which binds them
    to it. ``scores``: {name: array}, stored compressed; in the compact layout
    (:func:`.compact.compact`) keeping the scores of ``compact_classes`` for every image, when
    that is not None."""
    runs = Path(output) / "runs"
    record = dict(record)
    if scores is not None:
        if compact_classes is not None:
            scores = compact.compact(scores, compact_classes)
        with atomic_path(runs / f"{record['run_id']}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **scores)
            record["scores_sha256"] = sha256(tmp)
    write_json(runs / f"{record['run_id']}.json", record)
    return record


def load_scores(output, record):
    """The stored outputs of ``record``'s run as arrays (scores as float32): ``test``,
    ``y_test`` and ``class_weights`` for every run; ``validation`` and ``y_validation`` for the
    runs shared by all important classes (CE, normalized softmax, ArcFace).

    A compact file (:mod:`.compact`) is returned in the same form: each score array a dense
    :class:`~camri_utils.protocol.compact.PartialScores`, exact in every prediction, every
    image's own-class and two best scores and the stored classes' scores (the only classes
    whose threshold curve it gives), a stand-in below them elsewhere.

    The file must be the record's own: its SHA-256 must be the record's ``scores_sha256``
    (when the record has one), its arrays the shapes and sizes the record says, its scores
    finite, and its test scores must give the record's confusion matrix (and its validation
    scores the record's validation metrics), whether or not the record has a digest. Anything else
    (a missing, damaged, swapped or stale file) is a :class:`ProtocolError` naming both files
    and how to recover; a resume trains such a run again."""
    path = Path(output) / "runs" / f"{record['run_id']}.npz"
    where = f"{path} (the scores of the record {path.with_suffix('.json').name})"
    if record.get("diverged"):
        raise ProtocolError(f"{path.with_suffix('.json')} records a diverged run: it has no scores.")
    if not path.exists():
        if record.get("schema") != SCHEMA:
            raise ProtocolError(f"{path} is missing: records of schema 1 (made before the validation split) have "
                                "no stored scores.")
        raise ProtocolError(f"{where} is missing. {remedy(path)}")
    digest = record.get("scores_sha256")
    if digest is not None and sha256(path) != digest:
        raise ProtocolError(f"{where} is not the file written with {path.with_suffix('.json')} (its SHA-256 differs "
                            f"from the record's scores_sha256): a stale, swapped or conflicting copy. {remedy(path)}")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {k: stored[k].astype("float32") if stored[k].dtype == np.float16 else stored[k]
                      for k in stored.files}
    except Exception as exc:  # a damaged zip raises BadZipFile, EOFError, ValueError, OSError, zlib.error, ...
        raise ProtocolError(f"{where} cannot be read ({type(exc).__name__}: {exc}). {remedy(path)}") from exc
    if compact.is_compact(arrays):
        arrays, problem = compact.expand(arrays, len(record["recall"]), _splits(record))
        problem = problem or _compact_mismatch(record, arrays)
        if problem:
            raise ProtocolError(f"{where} is not a valid compact score file for {path.with_suffix('.json').name}: "
                                f"{problem}. {remedy(path)}")
    # The metrics are recomputed from the scores even when the digest matches: the digest binds
    # the file to the record, not the record's numbers to the file (an edited accuracy keeps it).
    problem = _scores_mismatch(record, arrays, check_content=True)
    if problem:
        raise ProtocolError(f"{where} does not belong to {path.with_suffix('.json')}: {problem}. {remedy(path)}")
    return arrays


def _splits(record):
    """The score arrays ``record``'s file must hold: test, and validation for a shared run."""
    shared = record.get("important_class") is None and "validation" in record and "source_run" not in record
    return ["test"] + (["validation"] if shared else [])


def _compact_mismatch(record, arrays):
    """What is wrong with compact scores (expanded) as ``record``'s, or None: a run whose curves
    the analyses draw must store every class, a class-specific run its important class."""
    if record["method"] in compact.FULL_METHODS:
        return (f"a {record['method']} run's scores must be stored in full (its threshold curves, and CE's post-hoc "
                "logit adjustment, read every class's score)")
    c = record.get("important_class")
    if c is not None and c not in arrays["test"].stored_classes:
        return (f"it stores the scores of classes {list(arrays['test'].stored_classes)} for every image, not the "
                f"run's important class {c}")
    return None


def _scores_mismatch(record, arrays, check_content):
    """What is wrong with ``arrays`` as ``record``'s stored scores, or None."""
    from camri_utils import metrics

    n = len(record["recall"])
    for split in _splits(record):
        for key in (split, f"y_{split}"):
            if key not in arrays:
                return f"it has no {key!r} array"
        scores, labels = arrays[split], arrays[f"y_{split}"]
        if scores.ndim != 2 or scores.shape[1] != n or labels.shape != (len(scores),):
            return (f"its {split} scores have shape {scores.shape} and labels {labels.shape}, not (N, {n}) and (N,) "
                    f"for the record's {n} classes")
        if not np.isfinite(scores).all():
            return f"its {split} scores hold non-finite values (NaN or inf)"
        if labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0 or labels.max() >= n)):
            return f"its {split} labels are not class indices 0..{n - 1}"
        size = (record.get("split_sizes") or {}).get(split)
        if split == "test" and size is None and "confusion_matrix" in record:
            size = int(np.sum(record["confusion_matrix"]))
        if size is not None and len(labels) != size:
            return f"it holds {len(labels)} {split} images, but the record's metrics count {size}"
        if check_content:
            if split == "test" and "confusion_matrix" in record:
                if metrics.confusion_matrix(labels, scores, n).tolist() != record["confusion_matrix"]:
                    return "its test scores do not give the record's confusion matrix"
            elif split == "validation":
                again = metrics.split_metrics(labels, scores, n)
                if not np.allclose([again["accuracy"], *again["recall"], *again["precision"]],
                                   [record["validation"]["accuracy"], *record["validation"]["recall"],
                                    *record["validation"]["precision"]], atol=1e-9):
                    return "its validation scores do not give the record's validation metrics"
    if "class_weights" in arrays and (arrays["class_weights"].ndim != 2 or arrays["class_weights"].shape[1] != n):
        return f"its class weights have shape {arrays['class_weights'].shape}, not (D, {n})"
    return None


def scores_problem(output, record):
    """Why ``record``'s stored scores cannot be used (the message of :func:`load_scores`), or
    None when they can, or when the run has none to check (schema 1, diverged)."""
    if record.get("schema") != SCHEMA or record.get("diverged"):
        return None
    try:
        load_scores(output, record)
    except ProtocolError as exc:
        return str(exc)
    return None


_RUN_ID = re.compile(r"[0-9a-f]{20}")


def rerun(output, run_ids):
    """Remove the records and scores of ``run_ids`` from ``output`` (each under its run's
    lock), so that the next run trains them again. An id that is not a run id is an error; one
    without a record is simply absent. Returns the ids removed."""
    removed = []
    for rid in run_ids:
        if not isinstance(rid, str) or not _RUN_ID.fullmatch(rid):
            raise ProtocolError(f"--rerun takes run ids (20 hex digits, the record's file name without .json); got "
                                f"{rid!r}.")
        files = [Path(output) / "runs" / f"{rid}{suffix}" for suffix in (".json", ".npz")]
        if not any(f.exists() for f in files):
            continue
        with Lock(output, rid):  # never under a process that is training it
            for f in files:
                f.unlink(missing_ok=True)
        removed.append(rid)
    return removed


def add_digests(output):
    """Give every schema-2 record of ``output`` that has stored scores but no ``scores_sha256``
    (records written before it existed) the digest of its ``.npz`` and its test (and stored
    validation) size, once the scores are checked to give the record's own metrics; nothing
    else in the record changes. Returns the run ids updated."""
    kind = folder_kind(output)
    updated = []
    for record in load_records(output):
        if record.get("schema") != SCHEMA or record.get("diverged") or record.get("scores_sha256"):
            continue
        path = Path(output) / "runs" / f"{record['run_id']}.npz"
        if not path.exists():
            continue
        with Lock(output, record["run_id"]):
            arrays = load_scores(output, record)  # the content check: the scores are this record's
            sizes = {split: int(len(arrays[f"y_{split}"])) for split in ("test", "validation") if f"y_{split}" in arrays}
            updated_record = {**record, "scores_sha256": sha256(path),
                              "split_sizes": {**sizes, **record.get("split_sizes", {})}}
            check_record(updated_record, path.with_suffix(".json"), kind)
            write_json(path.with_suffix(".json"), updated_record)
        updated.append(record["run_id"])
    return updated

"""The results store: one JSON record per training run under ``<output>/runs/``, its scored
outputs beside it (``<run id>.npz``), and the protocol's ``protocol.json``.

A run's id is derived from what defines it: its training configuration (as
:func:`camri_utils.training.identity` gives it), the method and the kind of data (real or
synthetic); so a new, unrelated field of the protocol's spec changes no id, and a record made
for another important class, configuration or data source is never taken for this one.
Records of schema 1 (made before the validation split) keep the ids they were written with.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from camri_utils.io import atomic_path, write_json
from camri_utils.protocol.spec import ProtocolError, ProtocolSpec

__all__ = ["ProtocolError", "SCHEMA", "run_id", "load_records", "write_record", "load_scores", "read_spec",
           "open_output", "results_folder"]

SCHEMA = "camri-protocol-record/2"
SCHEMAS = ("camri-protocol-record/1", SCHEMA)
_REQUIRED = {"method", "seed", "accuracy", "recall", "precision"}


def run_id(config, method, data_kind):
    """The id of a run: a hash of its configuration's identity, method label and data kind."""
    from camri_utils.training import identity

    key = json.dumps({"config": identity(config), "method": method, "data": data_kind}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def read_spec(output):
    path = Path(output) / "protocol.json"
    if not path.exists():
        raise ProtocolError(f"{output} has no protocol.json: not a protocol results folder.")
    try:
        stored = json.loads(path.read_text())
        spec = ProtocolSpec.from_dict(stored["spec"] if "spec" in stored else stored)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"{path} is not a protocol description ({exc}).") from exc
    return spec, stored.get("data_source")


def make_runs_folder(output):
    """Create ``<output>/runs`` (a protocol's or a sweep's); an unwritable place is a
    :class:`ProtocolError` that says what to do. Returns ``output`` as a Path."""
    output = Path(output)
    try:
        (output / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProtocolError(f"cannot create the results folder {output} ({exc.strerror}); pass a writable "
                            "--output.") from exc
    if not os.access(output / "runs", os.W_OK):
        raise ProtocolError(f"the results folder {output} is not writable; pass a writable --output.")
    return output


GRIDS = ("camri_grid", "arcface_grid", "normsoftmax_grid", "wce_weights", "crwwce_weights")


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


def open_output(spec, output, data_kind):
    """Create ``output`` for ``spec`` or check that it holds this very protocol on the same
    kind of data; an unwritable folder or another protocol is a :class:`ProtocolError`. A
    spec that only extends the stored one's grids (:func:`extends`) replaces it."""
    output = make_runs_folder(output)
    path = output / "protocol.json"
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
        if old != new:  # the grids were extended: every recorded run stays valid, the new cells train
            write_json(path, {"spec": spec.to_dict(), "data_source": data_kind}, indent=1)
    else:
        write_json(path, {"spec": spec.to_dict(), "data_source": data_kind}, indent=1)


def _check_record(path, record, folder):
    if not isinstance(record, dict) or record.get("schema") not in SCHEMAS or record.get("run_id") != path.stem:
        raise ProtocolError(f"{path} is not a record of this protocol (schema {SCHEMA!r}, run id = file name).")
    missing = _REQUIRED - set(record)
    if missing:
        raise ProtocolError(f"{path} lacks {sorted(missing)}; delete it and rerun to redo that run.")
    n = len(record["recall"]) if isinstance(record["recall"], list) else -1
    if n < 2 or not isinstance(record["precision"], list) or len(record["precision"]) != n:
        raise ProtocolError(f"{path} has malformed per-class recall/precision; delete it and rerun that run.")
    c = record.get("important_class")
    if c is not None and not (isinstance(c, int) and 0 <= c < n):
        raise ProtocolError(f"{path} names important class {c!r}, outside [0, {n}); delete it and rerun that run.")


def load_records(output):
    """Every record under ``<output>/runs``, checked; a foreign or corrupt file is an error."""
    folder = Path(output) / "runs"
    records = []
    if not folder.exists():
        return records
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix == ".npz":
            continue  # an atomic write in progress (or one killed: never a record), or scores
        if path.suffix != ".json":
            raise ProtocolError(f"{path} is not a protocol record (only <run id>.json files belong in {folder}).")
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{path} is not valid JSON ({exc}); delete it and rerun to redo that run.") from exc
        _check_record(path, record, folder)
        records.append(record)
    return records


def write_record(output, record, scores=None):
    """Write the scores (first: a record never points to missing scores) and then the record,
    each atomically. ``scores``: {name: array}, stored compressed."""
    runs = Path(output) / "runs"
    if scores is not None:
        with atomic_path(runs / f"{record['run_id']}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **scores)
    write_json(runs / f"{record['run_id']}.json", record)


def load_scores(output, record):
    """The stored outputs of ``record``'s run as arrays (scores as float32): ``test``,
    ``y_test`` and ``class_weights`` for every run; ``validation`` and ``y_validation`` for the
    runs shared by all important classes (CE, normalized softmax, ArcFace)."""
    path = Path(output) / "runs" / f"{record['run_id']}.npz"
    if not path.exists():
        raise ProtocolError(f"{path} is missing: the run's scores were not stored (records of schema 1 have none).")
    with np.load(path, allow_pickle=False) as stored:
        return {k: stored[k].astype("float32") if stored[k].dtype == np.float16 else stored[k] for k in stored.files}


def results_folder(path="results/fashion_mnist", marker="protocol.json"):
    """Find a results folder: ``path`` as given (absolute, or relative to the working
    directory), then its last part inside ``$CAMRI_RESULTS_DIR``, then ``path`` inside the
    repository this library was installed from (an editable install, as ``make`` does). A folder
    without ``marker`` (``protocol.json``; a sensitivity sweep's is ``sweep.json``) is not one."""
    import camri_utils

    path = Path(path)
    candidates = [path]
    if os.environ.get("CAMRI_RESULTS_DIR"):
        candidates.append(Path(os.environ["CAMRI_RESULTS_DIR"]) / path.name)
    if not path.is_absolute():
        candidates.append(Path(camri_utils.__file__).resolve().parents[1] / path)
    for folder in candidates:
        if (folder / marker).is_file():
            return folder
    raise FileNotFoundError(
        f"no protocol results folder {str(path)!r} (looked in: {', '.join(str(c) for c in candidates)}). "
        "The committed results are in the book's repository: clone it (git clone --depth 1 "
        "https://github.com/camri-book/camri-book) and pass the path of its results folder, set "
        "CAMRI_RESULTS_DIR to the folder that holds it, or produce your own with `camri protocol`.")

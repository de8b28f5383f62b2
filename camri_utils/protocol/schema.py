"""What a results folder's files must hold, checked when they are read: a run's record (and
its ``validation`` block), ``protocol.json`` and ``sweep.json``.

Every field is checked for its type and shape (a number where a number belongs, one recall per
class, a confusion matrix of the classes' size that agrees with the metrics beside it), so
that a damaged, hand-edited or foreign file is an error that names the file, the field and
what to do, instead of a raw ``TypeError`` later, or a table quietly made of something else.
In a folder whose ``protocol.json`` or ``sweep.json`` names its data (schema 2), each record is
also checked against the folder: its run id must be the hash of its own config, method and
the folder's kind of data, and it has a validation block exactly when its config has a
validation split. Hand-made records in a folder without that (as some tests write) are
checked field by field only.

Fields a record may hold besides the metrics: ``diverged`` (True when the loss or the scores
became non-finite; then ``diverged_reason`` says where, and the metrics are null: nothing is
computed from NaN), ``scores_sha256`` (the SHA-256 of the run's ``.npz``) and ``split_sizes``
(``{"test": n, "validation": m}``, the images each split's metrics count) and
``train_class_counts`` (the training images of each class a run was trained on: the prior of
post-hoc logit adjustment). Records written before these existed lack them and stay valid.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from camri_utils.protocol.spec import ROLES, ProtocolError, run_id

__all__ = ["SCHEMA", "SCHEMAS", "KINDS", "remedy", "check_record", "check_protocol_file", "check_pins",
           "check_sweep_file"]

SCHEMA = "camri-protocol-record/2"
SCHEMAS = ("camri-protocol-record/1", SCHEMA)
KINDS = ("real", "synthetic fixture")  # what Source.kind can be: a folder's data_source
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Every field a stored record may hold (what the runner writes, and schema 1's role): any other
# is refused, so that a field the report reads from derived records (source_run) or an edit
# cannot slip in.
FIELDS = {"schema", "run_id", "dataset", "profile", "method", "important_class", "params", "seed", "config",
          "history", "accuracy", "recall", "precision", "train_class_counts", "confusion_matrix", "epochs_run",
          "wall_time_s", "environment", "compute", "data_source", "class_names", "validation", "split_sizes",
          "angles_per_epoch", "scores_sha256", "diverged", "diverged_reason", "role"}


def remedy(path):
    """What to do about a bad record or score file of ``path``'s run."""
    run = path.stem
    return (f"To train that run again: delete {run}.json and {run}.npz in {path.parent} and resume (the same "
            f"`camri protocol` or `camri sensitivity` command), or pass --rerun {run} to it.")


class _Bad(Exception):
    """One field's problem, turned into a ProtocolError naming the file by :func:`check_record`."""


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _show(v):
    text = repr(v)
    return f"{text[:60]}..." if len(text) > 60 else f"{text} (a {type(v).__name__})"


def _fraction(v, field):
    if not (_is_number(v) and math.isfinite(v) and 0 <= v <= 1):
        raise _Bad(f"field {field!r} must be a number in [0, 1]; got {_show(v)}")


def _per_class(v, field, n):
    if not isinstance(v, list) or len(v) != n:
        got = f"{len(v)} values" if isinstance(v, list) else _show(v)
        raise _Bad(f"has malformed per-class recall/precision: field {field!r} must be a list of {n} numbers in "
                   f"[0, 1], one per class; got {got}")
    for i, x in enumerate(v):
        if not (_is_number(x) and math.isfinite(x) and 0 <= x <= 1):
            raise _Bad(f"has malformed per-class recall/precision: {field}[{i}] must be a number in [0, 1]; "
                       f"got {_show(x)}")


def _metrics(block, where, n):
    """A split's metrics: accuracy and per-class recall and precision."""
    if not isinstance(block, dict):
        raise _Bad(f"field {where!r} must be an object with accuracy, recall and precision; got {_show(block)}")
    missing = sorted({"accuracy", "recall", "precision"} - set(block))
    if missing:
        raise _Bad(f"field {where!r} lacks {missing}")
    _per_class(block["recall"], f"{where}.recall" if where != "record" else "recall", n)
    _per_class(block["precision"], f"{where}.precision" if where != "record" else "precision", n)
    _fraction(block["accuracy"], f"{where}.accuracy" if where != "record" else "accuracy")


def _confusion(record, n):
    cm = record["confusion_matrix"]
    if not (isinstance(cm, list) and len(cm) == n and all(isinstance(row, list) and len(row) == n for row in cm)
            and all(_is_int(x) and x >= 0 for row in cm for x in row)):
        raise _Bad(f"field 'confusion_matrix' must be {n} lists of {n} counts (integers >= 0)")
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    if total <= 0:
        raise _Bad("field 'confusion_matrix' counts no image")
    sizes = record.get("split_sizes")
    if isinstance(sizes, dict) and "test" in sizes and sizes["test"] != total:
        raise _Bad(f"field 'confusion_matrix' counts {int(total)} test images but split_sizes.test is {sizes['test']}")
    # The metrics beside it must be the confusion matrix's own (a hand-edited accuracy is not).
    diag = np.diag(cm)
    rows, cols = cm.sum(axis=1), cm.sum(axis=0)
    derived = {"accuracy": [diag.sum() / total],
               "recall": np.divide(diag, rows, out=np.zeros(n), where=rows > 0),
               "precision": np.divide(diag, cols, out=np.zeros(n), where=cols > 0)}
    for name, values in derived.items():
        stored = np.atleast_1d(np.asarray(record[name], dtype=np.float64))
        if not np.allclose(stored, values, rtol=0, atol=1e-9):
            raise _Bad(f"field {name!r} does not agree with the record's confusion matrix (the record was edited "
                       "or damaged)")


def _optional(record, name, ok, what):
    if name in record and not ok(record[name]):
        raise _Bad(f"field {name!r} must be {what}; got {_show(record[name])}")


def _fields(record, path, folder_kind, n_hint=None):
    if not isinstance(record, dict) or record.get("schema") not in SCHEMAS or record.get("run_id") != path.stem:
        raise ProtocolError(f"{path} is not a record of this protocol (schema {SCHEMA!r}, run id = file name). "
                            f"{remedy(path)}")
    schema2 = record["schema"] == SCHEMA
    unknown = sorted(set(record) - FIELDS)
    if unknown:
        raise _Bad(f"has fields a record does not have, {unknown} (an edited record, or one of another program)")
    required = {"method", "seed", "params", "accuracy", "recall", "precision", "data_source", "environment"}
    if folder_kind is not None:  # a record the protocol or sweep runner wrote
        required |= {"config", "class_names", "history", "confusion_matrix", "important_class"}
    missing = sorted(required - set(record))
    if missing:
        raise _Bad(f"lacks {missing}")
    from camri_utils import methods

    if not isinstance(record["method"], str):
        raise _Bad(f"field 'method' must be a method's label; got {_show(record['method'])}")
    try:
        method = methods.by_label(record["method"])
    except ValueError as exc:
        raise _Bad(f"field 'method': {exc}") from None
    if not _is_int(record["seed"]) or record["seed"] < 0:
        raise _Bad(f"field 'seed' must be an integer >= 0; got {_show(record['seed'])}")
    _optional(record, "params", lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "an object")
    source = record["data_source"]
    if not (isinstance(source, dict) and source.get("kind") in KINDS and isinstance(source.get("location"), str)):
        raise _Bad(f"field 'data_source' must be {{'kind': one of {list(KINDS)}, 'location': text}}; got {_show(source)}")
    if "fingerprint" in source and not (isinstance(source["fingerprint"], str) and _HEX64.fullmatch(source["fingerprint"])):
        raise _Bad(f"field 'data_source.fingerprint' must be the data's SHA-256 (64 hex digits); got "
                   f"{_show(source['fingerprint'])}")
    if folder_kind is not None and source["kind"] != folder_kind:
        raise _Bad(f"was made on {source['kind']} data, but its folder holds runs on {folder_kind} data")
    env = record["environment"]
    if not (isinstance(env, dict) and isinstance(env.get("camri_utils"), str)):
        raise _Bad(f"field 'environment' must be an object naming the camri_utils version; got {_show(env)}")
    diverged = record.get("diverged", False)
    if not isinstance(diverged, bool):
        raise _Bad(f"field 'diverged' must be true or false; got {_show(diverged)}")
    _optional(record, "split_sizes", lambda v: isinstance(v, dict) and "test" in v and set(v) <= {"test", "validation"}
              and all(_is_int(x) and x >= 1 for x in v.values()), "{'test': n[, 'validation': m]} with counts >= 1")
    _optional(record, "class_names", lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(x, str) for x in v),
              "a list of the class names")
    n = len(record["class_names"]) if "class_names" in record else n_hint
    if diverged:
        if not isinstance(record.get("diverged_reason"), str):
            raise _Bad("is marked diverged but field 'diverged_reason' (text) is missing")
        for name in ("accuracy", "recall", "precision", "confusion_matrix", "validation", "scores_sha256"):
            if record.get(name) is not None:
                raise _Bad(f"is marked diverged, so field {name!r} must be null: nothing is computed from NaN")
    else:
        if n is None:
            n = len(record["recall"]) if isinstance(record["recall"], list) else -1
            if n < 2:
                raise _Bad(f"has malformed per-class recall/precision: field 'recall' must be a list of one number "
                           f"per class (at least 2); got {_show(record['recall'])}")
        _metrics(record, "record", n)
        if "confusion_matrix" in record:
            _confusion(record, n)
        if "validation" in record:
            if record["validation"] is None:
                raise _Bad("field 'validation' is null: a record has validation metrics (an object) or none at all")
            _metrics(record["validation"], "validation", n)
        if not schema2 and "validation" in record:
            raise _Bad("is of schema 1 (made before the validation split) but holds validation metrics")
        _optional(record, "scores_sha256", lambda v: v is None or (isinstance(v, str) and _HEX64.fullmatch(v)),
                  "the SHA-256 of the run's .npz (64 hex digits)")
    _optional(record, "train_class_counts", lambda v: isinstance(v, list) and (n is None or len(v) == n)
              and all(_is_int(x) and x >= 0 for x in v) and sum(v) > 0,
              f"a list of {n or 'the classes'} training image counts (integers >= 0, one per class)")
    c = record.get("important_class")
    if c is not None and not (_is_int(c) and 0 <= c < (n or math.inf)):
        raise _Bad(f"names important class {c!r}, outside [0, {n}) (class indices start at 0)")
    if folder_kind is not None and method.class_specific != (c is not None):
        raise _Bad(f"field 'important_class' is {c!r}, but {method.label} runs are "
                   f"{'for one important class' if method.class_specific else 'shared by every class (null)'}")
    if not schema2 and record.get("role") not in (None, *ROLES):  # CE's role is null: it serves all three
        raise _Bad(f"field 'role' must be null or one of {list(ROLES)}; got {_show(record['role'])}")
    _optional(record, "history", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, list) and all(e is None or _is_number(e) for e in x) for k, x in v.items()),
              "an object of per-epoch lists of numbers")
    _optional(record, "epochs_run", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _optional(record, "wall_time_s", lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0")
    _optional(record, "compute", lambda v: v is None or isinstance(v, dict), "an object (or null)")
    _optional(record, "angles_per_epoch", lambda v: isinstance(v, dict), "an object of per-epoch lists")
    for name in ("dataset", "profile", "diverged_reason"):
        _optional(record, name, lambda v: isinstance(v, str), "text")
    _optional(record, "config", lambda v: isinstance(v, dict), "an object (the run's TrainConfig)")
    return record


def _against_folder(record, folder_kind):
    """A schema-2 folder's record vouches for itself: its id is the hash of its own config,
    method and the folder's kind of data, and every field that restates the config (method,
    seed, important class, params) says what the config says; it holds validation metrics
    exactly when its config has a split."""
    from camri_utils import methods, training
    from camri_utils.protocol.spec import DRW_PARAMS, drw_option

    config = record["config"]
    unknown = sorted(set(config) - set(training.TrainConfig.__dataclass_fields__))
    if unknown:
        raise _Bad(f"field 'config' has fields this camri_utils does not know, {unknown} (made by another version?)")
    if run_id(config, record["method"], folder_kind) != record["run_id"]:
        raise _Bad("is not the run its file name says: its run id is not the hash of its config, method and data "
                   "(the record was edited, or copied from another folder)")
    # The fields beside the config restate it: each must say what the config says.
    important = config.get("important_classes") or []
    params = record.get("params") if isinstance(record.get("params"), dict) else {}
    try:
        drw = drw_option(params, config.get("epochs"))
    except (TypeError, ValueError) as exc:
        raise _Bad(f"field 'params' holds a deferred re-weighting its config cannot have ({exc})") from None
    stated = {"method": (record["method"], methods.get(config.get("loss", "ce")).label),
              "seed": (record["seed"], config.get("seed")),
              "important_class": (record.get("important_class"), important[0] if len(important) == 1 else None),
              "params": ({k: v for k, v in params.items() if k not in DRW_PARAMS}, config.get("loss_params") or {}),
              "params (deferred re-weighting)": (drw, config.get("drw"))}
    if len(important) > 1:
        raise _Bad(f"field 'config' names {len(important)} important classes; a protocol run has one or none")
    for name, (field_value, config_value) in stated.items():
        if field_value != config_value:
            raise _Bad(f"field {name.split()[0]!r} says {_show(field_value)}{' ' + name.split(' ', 1)[1] if ' ' in name else ''} "
                       f"but its config says {config_value!r} (the record was edited)")
    names = None
    if config.get("dataset") in ("fashion_mnist", "cifar10"):  # the datasets whose names are fixed by their loader
        import importlib

        names = importlib.import_module(f"camri_utils.data.{config['dataset']}").CLASS_NAMES
    if names is not None and record.get("class_names") is not None and list(record["class_names"]) != list(names):
        raise _Bad(f"field 'class_names' is not {config.get('dataset')}'s class names in their order ({list(names)}): "
                   "the record was edited")
    if not record.get("diverged", False):
        split = config.get("validation_size", "auto") is not None
        if split and "validation" not in record:
            raise _Bad("lacks its 'validation' metrics, though its config has a validation split: it would be ranked "
                       "on test metrics")
        if not split and "validation" in record:
            raise _Bad("holds 'validation' metrics, though its config has no validation split")


def check_record(record, path, folder_kind=None):
    """``record`` (read from ``path``) if it is a valid record; else a :class:`ProtocolError`
    naming the file, the field and what to do. ``folder_kind``: the data kind of a schema-2
    folder (from its ``protocol.json`` or ``sweep.json``), None for a hand-made folder."""
    try:
        _fields(record, path, folder_kind)
        if folder_kind is not None and record["schema"] == SCHEMA:
            _against_folder(record, folder_kind)
    except _Bad as exc:
        raise ProtocolError(f"{path} {exc}. {remedy(path)}") from None
    return record


def _bad_description(path, problem, what):
    return ProtocolError(f"{path} {problem}: it is not {what}. It is written when the folder is first used; "
                         "restore it (git checkout, or your copy) or use a fresh output folder.")


def check_protocol_file(stored, path):
    """(spec dict, data_source or None) of a ``protocol.json``'s content ``stored``: either
    ``{"spec": {...}, "data_source": kind}`` (schema 2) or a bare spec (schema 1)."""
    if not isinstance(stored, dict):
        raise _bad_description(path, f"holds {type(stored).__name__}, not an object", "a protocol description")
    if "spec" in stored:
        unknown = sorted(set(stored) - {"spec", "data_source", "data"})
        if unknown:
            raise _bad_description(path, f"has unknown fields {unknown}", "a protocol description")
        if stored.get("data_source") not in KINDS:
            raise _bad_description(path, f"field 'data_source' must be one of {list(KINDS)}; got "
                                         f"{stored.get('data_source')!r}", "a protocol description")
        if not isinstance(stored["spec"], dict):
            raise _bad_description(path, "field 'spec' is not an object", "a protocol description")
        if "data" in stored:
            check_pins(stored["data"], path)
        return stored["spec"], stored["data_source"]
    return stored, None


def _threads_ok(v):
    return (isinstance(v, dict) and set(v) == {"intra_op", "inter_op"}
            and all(x is None or (_is_int(x) and x >= 1) for x in v.values()))


def check_pins(pins, path, what="a protocol description"):
    """``pins``, the ``data`` field of a ``protocol.json`` or ``sweep.json`` (what every run of
    the folder was trained on and with: ``{"location": text, "fingerprint": 64 hex digits,
    "threads": {"intra_op": n or null, "inter_op": n or null}}``), checked; returned as it is."""
    if not isinstance(pins, dict) or set(pins) != {"location", "fingerprint", "threads"}:
        raise _bad_description(path, f"field 'data' must hold exactly 'location', 'fingerprint' and 'threads'; got "
                                     f"{_show(pins)}", what)
    if not isinstance(pins["location"], str):
        raise _bad_description(path, f"field 'data.location' must be text; got {_show(pins['location'])}", what)
    if not (isinstance(pins["fingerprint"], str) and _HEX64.fullmatch(pins["fingerprint"])):
        raise _bad_description(path, "field 'data.fingerprint' must be the data's SHA-256 (64 hex digits); got "
                                     f"{_show(pins['fingerprint'])}", what)
    if not _threads_ok(pins["threads"]):
        raise _bad_description(path, "field 'data.threads' must be {'intra_op': n or null, 'inter_op': n or null} "
                                     f"(n >= 1); got {_show(pins['threads'])}", what)
    return pins


def check_sweep_file(stored, path):
    """(sweep dict, data_source) of a ``sweep.json``'s content ``stored``."""
    if not isinstance(stored, dict) or not {"sweep", "data_source"} <= set(stored) <= {"sweep", "data_source", "data"}:
        raise _bad_description(path, "does not hold exactly 'sweep' and 'data_source' (and the pinned 'data')",
                               "a sweep description")
    if "data" in stored:
        check_pins(stored["data"], path, "a sweep description")
    if stored["data_source"] not in KINDS:
        raise _bad_description(path, f"field 'data_source' must be one of {list(KINDS)}; got "
                                     f"{stored['data_source']!r}", "a sweep description")
    sweep = stored["sweep"]
    if not isinstance(sweep, dict):
        raise _bad_description(path, "field 'sweep' is not an object", "a sweep description")
    for name in ("margins", "scales", "seeds"):
        values = sweep.get(name)
        if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
            raise _bad_description(path, f"field 'sweep.{name}' must be a non-empty list of numbers; got "
                                         f"{_show(values)}", "a sweep description")
    if not all(_is_int(s) for s in sweep["seeds"]):
        raise _bad_description(path, "field 'sweep.seeds' must hold integers", "a sweep description")
    for name in ("dataset", "profile", "role"):
        if not isinstance(sweep.get(name), str):
            raise _bad_description(path, f"field 'sweep.{name}' must be text; got {_show(sweep.get(name))}",
                                   "a sweep description")
    return sweep, stored["data_source"]

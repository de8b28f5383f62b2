"""The paper's experiment as a function: rank classes by cross-entropy recall, pick the
important classes (worst1, worst2, median), sweep CAMRI, ArcFace, WCE and CRWWCE over their
grids and seeds, keep the settings that maintain accuracy, and report a table in the layout of
the paper's Table 1.

Every training run is one JSON record under ``<output>/runs/``, written atomically; a rerun
skips finished runs, and ``shard=(i, n)`` runs only every n-th run, so a sweep can be spread
over machines. :func:`report` merges whatever records exist into the table.

The selection rule (the paper does not publish its own): a setting *maintains accuracy* when
its mean test accuracy is at least the CE mean minus ``k`` CE standard deviations (``k`` = 1 by
default); among those, the one with the highest mean recall of the important class wins (ties:
higher mean accuracy, then grid order). A method with no such setting gets "-".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camri_utils.io import atomic_path

__all__ = ["ProtocolSpec", "PRESETS", "preset", "run", "report", "summarize", "Summary", "records_frame",
           "rank_classes", "select", "setting_key", "load_records", "results_folder", "ProtocolError"]

METHODS = ("CAMRI", "ArcFace", "CRWWCE", "WCE", "CE")
ROLES = ("worst1", "worst2", "median")
SCHEMA = "camri-protocol-record/1"


class ProtocolError(ValueError):
    """A results folder that cannot be read as this protocol's records."""


@dataclass
class ProtocolSpec:
    """One dataset's protocol: the training setup shared by all runs, the grids and seeds."""

    dataset: str
    profile: str
    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    seeds: list
    camri_grid: list  # [{"margin": m, "scale": s}, ...]
    arcface_grid: list  # [{"margin": m, "scale": s}, ...]
    wce_weights: list  # weight of the important class (others 1)
    crwwce_weights: list  # false-negative weight of the important class (FP weights 1)
    feature_dim: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    dataset_options: dict = field(default_factory=dict)
    accuracy_k: float = 1.0
    note: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


def _m(deno):
    """The authors' margin parameterisation: m = m_deno * pi / 64."""
    return deno * math.pi / 64


PRESETS = {
    ("fashion_mnist", "quick"): ProtocolSpec(
        "fashion_mnist", "quick", "small_cnn", epochs=1, batch_size=64, learning_rate=1e-3, seeds=[0],
        camri_grid=[{"margin": _m(4), "scale": 16.0}], arcface_grid=[{"margin": _m(4), "scale": 16.0}],
        wce_weights=[2.0], crwwce_weights=[2.0], feature_dim=32, train_subset=600, test_subset=300,
        note="quick profile: 600 training and 300 test images, 1 epoch; a smoke test, not a result"),
    ("fashion_mnist", "full"): ProtocolSpec(
        "fashion_mnist", "full", "small_cnn", epochs=3, batch_size=128, learning_rate=1e-3, seeds=[0, 1, 2, 3, 4],
        camri_grid=[{"margin": _m(4), "scale": 16.0}, {"margin": _m(8), "scale": 16.0}],
        arcface_grid=[{"margin": _m(4), "scale": 16.0}, {"margin": _m(8), "scale": 16.0}],
        wce_weights=[2.0, 4.0], crwwce_weights=[2.0, 4.0], feature_dim=64, train_subset=20000,
        note="sized for one working session on 2 CPU cores (125 runs of 30-70 s, about 1.5 hours in all): the small CNN "
             "(not the paper's), 20,000 of the 60,000 training images (stratified), the full 10,000-image test set, "
             "3 epochs"),
    ("cifar10", "quick"): ProtocolSpec(
        "cifar10", "quick", "paper_cnn", epochs=1, batch_size=64, learning_rate=1e-3, seeds=[0],
        camri_grid=[{"margin": _m(4), "scale": 16.0}], arcface_grid=[{"margin": _m(4), "scale": 16.0}],
        wce_weights=[2.0], crwwce_weights=[2.0], feature_dim=32,
        note="quick profile: a smoke test, not a result"),
    ("cifar10", "full"): ProtocolSpec(
        "cifar10", "full", "paper_cnn", epochs=300, batch_size=64, learning_rate=1e-3, seeds=list(range(10)),
        camri_grid=[{"margin": _m(d), "scale": s} for d in (3, 4, 5) for s in (8.0, 16.0)],
        arcface_grid=[{"margin": _m(d), "scale": s} for d in (3, 4, 5) for s in (8.0, 16.0)],
        wce_weights=[1.5, 2.0, 4.0], crwwce_weights=[1.5, 2.0, 4.0],
        note="the authors' setup: their CNN, Adam 1e-3, batch 64, 300 epochs, inputs x/255, no augmentation; "
             "grid centred on their settings (m = 4pi/64 or 5pi/64, s = 8 or 16)"),
    ("gtsrb", "quick"): ProtocolSpec(
        "gtsrb", "quick", "small_cnn", epochs=1, batch_size=64, learning_rate=1e-3, seeds=[0],
        camri_grid=[{"margin": _m(4), "scale": 16.0}], arcface_grid=[{"margin": _m(4), "scale": 16.0}],
        wce_weights=[2.0], crwwce_weights=[2.0], feature_dim=32, dataset_options={"size": 32},
        note="quick profile: a smoke test, not a result"),
    ("gtsrb", "full"): ProtocolSpec(
        "gtsrb", "full", "paper_cnn", epochs=50, batch_size=64, learning_rate=1e-3, seeds=list(range(10)),
        camri_grid=[{"margin": _m(d), "scale": s} for d in (3, 4, 5) for s in (16.0, 32.0)],
        arcface_grid=[{"margin": _m(d), "scale": s} for d in (3, 4, 5) for s in (16.0, 32.0)],
        wce_weights=[1.5, 2.0, 4.0], crwwce_weights=[1.5, 2.0, 4.0], dataset_options={"size": 32, "crop_roi": True},
        note="our choice (the paper publishes none): ROI-cropped 32x32 images, the paper's CNN, 50 epochs "
             "(GTSRB converges far faster than CIFAR-10), s up to 32 for 43 classes"),
    ("awa2", "quick"): ProtocolSpec(
        "awa2", "quick", "small_cnn", epochs=1, batch_size=32, learning_rate=1e-3, seeds=[0],
        camri_grid=[{"margin": _m(4), "scale": 16.0}], arcface_grid=[{"margin": _m(4), "scale": 16.0}],
        wce_weights=[2.0], crwwce_weights=[2.0], feature_dim=32, dataset_options={"size": 32},
        note="quick profile: a smoke test, not a result"),
    ("awa2", "full"): ProtocolSpec(
        "awa2", "full", "paper_cnn", epochs=100, batch_size=64, learning_rate=1e-3, seeds=list(range(10)),
        camri_grid=[{"margin": _m(d), "scale": s} for d in (3, 4, 5) for s in (16.0, 32.0)],
        arcface_grid=[{"margin": _m(d), "scale": s} for d in (3, 4, 5) for s in (16.0, 32.0)],
        wce_weights=[1.5, 2.0, 4.0], crwwce_weights=[1.5, 2.0, 4.0], dataset_options={"size": 64},
        note="our choice (the paper publishes none): 64x64 images, seeded stratified 70/30 split, the paper's "
             "CNN trained from scratch for 100 epochs, s up to 32 for 50 classes"),
}


def preset(dataset, profile):
    try:
        return dataclasses.replace(PRESETS[(dataset, profile)])
    except KeyError:
        raise ValueError(f"no preset for dataset {dataset!r} and profile {profile!r}; presets: "
                         f"{sorted(PRESETS)}.") from None


# ---------------------------------------------------------------------------------------------
# Runs and records
# ---------------------------------------------------------------------------------------------
def _run_id(spec, method, important, params, seed):
    key = json.dumps({"spec": {k: v for k, v in spec.to_dict().items() if k not in ("seeds", "note", "accuracy_k",
                                                                                     "camri_grid", "arcface_grid",
                                                                                     "wce_weights", "crwwce_weights")},
                      "method": method, "important": important, "params": params, "seed": seed}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _planned_runs(spec, n_classes=None, important=None):
    """Stage 1 (important=None): the CE runs. Stage 2: every method x setting x seed for each
    important class ({role: class})."""
    runs = []
    if important is None:
        for seed in spec.seeds:
            runs.append(("CE", None, None, {}, seed))
        return runs
    for role, c in important.items():
        settings = ([("CAMRI", p) for p in spec.camri_grid] + [("ArcFace", p) for p in spec.arcface_grid]
                    + [("WCE", {"weight": w}) for w in spec.wce_weights]
                    + [("CRWWCE", {"weight": w}) for w in spec.crwwce_weights])
        for method, params in settings:
            for seed in spec.seeds:
                runs.append((method, role, c, dict(params), seed))
    return runs


def _train_config(spec, method, c, params, seed, n_classes):
    from camri_utils.training import TrainConfig

    loss, loss_params = "ce", {}
    if method == "CAMRI":
        loss, loss_params = "camri", {"important_classes": c, **params}
    elif method == "ArcFace":
        loss, loss_params = "arcface", dict(params)
    elif method == "WCE":
        w = [1.0] * n_classes
        w[c] = params["weight"]
        loss, loss_params = "wce", {"class_weights": w}
    elif method == "CRWWCE":
        fn = [1.0] * n_classes
        fn[c] = params["weight"]
        loss, loss_params = "crwwce", {"fn_weights": fn, "fp_weights": [1.0] * n_classes}
    return TrainConfig(dataset=spec.dataset, dataset_options=spec.dataset_options, train_subset=spec.train_subset,
                       test_subset=spec.test_subset, model=spec.model, feature_dim=spec.feature_dim, loss=loss,
                       loss_params=loss_params, important_classes=[] if c is None else [c], epochs=spec.epochs,
                       batch_size=spec.batch_size, learning_rate=spec.learning_rate, seed=seed, verbose=0)


def results_folder(path="results/fashion_mnist"):
    """Find a results folder: ``path`` as given (absolute, or relative to the working
    directory), then its last part inside ``$CAMRI_RESULTS_DIR``, then ``path`` inside the
    repository this library was installed from (an editable install, as ``make`` does). A folder
    without ``protocol.json`` is not one."""
    import os

    import camri_utils

    path = Path(path)
    candidates = [path]
    if os.environ.get("CAMRI_RESULTS_DIR"):
        candidates.append(Path(os.environ["CAMRI_RESULTS_DIR"]) / path.name)
    if not path.is_absolute():
        candidates.append(Path(camri_utils.__file__).resolve().parents[1] / path)
    for folder in candidates:
        if (folder / "protocol.json").is_file():
            return folder
    raise FileNotFoundError(
        f"no protocol results folder {str(path)!r} (looked in: {', '.join(str(c) for c in candidates)}). "
        "The committed results are in the book's repository: clone it (git clone --depth 1 "
        "https://github.com/camri-book/camri-book) and pass the path of its results folder, set "
        "CAMRI_RESULTS_DIR to the folder that holds it, or produce your own with `camri protocol`.")


def load_records(output):
    """Every record under ``<output>/runs``, checked; a foreign or corrupt file is an error."""
    folder = Path(output) / "runs"
    records = []
    if not folder.exists():
        return records
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue  # an atomic write in progress (or one killed: never a record)
        if path.suffix != ".json":
            raise ProtocolError(f"{path} is not a protocol record (only <run id>.json files belong in {folder}).")
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{path} is not valid JSON ({exc}); delete it and rerun to redo that run.") from exc
        if not isinstance(record, dict) or record.get("schema") != SCHEMA or record.get("run_id") != path.stem:
            raise ProtocolError(f"{path} is not a record of this protocol (schema {SCHEMA!r}, run id = file name).")
        missing = {"method", "seed", "accuracy", "recall", "precision"} - set(record)
        if missing:
            raise ProtocolError(f"{path} lacks {sorted(missing)}; delete it and rerun to redo that run.")
        records.append(record)
    return records


def rank_classes(ce_records):
    """Classes by mean CE test recall, worst first (ties: lower class index first), and the
    important classes the paper uses: worst1, worst2 and the median."""
    recalls = np.array([r["recall"] for r in ce_records], dtype=float)
    mean = recalls.mean(axis=0)
    order = sorted(range(len(mean)), key=lambda c: (round(mean[c], 12), c))
    return order, {"worst1": order[0], "worst2": order[1], "median": order[(len(order) - 1) // 2]}


def run(spec, output, shard=(0, 1), progress=True, dataset=None):
    """Run (what is left of) the protocol into ``output``. Returns the number of runs trained.
    With several shards, stage 2 starts once every CE run of stage 1 is recorded."""
    import keras
    from tqdm import tqdm

    from camri_utils import data as data_mod
    from camri_utils.training import train

    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ValueError(f"shard must be i/n with 1 <= i <= n; got {index + 1}/{count}.")
    output = Path(output)
    (output / "runs").mkdir(parents=True, exist_ok=True)
    spec_path = output / "protocol.json"
    if spec_path.exists():
        stored = json.loads(spec_path.read_text())
        if stored != json.loads(json.dumps(spec.to_dict())):
            raise ProtocolError(f"{spec_path} describes another protocol; use a fresh output folder.")
    else:
        with atomic_path(spec_path) as tmp:
            tmp.write_text(json.dumps(spec.to_dict(), indent=1))

    ds = dataset if dataset is not None else data_mod.load(spec.dataset, **spec.dataset_options)
    trained = 0
    for stage in (1, 2):
        records = load_records(output)
        done = {r["run_id"] for r in records}
        if stage == 1:
            planned = _planned_runs(spec)
        else:
            ce = [r for r in records if r["method"] == "CE"]
            if len(ce) < len(spec.seeds):
                print(f"stage 2 waits for the CE runs of every shard ({len(ce)}/{len(spec.seeds)} recorded); "
                      "rerun when they are done.")
                break
            _, important = rank_classes(ce)
            planned = _planned_runs(spec, ds.n_classes, important)
        ids = [_run_id(spec, m, c, p, s) for m, _, c, p, s in planned]
        mine = [(rid, run_) for k, (rid, run_) in enumerate(zip(ids, planned)) if k % count == index]
        todo = [(rid, run_) for rid, run_ in mine if rid not in done]
        bar = tqdm(todo, desc=f"stage {stage} ({len(mine) - len(todo)} of {len(mine)} done)", unit="run",
                   disable=not progress)
        for rid, (method, role, c, params, seed) in bar:
            config = _train_config(spec, method, c, params, seed, ds.n_classes)
            start = time.perf_counter()
            result = train(config, dataset=ds)
            record = {
                "schema": SCHEMA, "run_id": rid, "dataset": spec.dataset, "profile": spec.profile,
                "method": method, "role": role, "important_class": c, "params": params, "seed": seed,
                "config": json.loads(config.to_json()),
                "history": result.history, "accuracy": result.metrics["accuracy"],
                "recall": result.metrics["recall"], "precision": result.metrics["precision"],
                "confusion_matrix": result.metrics["confusion_matrix"],
                "wall_time_s": time.perf_counter() - start,
                "environment": result.metrics["environment"], "data_source": result.metrics["data_source"],
                "class_names": list(ds.class_names),
            }
            with atomic_path(output / "runs" / f"{rid}.json") as tmp:
                tmp.write_text(json.dumps(record))
            trained += 1
            keras.backend.clear_session()
    return trained


# ---------------------------------------------------------------------------------------------
# Selection and the table
# ---------------------------------------------------------------------------------------------
def setting_key(params):
    """The text that names one setting of a method: the ``setting`` of :func:`records_frame`."""
    return json.dumps(params, sort_keys=True)


def select(records, accuracy_k=1.0):
    """{(method, role): chosen setting summary or None} plus the CE summary, from records."""
    ce = [r for r in records if r["method"] == "CE"]
    if not ce:
        raise ProtocolError("no CE records: stage 1 has not run yet.")
    ce_acc = np.array([r["accuracy"] for r in ce])
    threshold = ce_acc.mean() - accuracy_k * (ce_acc.std(ddof=1) if len(ce_acc) > 1 else 0.0)
    order, important = rank_classes(ce)
    chosen = {}
    for role, c in important.items():
        for method in METHODS[:-1]:
            rows = [r for r in records if r["method"] == method and r.get("role") == role]
            settings = {}
            for r in rows:  # grid order = first appearance in the records' planned order
                settings.setdefault(setting_key(r["params"]), []).append(r)
            best = None
            for key, runs in settings.items():
                acc = np.mean([r["accuracy"] for r in runs])
                rec = np.mean([r["recall"][c] for r in runs])
                if acc < threshold:
                    continue
                if best is None or (rec, acc) > (best["recall_mean"], best["accuracy_mean"]):
                    best = {"params": json.loads(key), "runs": runs, "recall_mean": rec, "accuracy_mean": acc}
            chosen[(method, role)] = best
    return {"chosen": chosen, "ce": ce, "important": important, "ranking": order, "threshold": threshold}


def _paired_bootstrap(diffs, rng, n=2000):
    diffs = np.asarray(diffs, float)
    if len(diffs) < 2:
        return float("nan"), float("nan")
    means = rng.choice(diffs, size=(n, len(diffs)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def records_frame(records):
    """One row per run: method, role, important class, setting (JSON), seed, accuracy, and the
    important class's recall and precision (for CE, one row per seed and role it is compared in)."""
    ce = [r for r in records if r["method"] == "CE"]
    important = rank_classes(ce)[1] if ce else {}
    rows = []
    for r in records:
        pairs = important.items() if r["method"] == "CE" else [(r.get("role"), r.get("important_class"))]
        for role, c in pairs:
            rows.append({"method": r["method"], "role": role, "important_class": c,
                         "setting": setting_key(r["params"]) if r["params"] else "", "seed": r["seed"],
                         "accuracy": r["accuracy"], "recall": r["recall"][c], "precision": r["precision"][c]})
    columns = ["method", "role", "important_class", "setting", "seed", "accuracy", "recall", "precision"]
    return pd.DataFrame(rows, columns=columns)


@dataclass
class Summary:
    """What :func:`summarize` reads from a results folder."""

    spec: ProtocolSpec
    records: list
    selection: dict  # what :func:`select` returns
    table: pd.DataFrame  # one row per method and role: the numbers of the Markdown table
    markdown: str
    accuracy_k: float


def summarize(output, accuracy_k=None):
    """Read the records under ``output`` and build the table, without writing anything."""
    output = Path(output)
    spec_path = output / "protocol.json"
    if not spec_path.exists():
        raise ProtocolError(f"{output} has no protocol.json: not a protocol results folder.")
    spec = ProtocolSpec(**json.loads(spec_path.read_text()))
    k = spec.accuracy_k if accuracy_k is None else accuracy_k
    records = load_records(output)
    sel = select(records, k)
    rng = np.random.default_rng(0)
    ce_by_seed = {r["seed"]: r for r in sel["ce"]}
    rows = []
    for method in METHODS:
        for role, c in sel["important"].items():
            if method == "CE":
                runs, params = sel["ce"], {}
            else:
                best = sel["chosen"][(method, role)]
                if best is None:
                    rows.append({"method": method, "role": role, "class": c, "setting": "-", "n_seeds": 0})
                    continue
                runs, params = best["runs"], best["params"]
            rec = np.array([r["recall"][c] for r in runs])
            acc = np.array([r["accuracy"] for r in runs])
            prec = np.array([r["precision"][c] for r in runs])
            row = {"method": method, "role": role, "class": c, "setting": json.dumps(params) if params else "",
                   "n_seeds": len(runs), "recall_mean": rec.mean(), "recall_std": rec.std(ddof=1) if len(rec) > 1 else 0.0,
                   "accuracy_mean": acc.mean(), "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                   "precision_mean": prec.mean()}
            if method != "CE":
                diffs = [r["recall"][c] - ce_by_seed[r["seed"]]["recall"][c] for r in runs if r["seed"] in ce_by_seed]
                row["recall_gain"] = float(np.mean(diffs)) if diffs else float("nan")
                row["gain_ci_low"], row["gain_ci_high"] = _paired_bootstrap(diffs, rng)
            rows.append(row)
    table = pd.DataFrame(rows)
    return Summary(spec, records, sel, table, _markdown(spec, sel, table, k, records), k)


def report(output, accuracy_k=None):
    """Merge the records under ``output`` into the table; write ``summary.csv`` and
    ``summary.md`` there and return the Markdown text."""
    summary = summarize(output, accuracy_k)
    summary.table.to_csv(Path(output) / "summary.csv", index=False, float_format="%.4f")
    with atomic_path(Path(output) / "summary.md") as tmp:
        tmp.write_text(summary.markdown)
    return summary.markdown


def _cell(row):
    if row.get("setting") == "-" or pd.isna(row.get("recall_mean")):
        return "-"
    cell = (f"{row['recall_mean']:.4f} ± {row['recall_std']:.4f} ({row['accuracy_mean']:.4f}); "
            f"prec {row['precision_mean']:.3f}; n={int(row['n_seeds'])}")
    if row["method"] != "CE" and not pd.isna(row.get("recall_gain")):
        cell += f"; Δ {row['recall_gain']:+.4f} [{row['gain_ci_low']:+.4f}, {row['gain_ci_high']:+.4f}]"
    return cell


def _markdown(spec, sel, table, k, records):
    names = dict(enumerate(records[0].get("class_names", [])))
    roles = sel["important"]
    sources = sorted({r["data_source"]["kind"] + ": " + r["data_source"]["location"] for r in records})
    versions = sorted({r["environment"]["camri_utils"] for r in records})
    head = [f"# Protocol results: {spec.dataset}, profile `{spec.profile}`", "",
            f"Data: {'; '.join(sources)}. Setup: {spec.note}. Model `{spec.model}`, {spec.epochs} epoch(s), "
            f"batch {spec.batch_size}, Adam {spec.learning_rate:g}, seeds {spec.seeds}. camri_utils {', '.join(versions)}.",
            "",
            f"Important classes, from the mean CE recall over {len(sel['ce'])} seeds: "
            + ", ".join(f"{role} = class {c}{' (' + names[c] + ')' if c in names else ''}" for role, c in roles.items()) + ".",
            "",
            f"Selection rule: a setting maintains accuracy when its mean accuracy is at least the CE mean minus {k:g} "
            f"CE standard deviation(s) (threshold {sel['threshold']:.4f}); among those, the highest mean recall of the "
            "important class. '-': no setting maintained accuracy.",
            "",
            "Each cell: recall of the important class, mean ± std over seeds (mean accuracy); precision of the "
            "important class; n = number of seeds; Δ = mean paired (same seed) recall gain over CE with a 95% "
            "bootstrap interval over seeds.",
            "",
            "| method | " + " | ".join(roles) + " |", "| --- |" + " --- |" * len(roles)]
    for method in METHODS:
        cells = []
        for role in roles:
            row = table[(table.method == method) & (table.role == role)].iloc[0].to_dict()
            cells.append(_cell(row))
        head.append(f"| {method} | " + " | ".join(cells) + " |")
    head += ["", "Chosen settings: " + "; ".join(
        f"{r.method} {r.role}: {r.setting}" for r in table.itertuples() if r.method != "CE" and r.setting not in ("", "-"))
             + "."]
    return "\n".join(head) + "\n"

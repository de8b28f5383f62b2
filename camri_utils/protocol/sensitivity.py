"""CAMRI's two knobs, swept: margin x scale for one important class, on a protocol's setup.

The paper publishes no sensitivity study. This sweep trains CAMRI for the class a finished
protocol ranked in ``role`` (worst1 by default) over a grid of margins and scales, with the
protocol's training setup, and compares each cell with normalized softmax at the same scale
(the same head without the margin). A margin of 0 *is* normalized softmax (CAMRI's logits are
``s cos theta`` for every class then), so that cell is trained as the ``normsoftmax`` method:
its runs are the very runs the protocol trained as its control, and are shared with it.

Runs are keyed exactly as the protocol's (same training config, same run id), so every run
the protocol already holds is read from its folder instead of being trained again; the rest
are written, one record per run, to the sweep's own folder. The sweep is resumable like the
protocol, and everything is chosen on validation metrics; test metrics are only reported.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camri_utils import checks, methods
from camri_utils.io import write_json, write_text
from camri_utils.protocol import curves
from camri_utils.protocol.report import current_records
from camri_utils.protocol.selection import rank_classes, score_scale, select
from camri_utils.protocol.spec import ROLES, ProtocolError, preset, train_config
from camri_utils.protocol.store import (check_sweep_folder, data_pins, load_records, load_scores, make_runs_folder,
                                        read_pins, read_spec, run_id, settle_pins)

__all__ = ["SweepSpec", "SWEEPS", "sweep_preset", "sweep_plan", "run_sweep", "sweep_records", "sweep_comparisons",
           "sweep_frame", "sweep_choice", "sweep_report"]


def _m(deno):
    return deno * math.pi / 64


@dataclass
class SweepSpec:
    """A margin x scale sweep on the setup of the protocol preset ``(dataset, profile)``.
    ``margins`` in radians (0 allowed: the control), ``scales`` > 0, ``seeds`` a subset of
    the protocol's, ``role`` the important class's role in the protocol's ranking."""

    dataset: str
    profile: str
    margins: list
    scales: list
    seeds: list
    role: str = "worst1"
    note: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}; got {self.role!r}.")
        for m in self.margins:
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < math.pi:
                raise ValueError(f"margins must be numbers in [0, pi) (radians); got {m!r}.")
        for s in self.scales:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0:
                raise ValueError(f"scales must be positive numbers; got {s!r}.")
        for name in ("margins", "scales", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty list of distinct values; got {values!r}.")

    def protocol(self):
        """The protocol preset whose training setup (and ranking) the sweep uses."""
        return preset(self.dataset, self.profile)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        return checks.from_fields(cls, values, "sensitivity sweep")


SWEEPS = {
    ("fashion_mnist", "full"): SweepSpec(
        "fashion_mnist", "full", margins=[_m(d) for d in (0, 2, 4, 6, 8, 12)], scales=[8.0, 16.0, 32.0],
        seeds=[0, 1, 2],
        note="CAMRI for the worst class over m in {0, 2, 4, 6, 8, 12}·π/64 and s in {8, 16, 32}, 3 seeds, with "
             "the full protocol's training (12 epochs, cosine decay); m = 0 is normalized softmax; the runs the "
             "protocol already holds (s = 8 and 16, m up to 8π/64, seeds 0-2) are read from it"),
    ("fashion_mnist", "quick"): SweepSpec(
        "fashion_mnist", "quick", margins=[0.0, _m(4)], scales=[8.0, 16.0], seeds=[0],
        note="quick profile: a smoke test, not a result"),
}


def sweep_preset(dataset, profile):
    try:
        return dataclasses.replace(SWEEPS[(dataset, profile)])
    except KeyError:
        raise ProtocolError(f"no sensitivity sweep for dataset {dataset!r} and profile {profile!r}; sweeps: "
                            f"{sorted(SWEEPS)}.") from None


def _cell_method(margin):
    return "normsoftmax" if margin == 0 else "camri"


def _params(margin, scale, spec):
    if margin == 0:
        return {"scale": float(scale)}
    return {"margin": float(margin), "scale": float(scale), "monotonic": spec.monotonic}


def sweep_plan(sweep, spec, important_class, data_kind):
    """The runs of the sweep: per (margin, scale, seed), the protocol's run of CAMRI for
    ``important_class`` (normalized softmax, shared by every class, at margin 0)."""
    from camri_utils.protocol.runner import PlannedRun

    runs = []
    for scale in sweep.scales:
        for margin in sweep.margins:
            key = _cell_method(margin)
            c = None if key == "normsoftmax" else important_class
            for seed in sweep.seeds:
                params = _params(margin, scale, spec)
                config = train_config(spec, key, c, params, seed)
                label = methods.get(key).label
                runs.append(PlannedRun(label, c, params, seed, config, run_id(config, label, data_kind)))
    return runs


def _protocol_state(sweep, protocol_output):
    """The protocol's spec, data kind, its current records and the important class of the
    sweep's role; errors that say what to do when the protocol is not the sweep's or not run."""
    spec, data_kind = read_spec(protocol_output)
    if json.loads(json.dumps(spec.to_dict())) != json.loads(json.dumps(sweep.protocol().to_dict())):
        raise ProtocolError(f"{protocol_output} holds another protocol than the {sweep.dataset} {sweep.profile} "
                            "preset this sweep builds on; pass --protocol the folder of that preset's run.")
    if data_kind is None:
        raise ProtocolError(f"{protocol_output} holds records made before the validation split; the sweep needs "
                            "a protocol run with one.")
    records, _ = current_records(spec, data_kind, load_records(protocol_output))
    ce = [r for r in records if r["method"] == "CE"]
    if len(ce) < len(spec.seeds):
        raise ProtocolError(f"the sweep needs the protocol's class ranking, but {protocol_output} has {len(ce)} of "
                            f"{len(spec.seeds)} CE runs; run `camri protocol` first.")
    important = rank_classes(ce)[1][sweep.role]
    return spec, data_kind, records, important


def _open_sweep(sweep, output, data_kind, pins):
    """Create the sweep's folder, pinned to ``pins`` (the data and threads of its runs), or check
    that it holds this sweep on that data, with those threads (a folder made before pins gets them)."""
    output = make_runs_folder(output)
    path = output / "sweep.json"
    stored = {"sweep": sweep.to_dict(), "data_source": data_kind}
    if path.exists():
        check_sweep_folder(output, stored["sweep"], data_kind)  # validated; another sweep or data refused
        pinned = read_pins(output)
        settle_pins(output, path, pinned, pins)
        if pinned is not None:
            return
    write_json(path, {**stored, "data": pins}, indent=1)


def run_sweep(sweep, output, protocol_output, progress=True, dataset=None, workers=1, threads=None):
    """Train what the sweep lacks (neither in ``output`` nor in the protocol's folder) into
    ``output``, in ``workers`` processes with ``threads`` TensorFlow threads each (as
    :func:`~camri_utils.protocol.run`). Returns the number of runs trained."""
    from camri_utils import data
    from camri_utils.protocol.locks import folder_lock
    from camri_utils.protocol.runner import expected_threads, train_one, usable_records
    from camri_utils.protocol.workers import busy_message, execute

    spec, data_kind, _, important = _protocol_state(sweep, protocol_output)
    ds = dataset if dataset is not None else data.load(spec.dataset, **spec.dataset_options)
    if ds.source.kind != data_kind:
        raise ProtocolError(f"the protocol in {protocol_output} ran on {data_kind} data, but this data is "
                            f"{ds.source.kind}; sweep on the same data.")
    pins = data_pins(ds, expected_threads(workers, threads))
    # The sweep pools the protocol's runs: they must be on this data, with these threads.
    settle_pins(protocol_output, Path(protocol_output) / "protocol.json", read_pins(protocol_output), pins)
    with folder_lock(make_runs_folder(output)):
        _open_sweep(sweep, output, data_kind, pins)
    done = set(usable_records(output)[0]) | {r["run_id"] for r in load_records(protocol_output)}
    todo = [p for p in sweep_plan(sweep, spec, important, data_kind) if p.run_id not in done]
    trained, busy = execute(spec, output, todo, ds, workers, threads, progress, "sensitivity runs",
                            train_one=train_one)
    if busy:
        print(busy_message(busy))
    return len(trained)


def sweep_records(sweep, output, protocol_output):
    """The sweep's records (from its folder or the protocol's), the protocol's current
    records, and the important class. A planned run that is missing is simply absent."""
    spec, data_kind, records, important = _protocol_state(sweep, protocol_output)
    by_id = {r["run_id"]: r for r in records}
    if (Path(output) / "runs").exists():
        check_sweep_folder(output, sweep.to_dict(), data_kind)  # never another sweep's records
        by_id.update({r["run_id"]: r for r in load_records(output)})
    planned = sweep_plan(sweep, spec, important, data_kind)
    return [by_id[p.run_id] for p in planned if p.run_id in by_id], records, important


def _load(output, protocol_output):
    """Scores of a record, from the sweep's folder or the protocol's (each read once)."""
    cache = {}

    def load(record):
        if record["run_id"] not in cache:
            path = Path(output) / "runs" / f"{record['run_id']}.npz"
            cache[record["run_id"]] = load_scores(output if path.exists() else protocol_output, record)
        return cache[record["run_id"]]
    return load


def sweep_comparisons(sweep, output, protocol_output):
    """Every run of the sweep, per seed, against the exact test threshold curves of the same
    seed's CE run (``reference`` "CE") and of normalized softmax at the same scale
    ("control": the same head without the margin; not for the m = 0 cells, which are it):
    the columns of :func:`~camri_utils.protocol.curves.compare` with scale, margin, seed."""
    records, protocol_records, c = sweep_records(sweep, output, protocol_output)
    load = _load(output, protocol_output)
    refs = {}
    for r in [r for r in protocol_records if r["method"] == "CE"] + [r for r in records if r["method"] == "NormSoftmax"]:
        s = load(r)
        key = ("CE", r["seed"]) if r["method"] == "CE" else ("control", score_scale(r), r["seed"])
        refs[key] = curves.threshold_curve(s["test"], s["y_test"], c, score_scale(r))
    rows = []
    for r in records:
        scale, margin = r["params"]["scale"], r["params"].get("margin", 0.0)
        point = {"accuracy": r["accuracy"], "recall": r["recall"][c], "precision": r["precision"][c]}
        for ref, key in (("CE", ("CE", r["seed"])), ("control", ("control", float(scale), r["seed"]))):
            if key in refs and not (ref == "control" and margin == 0):
                rows.append({"scale": float(scale), "margin": float(margin), "seed": r["seed"], "reference": ref,
                             **point, **curves.compare(point, refs[key])})
    return pd.DataFrame(rows)


def sweep_frame(sweep, output, protocol_output):
    """One row per (scale, margin): seeds, validation and test recall of the important class
    and accuracy (means), the paired (same seed) change against normalized softmax at the same
    scale on validation (``val_recall_gain``, ``val_accuracy_change``) and test, whether
    the cell *maintains accuracy* by the protocol's rule (its mean validation accuracy is at
    least the protocol's threshold: CE mean minus k CE standard deviations), and, against the
    exact test threshold curves of CE (``ce_``) and of the control (``control_``: normalized
    softmax at the same scale), paired by seed (:func:`sweep_comparisons`): the mean
    ``recall_gap`` (over the seeds where it is defined, counted in ``recall_n``),
    ``accuracy_gap`` and ``precision_gap``, and the seeds ``above``, ``on`` and ``below``."""
    records, protocol_records, c = sweep_records(sweep, output, protocol_output)
    ce = [r for r in protocol_records if r["method"] == "CE"]
    threshold = select(ce, sweep.protocol().accuracy_k).threshold
    comparisons = sweep_comparisons(sweep, output, protocol_output)
    by_cell = {}
    for r in records:
        by_cell.setdefault((r["params"]["scale"], r["params"].get("margin", 0.0)), {})[r["seed"]] = r
    rows = []
    for scale in sweep.scales:
        control = by_cell.get((float(scale), 0.0), {})
        for margin in sweep.margins:
            runs = by_cell.get((float(scale), float(margin)), {})
            row = {"scale": float(scale), "margin": float(margin), "margin_pi64": round(margin * 64 / math.pi, 6),
                   "n_seeds": len(runs)}
            if runs:
                val = [r["validation"] for r in runs.values()]
                row.update(val_recall=np.mean([v["recall"][c] for v in val]), val_accuracy=np.mean([v["accuracy"] for v in val]),
                           test_recall=np.mean([r["recall"][c] for r in runs.values()]),
                           test_accuracy=np.mean([r["accuracy"] for r in runs.values()]))
                paired = [s for s in runs if s in control]
                if paired:
                    def change(get):
                        return float(np.mean([get(runs[s]) - get(control[s]) for s in paired]))
                    row.update(val_recall_gain=change(lambda r: r["validation"]["recall"][c]),
                               val_accuracy_change=change(lambda r: r["validation"]["accuracy"]),
                               test_recall_gain=change(lambda r: r["recall"][c]),
                               test_accuracy_change=change(lambda r: r["accuracy"]))
                row["maintains_accuracy"] = bool(row["val_accuracy"] >= threshold)
                for ref in ("CE", "control"):
                    if comparisons.empty:
                        break
                    g = comparisons[(comparisons.scale == float(scale)) & (comparisons.margin == float(margin))
                                    & (comparisons.reference == ref)]
                    if g.empty:
                        continue
                    prefix = ref.lower() + "_"
                    row.update({prefix + "recall_gap": float(g.recall_gap.mean()) if g.recall_gap.notna().any()
                                else float("nan"), prefix + "recall_n": int(g.recall_gap.notna().sum()),
                                prefix + "accuracy_gap": float(g.accuracy_gap.mean()),
                                prefix + "precision_gap": float(g.precision_gap.mean())})
                    row.update({prefix + p: int((g.position == p).sum()) for p in curves.POSITIONS})
            rows.append(row)
    frame = pd.DataFrame(rows)
    names = next((r["class_names"] for r in records if "class_names" in r), None)
    frame.attrs.update(important_class=c, threshold=float(threshold), role=sweep.role, class_names=names)
    return frame


def sweep_choice(frame):
    """The protocol's rule applied to a sweep (``frame`` from :func:`sweep_frame`): among the
    cells with a margin that maintain accuracy, the one with the highest mean validation
    recall of the important class (a row of ``frame``); None when no cell maintains it."""
    kept = frame[frame.maintains_accuracy.eq(True) & (frame.margin > 0)]
    return None if kept.empty else kept.loc[kept.val_recall.idxmax()]


def sweep_report(sweep, output, protocol_output):
    """Write ``sensitivity.csv`` (the frame) and ``sensitivity.md`` (two grids) into
    ``output`` and return the Markdown."""
    frame = sweep_frame(sweep, output, protocol_output)
    c, names = frame.attrs["important_class"], frame.attrs["class_names"]
    name = f"class {c}" + (f" ({names[c]})" if names else "")
    lines = [f"# Sensitivity: margin x scale, {sweep.dataset}, profile `{sweep.profile}`", "",
             f"{sweep.note}. Important class: {sweep.role} = {name}, from the protocol's validation ranking. "
             f"Changes are paired by seed against normalized softmax at the same scale, on the validation split; "
             f"✓ marks a cell whose mean validation accuracy keeps the protocol's threshold "
             f"({frame.attrs['threshold']:.4f}).", ""]
    grids = [("val_recall_gain", "validation recall gain"), ("val_accuracy_change", "validation accuracy change")]
    for ref, words in (("ce", "CE's"), ("control", "the control's (normalized softmax at the same scale)")):
        if f"{ref}_accuracy_gap" in frame:
            grids.append((f"{ref}_accuracy_gap", f"test accuracy beyond {words} exact threshold-moving curve at the "
                                                 "same recall, paired by seed (reported, not chosen on)"))
    for column, title in grids:
        lines += [f"{title} (rows: s; columns: m in π/64):", "",
                  "| s | " + " | ".join(f"{m:g}" for m in frame.margin_pi64.unique()) + " |",
                  "| --- |" + " --- |" * frame.margin_pi64.nunique()]
        for scale, rows in frame.groupby("scale", sort=False):
            cells = []
            for r in rows.itertuples():
                if r.n_seeds == 0 or pd.isna(getattr(r, column, float("nan"))):
                    cells.append("-")
                else:
                    ref = column.split("_")[0]
                    seeds = (f"{int(getattr(r, ref + '_above'))}/{int(getattr(r, ref + '_on'))}/"
                             f"{int(getattr(r, ref + '_below'))} above/on/below" if column.endswith("_accuracy_gap")
                             else f"n={r.n_seeds}")
                    cells.append(f"{getattr(r, column):+.4f}{' ✓' if r.maintains_accuracy else ''} ({seeds})")
            lines.append(f"| {scale:g} | " + " | ".join(cells) + " |")
        lines.append("")
    markdown = "\n".join(lines)
    write_text(Path(output) / "sensitivity.csv", frame.to_csv(index=False, float_format="%.4f"))
    write_text(Path(output) / "sensitivity.md", markdown)
    return markdown

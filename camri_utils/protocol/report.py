"""The protocol's table, in the layout of the paper's Table 1, from a results folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from camri_utils import stats
from camri_utils.data import describe_location
from camri_utils.io import write_text
from camri_utils.protocol import curves
from camri_utils.protocol.runner import important_classes, plan
from camri_utils.protocol.selection import (accuracy_threshold, posthoc_records, rank_classes, records_frame,
                                            score_scale, select, setting_key, table_methods, threshold_records,
                                            variant_label)
from camri_utils.protocol.spec import ProtocolError, ProtocolSpec, margin_policy
from camri_utils.protocol.store import load_records, load_scores, read_spec

__all__ = ["Summary", "WaitingForCE", "summarize", "report", "current_records", "spec_methods", "setting_text",
           "convergence", "reference_curves", "threshold_curve_frames", "curve_comparisons", "comparison_table",
           "comparison_cells", "out_of_sample_cells", "plan_status", "REFERENCES", "cell_complete", "cell_runs",
           "empty_cell", "empty_reason", "seeds_text"]


@dataclass
class Summary:
    """What :func:`summarize` reads from a results folder."""

    spec: ProtocolSpec
    records: list  # the records the table is made of (post-hoc ones included)
    selection: object  # a :class:`~camri_utils.protocol.selection.Selection`
    table: pd.DataFrame  # one row per method and role: the numbers of the Markdown table
    markdown: str
    accuracy_k: float
    ignored: int = 0  # records in the folder that are not part of this protocol's plan
    status: dict = None  # {(method, class or None): (recorded, planned)}: see plan_status
    diverged: list = None  # records of runs that diverged: shown, never chosen
    comparisons: pd.DataFrame = None  # every setting against the threshold curves, per seed
    comparison: pd.DataFrame = None  # the same, per setting: paired t intervals and positions
    settings: dict = None  # {(method, class or None): {setting key: (recorded, planned)}}: see setting_status


def current_records(spec, data_kind, records):
    """The records this protocol's plan asks for, and how many others the folder holds (left
    from another ranking, configuration or data source: never pooled into the table)."""
    by_id = {r["run_id"]: r for r in records}
    shared = [by_id[p.run_id] for p in plan(spec, data_kind) if p.run_id in by_id]
    ce = [r for r in shared if r["method"] == "CE" and not r.get("diverged")]
    specific = []
    if ce:
        specific = [by_id[p.run_id] for p in plan(spec, data_kind, important_classes(spec, ce)) if p.run_id in by_id]
    kept = shared + specific
    return kept, len(records) - len(kept)


def convergence(ce_records, window=3, tolerance=0.005):
    """Is each CE run trained? Per seed: the final validation accuracy, its range (max - min)
    over the last ``window`` epochs, the test accuracy, and ``converged`` (range below
    ``tolerance``). The issue's criterion for the Fashion-MNIST preset: every seed converged
    and the mean test accuracy at least 0.90."""
    if window < 2:
        raise ValueError(f"window must be at least 2 epochs; got {window!r}.")
    rows = []
    for r in sorted(ce_records, key=lambda r: r["seed"]):
        curve = r["history"].get("val_accuracy") or []
        if len(curve) < window:
            raise ValueError(f"the CE run of seed {r['seed']} has {len(curve)} epoch(s) of validation accuracy; "
                             f"the criterion needs {window}.")
        last = np.asarray(curve[-window:], float)
        rows.append({"seed": r["seed"], "epochs": len(curve), "final_val_accuracy": float(last[-1]),
                     "last_epochs_range": float(last.max() - last.min()), "test_accuracy": r["accuracy"],
                     "converged": bool(last.max() - last.min() < tolerance)})
    return pd.DataFrame(rows).set_index("seed")


REFERENCES = ("CE", "control")
# A cosine head with a margin: its control is normalized softmax at the same scale.
_MARGIN_METHODS = ("CAMRI", "ArcFace", "LDAM", "LDAM-DRW")


def reference_curves(records, c, load_scores, split="test"):
    """The exact threshold curves of class ``c`` on ``split`` of every CE and normalized-softmax
    run in ``records``: {("CE", seed): Curve, ("NormSoftmax", scale, seed): Curve}."""
    out = {}
    for r in records:
        if r["method"] not in ("CE", "NormSoftmax") or "source_run" in r:
            continue
        stored = load_scores(r)
        if split not in stored:
            raise ProtocolError(f"the {r['method']} run {r['run_id']} has no stored {split} scores.")
        if not (stored[f"y_{split}"] == c).any():
            continue  # no image of the class in this split (a tiny fixture): no curve
        curve = curves.threshold_curve(stored[split], stored[f"y_{split}"], c, score_scale(r))
        key = ("CE", r["seed"]) if r["method"] == "CE" else ("NormSoftmax", score_scale(r), r["seed"])
        out[key] = curve
    return out


def threshold_curve_frames(records, c, load_scores, split="test"):
    """For figures: the mean exact threshold curve over seeds (one bias for all seeds) of CE and
    of normalized softmax at each scale, for class ``c`` on ``split``: {label: DataFrame of
    bias, accuracy, recall, precision}, labelled "CE + threshold" and
    "NormSoftmax + threshold (s = 8)"; each frame's ``attrs["n"]``: the seeds it is the mean of."""
    groups = {}
    for key, curve in reference_curves(records, c, load_scores, split).items():
        label = "CE + threshold" if key[0] == "CE" else f"NormSoftmax + threshold (s = {key[1]:g})"
        groups.setdefault(label, []).append(curve)
    out = {}
    for label, group in groups.items():
        out[label] = curves.mean_curve(group)
        out[label].attrs["n"] = len(group)
    return out


def _reference(method, params, seed, ref):
    """The key of the curve a setting is compared with: CE's, or the same head's without the
    margin (normalized softmax at the same scale; only for the margin methods)."""
    if ref == "CE":
        return ("CE", seed)
    if method in _MARGIN_METHODS:
        return ("NormSoftmax", float(params["scale"]), seed) if "scale" in params else None
    return None


_OOS_COLUMNS = ("oos_accuracy_gap", "oos_precision_gap", "oos_recall_offset", "oos_bias_recall", "oos_recall_gap",
                "oos_accuracy_offset", "oos_bias_accuracy")


def curve_comparisons(records, important, curve_sets, validation_sets=None):
    """Every setting of every method (CE and CE's own threshold row aside), per role and seed,
    against the same seed's threshold curve of CE and of its control (normalized softmax at the
    same scale, for CAMRI and ArcFace): the columns of :func:`~camri_utils.protocol.curves.compare`
    (the oracle: the test curve's best) plus role, method, setting, seed, reference ("CE" or
    "control") and the test point; with ``validation_sets`` (the same curves on the validation
    split), also the columns of :func:`~camri_utils.protocol.curves.out_of_sample` (the bias
    chosen on validation, scored on test; NaN for a record without validation metrics).
    ``curve_sets``: {class: :func:`reference_curves` of that class}."""
    rows = []
    frame = records_frame([r for r in records if r["method"] not in ("CE", "CE + threshold")], important)
    # Post-hoc logit adjustment is compared too: where it is one bias it must lie on CE's curve.
    # A class-specific method has one record per important class with the same setting and seed.
    by_key = {(r["method"], setting_key(r["params"]) if r["params"] else "", r["seed"], r.get("important_class")): r
              for r in records}
    for row in frame.itertuples():
        record = (by_key.get((row.method, row.setting, row.seed, row.important_class))
                  or by_key[(row.method, row.setting, row.seed, None)])
        point = {"accuracy": row.accuracy, "recall": row.recall, "precision": row.precision}
        for ref in REFERENCES:
            key = _reference(row.method, record["params"], row.seed, ref)
            curve = curve_sets[row.important_class].get(key) if key else None
            if curve is None:
                continue
            oos = dict.fromkeys(_OOS_COLUMNS, float("nan"))
            val_curve = (validation_sets or {}).get(row.important_class, {}).get(key)
            if val_curve is not None and "validation" in record:
                validation = {"accuracy": record["validation"]["accuracy"],
                              "recall": record["validation"]["recall"][row.important_class]}
                oos = curves.out_of_sample(validation, point, val_curve, curve)
            rows.append({"role": row.role, "important_class": row.important_class, "method": row.method,
                         "setting": row.setting, "seed": row.seed, "reference": ref, **point,
                         **curves.compare(point, curve), **oos})
    return pd.DataFrame(rows)


def comparison_table(comparisons):
    """Per role, method, setting and reference: seeds, the mean of each gap with its paired
    Student-t 95% interval, against the oracle (``recall_gap``, ``accuracy_gap``,
    ``precision_gap``; ``recall_gap`` over the seeds where it is defined, counted in
    ``n_recall``) and against the out-of-sample reference (``oos_accuracy_gap``,
    ``oos_recall_offset``, ``oos_precision_gap``, ``oos_recall_gap``, its seeds in
    ``n_oos_recall``), how many seeds lie above, on and below the oracle curve, and the
    ``verdict`` (:func:`~camri_utils.protocol.curves.verdict` on accuracy at the same recall:
    above, not told apart, below)."""
    rows = []
    keys = ["role", "method", "setting", "reference"]
    gaps = ("recall_gap", "accuracy_gap", "precision_gap", "oos_accuracy_gap", "oos_recall_offset",
            "oos_precision_gap", "oos_recall_gap")
    for key, g in comparisons.groupby(keys, sort=False):
        row = dict(zip(keys, key), important_class=int(g.important_class.iloc[0]), n=len(g))
        for gap in gaps:
            mean, low, high, n = stats.paired_t(g[gap]) if gap in g else (float("nan"),) * 3 + (0,)
            row.update({gap: mean, f"{gap}_low": low, f"{gap}_high": high})
            if gap == "recall_gap":
                row["n_recall"] = n
            elif gap == "oos_recall_gap":
                row["n_oos_recall"] = n
            elif gap == "oos_accuracy_gap":
                row["n_oos"] = n
        for position in curves.POSITIONS:
            row[position] = int((g.position == position).sum())
        row["verdict"] = curves.verdict((row["accuracy_gap_low"], row["accuracy_gap_high"]),
                                        (row["oos_accuracy_gap_low"], row["oos_accuracy_gap_high"]))
        rows.append(row)
    return pd.DataFrame(rows)


def spec_methods(spec):
    """The method labels ``spec`` asks for (a method with an empty grid is not part of it)."""
    ldam = [p for p in spec.ldam_grid if "drw_start_epoch" not in p]
    grids = {"CE": [0], "CAMRI": spec.camri_grid, "ArcFace": spec.arcface_grid, "NormSoftmax": spec.normsoftmax_grid,
             "WCE": spec.wce_weights, "CRWWCE": spec.crwwce_weights, "LDAM": ldam,
             "LDAM-DRW": [p for p in spec.ldam_grid if p not in ldam], "Logit-adjusted CE": spec.logit_adjusted_taus}
    labels = [label for label, grid in grids.items() if grid]
    if spec.threshold_biases and spec.validation_size is not None:
        labels += ["CE + threshold"] + (["NormSoftmax + threshold"] if spec.normsoftmax_grid else [])
    if spec.posthoc_taus and spec.validation_size is not None:
        labels += ["CE + logit adjustment"]
    return labels


_ROLE_GRID_OF = {"CAMRI": "camri_grid", "WCE": "wce_weights", "CRWWCE": "crwwce_weights"}


def not_run(spec):
    """The (method label, role) cells a spec's ``role_grids`` leave without any setting."""
    return {(label, role) for role, grids in spec.role_grids.items() for label, name in _ROLE_GRID_OF.items()
            if name in grids and not grids[name]}


def _table(sel, records, expected, n_planned, skipped=frozenset()):
    ce_by_seed = {r["seed"]: r for r in sel.ce}
    rows = []
    for method in table_methods(records, expected):
        for role, c in sel.important.items():
            if (method, role) in skipped:
                rows.append({"method": method, "role": role, "class": c, "setting": "not run", "n_seeds": 0,
                             "n_planned": 0})
                continue
            if method == "CE":
                runs, params = sel.ce, {}
            else:
                best = sel.chosen[(method, role)]
                if best is None:
                    rows.append({"method": method, "role": role, "class": c, "setting": "-", "n_seeds": 0,
                                 "n_planned": n_planned.get((method, c), 0)})
                    continue
                runs, params = best.runs, best.params
            rec = np.array([r["recall"][c] for r in runs])
            acc = np.array([r["accuracy"] for r in runs])
            prec = np.array([r["precision"][c] for r in runs])
            row = {"method": method, "role": role, "class": c, "setting": json.dumps(params) if params else "",
                   "n_seeds": len(runs), "n_planned": n_planned.get((method, c), len(runs)), "recall_mean": rec.mean(), "recall_std": stats.seed_std(rec),
                   "accuracy_mean": acc.mean(), "accuracy_std": stats.seed_std(acc), "precision_mean": prec.mean()}
            if method != "CE":
                diffs = [r["recall"][c] - ce_by_seed[r["seed"]]["recall"][c] for r in runs if r["seed"] in ce_by_seed]
                row["recall_gain"], row["gain_ci_low"], row["gain_ci_high"], _ = stats.paired_t(diffs)
            rows.append(row)
    return pd.DataFrame(rows)


def roles_of(spec):
    """A spec with a fixed important class (the rare-class setting) has one role, "rare";
    otherwise the CE ranking's roles are used (None)."""
    return None if spec.important_class is None else {"rare": spec.important_class}


def plan_status(spec, data_kind, records):
    """How far the plan is: {(method label, important class or None): (recorded, planned)}
    over the runs the plan asks for now (the class-specific ones only once every CE run is
    recorded: before that their classes are unknown, and they are counted as ``None`` runs
    of ``"class-specific"``)."""
    have = {r["run_id"] for r in records}
    ce = [r for r in records if r["method"] == "CE" and not r.get("diverged")]
    status = {}
    for p in _planned_now(spec, data_kind, ce):
        done, total = status.get((p.method, p.important_class), (0, 0))
        status[(p.method, p.important_class)] = (done + (p.run_id in have), total + 1)
    if len(ce) < len(spec.seeds) and spec.important_class is None:
        status[("class-specific", None)] = (0, len(plan(spec, data_kind, [0, 1, 2])))  # three classes, by role
    return status


def _planned_now(spec, data_kind, ce):
    """The runs the plan asks for now: the shared ones, and the class-specific ones once every CE
    run (``ce``: the recorded, non-diverged ones) is there to rank the classes."""
    planned = plan(spec, data_kind)
    if len(ce) >= len(spec.seeds) or spec.important_class is not None:
        planned += plan(spec, data_kind, important_classes(spec, ce))
    return planned


def setting_status(spec, data_kind, records):
    """How far each setting is: {(method label, important class or None): {setting key:
    (recorded, planned)}} over the runs the plan asks for now (as :func:`plan_status`). While a
    method's settings are partly recorded, its choice on validation is made among those that are."""
    have = {r["run_id"] for r in records}
    ce = [r for r in records if r["method"] == "CE" and not r.get("diverged")]
    out = {}
    for p in _planned_now(spec, data_kind, ce):
        cell = out.setdefault((p.method, p.important_class), {})
        done, total = cell.get(setting_key(p.params), (0, 0))
        cell[setting_key(p.params)] = (done + (p.run_id in have), total + 1)
    return out


class WaitingForCE(ProtocolError):
    """The table cannot be made yet: no CE run of the protocol's plan is recorded (a shard that
    finished its share before the others trained CE)."""


def _check_ce(output, spec, all_records, ce_planned, ce_diverged):
    """Why the table cannot rank classes, as an error naming the folder and what to do: no CE
    run recorded yet, CE records of another configuration only, or every CE run diverged."""
    if ce_planned:
        return
    if ce_diverged:
        raise ProtocolError(f"every CE run of this protocol in {output} diverged ({len(ce_diverged)}): there is no "
                            "ranking and no accuracy threshold. Change the protocol (e.g. its learning rate) and use a "
                            "fresh output folder.")
    others = [r for r in all_records if r.get("method") == "CE"]
    if others:
        raise ProtocolError(f"{output} holds {len(others)} CE record(s), but none of this protocol's plan (made with "
                            "another configuration or data, e.g. "
                            f"{others[0]['run_id']}.json): train this protocol's CE runs (`camri protocol` with its "
                            "own preset), or report the folder with the protocol.json it was made with.")
    raise WaitingForCE(f"no CE run of this protocol is recorded in {output} yet (0 of {len(spec.seeds)}): the table "
                       "ranks the classes by them. Run the shared stage on every shard (`camri protocol ... --shard "
                       "i/n`), then `camri protocol report`.")


def summarize(output, accuracy_k=None):
    """Read the records under ``output`` and build the table, without writing anything."""
    output = Path(output)
    spec, data_kind = read_spec(output)
    k = spec.accuracy_k if accuracy_k is None else accuracy_k
    ProtocolSpec.from_dict({**spec.to_dict(), "accuracy_k": k})  # checks k
    records, ignored, status, diverged, settings = load_records(output), 0, {}, [], {}
    n_classes = next((len(r["class_names"]) for r in records if r.get("class_names")), None)
    if spec.important_class is not None and n_classes is not None and spec.important_class >= n_classes:
        raise ProtocolError(f"{output / 'protocol.json'} names important_class {spec.important_class}, but its runs' "
                            f"data has {n_classes} classes (0 to {n_classes - 1}): the file was edited. Restore it (git "
                            "checkout, or your copy).")
    scores = {}

    def load(record):  # each run's scores read once
        if record["run_id"] not in scores:
            scores[record["run_id"]] = load_scores(output, record)
        return scores[record["run_id"]]

    if data_kind is not None:  # schema 2: only this plan's records, plus the post-hoc baseline
        everything = records
        records, ignored = current_records(spec, data_kind, records)
        _check_ce(output, spec, everything, [r for r in records if r["method"] == "CE" and not r.get("diverged")],
                  [r for r in records if r["method"] == "CE" and r.get("diverged")])
        status = plan_status(spec, data_kind, records)
        settings = setting_status(spec, data_kind, records)
        # Rows by variant (LDAM-DRW apart from LDAM); the records on disk keep their method.
        records = [r if variant_label(r) == r["method"] else {**r, "method": variant_label(r)} for r in records]
        # A diverged run is shown as such and never chosen (its metrics are not results).
        diverged = [r for r in records if r.get("diverged")]
        records = [r for r in records if not r.get("diverged")]
        for r in records:  # every score file the table relies on, opened: its metrics recomputed from it
            load(r)
        ce = [r for r in records if r["method"] == "CE"]
        if ce and spec.threshold_biases:
            classes = important_classes(spec, ce)
            records = records + threshold_records(records, classes, accuracy_threshold(ce, k), load)
        if ce and spec.posthoc_taus and spec.validation_size is not None:
            records = records + posthoc_records(ce, spec.posthoc_taus, load)
    expected = spec_methods(spec)
    sel = select(records, k, expected, important=roles_of(spec))
    table = _table(sel, records, expected, _seeds_planned(spec, status, sel), not_run(spec))
    comparisons = comparison = None
    if data_kind is not None and spec.threshold_biases:
        classes = set(sel.important.values())
        curve_sets = {c: reference_curves(records, c, load) for c in classes}
        validation_sets = ({c: reference_curves(records, c, load, "validation") for c in classes}
                           if sel.split == "validation" else None)
        comparisons = curve_comparisons(records, sel.important, curve_sets, validation_sets)
        comparison = comparison_table(comparisons) if not comparisons.empty else None
    n_validation = _validation_count(output, records) if data_kind is not None else None
    markdown = _markdown(spec, sel, table, k, records, ignored, expected, n_validation, status, diverged, comparison)
    return Summary(spec, records, sel, table, markdown, k, ignored, status, diverged, comparisons, comparison,
                   settings)


def _seeds_planned(spec, status, sel):
    """Seeds planned per (method, class) for the table's ``n = 3 of 5``: every setting of a
    method has ``len(spec.seeds)`` seeds planned."""
    out = {}
    for (method, c) in status:
        for cls in ([c] if c is not None else sel.important.values()):
            out[(method, cls)] = len(spec.seeds)
    for post_hoc in ("CE + threshold", "NormSoftmax + threshold", "CE + logit adjustment"):
        for cls in sel.important.values():
            out[(post_hoc, cls)] = len(spec.seeds)
    return out


def report(output, accuracy_k=None):
    """Merge the records under ``output`` into the table; write ``summary.csv`` and
    ``summary.md`` there and return the Markdown text."""
    summary = summarize(output, accuracy_k)
    try:
        write_text(Path(output) / "summary.csv", summary.table.to_csv(index=False, float_format="%.4f"))
        write_text(Path(output) / "summary.md", summary.markdown)
    except OSError as exc:  # a read-only copy of the results (a mounted share, a package's data)
        raise ProtocolError(f"cannot write the table into {output} ({exc.strerror or exc}): the folder is read-only "
                            "or full. Copy it somewhere writable and report that copy, or read the table without "
                            "writing it (camri_utils.protocol.summarize).") from exc
    return summary.markdown


def setting_text(params):
    """A setting in words: ``m = 4π/64, s = 16`` (margins as multiples of π/64 where they are
    one, as the paper writes them), ``weight 2``, ``bias 0.607`` (a threshold row's bias, chosen
    exactly on the validation curve: three significant digits are what a reader can use);
    '' for none."""
    if isinstance(params, str):
        params = json.loads(params) if params not in ("", "-") else {}
    parts = []
    for key, value in params.items():
        if key == "margin":
            deno = value * 64 / np.pi
            parts.append(f"m = {deno:g}π/64" if abs(deno - round(deno)) < 1e-9 else f"m = {value:.4g}")
        elif key == "scale":
            parts.append(f"s = {value:g}")
        elif key == "monotonic":
            continue  # the policy is stated once, for the whole table
        elif key == "bias":
            parts.append(f"bias {value:#.3g}".rstrip("."))  # 1.70, not 1.7; 123, not 123.
        else:
            parts.append(f"{key} {value:g}")
    return ", ".join(parts)


def seeds_text(row):
    n, planned = int(row["n_seeds"]), int(row.get("n_planned") or row["n_seeds"])
    return f"n={n}" if n >= planned else f"n = {n} of {planned}"


_SOURCES = {"CE + threshold": "CE", "NormSoftmax + threshold": "NormSoftmax", "CE + logit adjustment": "CE",
            "LDAM-DRW": "LDAM"}  # a post-hoc or variant row counts the runs it is made from


def cell_runs(status, method, c):
    """(recorded, planned) runs of ``method`` behind a table cell for class ``c`` (the shared
    runs where the method's runs do not depend on the class), from :func:`plan_status`;
    ``(None, None)`` where the plan cannot count them yet (class-specific runs, planned once
    every CE run is recorded); None where nothing is planned (``status`` empty: a folder
    without a plan)."""
    if not status:
        return None
    source = _SOURCES.get(method, method)
    for key in ((source, c), (source, None)):
        if key in status:
            return status[key]
    return (None, None) if ("class-specific", None) in status else None


def cell_complete(status, method, c):
    """Are all planned runs behind a table cell recorded?"""
    runs = cell_runs(status, method, c)
    return runs is None or (runs[1] is not None and runs[0] >= runs[1])


def empty_cell(runs):
    """A table cell with no chosen setting, given its :func:`cell_runs`: ``-`` (every planned run
    recorded, and no setting kept accuracy), ``no run yet (0 of 30)`` (none recorded),
    ``- (12 of 30 recorded)`` (no recorded setting kept accuracy so far), or ``- (CE runs
    missing)`` (the class-specific runs cannot be counted yet)."""
    if runs is None or (runs[1] is not None and runs[0] >= runs[1]):
        return "-"
    done, planned = runs
    if planned is None:
        return "- (CE runs missing)"
    return f"no run yet (0 of {planned})" if done == 0 else f"- ({done} of {planned} recorded)"


def empty_reason(runs):
    """Why a cell has no chosen setting, in words (:func:`empty_cell`'s cases), without
    parentheses, so that it can stand inside a sentence's brackets."""
    if runs is None or (runs[1] is not None and runs[0] >= runs[1]):
        return "no setting kept validation accuracy"
    done, planned = runs
    if planned is None:
        return "no setting chosen yet: the class-specific runs are planned once every CE run is recorded"
    if done == 0:
        return f"no run recorded yet, 0 of {planned} planned"
    return f"no recorded setting kept validation accuracy, {done} of {planned} planned runs recorded"


def _cell(row, runs=None):
    if row.get("setting") == "not run":
        return "not run"
    if row.get("setting") == "-" or pd.isna(row.get("recall_mean")):
        # '-' says no setting kept accuracy only where every planned run is there.
        return empty_cell(runs)
    cell = (f"{row['recall_mean']:.4f} ± {row['recall_std']:.4f} ({row['accuracy_mean']:.4f}); "
            f"prec {row['precision_mean']:.3f}; {seeds_text(row)}")
    if row["method"] != "CE" and not pd.isna(row.get("recall_gain")):
        if int(row["n_seeds"]) > 1:
            cell += f"; Δ {row['recall_gain']:+.4f} [{row['gain_ci_low']:+.4f}, {row['gain_ci_high']:+.4f}]"
        else:
            cell += f"; Δ {row['recall_gain']:+.4f} (one seed: no interval)"
    return cell


def _not_run_text(spec):
    return "; 'not run': the preset trains no setting of that method for that role" if not_run(spec) else ""


def _gap_text(mean, low, high, n, digits=3, points=False):
    """A gap with its interval (:func:`~camri_utils.stats.signed`: an end that rounds to zero gets
    the decimals its first digit needs, never ``-0.00``), or that its seeds agree exactly (a
    zero-width interval); "beyond the curve's end" where it is undefined."""
    if pd.isna(mean):
        return "beyond the curve's end"
    if points:  # hundredths, as the prose says them: one digit fewer
        mean, low, high, digits = 100 * mean, 100 * low, 100 * high, digits - 2
    text = stats.signed(mean, digits)
    if not pd.isna(low) and low == high:  # [x, x] would read as a bug; recall steps are coarse
        text += ", its seeds equal"
    elif not pd.isna(low):
        text += f" [{stats.signed(low, digits)}, {stats.signed(high, digits)}]"
    return text


def _past_end(n, n_defined):
    """What a recall cell rests on where some seeds lie past the curve's end: ``(n = 2, 3 seed(s)
    beyond the curve's end)``: its mean and Student-t interval are over those ``n_defined`` seeds
    only, so with two of them the interval is very wide (:func:`~camri_utils.stats.t_multiplier`)."""
    return f" (n = {int(n_defined)}, {int(n - n_defined)} seed(s) beyond the curve's end)"


def _count(value):
    """A count as a whole number (a table column holding NaN elsewhere turns counts into floats)."""
    return "?" if pd.isna(value) else str(int(value))


def comparison_cells(row, points=False):
    """One row of :func:`comparison_table` in words: recall at the same accuracy, accuracy at
    the same recall, precision at the same recall (the oracle: the test curve's best), and
    above/on/below counts. ``points``: the gaps in points (hundredths), accuracy with two
    decimals, recall and precision with one."""
    recall = _gap_text(row["recall_gap"], row["recall_gap_low"], row["recall_gap_high"], row["n_recall"], 3, points)
    if row["n_recall"] < row["n"] and row["n_recall"] > 0:
        recall += _past_end(row["n"], row["n_recall"])
    return (recall,
            _gap_text(row["accuracy_gap"], row["accuracy_gap_low"], row["accuracy_gap_high"], row["n"], 4, points),
            _gap_text(row["precision_gap"], row["precision_gap_low"], row["precision_gap_high"], row["n"], 3, points),
            f"{_count(row['above'])}/{_count(row['on'])}/{_count(row['below'])}")


def out_of_sample_cells(row, points=False):
    """One row of :func:`comparison_table` against the out-of-sample reference, in words:
    accuracy at the same validation recall (with where the setting's test recall lands against
    the reference's there), recall at the same validation accuracy, and precision; "no
    validation scores" where the records have none. ``points`` as in :func:`comparison_cells`."""
    if row.get("n_oos", 0) == 0:
        return ("no validation scores",) * 3
    accuracy = _gap_text(row["oos_accuracy_gap"], row["oos_accuracy_gap_low"], row["oos_accuracy_gap_high"],
                         row["n_oos"], 4, points)
    offset = 100 * row["oos_recall_offset"] if points else row["oos_recall_offset"]
    accuracy += f" (recall {stats.signed(offset, 1 if points else 3)})"
    recall = _gap_text(row["oos_recall_gap"], row["oos_recall_gap_low"], row["oos_recall_gap_high"],
                       row["n_oos_recall"], 3, points)
    if 0 < row["n_oos_recall"] < row["n_oos"]:
        recall += _past_end(row["n_oos"], row["n_oos_recall"])
    precision = _gap_text(row["oos_precision_gap"], row["oos_precision_gap_low"], row["oos_precision_gap_high"],
                          row["n_oos"], 3, points)
    return accuracy, recall, precision


def _comparison_markdown(comparison, sel, names):
    if comparison is None or comparison.empty:
        return []
    lines = ["", "## Against threshold moving (test split, paired by seed)", "",
             "Each setting against threshold moving on the same seed's reference model: **CE** (the practitioner's "
             "default) and the **control**, the same cosine head at the same scale without a margin (normalized "
             "softmax; only it isolates the margin, so only the margin methods have one). Two references per model: "
             "the **oracle**, the best point of the reference's exact test curve (a bias chosen on the test images: "
             "the upper bound of threshold moving), and the **out-of-sample** reference, the reference's bias chosen "
             "on its validation curve to reach the setting's validation recall (respectively accuracy), scored on "
             "test. Δacc: test accuracy beyond the reference at the same recall (out of sample: at the same "
             "validation recall, and in brackets where the setting's test recall lands against the reference's "
             "there); Δrecall: recall beyond it at the same accuracy (undefined, 'beyond the curve's end', where the "
             "setting is more accurate than the whole curve; 'n = 2, 3 seed(s) beyond the curve's end': the mean and "
             "interval rest on the 2 seeds where it is defined, hence wide); Δprec: precision at the same recall. Means with paired "
             "Student-t 95% intervals over seeds (5 seeds tell apart only large, consistent gaps); a/o/b: seeds "
             "above / on / below the oracle curve. **Verdict**, on accuracy at the same recall: *above* threshold "
             "moving only when above the oracle, *below* only when below the out-of-sample reference, otherwise "
             "*not told apart*. The chosen setting of each method is marked *.", ""]
    for role, c in sel.important.items():
        rows = comparison[comparison.role == role]
        if rows.empty:
            continue
        lines += [f"{role} = class {c}{' (' + names[c] + ')' if c in names else ''}:", "",
                  "| method | setting | reference | verdict | Δacc, oracle | Δacc, out of sample (recall) "
                  "| Δrecall, oracle | Δrecall, out of sample | Δprec, oracle | Δprec, out of sample | a/o/b |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows.itertuples():
            best = sel.chosen.get((r.method, role))
            star = "*" if best is not None and setting_key(best.params) == r.setting else ""
            reference = "CE" if r.reference == "CE" else "control"
            row = r._asdict()
            recall, accuracy, precision, seeds = comparison_cells(row)
            oos_accuracy, oos_recall, oos_precision = out_of_sample_cells(row)
            cells = [r.verdict, accuracy, oos_accuracy, recall, oos_recall, precision, oos_precision, seeds]
            lines.append(f"| {r.method}{star} | {setting_text(r.setting)} | {reference} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _posthoc_lines(records, roles):
    """What post-hoc logit adjustment amounts to for each important class: one bias on its
    logit where every other class is equally frequent (then it is a point of CE's threshold
    curve), or more than one threshold."""
    from camri_utils import imbalance

    taus = sorted({r["params"]["tau"] for r in records if r["method"] == "CE + logit adjustment"})
    counts = next((r["train_class_counts"] for r in records if r["method"] == "CE + logit adjustment"), None)
    if not taus:
        return []
    lines = []
    for role, c in roles.items():
        try:
            biases = ", ".join(f"tau {t:g}: {imbalance.equivalent_bias(counts, c, t):.4f}" for t in taus)
        except ValueError:
            lines.append(f"CE + logit adjustment ({role}): the classes other than {c} differ in training count, so "
                         "the adjustment moves more than one threshold: it is not a point of CE's threshold curve.")
            continue
        lines.append(f"CE + logit adjustment ({role}): with the training counts {counts}, subtracting tau·log(prior) "
                     f"is adding tau·log(n_other / n_{c}) to class {c}'s CE logit: a point of CE's threshold curve "
                     f"at the bias {biases}.")
    return [""] + lines


def _status_lines(status, diverged):
    lines = []
    if status:
        done = sum(d for d, _ in status.values())
        total = sum(t for _, t in status.values())
        if done < total:
            missing = ", ".join(f"{m}{'' if c is None else f' (class {c})'}: {t - d}"
                                for (m, c), (d, t) in status.items() if d < t)
            lines += [f"**Incomplete: {done} of {total} planned runs are recorded** (missing: {missing}). Cells "
                      "say how many seeds they rest on (n = 3 of 5); finish the run (every shard) and report again.",
                      ""]
    if diverged:
        lines += [f"{len(diverged)} run(s) diverged (non-finite loss or scores) and are left out of selection: "
                  + ", ".join(f"{r['method']} {setting_text(r['params'])} seed {r['seed']}" for r in diverged) + ".",
                  ""]
    return lines


def _validation_count(output, records):
    """How many validation images the runs were chosen on (from a shared run's stored labels)."""
    for r in records:
        if "validation" in r and r.get("important_class") is None and "source_run" not in r:
            try:
                return len(load_scores(output, r)["y_validation"])
            except (ProtocolError, KeyError):
                continue
    return None


def _split_sentence(sel, n_validation):
    if sel.split == "validation":
        size = f"{n_validation:,} images, " if n_validation else ""
        return (f"Everything was chosen on a validation split carved from the training set ({size}seeded and "
                "stratified): the class ranking, the threshold and the settings; the table reports test metrics.")
    return ("These records were made before the validation split existed: the ranking, the threshold and the "
            "settings were chosen on test metrics, so the chosen settings' test recall is optimistic.")


def _markdown(spec, sel, table, k, records, ignored, expected, n_validation=None, status=None, diverged=None,
              comparison=None):
    names = dict(enumerate(next((r["class_names"] for r in records if "class_names" in r), [])))
    roles = sel.important
    sources = sorted({r["data_source"]["kind"] + ": " + describe_location(r["data_source"]["location"])
                      + (f" ({r['data_source']['verified']})" if r["data_source"].get("verified") else "")
                      for r in records})
    versions = sorted({r["environment"]["camri_utils"] for r in records})
    split = "validation" if sel.split == "validation" else "test"
    schedule = "" if spec.lr_schedule == "constant" else f" with {spec.lr_schedule} decay"
    head = [f"# Protocol results: {spec.dataset}, profile `{spec.profile}`", "", *_status_lines(status, diverged),
            f"Data: {'; '.join(sources)}. Setup: {spec.note}. Model `{spec.model}`, {spec.epochs} epoch(s), "
            f"batch {spec.batch_size}, Adam {spec.learning_rate:g}{schedule}, seeds {spec.seeds}. "
            f"camri_utils {', '.join(versions)}. {margin_policy(spec)}.",
            "",
            f"Important classes, from the mean CE {split} recall over {len(sel.ce)} seed{'' if len(sel.ce) == 1 else 's'}: "
            + ", ".join(f"{role} = class {c}{' (' + names[c] + ')' if c in names else ''}" for role, c in roles.items()) + ".",
            "",
            f"Selection rule: a setting maintains accuracy when its mean {split} accuracy is at least the CE mean "
            f"minus {k:g} CE standard deviation(s) (threshold {sel.threshold:.4f}); among those, the highest mean "
            f"{split} recall of the important class. '-': no setting maintained accuracy{_not_run_text(spec)}. {_split_sentence(sel, n_validation)}",
            "",
            "Each cell: test recall of the important class, mean ± std over seeds (mean test accuracy); precision of "
            "the important class; n = number of seeds; Δ = mean paired (same seed) recall gain over CE with a "
            "Student-t 95% interval over seeds. Threshold rows: one bias for all seeds, chosen by the same rule on "
            "the exact validation curves.",
            "",
            "| method | " + " | ".join(roles) + " |", "| --- |" + " --- |" * len(roles)]
    for method in table_methods(records, expected):
        cells = [_cell(table[(table.method == method) & (table.role == role)].iloc[0].to_dict(),
                       cell_runs(status, method, roles[role])) for role in roles]
        head.append(f"| {method} | " + " | ".join(cells) + " |")
    chosen = [r for r in table.itertuples() if r.method != "CE" and r.setting not in ("", "-", "not run")]
    biased = any("bias" in json.loads(r.setting) for r in chosen)
    head += ["", "Chosen settings: " + "; ".join(f"{r.method} {r.role}: {setting_text(r.setting)}" for r in chosen)
             + "." + (" Bias: added to the important class's logit after training (for normalized softmax "
                      "the logit is s·cos θ)." if biased else "")]
    head += _posthoc_lines(records, roles)
    head += _comparison_markdown(comparison, sel, names)
    if ignored:
        head += ["", f"{ignored} record(s) in the folder are not part of this protocol's plan (another ranking, "
                     "configuration or data source) and were left out."]
    return "\n".join(head) + "\n"

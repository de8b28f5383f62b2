"""The protocol's table, in the layout of the paper's Table 1, from a results folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from camri_utils.data import describe_location
from camri_utils.io import write_text
from camri_utils.protocol.runner import plan
from camri_utils.protocol.selection import rank_classes, select, table_methods, threshold_records
from camri_utils.protocol.spec import ProtocolSpec, margin_policy
from camri_utils.protocol.store import ProtocolError, load_records, load_scores, read_spec

__all__ = ["Summary", "summarize", "report", "current_records", "spec_methods", "setting_text", "convergence",
           "threshold_curve_recall", "gap_to_threshold"]


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


def current_records(spec, data_kind, records):
    """The records this protocol's plan asks for, and how many others the folder holds (left
    from another ranking, configuration or data source: never pooled into the table)."""
    by_id = {r["run_id"]: r for r in records}
    shared = [by_id[p.run_id] for p in plan(spec, data_kind) if p.run_id in by_id]
    ce = [r for r in shared if r["method"] == "CE"]
    specific = []
    if ce:
        specific = [by_id[p.run_id] for p in plan(spec, data_kind, rank_classes(ce)[1].values()) if p.run_id in by_id]
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


def threshold_curve_recall(accuracy, recall, bias, target):
    """The recall that moving the threshold reaches at accuracy ``target``: along the curve of
    one run (its points ordered by bias), linear interpolation where the accuracy crosses
    ``target`` (the highest recall if it crosses more than once); a target above every point's
    accuracy gets the recall of the most accurate point."""
    order = np.argsort(bias)
    acc, rec = np.asarray(accuracy, float)[order], np.asarray(recall, float)[order]
    if len(acc) == 0:
        raise ValueError("the threshold curve has no points.")
    found = [rec[i] for i in range(len(acc)) if acc[i] == target]
    for i in range(len(acc) - 1):
        a0, a1 = acc[i], acc[i + 1]
        if min(a0, a1) < target < max(a0, a1):
            found.append(rec[i] + (target - a0) / (a1 - a0) * (rec[i + 1] - rec[i]))
    if found:
        return float(max(found))
    if target > acc.max():
        return float(rec[np.argmax(acc)])
    return float(rec.max())  # every point is more accurate than the target


def gap_to_threshold(frame, role, method, setting, baseline="CE + threshold", x="accuracy", y="recall"):
    """Per seed, how much more ``y`` (recall of the important class) a method's ``setting``
    gets than moving the threshold of the same seed's ``baseline`` run gets at the same ``x``
    (accuracy): positive = better than the free post-hoc alternative. ``frame`` is
    :func:`~camri_utils.protocol.records_frame` of records that include the threshold ones.
    Returns a frame indexed by seed, with the mean gap and its 95% bootstrap interval over
    seeds in ``.attrs``."""
    rows = frame[(frame.role == role) & (frame.method == method) & (frame.setting == setting)]
    curve = frame[(frame.role == role) & (frame.method == baseline)]
    if rows.empty or curve.empty:
        raise ValueError(f"no {method} runs with setting {setting!r} or no {baseline} curve for role {role!r}.")
    out = []
    for r in rows.itertuples():
        mine = curve[curve.seed == r.seed]
        if mine.empty:
            continue
        bias = [json.loads(s)["bias"] for s in mine.setting]
        reached = threshold_curve_recall(mine[x], mine[y], bias, getattr(r, x))
        out.append({"seed": r.seed, x: getattr(r, x), y: getattr(r, y), "threshold_" + y: reached,
                    "gap": getattr(r, y) - reached})
    table = pd.DataFrame(out).set_index("seed").sort_index()
    low, high = _paired_bootstrap(table.gap, np.random.default_rng(0))
    table.attrs.update(mean=float(table.gap.mean()), ci_low=low, ci_high=high)
    return table


def spec_methods(spec):
    """The method labels ``spec`` asks for (a method with an empty grid is not part of it)."""
    grids = {"CE": [0], "CAMRI": spec.camri_grid, "ArcFace": spec.arcface_grid, "NormSoftmax": spec.normsoftmax_grid,
             "WCE": spec.wce_weights, "CRWWCE": spec.crwwce_weights}
    labels = [label for label, grid in grids.items() if grid]
    if spec.threshold_biases and spec.validation_size is not None:
        labels += ["CE + threshold"] + (["NormSoftmax + threshold"] if spec.normsoftmax_grid else [])
    return labels


def _paired_bootstrap(diffs, rng, n=2000):
    diffs = np.asarray(diffs, float)
    if len(diffs) < 2:
        return float("nan"), float("nan")
    means = rng.choice(diffs, size=(n, len(diffs)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _table(sel, records, expected):
    rng = np.random.default_rng(0)
    ce_by_seed = {r["seed"]: r for r in sel.ce}
    rows = []
    for method in table_methods(records, expected):
        for role, c in sel.important.items():
            if method == "CE":
                runs, params = sel.ce, {}
            else:
                best = sel.chosen[(method, role)]
                if best is None:
                    rows.append({"method": method, "role": role, "class": c, "setting": "-", "n_seeds": 0})
                    continue
                runs, params = best.runs, best.params
            rec = np.array([r["recall"][c] for r in runs])
            acc = np.array([r["accuracy"] for r in runs])
            prec = np.array([r["precision"][c] for r in runs])
            row = {"method": method, "role": role, "class": c, "setting": json.dumps(params) if params else "",
                   "n_seeds": len(runs), "recall_mean": rec.mean(), "recall_std": _std(rec),
                   "accuracy_mean": acc.mean(), "accuracy_std": _std(acc), "precision_mean": prec.mean()}
            if method != "CE":
                diffs = [r["recall"][c] - ce_by_seed[r["seed"]]["recall"][c] for r in runs if r["seed"] in ce_by_seed]
                row["recall_gain"] = float(np.mean(diffs)) if diffs else float("nan")
                row["gain_ci_low"], row["gain_ci_high"] = _paired_bootstrap(diffs, rng)
            rows.append(row)
    return pd.DataFrame(rows)


def summarize(output, accuracy_k=None):
    """Read the records under ``output`` and build the table, without writing anything."""
    output = Path(output)
    spec, data_kind = read_spec(output)
    k = spec.accuracy_k if accuracy_k is None else accuracy_k
    ProtocolSpec.from_dict({**spec.to_dict(), "accuracy_k": k})  # checks k
    records, ignored = load_records(output), 0
    if data_kind is not None:  # schema 2: only this plan's records, plus the post-hoc baseline
        records, ignored = current_records(spec, data_kind, records)
        ce = [r for r in records if r["method"] == "CE"]
        if ce and spec.threshold_biases:
            classes = rank_classes(ce)[1].values()
            records = records + threshold_records(records, classes, spec.threshold_biases,
                                                  partial(load_scores, output))
    expected = spec_methods(spec)
    sel = select(records, k, expected)
    table = _table(sel, records, expected)
    n_validation = _validation_count(output, records) if data_kind is not None else None
    markdown = _markdown(spec, sel, table, k, records, ignored, expected, n_validation)
    return Summary(spec, records, sel, table, markdown, k, ignored)


def report(output, accuracy_k=None):
    """Merge the records under ``output`` into the table; write ``summary.csv`` and
    ``summary.md`` there and return the Markdown text."""
    summary = summarize(output, accuracy_k)
    write_text(Path(output) / "summary.csv", summary.table.to_csv(index=False, float_format="%.4f"))
    write_text(Path(output) / "summary.md", summary.markdown)
    return summary.markdown


def setting_text(params):
    """A setting in words: ``m = 4π/64, s = 16`` (margins as multiples of π/64 where they are
    one, as the paper writes them), ``weight 2``, ``bias 1.5``; '' for none."""
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
        else:
            parts.append(f"{key} {value:g}")
    return ", ".join(parts)


def _cell(row):
    if row.get("setting") == "-" or pd.isna(row.get("recall_mean")):
        return "-"
    cell = (f"{row['recall_mean']:.4f} ± {row['recall_std']:.4f} ({row['accuracy_mean']:.4f}); "
            f"prec {row['precision_mean']:.3f}; n={int(row['n_seeds'])}")
    if row["method"] != "CE" and not pd.isna(row.get("recall_gain")):
        if int(row["n_seeds"]) > 1:
            cell += f"; Δ {row['recall_gain']:+.4f} [{row['gain_ci_low']:+.4f}, {row['gain_ci_high']:+.4f}]"
        else:
            cell += f"; Δ {row['recall_gain']:+.4f} (one seed: no interval)"
    return cell


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


def _markdown(spec, sel, table, k, records, ignored, expected, n_validation=None):
    names = dict(enumerate(next((r["class_names"] for r in records if "class_names" in r), [])))
    roles = sel.important
    sources = sorted({r["data_source"]["kind"] + ": " + describe_location(r["data_source"]["location"])
                      for r in records})
    versions = sorted({r["environment"]["camri_utils"] for r in records})
    split = "validation" if sel.split == "validation" else "test"
    schedule = "" if spec.lr_schedule == "constant" else f" with {spec.lr_schedule} decay"
    head = [f"# Protocol results: {spec.dataset}, profile `{spec.profile}`", "",
            f"Data: {'; '.join(sources)}. Setup: {spec.note}. Model `{spec.model}`, {spec.epochs} epoch(s), "
            f"batch {spec.batch_size}, Adam {spec.learning_rate:g}{schedule}, seeds {spec.seeds}. "
            f"camri_utils {', '.join(versions)}. {margin_policy(spec)}.",
            "",
            f"Important classes, from the mean CE {split} recall over {len(sel.ce)} seed{'' if len(sel.ce) == 1 else 's'}: "
            + ", ".join(f"{role} = class {c}{' (' + names[c] + ')' if c in names else ''}" for role, c in roles.items()) + ".",
            "",
            f"Selection rule: a setting maintains accuracy when its mean {split} accuracy is at least the CE mean "
            f"minus {k:g} CE standard deviation(s) (threshold {sel.threshold:.4f}); among those, the highest mean "
            f"{split} recall of the important class. '-': no setting maintained accuracy. {_split_sentence(sel, n_validation)}",
            "",
            "Each cell: test recall of the important class, mean ± std over seeds (mean test accuracy); precision of "
            "the important class; n = number of seeds; Δ = mean paired (same seed) recall gain over CE with a 95% "
            "bootstrap interval over seeds.",
            "",
            "| method | " + " | ".join(roles) + " |", "| --- |" + " --- |" * len(roles)]
    for method in table_methods(records, expected):
        cells = [_cell(table[(table.method == method) & (table.role == role)].iloc[0].to_dict()) for role in roles]
        head.append(f"| {method} | " + " | ".join(cells) + " |")
    head += ["", "Chosen settings: " + "; ".join(
        f"{r.method} {r.role}: {setting_text(r.setting)}" for r in table.itertuples()
        if r.method != "CE" and r.setting not in ("", "-")) + "."]
    if ignored:
        head += ["", f"{ignored} record(s) in the folder are not part of this protocol's plan (another ranking, "
                     "configuration or data source) and were left out."]
    return "\n".join(head) + "\n"

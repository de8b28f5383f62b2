"""Choosing on validation data: the class ranking, the accuracy-maintaining rule, the best
setting of each method, and the post-hoc threshold-moving baseline.

The rule (the paper does not publish its own): a setting *maintains accuracy* when its mean
validation accuracy is at least the CE mean minus ``k`` CE standard deviations; among those,
the one with the highest mean validation recall of the important class wins (ties: higher
mean accuracy, then grid order). Records made before the validation split (schema 1) carry
test metrics only, and are selected on those; the report says which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from camri_utils import methods, metrics, stats
from camri_utils.protocol.spec import ROLES, ProtocolError

__all__ = ["ROLES", "selection_metrics", "selected_on", "rank_classes", "setting_key", "Choice", "Selection",
           "accuracy_threshold", "select", "threshold_records", "posthoc_records", "variant_label", "score_scale",
           "records_frame", "table_methods"]

# Table order: the margin methods, the control, the post-hoc baselines, the re-weighting and
# prior-adjusting ones, CE.
_ORDER = ("CAMRI", "ArcFace", "LDAM", "LDAM-DRW", "NormSoftmax", "CE + threshold", "CE + logit adjustment",
          "NormSoftmax + threshold", "Logit-adjusted CE", "CRWWCE", "WCE", "CE")


def variant_label(record):
    """The row a record belongs to: its method's label, except that LDAM trained with deferred
    re-weighting (a ``drw_start_epoch`` in its setting) is its own row, "LDAM-DRW", as the
    long-tail literature reports it."""
    if record["method"] == "LDAM" and "drw_start_epoch" in (record.get("params") or {}):
        return "LDAM-DRW"
    return record["method"]


def selection_metrics(record):
    """The metrics a record is chosen on: its validation metrics, or its test metrics for
    records made before the validation split."""
    return record.get("validation") or record


def selected_on(records):
    return "validation" if records and all("validation" in r for r in records) else "test"


def rank_classes(ce_records):
    """Classes by mean CE recall on the selection split, worst first (ties: lower index
    first), and the important classes the paper uses: worst1, worst2 and the median."""
    recalls = np.array([selection_metrics(r)["recall"] for r in ce_records], dtype=float)
    mean = recalls.mean(axis=0)
    order = sorted(range(len(mean)), key=lambda c: (round(mean[c], 12), c))
    return order, {"worst1": order[0], "worst2": order[1], "median": order[(len(order) - 1) // 2]}


def setting_key(params):
    """The text that names one setting of a method: the ``setting`` of :func:`records_frame`."""
    return json.dumps(params, sort_keys=True)


@dataclass
class Choice:
    """The chosen setting of one method for one important class, and its runs."""

    params: dict
    runs: list
    recall_mean: float  # on the selection split
    accuracy_mean: float


@dataclass
class Selection:
    chosen: dict  # {(method label, role): Choice or None}
    ce: list  # the CE records
    important: dict  # {role: class}
    ranking: list  # classes, worst first
    threshold: float  # the accuracy a setting must keep (selection split)
    split: str  # "validation" or "test": what the choices were made on


def _belongs(record, role, c):
    """Is ``record`` compared for the important class ``c`` (in ``role``)?"""
    if record["method"] == "CE":
        return True
    if "role" in record:  # schema 1: every method was trained once per role
        return record["role"] == role
    return not methods.by_label(record["method"]).class_specific or record.get("important_class") == c


def table_methods(records, expected=()):
    """The method labels present in ``records`` or ``expected``, in table order."""
    present = {r["method"] for r in records} | set(expected)
    return [m for m in _ORDER if m in present] + sorted(present - set(_ORDER))


def accuracy_threshold(ce_records, accuracy_k=1.0):
    """The accuracy a setting must keep: the mean CE accuracy on the selection split minus
    ``accuracy_k`` CE standard deviations."""
    if not ce_records:
        raise ProtocolError("no CE records: the CE runs have not run yet.")
    ce_acc = np.array([selection_metrics(r)["accuracy"] for r in ce_records])
    return float(ce_acc.mean() - accuracy_k * stats.seed_std(ce_acc))


def select(records, accuracy_k=1.0, expected=(), important=None):
    """The chosen setting of every method for each important class (see the module doc); a
    method of ``expected`` without records gets None, as one whose settings all lose accuracy.
    ``important`` ({role: class}) fixes the important classes (the rare-class setting's
    ``{"rare": c}``) instead of the CE ranking's worst1, worst2 and median."""
    ce = [r for r in records if r["method"] == "CE"]
    threshold = accuracy_threshold(ce, accuracy_k)
    order, ranked = rank_classes(ce)
    important = important or ranked
    chosen = {}
    for role, c in important.items():
        for label in table_methods(records, expected):
            if label == "CE":
                continue
            settings = {}
            for r in (r for r in records if r["method"] == label and _belongs(r, role, c)):  # grid order
                settings.setdefault(setting_key(r["params"]), []).append(r)
            best = None
            for key, runs in settings.items():
                seeds = [r["seed"] for r in runs]
                if len(set(seeds)) != len(seeds):
                    twice = sorted({s for s in seeds if seeds.count(s) > 1})
                    files = ", ".join(f"{r['run_id']}.json" for r in runs if r["seed"] in twice and "run_id" in r)
                    raise ProtocolError(f"{label} {key} for class {c} has two records of seed {twice[0]}"
                                        + (f" ({files})" if files else "") + ": stale or copied records in the "
                                        "folder's runs/; remove one of each pair (with its .npz), or pass its run id "
                                        "to --rerun.")
                acc = float(np.mean([selection_metrics(r)["accuracy"] for r in runs]))
                rec = float(np.mean([selection_metrics(r)["recall"][c] for r in runs]))
                if acc < threshold:
                    continue
                if best is None or (rec, acc) > (best.recall_mean, best.accuracy_mean):
                    best = Choice(json.loads(key), runs, rec, acc)
            chosen[(label, role)] = best
    return Selection(chosen, ce, important, order, float(threshold), selected_on(records))


def _moved(scores, y, c, bias, n_classes):
    shifted = scores.copy()
    shifted[:, c] += bias
    return metrics.split_metrics(y, shifted, n_classes)


THRESHOLD_SOURCES = {"CE": "CE + threshold", "NormSoftmax": "NormSoftmax + threshold"}


def score_scale(record):
    """What a run's stored scores are multiplied by to be logits: the scale of a cosine head
    trained without a margin (normalized softmax), 1 for a dense head's logits."""
    return float(record["params"].get("scale", 1.0)) if record["method"] == "NormSoftmax" else 1.0


def threshold_records(records, classes, threshold, load_scores):
    """Post-hoc threshold moving, as records, chosen exactly: for CE and for normalized softmax
    at each scale, and each class ``c``, the one bias (shared by the seeds, as a trained
    setting is) that the protocol's rule picks on the exact validation curves
    (:func:`~camri_utils.protocol.curves.choose_bias`: mean validation accuracy at least
    ``threshold``, then the highest mean validation recall), and per seed the metrics of the
    argmax after adding it to ``c``'s logit (for normalized softmax, ``s * cos``). A source
    where no bias keeps the threshold gives no records. ``load_scores(record)`` returns the
    run's stored scores. Costs no training."""
    from camri_utils.protocol import curves

    groups = {}
    for r in records:
        if r["method"] in THRESHOLD_SOURCES and "validation" in r:
            groups.setdefault((r["method"], score_scale(r)), []).append(r)
    out = []
    for (method, scale), runs in groups.items():
        stored = {r["run_id"]: load_scores(r) for r in runs}
        n = len(runs[0]["recall"])
        for c in dict.fromkeys(classes):
            if not all((stored[r["run_id"]]["y_validation"] == c).any() for r in runs):
                continue  # a split without the class (a tiny fixture): its recall, and so the curve, is undefined
            val = [curves.threshold_curve(stored[r["run_id"]]["validation"], stored[r["run_id"]]["y_validation"], c,
                                          scale) for r in runs]
            chosen = curves.choose_bias(val, threshold)
            if chosen is None:
                continue
            b = chosen[0]
            params = {"bias": b} if method == "CE" else {"scale": scale, "bias": b}
            for r in runs:
                s = stored[r["run_id"]]
                out.append({"method": THRESHOLD_SOURCES[method], "run_id": f"{r['run_id']}+{c}+{b:.6g}",
                            "source_run": r["run_id"], "important_class": c, "params": params, "seed": r["seed"],
                            **_moved(scale * s["test"], s["y_test"], c, b, n),
                            "validation": _moved(scale * s["validation"], s["y_validation"], c, b, n),
                            "data_source": r["data_source"], "environment": r["environment"]})
    return out


def posthoc_records(records, taus, load_scores):
    """Post-hoc logit adjustment (Menon et al., 2021) of every CE run, as records, one per
    ``tau``: the argmax of ``z_j - tau * log(prior_j)`` on the run's stored test and validation
    logits, the prior being the run's ``train_class_counts``
    (:func:`camri_utils.imbalance.posthoc_logit_adjustment`; with one rare class among equally
    frequent ones, CE + threshold at :func:`~camri_utils.imbalance.equivalent_bias`). A CE run
    without recorded class counts (made before the rare-class setting) gives none. Costs no
    training."""
    from camri_utils import imbalance

    out = []
    for r in records:
        if r["method"] != "CE" or "source_run" in r or not r.get("train_class_counts"):
            continue
        s = load_scores(r)
        counts, n = r["train_class_counts"], len(r["recall"])
        for tau in taus:
            moved = {split: imbalance.posthoc_logit_adjustment(s[split], counts, tau).argmax(axis=1)
                     for split in ("test", "validation") if split in s}
            record = {"method": "CE + logit adjustment", "run_id": f"{r['run_id']}+tau{tau:g}",
                      "source_run": r["run_id"], "important_class": None, "params": {"tau": float(tau)},
                      "seed": r["seed"], **metrics.split_metrics(s["y_test"], moved["test"], n),
                      "train_class_counts": counts, "data_source": r["data_source"], "environment": r["environment"]}
            if "validation" in moved:
                record["validation"] = metrics.split_metrics(s["y_validation"], moved["validation"], n)
            out.append(record)
    return out


def records_frame(records, important=None):
    """One row per run and role it is compared in: method, role, important class, setting
    (JSON), seed, test accuracy, the important class's test recall and precision, and the
    same on the selection split (``sel_accuracy``, ``sel_recall``)."""
    ce = [r for r in records if r["method"] == "CE"]
    important = important or (rank_classes(ce)[1] if ce else {})
    rows = []
    for r in records:
        for role, c in important.items():
            if not _belongs(r, role, c):
                continue
            sel = selection_metrics(r)
            rows.append({"method": r["method"], "role": role, "important_class": c,
                         "setting": setting_key(r["params"]) if r["params"] else "", "seed": r["seed"],
                         "accuracy": r["accuracy"], "recall": r["recall"][c], "precision": r["precision"][c],
                         "sel_accuracy": sel["accuracy"], "sel_recall": sel["recall"][c]})
    columns = ["method", "role", "important_class", "setting", "seed", "accuracy", "recall", "precision",
               "sel_accuracy", "sel_recall"]
    return pd.DataFrame(rows, columns=columns)

"""Part III's stored protocol runs as its chapters show them: the paper's Table 1 beside ours,
the book's question answered in computed verdict lines, and the important class's confusions
and angles, all read from a results folder of ``camri protocol`` (chapters 10 and 11; chapter 7
reads Fashion-MNIST's folder the same way, with :func:`camri_utils.protocol.summarize`).

In a chapter::

    from camri_utils import replication
    summary = replication.summarize(folder, "cifar10")     # refuses another dataset's folder
    replication.table_1(summary)                           # the paper's rows and ours, Table 1's layout
    for line in replication.verdict_lines(summary):        # every chosen setting against threshold moving
        print(line)
    print(replication.fashion_mnist_answer(summary))       # does chapter 7's answer hold here?
    replication.confusions(summary, "worst1")              # CE, the control, CAMRI's chosen setting
    replication.angle_summary(summary, folder, "worst1")

The paper's numbers live here once (:data:`PAPER_TABLE_1`, the IJCNN 2022 poster's Table 1),
never typed into a chapter. Where a comparison is undefined (no setting kept accuracy, a run not
in the preset, a control that does not exist, one seed and so no interval) the text says so;
no substitute value is ever shown.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from camri_utils import angles, stats
from camri_utils.protocol import (ROLES, ProtocolError, comparison_cells, out_of_sample_cells, preset, setting_key,
                                  setting_text)
from camri_utils.protocol import summarize as _summarize
from camri_utils.protocol.report import cell_runs, empty_cell, empty_reason, seeds_text

__all__ = ["PAPER_TABLE_1", "PAPER_LABEL", "PAPER_METHODS", "PAPER_EPOCHS", "DATASET_NAMES", "ours_label", "summarize",
           "not_recorded_text", "PARAMETERS", "network_frame", "network_cells", "network_lines",
           "paper_network_on_cpu", "short_sources", "sources_text", "progress_text", "partial_choice_lines",
           "CE_ACCURACY_TARGET", "NOISE_FOLDER", "eval_noise", "baseline_check", "paper_cell", "paper_table",
           "table_1", "gain_table", "gain_lines", "tradeoff", "VERDICT_METHODS", "verdicts", "verdict_lines",
           "fashion_mnist_answer", "compared_runs", "confusion_frame", "confusions", "angle_measures",
           "angle_summary", "class_angles", "angle_verdicts"]

# The poster's Table 1 (reference/camri-poster-ijcnn2022.pdf; DESIGN.md quotes it): the mean
# over ten trials of the important class's recall and, where the poster prints it, the accuracy.
# None: "-" in the poster, no setting of the method kept the accuracy.
PAPER_TABLE_1 = {
    "cifar10": {
        "CAMRI": {"worst1": (.7919, .8821), "worst2": (.8505, .8821), "median": (.9171, .8798)},
        "ArcFace": {"worst1": (.7656, .8805), "worst2": (.8427, .8797), "median": (.9109, .8805)},
        "CRWWCE": {"worst1": None, "worst2": None, "median": None},
        "WCE": {"worst1": (.8023, .8797), "worst2": None, "median": None},
        "CE": {"worst1": (.7383, None), "worst2": (.8342, None), "median": (.8886, .8796)},
    },
    "gtsrb": {
        "CAMRI": {"worst1": (.8353, .9801), "worst2": (.9600, .9842), "median": (.9952, .9812)},
        "ArcFace": {"worst1": (.8080, .9806), "worst2": (.9416, .9823), "median": (.9938, .9819)},
        "CRWWCE": {"worst1": (.7966, .9809), "worst2": (.9233, .9808), "median": None},
        "WCE": {"worst1": (.8293, .9807), "worst2": (.945, .9814), "median": None},
        "CE": {"worst1": (.7600, None), "worst2": (.8700, None), "median": (.9896, .9800)},
    },
    "awa2": {
        "CAMRI": {"worst1": (.1296, .6671), "worst2": (.2385, .6639), "median": (.6457, .6558)},
        "ArcFace": {"worst1": (.1018, .6660), "worst2": (.1877, .6660), "median": (.6123, .6767)},
        "CRWWCE": {"worst1": None, "worst2": None, "median": None},
        "WCE": {"worst1": None, "worst2": None, "median": None},
        "CE": {"worst1": (.1185, None), "worst2": (.1456, None), "median": (.5599, .6514)},
    },
}
PAPER_METHODS = ("CAMRI", "ArcFace", "CRWWCE", "WCE", "CE")
# The paper's training epochs per dataset, where it states them: 300 on CIFAR-10 (the authors'
# code); neither the poster nor the code states them for GTSRB or AwA2.
PAPER_EPOCHS = {"cifar10": 300}
PAPER_NETWORK = "paper_cnn"  # the authors' 13-convolution CNN (camri_utils.models.paper_cnn)
PAPER_TRIALS = 10
PAPER_LABEL = "paper (IJCNN 2022 poster, 10 trials, the authors' CNN)"
DATASET_NAMES = {"cifar10": "CIFAR-10", "gtsrb": "GTSRB", "awa2": "AwA2"}
_NETWORKS = {"cpu": "CPU-scale network", "full": "the authors' CNN"}


def ours_label(spec):
    """The row label of this book's numbers: ``this book (CPU-scale network, 5 seeds)`` (the
    planned seeds; a cell resting on fewer says so)."""
    network = _NETWORKS.get(spec.profile, f"{spec.profile} profile, {spec.model}: not a result")
    n = len(spec.seeds)
    return f"this book ({network}, {n} seed{'' if n == 1 else 's'})"


def _check_dataset(spec, dataset, where):
    if dataset not in PAPER_TABLE_1:
        raise ValueError(f"dataset must be one of {sorted(PAPER_TABLE_1)} (the datasets of the paper's Table 1); "
                         f"got {dataset!r}.")
    if spec.dataset != dataset:
        raise ProtocolError(f"{where} holds a protocol run on {spec.dataset!r}, not on {dataset!r}: pass the "
                            f"folder of the {DATASET_NAMES[dataset]} run (results/{dataset}-cpu).")
    if spec.important_class is not None:
        raise ProtocolError(f"{where} fixes the important class (a rare-class run): the paper's Table 1 ranks the "
                            "classes by CE recall (worst1, worst2, median).")


def summarize(folder, dataset, accuracy_k=None):
    """:func:`camri_utils.protocol.summarize` of ``folder``, refused (``ProtocolError`` naming
    the folder) unless it holds a ranked protocol run on ``dataset``, one of the paper's."""
    from camri_utils.protocol import read_spec

    spec, _ = read_spec(folder)
    _check_dataset(spec, dataset, folder)
    return _summarize(folder, accuracy_k)


def not_recorded_text(dataset, results_dir):
    """One paragraph (Markdown) for a chapter with no folder ``results_dir`` of its dataset's
    CPU-scale run: that it is not recorded (yet), the command that makes it and how long the
    paper's network would take in its place (:func:`paper_network_on_cpu` of the CPU preset); for
    AwA2, that none is stored and why."""
    if dataset not in PAPER_TABLE_1:
        raise ValueError(f"dataset must be one of {sorted(PAPER_TABLE_1)}; got {dataset!r}.")
    name = DATASET_NAMES[dataset]
    if dataset == "awa2":
        return (f"**No run of this book is stored for {name}.** Its images (the official 13 GB zip) cannot be "
                "obtained on the machines this book is built on, so nothing was trained on them here; the loader is "
                f"tested only on fixtures (tiny made-up datasets in {name}'s real file format). The paper's numbers below stand "
                f"alone. With the data and a GPU, `camri protocol --dataset {dataset} --profile full --output "
                f"results/{dataset}` runs the paper's protocol (its cost: the last section).")
    return (f"**The CPU-scale run of {name} has not been recorded yet** (this version of the book holds no "
            f"`{results_dir}`); the tables and figures of this section appear when the chapter is run again once it "
            f"is. The run: `camri protocol --dataset {dataset} --profile cpu --data-dir <the {name} images> "
            f"--output {results_dir}` (on two CPU cores add `--workers 2 --threads-per-worker 1`); the same command "
            "resumes it where it stopped. Until then the paper's numbers below stand alone. "
            + paper_network_on_cpu(preset(dataset, "cpu")))


PARAMETERS = ("parameters, cosine head", "parameters, CE's dense head")


def network_frame(spec):
    """The network of the protocol run ``spec`` beside the paper's (:data:`PAPER_NETWORK`), both
    built for the run's images and classes: parameters with each head the runs use
    (:data:`PARAMETERS`: the cosine head of normalized softmax, CAMRI and ArcFace, no bias; CE's
    dense head, one bias per class more), forward FLOPs per image (counted from the layers,
    :func:`camri_utils.cost.forward_flops`), epochs (the paper's: :data:`PAPER_EPOCHS`, 'not
    stated' where it states none) and trials per setting. One row each, labelled as in
    :func:`table_1`; numbers (:func:`network_cells` writes them for a page)."""
    import keras

    from camri_utils import cost, models

    size = spec.dataset_options.get("size", 32)
    n_classes = cost.N_CLASSES[spec.dataset]
    rows = {}
    for label, name, dim, epochs, trials in (
            (ours_label(spec), spec.model, spec.feature_dim, spec.epochs, len(spec.seeds)),
            (PAPER_LABEL, PAPER_NETWORK, None, PAPER_EPOCHS.get(spec.dataset, "not stated"), PAPER_TRIALS)):
        cosine = models.build(name, (size, size, 3), n_classes, feature_dim=dim)
        dense = models.build(name, (size, size, 3), n_classes, head="dense", feature_dim=dim)
        rows[label] = {"network": name, PARAMETERS[0]: cosine.count_params(), PARAMETERS[1]: dense.count_params(),
                       "forward MFLOP per image": cost.forward_flops(cosine) / 1e6, "epochs": epochs,
                       "trials": trials}
    keras.backend.clear_session()
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "source"
    return frame


def network_cells(frame):
    """:func:`network_frame` written for a page: parameters with thousands separators
    (``357,984``), MFLOP with one decimal."""
    out = frame.copy()
    for column in PARAMETERS:
        out[column] = [f"{int(v):,}" for v in frame[column]]
    out["forward MFLOP per image"] = [f"{v:,.1f}" for v in frame["forward MFLOP per image"]]
    return out


def network_lines(frame, spec):
    """What :func:`network_frame` means for the run ``spec``, in two sentences: how many times
    the FLOPs per image of ours the paper's network costs, and how long it would train on this
    project's CPU (:func:`paper_network_on_cpu`)."""
    flops = frame["forward MFLOP per image"].to_numpy()
    return [f"The paper's network costs {flops[1] / flops[0]:.0f} times the FLOPs per image of ours.",
            paper_network_on_cpu(spec)]


def paper_network_on_cpu(spec):
    """One sentence: how long the paper's network (:data:`PAPER_NETWORK`) would train on this
    project's 2-core CPU in place of the network of the protocol run ``spec``: one epoch (its
    training images and the validation pass) and all the run's planned trainings at its epochs,
    from the FLOPs counted from the network's layers (:func:`camri_utils.cost.protocol_estimate`)
    at the FLOP rate measured for its training step (``benchmarks/RESULTS.md``,
    :func:`camri_utils.cost.measured_cpu_rate`: the rate the chapters' Colab cost cell uses);
    where that measurement cannot be had, that it cannot."""
    import dataclasses

    from camri_utils import cost

    try:
        cpu = cost.measured_cpu_rate()
    except (OSError, ValueError) as exc:
        return f"How long the paper's network would train on the CPU is not known here: {exc}"
    paper = cost.protocol_estimate(dataclasses.replace(spec, model=PAPER_NETWORK, feature_dim=None))
    rate = cpu["flops_per_s"]
    return (f"At the speed measured for the paper's training step on {cpu['machine']} ({rate / 1e9:.0f} "
            f"GFLOP/s, {cpu['date']}, benchmarks/RESULTS.md), one epoch of the paper's network "
            f"({paper.train_images:,} training images, {paper.eval_images:,} validated) would take about "
            f"{_duration(paper.epoch_flops / rate)} there, and the {paper.runs} planned trainings of {paper.epochs} "
            f"epoch{'' if paper.epochs == 1 else 's'} about {_duration(paper.total_flops / rate)}.")


def _duration(seconds):
    """``19 minutes``, ``7 hours``, ``17 days``: the unit that keeps the number at least 2."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} seconds"


SHORT_SOURCES = ("paper", "this book")


def short_sources(frame, spec=None):
    """``frame`` (indexed by source, or with an index level named ``source``: :func:`table_1`,
    :func:`paper_table`, :func:`network_frame`) with the sources' labels shortened to 'paper'
    and 'this book', for a narrow page; :func:`sources_text` says what each stands for."""
    names = {PAPER_LABEL: SHORT_SOURCES[0]}
    if spec is not None:
        names[ours_label(spec)] = SHORT_SOURCES[1]
    level = "source" if isinstance(frame.index, pd.MultiIndex) else None
    return frame.rename(index=names, level=level)


def sources_text(spec=None):
    """What the short labels of :func:`short_sources` stand for."""
    return PAPER_LABEL if spec is None else f"{PAPER_LABEL}; {ours_label(spec)}"


def progress_text(summary):
    """'' when every planned run is recorded, else ``Incomplete: 12 of 65 planned runs are
    recorded`` (the report's count)."""
    status = summary.status or {}
    done = sum(d for d, _ in status.values())
    total = sum(t for _, t in status.values())
    return "" if done >= total else f"Incomplete: {done} of {total} planned runs are recorded"


def partial_choice_lines(summary):
    """While a grid is partly recorded: one line per method and role with a setting that has no
    runs or only some of its seeds, with how many of its settings have runs and each one's seeds.
    A choice on validation is made among the settings recorded so far, on the seeds recorded so
    far, so it, and every number resting on it, may change as the others arrive. [] when every
    grid is complete or has no run at all (then "no run yet" says it)."""
    names, lines = _class_names(summary), []
    roles = {}
    for role, c in summary.selection.important.items():
        roles.setdefault(c, []).append(role)
    for (method, c), settings in (summary.settings or {}).items():
        started = {k: v for k, v in settings.items() if v[0] > 0}
        if not started or all(done >= total for done, total in settings.values()):
            continue
        where = (f"{_and(roles.get(c, [f'class {c}']))} ({names.get(c, c)}), " if c is not None else "") + method
        seeds = "; ".join(f"{setting_text(k)}: {done} of {total} seeds" for k, (done, total) in started.items())
        recorded = (f"{len(started)} of its {len(settings)} settings recorded so far" if len(started) < len(settings)
                    else "its one setting recorded, not all its seeds" if len(settings) == 1
                    else f"all {len(settings)} of its settings recorded, not all their seeds")
        lines.append(f"{where}: {recorded} ({seeds}): its choice is made among these, on the seeds recorded so far, "
                     "and may change as the others arrive.")
    return lines


# The pilot's targets for CE's mean test accuracy with the CPU-scale network (issue 29), set
# before the runs; the convergence part of the criterion is chapter 7's (protocol.convergence).
CE_ACCURACY_TARGET = {"cifar10": 0.75, "gtsrb": 0.95}


def _range_points(frame, window):
    return ", ".join(f"seed {seed} ({100 * row.last_epochs_range:.2f} points over the last {window} epochs, "
                     f"{100 * row.last_epoch_change:.2f} in the last one)" for seed, row in frame.iterrows())


def _group(record):
    """A run's group in the count of runs that move: its method, and for normalized softmax (the
    control of the margin methods at its scale) its scale."""
    if record["method"] == "NormSoftmax":
        return f"NormSoftmax {setting_text(record['params'])}"
    return record["method"]


# Where benchmarks/eval_noise.py's checks of a results folder are committed: <folder>/eval-noise/
NOISE_FOLDER = "eval-noise"
_NOISE_REMEDY = "restore it (git checkout) or write it again with benchmarks/eval_noise.py"


def _fraction_list(value, at_least):
    return (isinstance(value, list) and len(value) >= at_least
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in value))


def _noise_problem(value):
    """What makes ``value`` not a check written by benchmarks/eval_noise.py, or None."""
    if not isinstance(value, dict):
        return "it is not a JSON object"
    checks = [("seed", isinstance(value.get("seed"), int) and not isinstance(value.get("seed"), bool)
               and value["seed"] >= 0, "a whole number of at least 0"),
              ("smoke_test", isinstance(value.get("smoke_test"), bool), "true or false"),
              ("dataset", isinstance(value.get("dataset"), str), "a dataset's name"),
              ("windows_val_accuracy", _fraction_list(value.get("windows_val_accuracy"), 3),
               "a list of at least 3 accuracies in [0, 1]"),
              ("history", isinstance(value.get("history"), dict)
               and _fraction_list(value["history"].get("val_accuracy"), 1),
               "an object whose val_accuracy is a list of accuracies in [0, 1]")]
    for field, ok, expected in checks:
        if not ok:
            return f"field {field!r} must be {expected}; got {value.get(field)!r}"
    return None


def eval_noise(folder):
    """The frozen-weights checks of ``benchmarks/eval_noise.py`` committed in
    ``<folder>/eval-noise/`` (one JSON file per CE seed), sorted by seed; ``[]`` when the
    folder has none. A file that is not such a check, or is a smoke test, is refused by name."""
    where = Path(folder) / NOISE_FOLDER
    checks = []
    for path in sorted(where.glob("*.json")) if where.is_dir() else []:
        try:
            value = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); {_NOISE_REMEDY}.") from None
        problem = _noise_problem(value)
        if problem:
            raise ValueError(f"{path} is not a check written by benchmarks/eval_noise.py: {problem}; {_NOISE_REMEDY}.")
        if value["smoke_test"]:
            raise ValueError(f"{path} is a smoke test (trained for --epochs {len(value['history']['val_accuracy'])}), "
                             "not a result: delete it, or write the check again with benchmarks/eval_noise.py "
                             "without --epochs.")
        twin = next((c for c in checks if c["seed"] == value["seed"]), None)
        if twin is not None:
            raise ValueError(f"{path} checks seed {value['seed']} again ({twin['_file']} did): keep one file per seed.")
        checks.append({**value, "_file": path.name})
    return sorted(checks, key=lambda c: c["seed"])


def _last_rate(spec, window=3):
    """The largest learning rate of the last ``window - 1`` epochs (the ones whose changes the
    range over the last ``window`` epochs measures), as a share of the initial one, under a
    cosine decay to zero; None for another schedule."""
    epochs = getattr(spec, "epochs", None)
    if spec.lr_schedule != "cosine" or getattr(spec, "warmup_epochs", 0) or not epochs or epochs < window - 1:
        return None
    return 0.5 * (1 + math.cos(math.pi * (epochs - window + 1) / epochs))


def _noise_lines(checks, summary, conv, window, tolerance):
    """What the frozen-weights checks say the criterion measures."""
    foreign = sorted({c["dataset"] for c in checks} - {summary.spec.dataset})
    if foreign:
        raise ValueError(f"the {NOISE_FOLDER}/ checks of this {summary.spec.dataset} folder include checks of "
                         f"{_and(foreign)}: move them to their own dataset's folder.")
    ce = {r["seed"]: r["history"]["val_accuracy"] for r in summary.selection.ce}
    ranges = {c["seed"]: max(max(v[i:i + window]) - min(v[i:i + window])
                             for i in range(max(1, len(v) - window + 1)))
              for c in checks for v in [c["windows_val_accuracy"]]}
    same, differs, unrecorded = [], [], []
    for c in checks:
        recorded, again = ce.get(c["seed"]), c["history"]["val_accuracy"]
        if recorded is None:
            unrecorded.append(str(c["seed"]))
        elif len(recorded) == len(again) and np.allclose(recorded, again, rtol=0, atol=1e-6):
            same.append(str(c["seed"]))
        else:
            differs.append(str(c["seed"]))

    def some(word, items):
        return word + ("s" if len(items) > 1 else "")

    notes = ([f"the same {some('network', same)} as the {some('record', same)} of {some('seed', same)} {_and(same)}: "
              "equal validation histories"] if same else []) \
        + ([f"{some('seed', differs)} {_and(differs)}: not the recorded network, whose validation history differs; it "
            "stands for the seed's training, not its stored model"] if differs else []) \
        + ([f"{some('seed', unrecorded)} {_and(unrecorded)}: no CE record of that seed yet to compare with"]
           if unrecorded else [])
    largest = max(ranges.values())
    per_seed = ", ".join(f"seed {s}: {100 * r:.2f}" for s, r in ranges.items())
    line = (f"What moves? benchmarks/eval_noise.py trained CE {some('seed', ranges)} {_and([str(s) for s in ranges])} "
            f"again as the preset trains {'them' if len(ranges) > 1 else 'it'} ({'; '.join(notes)})"
            + ", froze the weights, and passed more epochs of training batches through "
            + ("each" if len(ranges) > 1 else "it") + ": that changes "
            f"only batch normalization's moving statistics. Over {_epochs_of(checks)} epochs of them, validation "
            f"accuracy moved by at most {100 * largest:.2f} points within any {window} consecutive ones ({per_seed}; "
            f"the criterion allows {100 * tolerance:g}).")
    if largest >= tolerance:
        return [line + " The statistics alone can move it as far as the criterion allows: a seed's miss may be "
                       "this evaluation noise, not training."]
    missed = conv[~conv.converged]
    if missed.empty:
        return [line + " The statistics alone stay within the criterion, and every CE seed meets it."]
    rate = _last_rate(summary.spec, window)
    when = (f", at learning rates of at most {math.ceil(1000 * rate) / 10:g}% of the initial one (the cosine "
            f"schedule's last {window - 1} epochs)" if rate is not None else "")
    compared = [f"seed {s} moved {100 * row.last_epochs_range:.2f} points, "
                + (f"{row.last_epochs_range / ranges[s]:.1f} times its statistics' {100 * ranges[s]:.2f}"
                   if ranges.get(s) else "its statistics not checked") for s, row in missed.iterrows()]
    return [line + " The statistics alone stay within the criterion. Of the seeds that miss it, " + "; ".join(compared)
            + f": more than the statistics alone move it, so their weights still moved in the last epochs{when}."]


def _epochs_of(checks):
    """How many epochs of batches the checks passed: '8', or '6 to 8' when they differ."""
    counts = sorted({len(c["windows_val_accuracy"]) for c in checks})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"


def baseline_check(summary, noise=(), window=3, tolerance=0.005):
    """Is the baseline trained? Chapter 7's criterion on the recorded CE runs: per seed, the
    validation accuracy's range over the last ``window`` epochs below ``tolerance``; and the mean
    CE test accuracy at least the pilot's target. Returns (the per-seed frame of
    :func:`camri_utils.protocol.convergence` with ``last_epoch_change``, the change of the last
    epoch; the lines that say what it finds: the criterion, whether it is met, which seeds miss
    it and by how much, what that means for the comparisons, and the same range over every
    recorded run by method (normalized softmax by scale, the controls), to tell a baseline still
    moving from an end of training that moves for every method). ``noise``: the frozen-weights
    checks of :func:`eval_noise` (the folder's), which say whether the weights or batch
    normalization's moving statistics move the validation accuracy."""
    from camri_utils.protocol import convergence

    dataset, ce = summary.spec.dataset, summary.selection.ce
    if not ce:
        return None, ["No CE run is recorded yet: nothing to check."]
    epochs = min(len(r["history"].get("val_accuracy") or []) for r in ce)
    if epochs < window:
        return None, [f"The CE runs record {epochs} epoch(s) of validation accuracy: too few for the criterion's "
                      f"{window}, so it cannot be checked."]
    conv = convergence(ce, window, tolerance)
    last = {r["seed"]: abs(r["history"]["val_accuracy"][-1] - r["history"]["val_accuracy"][-2]) for r in ce}
    conv.insert(conv.columns.get_loc("last_epochs_range") + 1, "last_epoch_change", conv.index.map(last))
    target = CE_ACCURACY_TARGET.get(dataset)
    mean = conv.test_accuracy.mean()
    missed = conv[~conv.converged]
    planned = len(summary.spec.seeds)
    lines = [f"Criterion, set before the runs (chapter 7's): for every CE seed, validation accuracy changes by less "
             f"than {100 * tolerance:g} points over the last {window} epochs"
             + (f"; the mean CE test accuracy at least {target:.2f} (the pilot's target for this network)."
                if target is not None else ".")]
    accuracy_ok = target is None or mean >= target
    lines.append(f"{len(conv) - len(missed)} of {len(conv)} recorded CE seeds"
                 + (f" (of {planned} planned)" if len(conv) < planned else "")
                 + f" converged; largest range {100 * conv.last_epochs_range.max():.2f} points; mean CE test accuracy "
                 f"{mean:.4f}" + (f" ({'at least' if accuracy_ok else 'below'} the target)" if target else "")
                 + f". Criterion met: {'yes' if missed.empty and accuracy_ok else 'no'}.")
    if not missed.empty:
        schedule = (", with the learning rate decaying to zero by the last epoch (cosine schedule)"
                    if summary.spec.lr_schedule == "cosine" else "")
        lines.append(f"Not converged by this criterion{schedule}: {_range_points(missed, window)}. The protocol "
                     "keeps these seeds (dropping them after seeing them would choose on outcomes). A seed's final "
                     "model carries where its last epochs left it into each comparison paired on that seed; the "
                     "paired intervals below count that as noise between seeds, and with few seeds it can also "
                     "shift a mean.")
        every = [r for r in summary.records if "source_run" not in r and not r.get("diverged")]
        moved = convergence([{**r, "seed": i} for i, r in enumerate(every)], window, tolerance)
        groups = pd.DataFrame({"group": [_group(r) for r in every], "missed": ~moved.converged.to_numpy()})
        counts = groups.groupby("group", sort=False).missed.agg(["sum", "size"])
        lines.append(f"The same range over every recorded run: {int(counts['sum'].sum())} of {len(every)} miss it ("
                     + "; ".join(f"{g}: {int(k)} of {n}" for g, (k, n) in counts.iterrows()) + "): "
                     + ("the movement is not CE's alone, but this network's at the end of its training; a comparison "
                        "with the control rests on two such final models."
                        if (counts.drop("CE", errors="ignore")["sum"] > 0).any() else "the movement is CE's alone."))
    if noise:
        lines += _noise_lines(noise, summary, conv, window, tolerance)
    return conv, lines


def paper_cell(value):
    """One cell of the paper's table in the poster's style, four decimals: ``.7919 (.8821)``,
    ``.7600`` (no accuracy printed), ``-`` (no setting kept accuracy). The poster prints four
    decimals everywhere but once (GTSRB's WCE on worst2, ".945"), shown here as ``.9450``."""
    if value is None:
        return "-"
    recall, accuracy = value
    text = f"{recall:.4f}".lstrip("0")
    return text if accuracy is None else f"{text} ({f'{accuracy:.4f}'.lstrip('0')})"


def paper_table(dataset):
    """The paper's Table 1 for ``dataset`` alone, in its layout and cells as :func:`table_1`
    shows them (one row per method, source :data:`PAPER_LABEL`): for a chapter with no run of
    its own recorded."""
    if dataset not in PAPER_TABLE_1:
        raise ValueError(f"dataset must be one of {sorted(PAPER_TABLE_1)}; got {dataset!r}.")
    paper = PAPER_TABLE_1[dataset]
    frame = pd.DataFrame.from_dict({(m, PAPER_LABEL): [paper_cell(paper[m][r]) for r in ROLES] for m in PAPER_METHODS},
                                   orient="index", columns=list(ROLES))
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["method", "source"])
    return frame


def _ours_cell(summary, method, role):
    """One cell of ours in the paper's format (:func:`paper_cell`): ``.7919 (.8821)``, with
    ``n = 2 of 5`` where seeds are missing; without a chosen setting, as
    :func:`camri_utils.protocol.report.empty_cell` says: ``-`` (no setting kept accuracy),
    ``no run yet (0 of 30)``, ``- (12 of 30 recorded)``; ``not run`` (not in the preset)."""
    table = summary.table
    rows = table[(table.method == method) & (table.role == role)]
    if rows.empty:
        return "not run"
    row = rows.iloc[0].to_dict()
    if row["setting"] == "not run":
        return "not run"
    if row["setting"] == "-" or pd.isna(row.get("recall_mean")):
        return empty_cell(cell_runs(summary.status, method, row["class"]))
    cell = paper_cell((row["recall_mean"], row["accuracy_mean"]))
    seeds = seeds_text(row)
    return cell if seeds.startswith("n=") else f"{cell}; {seeds}"


def _empty_reason(summary, method, c):
    return empty_reason(cell_runs(summary.status, method, c))


def _roles(summary):
    roles = list(summary.selection.important)
    if roles != list(ROLES):
        raise ProtocolError(f"the summary's important classes are {roles}, not the paper's roles {list(ROLES)}.")
    return roles


def table_1(summary, dataset=None):
    """The paper's Table 1 and ours side by side, in its layout: one row per method and source
    (:data:`PAPER_LABEL`, :func:`ours_label`), one column per role (worst1, worst2, median), each
    cell the important class's test recall (accuracy), means over trials and seeds, both in the
    paper's format (:func:`paper_cell`). Methods of the paper first, then ours that the paper has
    not (their paper cell: ``not in the paper``). ``-``: no setting kept accuracy; ``not run``:
    the preset trains no setting of it for that role; while runs are missing, ``no run yet (0 of
    30)`` and ``- (12 of 30 recorded)`` (:func:`camri_utils.protocol.report.empty_cell`).
    ``attrs``: ``classes`` ({role: (class, name)}, ours; the poster does not name its classes)
    and ``progress`` (:func:`progress_text`). ``dataset`` (default: the summary's) must
    be the summary's."""
    spec = summary.spec
    _check_dataset(spec, dataset or spec.dataset, "the summary")
    roles = _roles(summary)
    paper = PAPER_TABLE_1[spec.dataset]
    ours = ours_label(spec)
    methods = list(PAPER_METHODS) + [m for m in dict.fromkeys(summary.table.method) if m not in PAPER_METHODS]
    rows = {}
    for method in methods:
        rows[(method, PAPER_LABEL)] = ([paper_cell(paper[method][r]) for r in roles] if method in paper
                                       else ["not in the paper"] * len(roles))
        rows[(method, ours)] = [_ours_cell(summary, method, r) for r in roles]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=roles)
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["method", "source"])
    names = _class_names(summary)
    frame.attrs["classes"] = {r: (c, names.get(c, str(c))) for r, c in summary.selection.important.items()}
    frame.attrs["progress"] = progress_text(summary)
    return frame


def _class_names(summary):
    return dict(enumerate(next((r["class_names"] for r in summary.records if "class_names" in r), [])))


def gain_table(summary):
    """Per method of the paper and role: the paper's recall gain over CE (its means' difference;
    NaN where either is '-'), and ours: the mean paired (same seed) gain with its Student-t 95%
    interval and seeds (NaN where undefined: '-', not run, one seed for the interval). Columns
    method, role, paper_gain, gain, gain_low, gain_high, n, n_planned, cell (ours, as
    :func:`table_1` shows it) and why (ours undefined, in words; '' where defined)."""
    paper = PAPER_TABLE_1[summary.spec.dataset]
    table = summary.table
    rows = []
    for method in PAPER_METHODS[:-1]:
        for role in _roles(summary):
            mine, ce = paper[method][role], paper["CE"][role]
            paper_gain = mine[0] - ce[0] if mine is not None and ce is not None else np.nan
            row = table[(table.method == method) & (table.role == role)]
            row = row.iloc[0].to_dict() if not row.empty else {"setting": "not run"}
            defined = row["setting"] not in ("-", "not run") and not pd.isna(row.get("recall_mean"))
            gain = [row.get(k, np.nan) for k in ("recall_gain", "gain_ci_low", "gain_ci_high")] if defined \
                else [np.nan] * 3
            cell = _ours_cell(summary, method, role)
            why = ("" if defined and not pd.isna(gain[0]) else
                   "not run (the preset trains no setting of it for this role)" if row["setting"] == "not run" else
                   _empty_reason(summary, method, summary.selection.important[role]) if not defined else cell)
            rows.append({"method": method, "role": role, "paper_gain": paper_gain, "gain": gain[0],
                         "gain_low": gain[1], "gain_high": gain[2], "n": int(row.get("n_seeds", 0) or 0),
                         "n_planned": int(row.get("n_planned", 0) or 0), "cell": cell, "why": why})
    return pd.DataFrame(rows)


def gain_lines(summary):
    """:func:`gain_table` in words, one line per method and role: the paper's recall gain over
    CE and ours (paired by seed, Student-t 95% interval, the seeds it rests on), in points; where
    one of them is undefined, why."""
    names = _class_names(summary)
    important = summary.selection.important
    lines = []
    for row in gain_table(summary).to_dict("records"):
        head = f"{row['role']} ({names.get(important[row['role']], important[row['role']])}), {row['method']}"
        paper = ": no setting kept accuracy" if np.isnan(row["paper_gain"]) else f" {100 * row['paper_gain']:+.2f}"
        if not np.isnan(row["gain"]):
            n = seeds_text({"n_seeds": row["n"], "n_planned": row["n_planned"]}).replace("n=", "n = ")
            ours = f" {_points(row['gain'], row['gain_low'], row['gain_high'])} ({n}"
            ours += ", one seed: no interval)" if np.isnan(row["gain_low"]) else ")"
        else:
            ours = ": " + row["why"]
        lines.append(f"{head}: recall gain over CE in points, paper{paper}; ours{ours}.")
    return lines


def tradeoff(ax, summary, folder, role, legend=True):
    """Chapter 7's recall-accuracy figure (:func:`camri_utils.plots.draw_tradeoff`) for ``role``
    of the protocol run in ``folder``: the exact test threshold curves of CE and of normalized
    softmax at each recorded scale (mean over the recorded seeds, from the stored scores; each
    curve's legend entry says how many: ``CE + threshold (n = 5)``, ``NormSoftmax + threshold
    (s = 16, n = 3 of 5)``), each method's chosen setting and every CAMRI setting."""
    from camri_utils import plots, protocol

    sel = summary.selection
    if role not in sel.important:
        raise ValueError(f"role must be one of {list(sel.important)}; got {role!r}.")
    c = sel.important[role]
    frame = protocol.records_frame(summary.records, sel.important)
    curves = protocol.threshold_curve_frames(summary.records, c, lambda r: protocol.load_scores(folder, r), "test")
    planned = len(summary.spec.seeds)
    curves = {_with_seeds(label, curve.attrs["n"], planned): curve for label, curve in curves.items()}
    return plots.draw_tradeoff(ax, frame, sel, role, class_name=_class_names(summary).get(c), curves=curves,
                               legend=legend)


def _with_seeds(label, n, planned):
    """``CE + threshold (n = 5)``, ``NormSoftmax + threshold (s = 16, n = 3 of 5)``."""
    seeds = seeds_text({"n_seeds": n, "n_planned": planned}).replace("n=", "n = ")
    return f"{label[:-1]}, {seeds})" if label.endswith(")") else f"{label} ({seeds})"


# ------------------------------------------------------------------------------------------------
# The book's question: every chosen setting against threshold moving
# ------------------------------------------------------------------------------------------------
VERDICT_METHODS = ("CAMRI", "ArcFace", "WCE")
_MARGIN = ("CAMRI", "ArcFace")  # a cosine head with a margin: its control is normalized softmax


def _points(mean, low, high, digits=2, scale=100):
    """``+8.41 [+7.70, +9.12]``: ``scale`` times a mean (points, by default) with its interval where it
    has one (:func:`camri_utils.stats.signed`)."""
    text = stats.signed(scale * mean, digits)
    if np.isnan(low):
        return text
    return f"{text} [{stats.signed(scale * low, digits)}, {stats.signed(scale * high, digits)}]"


def verdicts(summary):
    """For each role and each method of :data:`VERDICT_METHODS`, its chosen setting against
    threshold moving on CE's curve and on its control's (normalized softmax at the same scale):
    one row per (role, method, reference) with ``verdict`` (above, not told apart, below, as
    :func:`camri_utils.protocol.curves.verdict`; or why there is none: ``not run``, ``no run
    yet`` (none of its planned runs for the role is recorded), ``no setting kept accuracy`` (none
    of the recorded settings kept it), ``no control``, ``undefined``), ``why`` (the reason in
    words, :func:`camri_utils.protocol.report.empty_reason`; '' when there is a verdict),
    ``resolved`` (a verdict resting on an interval: at least 2 seeds), and, where defined, the
    columns of the report's comparison table (gaps with paired t intervals)."""
    sel, table, comp = summary.selection, summary.table, summary.comparison
    rows = []
    for role, c in sel.important.items():
        for method in VERDICT_METHODS:
            cell = table[(table.method == method) & (table.role == role)]
            setting = cell.setting.iloc[0] if not cell.empty else "not run"
            base = {"role": role, "important_class": c, "method": method}
            for ref in ("CE", "control"):
                row = dict(base, reference=ref, setting="", verdict="", why="", resolved=False)
                if setting == "not run":
                    row.update(verdict="not run", why="the preset trains no setting of it for this role")
                elif setting == "-" or sel.chosen.get((method, role)) is None:
                    runs = cell_runs(summary.status, method, c)
                    none = runs is not None and runs[0] == 0 and runs[1]  # known: none recorded of those planned
                    row.update(verdict="no run yet" if none else "no setting kept accuracy", why=empty_reason(runs))
                else:
                    params = sel.chosen[(method, role)].params
                    row["setting"] = setting_key(params)
                    if ref == "control" and method not in _MARGIN:
                        row.update(verdict="no control", why=f"{method} keeps CE's dense head: its control is CE "
                                                             "itself, the line against CE's curve")
                    else:
                        found = None if comp is None else comp[
                            (comp.role == role) & (comp.method == method) & (comp.setting == row["setting"])
                            & (comp.reference == ref)]
                        if found is None or found.empty:
                            what = ("no threshold curves in this run (no threshold biases or stored scores)"
                                    if comp is None else
                                    "no CE curve of the same seeds" if ref == "CE" else
                                    f"no normalized-softmax run at s = {params.get('scale', float('nan')):g} of the "
                                    "same seeds")
                            row.update(verdict="undefined", why=what)
                        else:
                            found = found.iloc[0].to_dict()
                            found.update({k: int(found[k]) for k in ("above", "on", "below") if k in found})
                            row.update({k: v for k, v in found.items() if k not in row or k in ("verdict",)})
                            # "above" rests on the oracle's interval, "below" on the out-of-sample one.
                            n, n_oos = int(found["n"]), int(found.get("n_oos", 0))
                            row["resolved"] = n >= 2 and (n_oos >= 2 or found["verdict"] == "above")
                            if n < 2:
                                row["why"] = f"{n} seed: no interval"
                            elif not row["resolved"]:
                                row["why"] = "no out-of-sample interval (no validation scores): 'below' untestable"
                rows.append(row)
    return pd.DataFrame(rows)


def _reference_words(row):
    if row["reference"] == "CE":
        return "CE's threshold curve"
    scale = setting_text({"scale": _params(row["setting"]).get("scale", float("nan"))})
    return f"its control's (normalized softmax, {scale})"


def _params(setting):
    import json

    return json.loads(setting) if setting else {}


def _planned_seeds(summary, method, c):
    table = summary.table
    row = table[(table.method == method) & (table["class"] == c)]
    planned = row.n_planned.iloc[0] if not row.empty else np.nan
    return len(summary.spec.seeds) if pd.isna(planned) or not planned else int(planned)


def _one_sided(row):
    """Why a setting whose interval clears zero on one reference is still *not told apart*: below
    the oracle alone (the best threshold on the test set, which no threshold chosen beforehand
    reaches) is not below threshold moving, and above the out-of-sample reference alone is not
    above its upper bound. '' for other verdicts or where neither interval clears zero."""
    if row["verdict"] != "not told apart":
        return ""
    parts = []
    if row["accuracy_gap_high"] < 0:
        parts.append("below the oracle, the best threshold on the test set, but not below the threshold chosen on "
                     "validation")
    if row.get("oos_accuracy_gap_low", np.nan) > 0:
        parts.append("above the threshold chosen on validation, but not above the oracle")
    return f" ({'; '.join(parts)})" if parts else ""


def verdict_lines(summary):
    """:func:`verdicts` in words, one line per chosen setting and reference: the verdict and
    the numbers it rests on, in points (hundredths) with paired Student-t 95% intervals over
    seeds: accuracy at the same recall against the oracle (the test curve's best: a bias chosen
    on the test images, the upper bound of threshold moving) and out of sample (the reference's
    bias chosen on validation), recall at the same accuracy (oracle), seeds above/on/below the
    oracle, and the seeds it rests on (``n = 2 of 5`` while runs are missing). Where there is no
    verdict, why."""
    names = _class_names(summary)
    lines = []
    progress = progress_text(summary)
    if progress:
        lines.append(f"{progress}: the lines below rest on the runs recorded so far.")
        lines += partial_choice_lines(summary)
    for row in verdicts(summary).to_dict("records"):
        c = row["important_class"]
        head = f"{row['role']} ({names.get(c, c)}), {row['method']}"
        if row["setting"]:
            head += f" ({setting_text(row['setting'])})"
        if row["verdict"] in ("not run", "no run yet", "no setting kept accuracy"):
            if row["reference"] == "CE":  # one line per method is enough
                lines.append(f"{head}: {row['why']}; nothing to compare.")
            continue
        if row["verdict"] in ("no control", "undefined"):
            words = "its control" if row["reference"] == "control" else "CE's threshold curve"
            lines.append(f"{head} against {words}: no comparison ({row['why']}).")
            continue
        recall, accuracy, _, seeds = comparison_cells(row, points=True)
        oos_accuracy = out_of_sample_cells(row, points=True)[0]
        n_planned = _planned_seeds(summary, row["method"], c)
        n = seeds_text({"n_seeds": row["n"], "n_planned": n_planned}).replace("n=", "n = ")
        verdict = row["verdict"] + (f" ({row['why']})" if row["why"] else _one_sided(row))
        if row["n"] < 2:  # the interval's label would be a guess: no verdict, the numbers alone
            verdict = f"no verdict ({row['why']})"
        lines.append(f"{head} against {_reference_words(row)}: {verdict}. Accuracy at the same recall, in points: "
                     f"oracle {accuracy}, out of sample {oos_accuracy}; recall at the same accuracy (oracle) "
                     f"{recall}; seeds above/on/below the oracle {seeds}; {n}.")
    return lines


def fashion_mnist_answer(summary):
    """One line: does the Fashion-MNIST answer (chapter 7: CAMRI's chosen setting is not told
    apart from its control's threshold curve; no sign of the margin beyond its head's trade-off)
    hold on this dataset? Computed from :func:`verdicts` of CAMRI against its control, per role
    where it rests on an interval (at least 2 seeds); the roles where it is undefined are named
    with why (roles with the same reason together, and once for all where no CAMRI run is
    recorded yet), and an incomplete run is said to be one. A "No" says which way: below its
    control's curve (not in the margin's favour), above it, or both in different roles."""
    name = DATASET_NAMES.get(summary.spec.dataset, summary.spec.dataset)
    question = f"Does the Fashion-MNIST answer hold on {name}?"
    rows = verdicts(summary)
    camri = rows[(rows.method == "CAMRI") & (rows.reference == "control")].to_dict("records")
    decided = [r for r in camri if r["resolved"] and r["verdict"] in ("above", "not told apart", "below")]
    undecided = [r for r in camri if r not in decided]
    progress = f" {progress_text(summary)}: the answer may change." if progress_text(summary) else ""
    if camri and all(r["verdict"] == "no run yet" for r in camri):
        return (f"{question} Not answerable yet: no CAMRI run is recorded for any role "
                f"({_camri_planned(summary)}).{progress}")
    why = {}
    for r in undecided:
        why.setdefault(r["why"] or r["verdict"], []).append(r["role"])
    tail = ""
    if why:
        tail = " Undefined for " + "; ".join(f"{_and(roles)} ({text})" for text, roles in why.items()) + "."
    tail += progress

    def cite(r):
        return (f"{r['role']} {setting_text(r['setting'])}: accuracy at the same recall "
                f"{_points(r['accuracy_gap'], r['accuracy_gap_low'], r['accuracy_gap_high'])} points against the "
                f"oracle, {_points(r['oos_accuracy_gap'], r['oos_accuracy_gap_low'], r['oos_accuracy_gap_high'])} "
                "out of sample")

    if not decided:
        return (f"{question} Not answerable from these records: no CAMRI setting has a verdict against its control "
                f"resting on two or more seeds.{tail}")
    tail = _against_ce(rows, decided) + tail
    off = [r for r in decided if r["verdict"] != "not told apart"]
    if not off:
        return (f"{question} Yes, in {len(decided)} of {len(camri)} roles: CAMRI's chosen setting is not told apart "
                "from its control's threshold curve (as on Fashion-MNIST, no sign of the margin beyond its head's "
                "trade-off): "
                + "; ".join(cite(r) for r in decided) + f".{tail}")
    # "No" alone reads as "the margin did better here"; say which way the answer fails.
    ways = {r["verdict"] for r in off}
    way = (" (and not in the margin's favour: the same head without the margin, its threshold moved, does "
           "better)" if ways == {"below"} else
           " (in the margin's favour: it reaches what moving the threshold of the same head without the margin "
           "does not)" if ways == {"above"} else " (one way in some roles, the other in others)")
    return (f"{question} No{way}: CAMRI's chosen setting is "
            + "; ".join(f"{r['verdict']} its control's threshold curve for {cite(r)}" for r in off)
            + (f"; not told apart for " + "; ".join(cite(r) for r in decided if r not in off)
               if len(off) < len(decided) else "") + f".{tail}")


def _against_ce(rows, decided):
    """The sentence that sets the settings of ``decided`` (verdicts against their control) against
    CE's threshold moving too: the book's question has both references, and a setting above its
    control can still lie on (or below) CE's curve."""
    ce = {r["role"]: r for r in rows[(rows.method == "CAMRI") & (rows.reference == "CE")].to_dict("records")}
    parts = []
    for r in decided:
        row = ce.get(r["role"])
        if row is None or not row["resolved"] or row["verdict"] not in ("above", "not told apart", "below"):
            parts.append(f"no verdict for {r['role']} ({(row or {}).get('why') or 'no comparison'})")
            continue
        parts.append(f"{row['verdict']} for {r['role']} (accuracy at the same recall "
                     f"{_points(row['accuracy_gap'], row['accuracy_gap_low'], row['accuracy_gap_high'])} points "
                     f"against the oracle, "
                     f"{_points(row['oos_accuracy_gap'], row['oos_accuracy_gap_low'], row['oos_accuracy_gap_high'])}"
                     " out of sample)")
    return (f" Against CE's threshold moving, the other half of the book's question, the same setting"
            f"{'s are' if len(decided) > 1 else ' is'} " + "; ".join(parts) + ".")


def _and(items):
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _camri_planned(summary):
    """'0 of 40 planned': CAMRI's runs of every role (where none is recorded yet)."""
    return f"0 of {sum(t for (method, _), (_, t) in summary.status.items() if method == 'CAMRI')} planned"


# ------------------------------------------------------------------------------------------------
# The important class's confusions and angles: CE, the control and CAMRI's chosen setting
# ------------------------------------------------------------------------------------------------
def compared_runs(summary, role, camri=None):
    """{label: records}: CE, CAMRI's setting for ``role`` (``camri``: its params; default the
    chosen one) and its control (normalized softmax at the same scale), each with the records of
    every recorded seed. Without a chosen setting (and none passed): CE only."""
    sel = summary.selection
    if role not in sel.important:
        raise ValueError(f"role must be one of {list(sel.important)}; got {role!r}.")
    c = sel.important[role]
    out = {"CE": sorted(sel.ce, key=lambda r: r["seed"])}
    if camri is None:
        best = sel.chosen.get(("CAMRI", role))
        camri = None if best is None else best.params
    if camri is None:
        return out
    key = setting_key(camri)
    mine = [r for r in summary.records if r["method"] == "CAMRI" and r.get("important_class") == c
            and "source_run" not in r and setting_key(r["params"]) == key]
    if not mine:
        raise ValueError(f"no CAMRI run of {setting_text(camri)} for {role} (class {c}) in these records.")
    scale = camri["scale"]
    control = [r for r in summary.records if r["method"] == "NormSoftmax" and "source_run" not in r
               and r["params"].get("scale") == scale]
    out[f"control: NormSoftmax {setting_text({'scale': scale})}"] = sorted(control, key=lambda r: r["seed"])
    out[f"CAMRI {setting_text(camri)}"] = sorted(mine, key=lambda r: r["seed"])
    return out


def confusion_frame(matrices, c, class_names, nearest=3, reference="CE"):
    """For the ``nearest`` classes most confused with class ``c`` under ``reference`` (both
    ways), per label of ``matrices`` ({label: confusion matrix, true x predicted}): images of
    ``c`` sent there (*missed as*) and theirs taken for ``c`` (*taken from*)."""
    matrices = {label: np.asarray(m, float) for label, m in matrices.items()}
    if reference not in matrices:
        raise ValueError(f"reference {reference!r} is not one of the labels {list(matrices)}.")
    ref = matrices[reference]
    if ref.ndim != 2 or ref.shape[0] != ref.shape[1] or not 0 <= c < len(ref):
        raise ValueError(f"class {c!r} and a square confusion matrix are needed; got shape {ref.shape}.")
    both = ref[c] + ref[:, c]
    both[c] = -1
    closest = [int(k) for k in np.argsort(-both, kind="stable")[:nearest]]
    name = class_names[c]
    rows = {(label, f"{k}: {class_names[k]}"): {f"{name} missed as": m[c, k], f"{name} taken from": m[k, c]}
            for label, m in matrices.items() for k in closest}
    return pd.DataFrame(rows).T


def confusions(summary, role, nearest=3, camri=None):
    """The important class's test confusions (:func:`confusion_frame`) under CE, its control and
    CAMRI's setting (:func:`compared_runs`), from the records' confusion matrices, as the mean
    number of images per seed; labels carry their seeds (``n = 2 of 5`` while runs are missing)."""
    c = summary.selection.important[role]
    planned = len(summary.spec.seeds)
    runs = compared_runs(summary, role, camri)
    matrices = {f"{label} ({seeds_text({'n_seeds': len(rs), 'n_planned': planned})})":
                np.mean([r["confusion_matrix"] for r in rs], axis=0) for label, rs in runs.items() if rs}
    names = summary.records[0]["class_names"]
    return confusion_frame(matrices, c, names, nearest, reference=next(iter(matrices)))


def angle_measures(cosines, labels, c, class_weights=None, margin=0.0):
    """The important class ``c``'s angles in one model, from its test cosines (N, C) of each
    feature with each class weight: ``mean`` (its mean angle to its own weight, degrees),
    ``others_mean`` (the other classes' mean of theirs), ``relative_mean``, ``relative_variance``
    (:mod:`camri_utils.angles`); with ``class_weights`` (d, C), the rest of
    :func:`camri_utils.angles.class_geometry` (room, decision gaps)."""
    stats_ = angles.cosine_angle_stats(cosines, labels)
    out = {"mean": float(stats_.loc[c, "mean"]), "others_mean": float(stats_.drop(index=c)["mean"].mean()),
           "relative_mean": float(angles.relative_mean(stats_, c).iloc[0]),
           "relative_variance": float(angles.relative_variance(stats_, c).iloc[0])}
    if class_weights is not None:
        out.update(angles.class_geometry(cosines, labels, class_weights, c, margin))
    return out


def _per_seed_angles(summary, folder, role, camri=None):
    from camri_utils.protocol import load_scores

    c = summary.selection.important[role]
    rows = []
    for label, runs in compared_runs(summary, role, camri).items():
        for r in runs:
            s = load_scores(folder, r)
            cos = s["test_cosines"] if "test_cosines" in s else s["test"]  # a dense head's: cosines stored apart
            rows.append({"label": label, "seed": r["seed"],
                         **angle_measures(cos, s["y_test"], c, s["class_weights"], r["params"].get("margin", 0.0)),
                         "class_means": angles.cosine_angle_stats(cos, s["y_test"])["mean"].to_numpy()})
    return pd.DataFrame(rows)


_SHOWN = (("mean", "mean angle, {name} (deg)"), ("others_mean", "mean angle, other classes (deg)"),
          ("relative_mean", "relative mean"), ("relative_variance", "relative variance"),
          ("nearest_angle", "room of W_c (deg)"), ("gap_median", "median decision gap (deg)"))


def angle_summary(summary, folder, role, camri=None):
    """Per run label (CE, the control, CAMRI's setting: :func:`compared_runs`), the important
    class's angles from the stored test cosines and class weights (:func:`angle_measures`),
    mean over seeds, with the seeds (``n``). A CE run's cosines are those of its features with
    its dense kernel's columns (its bias ignored)."""
    per_seed = _per_seed_angles(summary, folder, role, camri)
    name = summary.records[0]["class_names"][summary.selection.important[role]]
    frame = per_seed.groupby("label", sort=False)[[k for k, _ in _SHOWN]].mean()
    frame.insert(0, "n", per_seed.groupby("label", sort=False).seed.count())
    return frame.rename(columns={k: words.format(name=name) for k, words in _SHOWN})


def class_angles(summary, folder, role, camri=None):
    """Every class's mean angle to its own class weight (degrees, mean over seeds), one column
    per run label of :func:`compared_runs`; the index names the classes, the important one
    marked with *."""
    per_seed = _per_seed_angles(summary, folder, role, camri)
    c = summary.selection.important[role]
    names = summary.records[0]["class_names"]
    frame = pd.DataFrame({label: np.mean(np.stack(g.class_means.to_list()), axis=0)
                          for label, g in per_seed.groupby("label", sort=False)})
    frame.index = [f"{k}: {n}{' *' if k == c else ''}" for k, n in enumerate(names)]
    return frame


def angle_verdicts(summary, folder, role, camri=None):
    """CAMRI's setting against its control and against CE on the important class's angles,
    paired by seed (:func:`camri_utils.stats.paired_verdict`: holds, reversed, unresolved):
    closer (mean angle, relative mean: lower), tighter (relative variance: lower), more room
    (room of W_c: higher), larger median decision gap (higher). Empty without a CAMRI setting."""
    per_seed = _per_seed_angles(summary, folder, role, camri)
    labels = list(dict.fromkeys(per_seed.label))
    if len(labels) < 3:
        return pd.DataFrame(columns=["against", "measure", "n", "mean", "control_mean", "diff", "low", "high",
                                     "verdict"])
    ce, control, mine = labels
    claims = (("mean", "lower"), ("relative_mean", "lower"), ("relative_variance", "lower"),
              ("nearest_angle", "higher"), ("gap_median", "higher"))
    name = summary.records[0]["class_names"][summary.selection.important[role]]
    words = dict(_SHOWN)
    rows = []
    for against in (control, ce):
        for column, claimed in claims:
            by_seed = {lab: dict(zip(g.seed, g[column])) for lab, g in per_seed.groupby("label")}
            v = stats.paired_verdict(by_seed[mine], by_seed[against], claimed)
            rows.append({"against": against, "measure": words[column].format(name=name), "claimed": claimed, **v})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# The chapter's summary, in numbers
# ------------------------------------------------------------------------------------------------
_VERDICT_WORDS = {"above": "above", "below": "below", "not told apart": "not told apart from"}


def _against_words(row):
    """``not told apart from CE's threshold moving``, or that there is no verdict and why."""
    what = ("CE's threshold moving" if row["reference"] == "CE"
            else "the threshold moving of the same head without the margin")
    if row["verdict"] in _VERDICT_WORDS and row["resolved"]:
        return f"{_VERDICT_WORDS[row['verdict']]} {what}"
    return f"without a verdict against {what} ({row['why'] or row['verdict']})"


def _open_runs(summary):
    """``CAMRI on bird (worst2): 0 of 5 runs``, ... for every method and class with runs still
    missing."""
    names, parts = _class_names(summary), []
    roles = {c: role for role, c in summary.selection.important.items()}
    for (method, c), (done, total) in (summary.status or {}).items():
        if done < total:
            where = f" on {names.get(c, c)} ({roles[c]})" if c in roles else ""
            parts.append(f"{method}{where}: {done} of {total} runs")
    return parts


def summary_points(summary, folder):
    """The chapter's summary in numbers: one Markdown bullet per role with CAMRI's chosen setting
    (its recall against CE's and the paper's gain, its accuracy, what moving CE's threshold
    reaches instead, and its verdicts against both threshold curves), one on the angles of the
    role with CAMRI's grid (worst1, against the control, paired by seed), and one saying whether
    these are final or which runs are still missing. Every number is read from ``summary`` (and
    the stored scores in ``folder``); where a comparison is undefined the bullet says why."""
    names, important = _class_names(summary), summary.selection.important
    table = summary.table.set_index(["method", "role"])
    gains = gain_table(summary).set_index(["method", "role"])
    rows = {(r["role"], r["method"], r["reference"]): r for r in verdicts(summary).to_dict("records")}
    grid = list(summary.spec.camri_grid)
    points = []
    for role, c in important.items():
        who = f"**{role} ({names.get(c, c)})**"
        gain = gains.loc[("CAMRI", role)]
        if np.isnan(gain.gain):
            points.append(f"{who}: no CAMRI result to summarize ({gain.why}).")
            continue
        mine, ce = table.loc[("CAMRI", role)], table.loc[("CE", role)]
        paper = ("no setting kept accuracy" if np.isnan(gain.paper_gain)
                 else f"{stats.signed(100 * gain.paper_gain, 1)} points")
        seeds = (f"n = {gain.n} of {gain.n_planned}: no interval; " if np.isnan(gain.gain_low) else
                 f"n = {gain.n} of {gain.n_planned}; " if gain.n < gain.n_planned else "")
        lift = _points(gain.gain, gain.gain_low, gain.gain_high, 1)
        text = (f"{who}: CAMRI ({setting_text(mine.setting)}, chosen on validation) raises the test recall from "
                f"CE's {ce.recall_mean:.4f} to {mine.recall_mean:.4f}, {lift} "
                f"points over CE, paired by seed ({seeds}the paper's gain: {paper}), at a test "
                f"accuracy of {mine.accuracy_mean:.4f} against CE's {ce.accuracy_mean:.4f}.")
        params = _params(mine.setting)
        margins = [p["margin"] for p in grid if p.get("scale") == params.get("scale")]
        if len(margins) > 1 and params.get("margin") == max(margins):
            text += " That is the largest margin of the grid: larger ones were not tried."
        if ("CE + threshold", role) in table.index and not pd.isna(table.loc[("CE + threshold", role)].recall_mean):
            moved = table.loc[("CE + threshold", role)]
            text += (f" Moving CE's threshold instead (one bias, chosen on validation; no training) reaches "
                     f"{moved.recall_mean:.4f} at {moved.accuracy_mean:.4f}.")
        against = rows[(role, "CAMRI", "CE")], rows[(role, "CAMRI", "control")]
        if not any(r["resolved"] for r in against) and against[0]["why"] == against[1]["why"]:
            text += f" No verdict yet against either threshold curve ({against[0]['why'] or against[0]['verdict']})."
        else:
            text += (f" At the same recall CAMRI is {_against_words(against[0])} and {_against_words(against[1])} "
                     "(the verdict lines above).")
        points.append(text)
    if not np.isnan(gains.loc[("CAMRI", "worst1")].gain):
        angles = angle_verdicts(summary, folder, "worst1")
        versus = angles[angles.against.str.startswith("control")].reset_index(drop=True)
        if len(versus) == 5:  # mean angle, relative mean, relative variance, room, median gap
            closer, spread = versus.iloc[0], versus.iloc[2]
            name = names.get(important["worst1"], important["worst1"])
            points.append(
                f"**Angles ({name}, CAMRI against the same head without the margin, paired by seed)**: the mean angle "
                f"between a {name} image's feature and its class weight changes by "
                f"{_points(closer['diff'], closer['low'], closer['high'], 1, scale=1)} degrees (the paper's claim, "
                f"closer: {closer['verdict']}), its relative variance by "
                f"{_points(spread['diff'], spread['low'], spread['high'], 2, scale=1)} (the paper's claim, tighter: "
                f"{spread['verdict']}; n = {int(closer['n'])}).")
    missing = _open_runs(summary)
    progress = progress_text(summary).removeprefix("Incomplete: ")
    points.append(f"**Still open**: {progress}; missing: {'; '.join(missing)}. Every line above that "
                  "rests on those may change." if missing else
                  "**Every planned run is recorded**: these are the run's final numbers.")
    return points

"""Pilot: which network Part III's CPU-scale runs use, chosen by validation accuracy against the
minutes one run takes on this project's 2-core machine.

    python benchmarks/pilot.py --dataset cifar10 --data-dir PATH --output results/cifar10-pilot
    python benchmarks/pilot.py --output results/cifar10-pilot --report    # pilot.md from the runs

Each candidate (``--candidates MODEL:EPOCHS ...``, smallest first) is trained once with
cross-entropy (seed 0) in the protocol's training setup for the dataset (Adam 1e-3 with cosine
decay, batch 128, the protocol's validation split, no augmentation), by ``--workers`` processes
side by side with ``--threads`` TensorFlow threads each: the way the protocol's runs are trained
here (``camri protocol --workers 2 --threads-per-worker 1``). Every run writes one JSON file into
``OUTPUT/runs/`` (history, validation and test accuracy, wall time, threads, data source),
written atomically when the run ends; a rerun skips finished candidates.

The report picks, among the candidates whose run converged (validation accuracy within 0.005
over its last 3 epochs, the protocol's criterion) and took at most ``--budget-min`` minutes, the
one with the highest *validation* accuracy; test accuracies are reported, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CANDIDATES = ["cpu_cnn_s:20", "cpu_cnn_m:20", "cpu_cnn_mx2:12"]
WINDOW, TOLERANCE = 3, 0.005  # the protocol's convergence criterion (protocol.report.convergence)


def parse_candidate(text):
    from camri_utils import models

    name, _, epochs = text.partition(":")
    if name not in models.MODELS or not epochs.isdigit() or int(epochs) < WINDOW:
        raise SystemExit(f"--candidates: {text!r} is not MODEL:EPOCHS with MODEL one of {sorted(models.MODELS)} and "
                         f"EPOCHS an integer >= {WINDOW}.")
    return name, int(epochs)


def run_one(args, model, epochs):
    """Train one candidate in this process and write its JSON file."""
    from camri_utils.protocol.workers import set_threads

    set_threads(args.threads)
    from camri_utils import data
    from camri_utils.io import write_json
    from camri_utils.training import TrainConfig, threads, train

    config = TrainConfig(dataset=args.dataset, model=model, epochs=epochs, batch_size=128, learning_rate=1e-3,
                         lr_schedule="cosine", loss="ce", seed=0, verbose=0, angle_sample=0,
                         dataset_options=json.loads(args.dataset_options))
    ds = data.load(args.dataset, args.data_dir, **config.dataset_options)
    start = time.perf_counter()
    result = train(config, dataset=ds)
    wall = time.perf_counter() - start
    model_obj = result.model
    write_json(Path(args.output) / "runs" / f"{model}-{epochs}.json", {
        "model": model, "epochs": epochs, "parameters": int(model_obj.count_params()),
        "history": {k: [float(v) for v in vals] for k, vals in result.history.items()},
        "val_accuracy": result.metrics["validation"]["accuracy"], "test_accuracy": result.metrics["accuracy"],
        "wall_time_s": wall, "threads": threads(), "workers_side_by_side": args.workers,
        "config": config.to_dict(),
        "data_source": {"kind": ds.source.kind, "location": ds.source.origin, "verified": ds.source.verified},
    }, indent=1)


def run_all(args, candidates):
    runs = Path(args.output) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    todo = [c for c in candidates if not (runs / f"{c[0]}-{c[1]}.json").exists()]
    lanes = [todo[i::args.workers] for i in range(args.workers)]
    procs = []
    for lane in lanes:
        if not lane:
            continue
        cmds = " && ".join(
            f"{sys.executable} {__file__} --one {m}:{e} --dataset {args.dataset} --output {args.output} "
            f"--threads {args.threads} --workers {args.workers} --dataset-options '{args.dataset_options}'"
            + (f" --data-dir {args.data_dir}" if args.data_dir else "") for m, e in lane)
        procs.append(subprocess.Popen(cmds, shell=True))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a pilot run failed (exit codes {codes}); finished runs are kept, rerun to resume.")


def converged(history):
    last = history["val_accuracy"][-WINDOW:]
    return max(last) - min(last) < TOLERANCE


def report(args):
    runs = sorted((json.loads(p.read_text()) for p in (Path(args.output) / "runs").glob("*.json")),
                  key=lambda r: (r["parameters"], r["epochs"]))
    if not runs:
        raise SystemExit(f"no pilot runs in {Path(args.output) / 'runs'}: run the pilot first.")
    lines = [f"# Pilot: the network of the CPU-scale runs ({runs[0]['config']['dataset']})", "",
             f"Data: {runs[0]['data_source']['kind']}: {runs[0]['data_source']['location']}"
             + (f" ({runs[0]['data_source']['verified']})" if runs[0]['data_source'].get('verified') else "") + ".",
             "",
             "Each candidate trained once with cross-entropy (seed 0): Adam 1e-3 with cosine decay, batch 128, no "
             "augmentation, the protocol's validation split. Runs were trained "
             f"{runs[0]['workers_side_by_side']} side by side with {runs[0]['threads']['intra_op']} thread(s) each "
             "(the protocol's setting on 2 cores), so a run's minutes are its wall time with the other core busy; "
             "runs per hour on the machine = workers x 60 / minutes. Converged: validation accuracy within "
             f"{TOLERANCE} over the last {WINDOW} epochs. Chosen: the highest validation accuracy among converged "
             f"runs of at most {args.budget_min} minutes; test accuracy is reported only.", "",
             "| model | parameters | epochs | minutes per run | runs per hour (2 workers) | val accuracy | last-3 range | "
             "converged | test accuracy |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    eligible = []
    for r in runs:
        minutes = r["wall_time_s"] / 60
        last = r["history"]["val_accuracy"][-WINDOW:]
        ok = converged(r["history"])
        if ok and minutes <= args.budget_min:
            eligible.append(r)
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['epochs']} | {minutes:.1f} | "
                     f"{r['workers_side_by_side'] * 60 / minutes:.1f} | {r['val_accuracy']:.4f} | {max(last) - min(last):.4f} | "
                     f"{'yes' if ok else 'no'} | {r['test_accuracy']:.4f} |")
    lines.append("")
    if eligible:
        best = max(eligible, key=lambda r: r["val_accuracy"])
        lines.append(f"Chosen: **{best['model']}** for {best['epochs']} epochs (validation accuracy "
                     f"{best['val_accuracy']:.4f}, {best['wall_time_s'] / 60:.1f} minutes per run; test accuracy "
                     f"{best['test_accuracy']:.4f}).")
    else:
        lines.append(f"No candidate converged within {args.budget_min} minutes: none is chosen.")
    text = "\n".join(lines) + "\n"
    from camri_utils.io import write_text

    write_text(Path(args.output) / "pilot.md", text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "gtsrb"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dataset-options", default="{}", help="JSON, e.g. '{\"size\": 32}' for GTSRB")
    parser.add_argument("--output", required=True)
    parser.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-min", type=float, default=24.0,
                        help="minutes a run may take side by side (2 workers; about twice its time alone)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be >= 1.")
    try:
        options = json.loads(args.dataset_options)
    except ValueError as exc:
        parser.error(f"--dataset-options is not JSON ({exc}).")
    if not isinstance(options, dict):
        parser.error("--dataset-options must be a JSON object.")
    if args.report:
        return report(args)
    if args.one:
        return run_one(args, *parse_candidate(args.one))
    run_all(args, [parse_candidate(c) for c in args.candidates])
    report(args)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()

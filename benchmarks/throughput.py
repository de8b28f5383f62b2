"""Benchmark: trained runs per hour of the Fashion-MNIST full preset's configuration, for ways of
running it on one machine, measured side by side, with a breakdown of one run's wall time.

    python benchmarks/throughput.py --write benchmarks/THROUGHPUT.md   # also THROUGHPUT.json

A run is one CAMRI run of ``protocol.preset("fashion_mnist", "full")`` (the protocol's most
common kind: small CNN, batch 128, Adam with cosine decay, m = 4 pi / 64, s = 16, important
class 6, Shirt), trained by the protocol's own per-run code (``protocol.runner``: training,
per-epoch validation and angle summary, final scoring, the record written), shortened to
``--epochs`` epochs on ``--train-subset`` of the 50,000 training images (validation and test
sets whole), then scaled back to the full run's 12 epochs on 50,000 images.

Variants (``--variants``; keys below) are measured in alternation: each of ``--repeats`` rounds
runs one trial of every variant, the order rotated from round to round. A trial starts the
variant's worker processes afresh (each: TensorFlow imported with its thread settings, the
data loaded, one short untimed warm-up run); once every worker of the trial is ready they start
together, each training ``--runs`` timed runs with its own seeds (process p: seeds p * runs,
..., p * runs + runs - 1). A trial's runs per hour are the sum over its processes of 3600 / the
process's median full-run time; the speed-up over the baseline is taken within each round.
Reported: median and [min, max] over the rounds.

The breakdown times each run with a Keras callback and a timer around the protocol's per-run
function (nothing is added to the library): set-up (data split and subset, pipelines, model
built and compiled), training steps, validation evaluation and the angle summary of each
epoch, and final scoring and saving (test and validation scores, metrics, the record written,
the session cleared). Per-epoch parts are scaled to the full run as (first epoch - steady
epoch) + 12 x steady epoch x (full images / measured images), the steady epoch being the
median of the epochs after the first (which also traces the functions and fills the data
cache); set-up and final parts are taken as measured (the validation and test sets are whole).
A process's start-up (imports, loading the data) happens once per process, not per run, and is
reported apart.

Each variant's records are compared with the baseline's of the same seed from the first round
(history, test scores, test accuracy): "identical" means the same numbers to the last bit.

Run it on a quiet machine (the report flags a trial during which other processes took more
than a tenth of the CPU). With the defaults (9 variants, 3 rounds, 2 timed runs of 3 epochs on
10,000 images per process) it takes about a quarter of an hour on 2 cores; the report states
how long it took. Switching a measured setting on: processes and threads are the protocol's
workers (``camri protocol --workers N --threads-per-worker T``; the threads change a run's
numbers, and records state them); the others are TrainConfig fields (steps_per_execution,
eval_batch_size, angle_sample) that join a run's identity when set, so records say what made
them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CpuShare, code_version  # noqa: E402

DATASET = "fashion_mnist"
CAMRI_SETTING = {"margin": 4 * math.pi / 64, "scale": 16.0}
IMPORTANT_CLASS = 6  # Shirt: the class the protocol's CE ranking puts last
PARTS = ("setup", "train_steps", "evaluation", "angles", "final")
PART_NAMES = {"setup": "set-up", "train_steps": "training steps", "evaluation": "validation each epoch",
              "angles": "angle summary each epoch", "final": "final scoring and saving"}
WARMUP_IMAGES = 1024  # the warm-up run: one epoch on this many training images
# A measured run's epoch is scaled to the full run by its number of images: that holds for
# epochs of several full batches, not for a few images (one batch of one image costs nearly what
# a full batch does, and would be scaled 50,000-fold).
MIN_BATCHES = 4
LOADED = 0.10  # other processes' CPU share above which the report says the machine was busy


@dataclass(frozen=True)
class Variant:
    label: str
    processes: int = 1
    threads: int | None = None  # TensorFlow's intra- and inter-op threads per process; None: its default
    options: dict = field(default_factory=dict)  # TrainConfig fields set on every run


BASELINE = "baseline"
VARIANTS = {
    BASELINE: Variant("today: 1 process, default threads"),
    "2x1": Variant("2 processes x 1 thread", processes=2, threads=1),
    "2xdefault": Variant("2 processes x default threads", processes=2),
    "spe8": Variant("steps_per_execution 8", options={"steps_per_execution": 8}),
    "spe32": Variant("steps_per_execution 32", options={"steps_per_execution": 32}),
    "eval1024": Variant("evaluation batch 1024", options={"eval_batch_size": 1024}),
    "angles500": Variant("angle summary on 500 images", options={"angle_sample": 500}),
    "angles_off": Variant("no angle summary", options={"angle_sample": 0}),
    "combined": Variant("2 processes x 1 thread, steps_per_execution 32, evaluation batch 1024",
                        processes=2, threads=1, options={"steps_per_execution": 32, "eval_batch_size": 1024}),
}


# ---------------------------------------------------------------------------------------------
# Worker: one process of a trial. Imports TensorFlow only here, after its thread settings.


def _timer_callback():
    import keras

    class Timer(keras.callbacks.Callback):
        """Times of fit's events. Placed first among the run's callbacks, so its epoch end comes
        before the angle summary's: the summary's time is from there to the next event."""

        def __init__(self):
            super().__init__()
            self.events = []

        def _mark(self, name):
            self.events.append((name, time.perf_counter()))

        def on_train_begin(self, logs=None):
            self._mark("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            self._mark("epoch_begin")

        def on_test_begin(self, logs=None):
            self._mark("test_begin")

        def on_test_end(self, logs=None):
            self._mark("test_end")

        def on_epoch_end(self, epoch, logs=None):
            self._mark("epoch_end")

        def on_train_end(self, logs=None):
            self._mark("train_end")

    return Timer()


def parts_of(events, start, end):
    """A run's parts from its fit events (``[(name, time)]``) and the times its per-run
    function started and ended (after the session was cleared): ``{"setup", "final",
    "epochs": [{"train_steps", "evaluation", "angles"}, ...]}`` in seconds."""
    names = [n for n, _ in events]
    if not names or names[0] != "train_begin" or names[-1] != "train_end":
        raise ValueError(f"the timer saw no complete fit ({names[:3]}...): was its callback passed to training?")
    epochs, current, last_epoch_end = [], None, None
    for name, t in events[1:]:
        if last_epoch_end is not None and name in ("epoch_begin", "train_end"):
            epochs[-1]["angles"] = t - last_epoch_end
            last_epoch_end = None
        if name == "epoch_begin":
            current = {"begin": t, "test_begin": None, "test_end": None}
        elif name in ("test_begin", "test_end"):
            current[name] = t
        elif name == "epoch_end":
            steps_end = current["test_begin"] if current["test_begin"] is not None else t
            evaluation = (current["test_end"] - current["test_begin"]) if current["test_end"] is not None else 0.0
            epochs.append({"train_steps": steps_end - current["begin"], "evaluation": evaluation, "angles": 0.0})
            last_epoch_end = t
    return {"setup": events[0][1] - start, "final": end - events[-1][1], "epochs": epochs}


def _threads(threads):
    """Set TensorFlow's threads as the protocol's workers do (before TensorFlow starts); returns
    what the records state (``{"intra_op", "inter_op"}``, None: TensorFlow's default)."""
    from camri_utils.protocol.workers import set_threads
    from camri_utils.training import threads as current

    set_threads(threads)
    return current()


def bench_spec(epochs, train_subset):
    """The full preset with CAMRI at one setting only, shortened to ``epochs`` on ``train_subset``
    training images."""
    import dataclasses

    from camri_utils import protocol

    spec = protocol.preset(DATASET, "full")
    return dataclasses.replace(spec, epochs=epochs, train_subset=train_subset, camri_grid=[dict(CAMRI_SETTING)],
                               arcface_grid=[], normsoftmax_grid=[], wce_weights=[], crwwce_weights=[])


def _planned(spec, kind, seed, options):
    """The protocol's planned CAMRI run for ``seed``, with ``options`` set on its TrainConfig."""
    import dataclasses

    from camri_utils.protocol import runner, store

    spec = dataclasses.replace(spec, seeds=[seed])
    (planned,) = runner.plan(spec, kind, [IMPORTANT_CLASS])
    config = dataclasses.replace(planned.config, **options)
    return dataclasses.replace(planned, config=config, run_id=store.run_id(config, planned.method, kind))


def _record_summary(output, run_id):
    import numpy as np

    record = json.loads((Path(output) / "runs" / f"{run_id}.json").read_text())
    with np.load(Path(output) / "runs" / f"{run_id}.npz") as arrays:
        test_scores = arrays["test"].astype(float).tolist()
    return {"accuracy": record["accuracy"], "validation_accuracy": record["validation"]["accuracy"],
            "history": record["history"], "test_scores": test_scores,
            "angles": "angles_per_epoch" in record, "config": record["config"]}


def _wait_for_all(barrier, processes, me, timeout=900):
    """A barrier between the trial's workers: each marks itself ready, then waits for all."""
    Path(barrier, f"{me}.ready").touch()
    deadline = time.monotonic() + timeout
    while len(list(Path(barrier).glob("*.ready"))) < processes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the other workers of this trial were not ready within {timeout} s")
        time.sleep(0.05)


def worker(job):
    """Run one worker of a trial as ``job`` (a dict, see :func:`_job`) says; writes its result
    to ``job["result"]``."""
    t0 = time.perf_counter()
    threads = _threads(job["threads"])
    import keras

    from camri_utils import data, training
    from camri_utils.protocol import runner
    from camri_utils.protocol.store import open_output

    ds = data.load(DATASET, job["data_dir"])
    startup = time.perf_counter() - t0
    spec = bench_spec(job["epochs"], job["train_subset"])
    output = Path(job["output"])
    open_output(spec, output, ds.source.kind)
    original_train = training.train

    def one_run(planned):
        timer = _timer_callback()

        def timed_train(config, callbacks=(), dataset=None):
            return original_train(config, callbacks=[timer, *callbacks], dataset=dataset)

        # The runner imports training.train when it runs (or holds it, should it import it once).
        patched = [m for m in (training, runner) if getattr(m, "train", None) is original_train]
        for module in patched:
            module.train = timed_train
        try:
            start = time.perf_counter()
            runner.train_one(spec, output, planned, ds)
            keras.backend.clear_session()  # as the protocol's loop does after every run
            end = time.perf_counter()
        finally:
            for module in patched:
                module.train = original_train
        return parts_of(timer.events, start, end), end - start

    # Warm-up: what a process pays once (first graphs, thread pools), on a short run.
    warm = _planned(bench_spec(1, WARMUP_IMAGES), ds.source.kind, 1000 + job["process"], job["options"])
    t = time.perf_counter()
    one_run(warm)
    warmup = time.perf_counter() - t

    planned = [_planned(spec, ds.source.kind, s, job["options"]) for s in job["seeds"]]
    full_config = bench_config_full(planned[0].config)
    prepared, full = (training._prepare_data(c, ds) for c in (planned[0].config, full_config))
    shape = {"train": len(prepared.x_train), "validation": len(prepared.x_val), "test": len(prepared.x_test),
             "full_train": len(full.x_train), "epochs": job["epochs"], "full_epochs": full_config.epochs}
    batch = full_config.batch_size
    if shape["train"] < MIN_BATCHES * batch:
        raise ValueError(f"a measured run would train on {shape['train']} images, fewer than {MIN_BATCHES} batches of "
                         f"{batch}: its time per image says nothing of the full run's. Pass a larger --train-subset "
                         "(or data with more training images).")
    _wait_for_all(job["barrier"], job["processes"], job["process"])
    window = [time.time(), None]
    runs = []
    for p in planned:
        parts, total = one_run(p)
        runs.append({"seed": p.seed, "run_id": p.run_id, "total": total, **parts,
                     "record": _record_summary(output, p.run_id)})
    window[1] = time.time()
    Path(job["result"]).write_text(json.dumps(
        {"process": job["process"], "threads": threads, "startup": startup, "warmup": warmup, "shape": shape,
         "data": {"kind": ds.source.kind, "real": bool(ds.source.real)}, "window": window, "runs": runs}))


def bench_config_full(config):
    """``config`` as the full preset trains it: all training images, the preset's epochs."""
    import dataclasses

    from camri_utils import protocol

    return dataclasses.replace(config, train_subset=None, epochs=protocol.preset(DATASET, "full").epochs)


# ---------------------------------------------------------------------------------------------
# Coordinator: starts the workers, alternates the variants, summarises and reports.


def _job(key, variant, process, round_index, args, folder):
    runs = args.runs
    return {"variant": key, "threads": variant.threads, "options": variant.options, "process": process,
            "processes": variant.processes, "seeds": list(range(process * runs, process * runs + runs)),
            "epochs": args.epochs, "train_subset": args.train_subset, "data_dir": args.data_dir,
            "output": str(folder / f"records-{process}"), "barrier": str(folder / "barrier"),
            "result": str(folder / f"result-{process}.json")}


def run_trial(key, variant, round_index, args, folder):
    """Start the variant's workers, wait for them; their results and the machine's CPU load."""
    folder = Path(folder) / f"round{round_index}-{key}"
    (folder / "barrier").mkdir(parents=True)
    jobs = [_job(key, variant, p, round_index, args, folder) for p in range(variant.processes)]
    procs = []
    load, started = CpuShare(children=True), time.perf_counter()
    for job in jobs:
        (folder / f"job-{job['process']}.json").write_text(json.dumps(job))
        log = open(folder / f"log-{job['process']}.txt", "w")
        procs.append((subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker",
                                        str(folder / f"job-{job['process']}.json")],
                                       stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for proc, log in procs:
            proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        for proc, _ in procs:
            proc.kill()
        raise RuntimeError(f"variant {key!r} (round {round_index + 1}): a worker ran longer than --timeout "
                           f"{args.timeout} s; raise it or shorten the runs.") from None
    finally:
        for proc, log in procs:
            proc.wait()
            log.close()
    cpu = load.stop()
    for (proc, _), job in zip(procs, jobs):
        if proc.returncode != 0:
            tail = (folder / f"log-{job['process']}.txt").read_text()[-3000:]
            raise RuntimeError(f"variant {key!r} (round {round_index + 1}), worker {job['process']} failed "
                               f"(exit {proc.returncode}):\n{tail}")
    return {"workers": [json.loads(Path(job["result"]).read_text()) for job in jobs], "load": cpu,
            "wall_s": time.perf_counter() - started}


def full_run(run, shape):
    """One run's parts scaled to the full run (seconds): see the module docstring."""
    epochs = run["epochs"]
    if len(epochs) < 2:
        raise ValueError(f"scaling needs at least 2 epochs (a steady one after the first); got {len(epochs)}.")
    images = {"train_steps": shape["full_train"] / shape["train"], "evaluation": 1.0, "angles": 1.0}
    out = {"setup": run["setup"], "final": run["final"]}
    for part, factor in images.items():
        values = [e[part] for e in epochs]
        steady = statistics.median(values[1:])
        out[part] = max(values[0] - steady, 0.0) + shape["full_epochs"] * steady * factor
    out["total"] = sum(out[p] for p in PARTS)
    return out


def trial_rate(trial):
    """Runs per hour of a trial: the sum over its processes of 3600 / median full-run time."""
    rate = 0.0
    for w in trial["workers"]:
        rate += 3600.0 / statistics.median(full_run(r, w["shape"])["total"] for r in w["runs"])
    return rate


def overlap(trial):
    """The share of the trial's timed span during which all its processes were timing runs."""
    windows = [w["window"] for w in trial["workers"]]
    span = max(e for _, e in windows) - min(s for s, _ in windows)
    common = min(e for _, e in windows) - max(s for s, _ in windows)
    return max(common, 0.0) / span if span > 0 else 1.0


def _spread(values):
    return {"per_round": values, "median": statistics.median(values), "min": min(values), "max": max(values)}


def compare_records(reference, runs):
    """How ``runs``' records differ from ``reference`` ({seed: record summary}), over the seeds
    both have: {"compared", "identical", "history_max_diff", "scores_max_diff", "accuracy_max_diff",
    "differing_keys"}."""
    out = {"compared": 0, "identical": True, "history_max_diff": 0.0, "scores_max_diff": 0.0,
           "accuracy_max_diff": 0.0, "differing_keys": []}
    for run in runs:
        ref = reference.get(run["seed"])
        if ref is None:
            continue
        rec = run["record"]
        out["compared"] += 1
        for key in sorted(set(ref["history"]) | set(rec["history"])):
            a, b = ref["history"].get(key), rec["history"].get(key)
            if a is None or b is None or len(a) != len(b):
                diff = math.inf
            else:
                diff = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
            if diff > 0 and key not in out["differing_keys"]:
                out["differing_keys"].append(key)
            out["history_max_diff"] = max(out["history_max_diff"], diff)
        scores = max((abs(x - y) for ra, rb in zip(ref["test_scores"], rec["test_scores"]) for x, y in zip(ra, rb)),
                     default=0.0)
        out["scores_max_diff"] = max(out["scores_max_diff"], scores)
        out["accuracy_max_diff"] = max(out["accuracy_max_diff"], abs(ref["accuracy"] - rec["accuracy"]))
    out["identical"] = out["compared"] > 0 and out["history_max_diff"] == out["scores_max_diff"] == 0.0
    return out


def summarize(trials, variants):
    """Per variant: runs per hour and speed-up over the baseline (per round, median, range),
    the breakdown of a full run (median over all its runs, seconds), process start-up and
    warm-up, the records' differences from the baseline's, the trials' overlap and load."""
    keys = list(trials)
    reference_key = BASELINE if BASELINE in trials else keys[0]
    first = trials[reference_key][0]
    reference = {r["seed"]: r["record"] for w in first["workers"] for r in w["runs"]}
    rates = {k: [trial_rate(t) for t in trials[k]] for k in keys}
    out = {}
    for k in keys:
        full = [full_run(r, w["shape"]) for t in trials[k] for w in t["workers"] for r in w["runs"]]
        runs = [r for t in trials[k] for w in t["workers"] for r in w["runs"]]
        # The reference's own first-round runs are the reference: compare its later rounds only.
        later = [r for t in trials[k][1:] for w in t["workers"] for r in w["runs"]] if k == reference_key else runs
        v = variants[k]
        workers = [w for t in trials[k] for w in t["workers"]]
        out[k] = {
            "label": v.label, "processes": v.processes, "threads": v.threads, "options": v.options,
            "threads_reported": workers[0]["threads"],
            "runs_per_hour": _spread(rates[k]),
            "speedup": _spread([a / b for a, b in zip(rates[k], rates[reference_key], strict=True)]),
            "full_run_s": {p: statistics.median(f[p] for f in full) for p in (*PARTS, "total")},
            "startup_s": statistics.median(w["startup"] for w in workers),
            "warmup_s": statistics.median(w["warmup"] for w in workers),
            "records": compare_records(reference, later),
            "angles_recorded": all(r["record"]["angles"] for r in runs),
            "overlap": min(overlap(t) for t in trials[k]),
            "load": [t["load"] for t in trials[k]],
            "trial_s": statistics.median(t["wall_s"] for t in trials[k]),
        }
    return {"reference": reference_key, "variants": out,
            "shape": trials[reference_key][0]["workers"][0]["shape"],
            # What the runs trained on: a synthetic fixture's numbers are no Fashion-MNIST throughput.
            "data": trials[reference_key][0]["workers"][0].get("data", {"kind": "real", "real": True}),
            "benchmark_s": sum(t["wall_s"] for k in keys for t in trials[k])}


def run(args, trial=run_trial):
    """Every selected variant once per round, the order rotated by one from round to round.
    Returns {variant: [trial, one per round]} and the order of each round."""
    keys = list(args.variants)
    trials, order = {k: [] for k in keys}, []
    with tempfile.TemporaryDirectory(prefix="camri-throughput-") as folder:
        for r in range(args.repeats):
            round_order = keys[r % len(keys):] + keys[:r % len(keys)]
            for k in round_order:
                print(f"round {r + 1}/{args.repeats}: {VARIANTS[k].label} ...", file=sys.stderr, flush=True)
                trials[k].append(trial(k, VARIANTS[k], r, args, folder))
            order.append(round_order)
    return trials, order


def _range(s, fmt="{:.2f}"):
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}, {fmt.format(s['max'])}]"


def _records_text(rec, key, reference):
    if rec["compared"] == 0:
        return "the reference (one round: nothing to compare)" if key == reference else "no seed in common"
    if rec["identical"]:
        return "identical" + (" (reruns)" if key == reference else "")
    history = ", ".join(rec["differing_keys"])
    return (f"differ: {history} by up to {rec['history_max_diff']:.2g}; test scores by up to "
            f"{rec['scores_max_diff']:.2g}; test accuracy by up to {rec['accuracy_max_diff']:.3g}")


def _load_text(loads):
    loads = [x for x in loads if x is not None]
    if not loads:
        return "n/a"
    return (f"{100 * max(x['niced'] for x in loads):.0f}% / {100 * max(x['normal'] for x in loads):.0f}%")


def command_line(args):
    parts = ["python benchmarks/throughput.py", f"--repeats {args.repeats}", f"--runs {args.runs}",
             f"--epochs {args.epochs}", f"--train-subset {args.train_subset}"]
    if list(args.variants) != list(VARIANTS):
        parts.append("--variants " + " ".join(args.variants))
    if args.data_dir:
        parts.append("--data-dir DIR")
    return " ".join(parts)


def report(summary, args, env=None, code=None, date=None):
    """The Markdown report of :func:`summarize`'s result."""
    if env is None:
        from camri_utils.environment import environment

        env = environment()
    ref = summary["reference"]
    shape = summary["shape"]
    base = summary["variants"][ref]
    lines = [
        "# Protocol throughput benchmark",
        "",
        f"Produced by `{command_line(args)}` on {date or datetime.date.today()}"
        + (f" (code at {code})" if code else "") + ": "
        f"camri_utils {env['camri_utils']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"Python {env['python']}; {env['machine']}, {env['cpu_count']} CPU cores, devices: "
        f"{', '.join(env['devices'])}.",
        "",
    ]
    data_kind = summary.get("data", {"kind": "real", "real": True})
    if not data_kind["real"]:
        lines += [f"**Not a measurement of Fashion-MNIST**: the runs trained on a {data_kind['kind']} (images in "
                  "its file format, not its images), so these numbers show that the benchmark runs and measure "
                  "nothing of the real runs' throughput.", ""]
    lines += [
        f"One run: a CAMRI run (m = 4π/64, s = 16, important class {IMPORTANT_CLASS}) of the Fashion-MNIST full "
        f"preset's configuration{'' if data_kind['real'] else ' on a ' + data_kind['kind']}, trained by the "
        f"protocol's per-run code, measured on {shape['epochs']} epochs of "
        f"{shape['train']:,} training images (validation {shape['validation']:,}, test {shape['test']:,} images) "
        f"and scaled to the full run: {shape['full_epochs']} epochs of {shape['full_train']:,} images. "
        f"{args.repeats} rounds; every round runs each variant once (order rotated), each process training "
        f"{args.runs} timed run(s) after an untimed warm-up; runs per hour sum the processes' rates, the "
        "speed-up is taken within each round; median [min, max] over the rounds.",
        "",
    ]
    loads = [x for v in summary["variants"].values() for x in v["load"] if x is not None]
    busiest = max((x["niced"] + x["normal"] for x in loads), default=0.0)
    if busiest > LOADED:
        lines += [f"**Measured on a busy machine**: other processes used up to {100 * busiest:.0f}% of the CPU "
                  "during a trial (last column), so these times are not this code's; rerun on a quiet machine.", ""]
    if args.note:
        lines += [args.note, ""]
    lines += [
        "| variant | processes x threads | runs per hour | speed-up over baseline | full run per process (s) "
        "| records vs baseline | timed overlap | other processes' CPU: niced / normal |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for key, v in summary["variants"].items():
        threads = "default" if v["threads"] is None else str(v["threads"])
        rec = _records_text(v["records"], key, ref)
        if not v["angles_recorded"]:
            rec += "; no angles_per_epoch"
        elif v["options"].get("angle_sample") not in (None, 2000):
            rec += f"; angles_per_epoch over {v['options']['angle_sample']} images"
        lines.append(
            f"| {v['label']} | {v['processes']} x {threads} | {_range(v['runs_per_hour'], '{:.0f}')} | "
            f"{_range(v['speedup'])} | {v['full_run_s']['total']:.1f} | {rec} | {100 * v['overlap']:.0f}% | "
            f"{_load_text(v['load'])} |")
    lines += [
        "",
        "## Where a run's time goes",
        "",
        "One run's wall time scaled to the full run, median over the variant's runs, in seconds (share of the "
        "total); process start-up (imports, loading the data) is paid once per process, not per run.",
        "",
        "| variant | " + " | ".join(PART_NAMES[p] for p in PARTS) + " | total | process start-up |",
        "| --- | " + " | ".join("---:" for _ in PARTS) + " | ---: | ---: |",
    ]
    for v in summary["variants"].values():
        full = v["full_run_s"]
        cells = [f"{full[p]:.1f} ({100 * full[p] / full['total']:.0f}%)" for p in PARTS]
        lines.append(f"| {v['label']} | " + " | ".join(cells) + f" | {full['total']:.1f} | {v['startup_s']:.1f} |")
    lines += [
        "",
        "Set-up: the validation split and subset, the tf.data pipelines, the model built and compiled. Training "
        "steps: the epochs' training batches (the first epoch also traces the step and fills the data cache). "
        "Validation each epoch: Keras' evaluation on the validation split. Angle summary: the angle of "
        "`angle_sample` validation images to their class weight, each epoch (chapter 8's curves). Final scoring "
        "and saving: the test and validation scores, the record and its scores written, the session cleared. "
        "Records vs baseline compares each run's history and stored test scores with the baseline's run of the "
        "same seed in the first round (the baseline's own line: its later rounds). Timed overlap: the smallest "
        "share, over the rounds, of a trial's timed span during which all its processes were training. The last "
        "column is the largest CPU share, over the rounds, that other processes used during a trial (from "
        "/proc/stat), those at nice > 0 and those at normal priority; a quiet machine shows 0% / 0%.",
        "",
        f"Baseline: {base['full_run_s']['total']:.1f} s per full run, {base['runs_per_hour']['median']:.0f} runs "
        f"per hour. The benchmark took {summary['benchmark_s'] / 60:.0f} minutes.",
    ]
    return "\n".join(lines) + "\n"


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="which variants to measure (default all; the baseline is the reference)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="rounds (default 3)")
    parser.add_argument("--runs", type=positive_int, default=2, help="timed runs per process per trial (default 2)")
    parser.add_argument("--epochs", type=positive_int, default=3,
                        help="epochs of a measured run (>= 2: the first traces, later ones are steady; default 3)")
    parser.add_argument("--train-subset", type=positive_int, default=10000,
                        help="training images of a measured run (default 10,000 of the 50,000)")
    parser.add_argument("--data-dir", default=None, help="folder holding Fashion-MNIST (see camri_utils.data.load)")
    parser.add_argument("--timeout", type=positive_int, default=1800, help="seconds a trial may take (default 1800)")
    parser.add_argument("--note", default="", help="a paragraph added to the report (e.g. the machine's load)")
    parser.add_argument("--write", default=None,
                        help="write the report to this Markdown file and the numbers beside it (.json)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        if args.epochs < 2:
            parser.error("--epochs must be at least 2: the first epoch traces, the steady ones are scaled")
        if len(set(args.variants)) != len(args.variants):
            parser.error("--variants lists a variant twice")
        if args.write and not Path(args.write).resolve().parent.is_dir():
            parser.error(f"--write {args.write}: its folder does not exist")
        if args.write and Path(args.write).suffix != ".md":
            parser.error(f"--write {args.write}: give a .md file (the numbers go beside it, as .json)")
        if args.data_dir is not None and not args.data_dir.strip():
            parser.error("--data-dir is empty; give a folder, or leave it out to use the usual places")
        if args.data_dir and not Path(args.data_dir).is_dir():
            parser.error(f"--data-dir {args.data_dir}: no such folder")
        if args.write is not None and not args.write.strip():
            parser.error("--write is empty; give a .md file, or leave it out to print the report only")
        from camri_utils import protocol

        batch = protocol.preset(DATASET, "full").batch_size
        if args.train_subset < MIN_BATCHES * batch:
            parser.error(f"--train-subset {args.train_subset}: a measured run needs at least {MIN_BATCHES} batches "
                         f"of {batch} images ({MIN_BATCHES * batch}), else its time per image says nothing of the "
                         "full run's")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:
        worker(json.loads(Path(args.worker).read_text()))
        return
    trials, order = run(args)
    summary = summarize(trials, VARIANTS)
    code = code_version()
    text = report(summary, args, code=code)
    print(text)
    if args.write:
        from camri_utils.environment import environment

        md = Path(args.write)
        numbers = {"command": command_line(args), "date": str(datetime.date.today()), "code": code,
                   "environment": environment(), "order": order, **summary}
        md.with_suffix(".json").write_text(json.dumps(numbers, indent=1) + "\n")
        md.write_text(text)


if __name__ == "__main__":
    main()

"""Benchmark: train-step time of CAMRI loss against cross-entropy, compiled against eager (the
authors' configuration), and tf.data throughput against what the model consumes.

    python benchmarks/train_step.py                 # prints a Markdown report
    python benchmarks/train_step.py --write benchmarks/RESULTS.md

The variants of one model are timed in alternation in one process: each of ``--repeats``
rounds times one block of steps of every variant (compiled CAMRI, compiled CE, eager CAMRI),
in an order rotated from round to round, after a warm-up of each. A block gives a wall time
per step (the median of its steps' times) and a CPU time per step (this process's CPU time
over the block / steps). A ratio is taken block by block within a round (CAMRI block / CE block
of the same round), so load that comes and goes affects both sides of a ratio alike; the report
gives the median and [min, max] of those per-round ratios, in wall and in CPU time, and the
median wall time per step of every variant. Data are random arrays of the datasets' shapes (the
point is speed, not accuracy).

Variants:
    camri        cosine head + CAMRI loss (margin 4 pi / 64, scale 16, important class 3), compiled
    ce           dense head + softmax cross-entropy, compiled
    camri_eager  the camri model compiled with ``run_eagerly=True``: how the CAMRI authors'
                 code trains (every step runs op by op in Python)
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from camri_utils import data, methods, models  # noqa: E402
from camri_utils.data import Dataset, Source  # noqa: E402
from camri_utils.environment import environment  # noqa: E402
from bench_common import CpuShare, code_version  # noqa: E402

N_CLASSES = 10
IMPORTANT = [3]
CAMRI_PARAMS = {"margin": 4 * math.pi / 64, "scale": 16.0}

# label: (model name, input shape, which step counts it uses: "small" or "paper")
CASES = {
    "small CNN, Fashion-MNIST shape (28x28x1)": ("small_cnn", (28, 28, 1), "small"),
    "paper CNN, CIFAR-10 shape (32x32x3)": ("paper_cnn", (32, 32, 3), "paper"),
}

# (numerator, denominator, column name): the ratios reported, each taken block by block.
RATIOS = [("camri", "ce", "CAMRI / CE"), ("camri_eager", "camri", "eager / compiled")]


def build(model_name, shape, method, eager):
    """Model ``model_name`` with the head and loss of ``method`` ("camri" or "ce"), compiled
    with Adam; ``eager=True`` compiles it with ``run_eagerly=True``."""
    keras.utils.set_random_seed(0)
    m = methods.get(method)
    model = models.build(model_name, shape, N_CLASSES, head=m.head)
    loss = (m.build_loss(N_CLASSES, IMPORTANT, CAMRI_PARAMS) if method == "camri"
            else m.build_loss(N_CLASSES, [], {}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, run_eagerly=eager, jit_compile=False)
    return model


def _block(model, x, y, steps):
    """(wall seconds per step, CPU seconds per step) over ``steps`` train steps. The wall time is
    the median of the steps' times, so a burst of load that hits a few steps does not move it;
    the CPU time is this process's (all its threads) over the block, divided by ``steps``. Each
    step returns its loss to Python, so it has finished when its clock stops. Python's garbage
    collector is paused during the block (it runs between blocks instead)."""
    walls = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        cpu = time.process_time()
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            walls.append(time.perf_counter() - start)
        cpu = (time.process_time() - cpu) / steps
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(walls), cpu


def measure(variants, x, y, repeats, warmup=2):
    """Time ``variants`` ({name: (model, steps per block)}) in alternation.

    Every variant first runs ``warmup`` untimed steps (tracing and compiling happen there).
    Then each of ``repeats`` rounds times one block of every variant, the order rotated by one
    from round to round. Returns ``{"wall": {name: [seconds per step, one per round]},
    "cpu": {name: [CPU seconds per step, one per round]}, "order": [[names in the order
    timed], one per round]}``."""
    if repeats < 1 or warmup < 1:
        raise ValueError(f"repeats and warmup must be >= 1; got {repeats} and {warmup}.")
    names = list(variants)
    for model, steps in variants.values():
        if steps < 1:
            raise ValueError(f"steps per block must be >= 1; got {steps}.")
        for _ in range(warmup):
            model.train_on_batch(x, y)
    gc.collect()
    wall, cpu = {name: [] for name in names}, {name: [] for name in names}
    order = []
    for r in range(repeats):
        round_order = names[r % len(names):] + names[:r % len(names)]
        for name in round_order:
            model, steps = variants[name]
            w, c = _block(model, x, y, steps)
            wall[name].append(w)
            cpu[name].append(c)
        order.append(round_order)
    return {"wall": wall, "cpu": cpu, "order": order}


def summarize(blocks, ratios=RATIOS):
    """Median seconds per step of every variant over its blocks (``blocks``: {name: [one per
    round]}), and for every (numerator, denominator) pair the per-round ratios with their
    median, min and max."""
    out = {"median": {name: statistics.median(t) for name, t in blocks.items()}, "ratios": {}}
    for num, den, _ in ratios:
        if num in blocks and den in blocks:
            per_round = [a / b for a, b in zip(blocks[num], blocks[den], strict=True)]
            out["ratios"][(num, den)] = {"per_round": per_round, "median": statistics.median(per_round),
                                         "min": min(per_round), "max": max(per_round)}
    return out


def pipeline_rate(shape, batch, n_batches):
    """Images per second that the library's tf.data training pipeline delivers (second pass,
    after the first has filled its cache)."""
    rng = np.random.default_rng(0)
    n = batch * n_batches
    ds = Dataset("random", rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, N_CLASSES, n),
                 rng.integers(0, 256, (batch, *shape), dtype=np.uint8), rng.integers(0, N_CLASSES, batch),
                 [str(i) for i in range(N_CLASSES)], Source("random arrays", real=False))
    train, _ = data.pipelines(ds, batch_size=batch, seed=0)
    for _ in train:  # first pass fills the cache
        pass
    start = time.perf_counter()
    for _ in train:
        pass
    return n / (time.perf_counter() - start)


def run(args):
    rows = []
    for label, (model_name, shape, kind) in CASES.items():
        if kind not in args.models:
            continue
        rng = np.random.default_rng(0)
        x = keras.ops.convert_to_tensor(rng.uniform(0, 1, (args.batch, *shape)).astype("float32"))
        y = keras.ops.convert_to_tensor(rng.integers(0, N_CLASSES, args.batch).astype("int32"))
        steps, eager_steps, repeats = ((args.steps, args.eager_steps, args.repeats) if kind == "small" else
                                       (args.paper_steps, args.paper_eager_steps, args.paper_repeats))
        print(f"timing {label}: {repeats} rounds of {steps} steps ({eager_steps} eager) ...",
              file=sys.stderr, flush=True)
        variants = {"camri": (build(model_name, shape, "camri", False), steps),
                    "ce": (build(model_name, shape, "ce", False), steps),
                    "camri_eager": (build(model_name, shape, "camri", True), eager_steps)}
        cpu = CpuShare()
        result = measure(variants, x, y, repeats)
        load = cpu.stop()
        summary, cpu_summary = summarize(result["wall"]), summarize(result["cpu"])
        rate = pipeline_rate(shape, args.batch, 50)
        rows.append({"label": label, "repeats": repeats, "steps": steps, "eager_steps": eager_steps,
                     "summary": summary, "cpu": cpu_summary, "tf_data": rate,
                     "consumes": args.batch / summary["median"]["camri"], "load": load})
        del variants
        keras.backend.clear_session()
    return rows


def _ratio(r):
    return f"{r['median']:.2f} [{r['min']:.2f}, {r['max']:.2f}]"


def report(rows, args, env=None, code=None):
    env = env or environment()
    devices = ", ".join(env["devices"])
    command = (f"python benchmarks/train_step.py --batch {args.batch} --steps {args.steps} "
               f"--eager-steps {args.eager_steps} --repeats {args.repeats} --paper-steps {args.paper_steps} "
               f"--paper-eager-steps {args.paper_eager_steps} --paper-repeats {args.paper_repeats}"
               + ("" if sorted(args.models) == ["paper", "small"] else f" --models {' '.join(args.models)}"))
    lines = [
        "# Training-step benchmark",
        "",
        f"Produced by `{command}` on {datetime.date.today()}"
        + (f" (code at {code})" if code else "") + ": "
        f"camri_utils {env['camri_utils']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"Python {env['python']}; {env['machine']}, {env['cpu_count']} CPU cores, devices: {devices}. "
        f"Batch {args.batch}, random data.",
        "",
        "The three variants of a model (compiled CAMRI, compiled CE, eager CAMRI) are timed in "
        "alternation in one process: every round times one block of steps of each, the order "
        "rotated from round to round, after a warm-up of each. A block's wall time per step is "
        "the median of its steps' times; its CPU time per step is this process's CPU time over "
        "the block divided by its steps. A ratio is taken within each round (e.g. the CAMRI "
        "block over the CE block of the same round) and given as median [min, max] over the "
        "rounds; step times are medians over the rounds. Python's garbage collector is paused "
        "during a block.",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    lines += [
        "| model | rounds x steps (eager) | CAMRI step (ms) | CE step (ms) | CAMRI / CE | CAMRI / CE, CPU time "
        "| eager CAMRI step (ms) | eager / compiled | eager / compiled, CPU time | tf.data (images/s) "
        "| model consumes (images/s) | tf.data / model | other processes' CPU: niced / normal |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        med, ratios, cpu = row["summary"]["median"], row["summary"]["ratios"], row["cpu"]["ratios"]
        load = ("n/a" if row["load"] is None else
                f"{100 * row['load']['niced']:.0f}% / {100 * row['load']['normal']:.0f}%")
        lines.append(
            f"| {row['label']} | {row['repeats']} x {row['steps']} ({row['eager_steps']}) | "
            f"{1e3 * med['camri']:.1f} | {1e3 * med['ce']:.1f} | {_ratio(ratios[('camri', 'ce')])} | "
            f"{_ratio(cpu[('camri', 'ce')])} | {1e3 * med['camri_eager']:.1f} | "
            f"{_ratio(ratios[('camri_eager', 'camri')])} | {_ratio(cpu[('camri_eager', 'camri')])} | "
            f"{row['tf_data']:,.0f} | {row['consumes']:,.0f} | {row['tf_data'] / row['consumes']:.1f} | {load} |")
    lines += [
        "",
        "CAMRI / CE compares the whole train step (cosine head + CAMRI loss against dense head + "
        "cross-entropy, both compiled by `tf.function`). Eager / compiled is the speed-up of the "
        "compiled CAMRI step over the same model and loss compiled with `run_eagerly=True`, as the "
        "CAMRI authors' code trains. The CPU-time ratios count only the time this process ran, so "
        "other processes' load moves them far less than the wall-time ratios (it still costs them "
        "some: shared caches, thread pools that spin while they wait). tf.data / model above 1 "
        "means the input pipeline is not the bottleneck. The last column is the CPU time that "
        "other processes used during the timing, as a share of all cores (from /proc/stat): those "
        "at nice > 0, and those at normal priority, which compete with the benchmark on equal terms.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=25, help="steps per block, small CNN")
    parser.add_argument("--eager-steps", type=int, default=5, help="steps per block of eager CAMRI, small CNN")
    parser.add_argument("--repeats", type=int, default=30, help="rounds, small CNN")
    parser.add_argument("--paper-steps", type=int, default=2, help="steps per block, paper CNN")
    parser.add_argument("--paper-eager-steps", type=int, default=2,
                        help="steps per block of eager CAMRI, paper CNN")
    parser.add_argument("--paper-repeats", type=int, default=5, help="rounds, paper CNN")
    parser.add_argument("--models", nargs="+", choices=["small", "paper"], default=["small", "paper"],
                        help="which models to time (default both)")
    parser.add_argument("--note", default="", help="a paragraph added to the report (e.g. the machine's load)")
    parser.add_argument("--write", default=None, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    text = report(run(args), args, code=code_version())
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

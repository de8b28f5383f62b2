"""Benchmark: train-step time of CAMRI loss against cross-entropy, compiled against eager, and
tf.data throughput against what the model consumes.

    python benchmarks/train_step.py                 # prints a Markdown report
    python benchmarks/train_step.py --write benchmarks/RESULTS.md

Each measurement is the median over ``--repeats`` timings of ``--steps`` train steps, after a
warm-up; the variants being compared are timed in alternation in the same process, so that a
ratio compares like with like. Data are random arrays of the datasets' shapes (the point is
speed, not accuracy).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from camri_utils import CAMRILoss, data, models  # noqa: E402
from camri_utils.data import Dataset, Source  # noqa: E402

CASES = {
    "small CNN, Fashion-MNIST shape (28x28x1)": ("small_cnn", (28, 28, 1)),
    "paper CNN, CIFAR-10 shape (32x32x3)": ("paper_cnn", (32, 32, 3)),
}


def build(model_name, shape, loss, eager):
    keras.utils.set_random_seed(0)
    head = "cosine" if loss == "camri" else "dense"
    model = models.build(model_name, shape, 10, head=head)
    loss_fn = (CAMRILoss(10, 3, 4 * np.pi / 64, 16.0) if loss == "camri"
               else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_fn, run_eagerly=eager, jit_compile=False)
    return model


def step_time(model, x, y, steps):
    model.train_on_batch(x, y)  # keeps the compiled function warm between timings
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def measure(variants, x, y, steps, repeats):
    """Median seconds per step of each variant, timed in alternation."""
    for model in variants.values():
        for _ in range(2):
            model.train_on_batch(x, y)
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, model in variants.items():
            times[name].append(step_time(model, x, y, steps))
    return {name: statistics.median(t) for name, t in times.items()}


def pipeline_rate(shape, batch, n_batches):
    rng = np.random.default_rng(0)
    n = batch * n_batches
    ds = Dataset("random", rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 10, n),
                 rng.integers(0, 256, (batch, *shape), dtype=np.uint8), rng.integers(0, 10, batch),
                 [str(i) for i in range(10)], Source("random arrays", real=False))
    train, _ = data.pipelines(ds, batch_size=batch, seed=0)
    for _ in train:  # first pass fills the cache
        pass
    start = time.perf_counter()
    for _ in train:
        pass
    return n / (time.perf_counter() - start)


def run(batch, steps, repeats, paper_steps):
    rows = []
    for label, (model_name, shape) in CASES.items():
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (batch, *shape)).astype("float32")
        y = rng.integers(0, 10, batch)
        n_steps = paper_steps if model_name == "paper_cnn" else steps
        print(f"timing {label} ...", file=sys.stderr, flush=True)
        t = measure({"camri": build(model_name, shape, "camri", False), "ce": build(model_name, shape, "ce", False),
                     "camri_eager": build(model_name, shape, "camri", True)}, x, y, n_steps, repeats)
        rate = pipeline_rate(shape, batch, 50)
        rows.append((label, t, rate, batch / t["camri"]))
        keras.backend.clear_session()
    return rows


def report(rows, args):
    import tensorflow as tf

    lines = [
        "# Training-step benchmark",
        "",
        f"Produced by `python benchmarks/train_step.py --batch {args.batch} --steps {args.steps} "
        f"--paper-steps {args.paper_steps} --repeats {args.repeats}` on {datetime.date.today()}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{len(tf.config.list_physical_devices('GPU'))} GPU(s), TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}. Median of {args.repeats} timings; batch {args.batch}; random data.",
        "",
        "| model | CAMRI step (ms) | CE step (ms) | CAMRI / CE | eager CAMRI step (ms) | eager / compiled | "
        "tf.data (images/s) | model consumes (images/s) | tf.data / model |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, t, rate, consume in rows:
        lines.append(
            f"| {label} | {1e3 * t['camri']:.1f} | {1e3 * t['ce']:.1f} | {t['camri'] / t['ce']:.2f} | "
            f"{1e3 * t['camri_eager']:.1f} | {t['camri_eager'] / t['camri']:.2f} | {rate:,.0f} | {consume:,.0f} | "
            f"{rate / consume:.1f} |")
    lines += ["", "CAMRI / CE compares the whole train step (cosine head + CAMRI loss against dense head + "
              "cross-entropy). tf.data / model above 1 means the input pipeline is not the bottleneck."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="steps per timing (small CNN)")
    parser.add_argument("--paper-steps", type=int, default=3, help="steps per timing (paper CNN)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    text = report(run(args.batch, args.steps, args.repeats, args.paper_steps), args)
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

r"""What building the optimizer's and metrics' variables before ``fit`` saves a small run.

    python benchmarks/prebuild.py --repeats 5 --write benchmarks/PREBUILD.md

Under TensorFlow, Keras creates those variables inside the first trace of the train and test
steps unless a distribution strategy is set, and a ``tf.function`` that created variables is
traced again. ``camri_utils.training`` creates them first (``_build_before_tracing``). This
script times :func:`camri_utils.training.train` on small fixture runs of the kind the tests,
chapter 6's sweeps and the quick profiles make, with and without that step, alternating in one
process (the first two runs, which pay for TensorFlow's own start-up, are not counted), and
counts the train step's traces. A full-size run (hundreds of steps an epoch) saves the same
seconds, a negligible share of its minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_common import CpuShare, code_version  # noqa: E402

CASES = [("mlp", "fashion_mnist", "ce"), ("mlp", "fashion_mnist", "camri"), ("cpu_cnn_mx2", "cifar10", "camri")]


def _repeats(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--repeats must be a whole number of at least 1; got {text!r}.")
    return int(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=_repeats, default=5, help="timed runs of each case and variant")
    p.add_argument("--write", default=None, help="also write the report to this Markdown file (its folder must exist)")
    args = p.parse_args(argv)
    if args.write is not None:
        out = Path(args.write)
        if out.suffix != ".md" or not out.parent.is_dir():
            p.error(f"--write {args.write}: give a .md file in an existing folder.")
    return args


def _config(model, dataset, loss):
    from camri_utils.training import TrainConfig

    camri = loss == "camri"
    return TrainConfig(dataset=dataset, model=model, loss=loss, epochs=2, batch_size=16, validation_size=20,
                       loss_params={"margin": 0.2, "scale": 16.0} if camri else {},
                       important_classes=[3] if camri else [], seed=0, verbose=0)


def measure(repeats):
    """{case: {"with": [seconds], "without": [seconds], "traces": (with, without)}}."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    from camri_utils import data, training
    from camri_utils.data import fixtures

    built = training._build_before_tracing
    step, traces = TensorFlowTrainer.train_step, []

    def counted(self, batch):
        traces.append(1)
        return step(self, batch)

    TensorFlowTrainer.train_step = counted
    root = Path(tempfile.mkdtemp(prefix="prebuild-"))
    os.environ["CAMRI_CACHE_DIR"] = str(root / "cache")
    sets = {name: data.load(name, data_dir=fixtures.write(name, root / name, per_class=8))
            for name in {dataset for _, dataset, _ in CASES}}
    out = {}
    for model, dataset, loss in CASES:
        config, times = _config(model, dataset, loss), {"with": [], "without": []}
        counts = {}
        for i in range(repeats + 1):
            for variant in ("with", "without"):
                training._build_before_tracing = built if variant == "with" else (lambda m, spec: None)
                traces.clear()
                start = time.perf_counter()
                training.train(config, dataset=sets[dataset])
                if i:  # the first pair warms TensorFlow up
                    times[variant].append(time.perf_counter() - start)
                counts[variant] = len(traces)
        training._build_before_tracing = built
        out[f"{model}, {loss}"] = {**times, "traces": (counts["with"], counts["without"])}
    TensorFlowTrainer.train_step = step
    return out


def report(results, cpu, version, repeats):
    lines = ["# Building variables before `fit`: small runs", "",
             f"`python benchmarks/prebuild.py --repeats {repeats}` at {version or 'an unknown commit'}: "
             "fixture data (8 images per class), 2 epochs of batch 16, one process, the variants "
             "alternating; the median of the timed runs.", "",
             "| run | train-step traces (built first / in the trace) | seconds, built first | "
             "seconds, in the trace | saved |", "| --- | --- | --- | --- | --- |"]
    for case, r in results.items():
        a, b = statistics.median(r["with"]), statistics.median(r["without"])
        lines.append(f"| {case} | {r['traces'][0]} / {r['traces'][1]} | {a:.2f} | {b:.2f} | {1 - a / b:.0%} |")
    if cpu is not None:
        lines += ["", f"CPU during the timing: this process {cpu['own']:.0%} of all cores, other processes "
                      f"{cpu['normal']:.0%} at normal priority and {cpu['niced']:.0%} niced."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cpu = CpuShare()
    results = measure(args.repeats)
    text = report(results, cpu.stop(), code_version(), args.repeats)
    print(text)
    if args.write:
        tmp = Path(args.write).with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(args.write)


if __name__ == "__main__":
    main()

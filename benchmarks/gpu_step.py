"""Benchmark: the training step of Part III's network on a GPU, measured, beside the cost
model's counted FLOPs.

    python benchmarks/gpu_step.py --peak-tflops 8.1 --write GPU_STEP.md   # on a T4; also GPU_STEP.json
    KERAS_BACKEND=jax python benchmarks/gpu_step.py ...                     # any Keras 3 backend

``camri_utils.cost`` estimates GPU time from the FLOPs of a training step, counted from the
network's layers, and an *assumed* efficiency and mixed-precision speed-up (no GPU where the
book is built). This script measures what those assumptions stand for on whatever accelerator
it runs on: the paper CNN (``models.build("paper_cnn", ...)``, 32x32x3 images as in the
CIFAR-10 chapter) trained with CE (dense head) and with CAMRI (cosine head, m = 4 pi / 64,
s = 16), compiled, in float32 and in mixed precision, at the chapters' batch size and larger
ones. Per variant: milliseconds per step (median over ``--repeats`` blocks of ``--steps``
steps, each block one ``model.fit`` epoch over host arrays, so the step includes the batch's
transfer as a chapter's training does), images per second, and the FLOP rate that is
(``cost.TRAIN_FLOPS_PER_FORWARD`` x ``cost.forward_flops`` per image x images per second),
as a share of the device's float32 peak where ``--peak-tflops`` gives it. Data are random
arrays (the point is speed, not accuracy). The variants are timed in alternation, round by
round, so a slow spell affects all of them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from camri_utils import cost, methods, models  # noqa: E402
from bench_common import code_version  # noqa: E402

N_CLASSES = 10
IMPORTANT = [3]
CAMRI_PARAMS = {"margin": 4 * math.pi / 64, "scale": 16.0}
POLICIES = {"float32": "float32", "mixed": None}  # mixed: float16 on CUDA, bfloat16 elsewhere


def device_name():
    """The accelerator the backend computes on, in words ("CPU" where there is none)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return d.device_kind if d.platform != "cpu" else "CPU"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return "CPU"
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return "unknown"


def mixed_policy(device):
    """float16 with loss scaling on NVIDIA GPUs (their tensor cores' format), bfloat16 elsewhere."""
    return "mixed_float16" if device != "CPU" else "mixed_bfloat16"


def build(method, policy, shape, model_name="paper_cnn"):
    """The model of ``method`` ("ce" or "camri") under the dtype ``policy``, compiled."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        m = methods.get(method)
        model = models.build(model_name, shape, N_CLASSES, head=m.head)
        loss = (m.build_loss(N_CLASSES, IMPORTANT, CAMRI_PARAMS) if method == "camri"
                else m.build_loss(N_CLASSES, [], {}))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile="auto")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


def time_block(model, x, y, batch):
    """Seconds per step of one ``fit`` epoch over ``x`` (len(x) / batch steps)."""
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / (len(x) // batch)


def measure(variants, shape, steps, repeats, warmup_steps=5):
    """{label: [seconds per step, one per round]} for ``variants`` ({label: (model, batch)}),
    each warmed up (traced and compiled) first, then timed in rotating order."""
    rng = np.random.default_rng(0)
    data = {}
    for label, (model, batch) in variants.items():
        if batch not in data:
            x = rng.random((steps * batch, *shape), dtype=np.float32)
            data[batch] = (x, rng.integers(0, N_CLASSES, len(x)))
        x, y = data[batch]
        model.fit(x[:warmup_steps * batch], y[:warmup_steps * batch], batch_size=batch, epochs=1, verbose=0)
    times = {label: [] for label in variants}
    labels = list(variants)
    for r in range(repeats):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            model, batch = variants[label]
            times[label].append(time_block(model, *data[batch], batch))
    return times


def rows(times, specs, flops_per_image, peak_tflops=None):
    """One dict per variant: ms per step (median, min, max), images/s, TFLOP/s and share of
    the float32 peak, and the mixed-precision speed-up over float32 of the same method and batch."""
    out = []
    for label, seconds in times.items():
        method, precision, batch = specs[label]
        median = statistics.median(seconds)
        tflops = cost.TRAIN_FLOPS_PER_FORWARD * flops_per_image * batch / median / 1e12
        out.append({"method": method, "precision": precision, "batch": batch, "ms_per_step": median * 1000,
                    "ms_min": min(seconds) * 1000, "ms_max": max(seconds) * 1000, "images_per_s": batch / median,
                    "tflops": tflops, "share_of_float32_peak": tflops / peak_tflops if peak_tflops else None})
    for row in out:
        base = next(r for r in out if (r["method"], r["batch"], r["precision"]) == (row["method"], row["batch"], "float32"))
        row["speedup_over_float32"] = base["ms_per_step"] / row["ms_per_step"]
    return out


def report(result):
    r = result
    peak = f"{r['peak_tflops']:g} TFLOP/s float32 peak (datasheet, given)" if r["peak_tflops"] else "no peak given"
    lines = [
        f"# The training step of `{r['model']}` on an accelerator", "",
        f"Produced by `python benchmarks/gpu_step.py {r['arguments']}` on {r['date']} (code at {r['code']}): "
        f"{r['device']} ({peak}), Keras {r['keras']} with the {r['backend']} backend, mixed precision = "
        f"`{r['mixed_policy']}`. Model: `{r['model']}` on 32x32x3 images, 10 classes (the CIFAR-10 chapter's shape), "
        f"{r['forward_gflops']:.3f} GFLOP per image forward (`cost.forward_flops`), a training step counted as "
        f"{r['train_flops_per_forward']} forward passes. Each cell: median over {r['repeats']} rounds of one "
        f"`fit` epoch of {r['steps']} steps on random host arrays, variants alternated.", "",
        "| method | precision | batch | ms per step [min, max] | images/s | TFLOP/s | share of float32 peak "
        "| mixed / float32 speed-up |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["rows"]:
        share = f"{row['share_of_float32_peak']:.3f}" if row["share_of_float32_peak"] is not None else "-"
        speed = f"{row['speedup_over_float32']:.2f}x" if row["precision"] != "float32" else ""
        lines.append(f"| {row['method']} | {row['precision']} | {row['batch']} | {row['ms_per_step']:.2f} "
                     f"[{row['ms_min']:.2f}, {row['ms_max']:.2f}] | {row['images_per_s']:,.0f} | "
                     f"{row['tflops']:.2f} | {share} | {speed} |")
    lines += ["", "The chapters' cost estimates (`camri_utils.cost`) assume a share of a T4's float32 peak and a "
                  "mixed-precision speed-up; this table is what those two were on the device above.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256], help="batch sizes (default 64 256)")
    parser.add_argument("--methods", nargs="+", choices=["ce", "camri"], default=["ce", "camri"])
    parser.add_argument("--steps", type=int, default=100, help="steps per timed block (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--model", default="paper_cnn", help="a camri_utils.models name (default paper_cnn)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's float32 peak from its datasheet, for the share column")
    parser.add_argument("--write", default=None, help="write the report to this .md file and the numbers beside it (.json)")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1; got {getattr(args, name)}.")
    if any(b < 1 for b in args.batches):
        parser.error(f"--batches must be positive; got {args.batches}.")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        parser.error(f"--peak-tflops must be a positive number; got {args.peak_tflops}.")
    write = Path(args.write) if args.write else None
    if write is not None and (write.suffix != ".md" or not write.parent.is_dir()):
        parser.error(f"--write must name a .md file in an existing folder; got {args.write}.")

    shape = (32, 32, 3)
    device = device_name()
    policy = mixed_policy(device)
    variants, specs = {}, {}
    for method in args.methods:
        for precision, pol in POLICIES.items():
            model = build(method, pol or policy, shape, args.model)
            for batch in args.batches:
                label = f"{method} {precision} {batch}"
                variants[label], specs[label] = (model, batch), (method, precision, batch)
    flops = cost.forward_flops(next(iter(variants.values()))[0])
    times = measure(variants, shape, args.steps, args.repeats)
    result = {"date": datetime.date.today().isoformat(), "code": code_version(), "device": device,
              "backend": keras.backend.backend(), "keras": keras.__version__, "mixed_policy": policy,
              "peak_tflops": args.peak_tflops, "model": args.model, "forward_gflops": flops / 1e9,
              "train_flops_per_forward": cost.TRAIN_FLOPS_PER_FORWARD, "steps": args.steps, "repeats": args.repeats,
              "arguments": " ".join(sys.argv[1:] if argv is None else argv),
              "rows": rows(times, specs, flops, args.peak_tflops)}
    text = report(result)
    print(text)
    if write is not None:
        write.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        write.write_text(text)
    return result


if __name__ == "__main__":
    main()

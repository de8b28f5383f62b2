"""What the book's experiments cost: GPU-hour estimates from a counted FLOP figure and a stated
efficiency, beside the measured CPU figures of the same training step.

The estimate is arithmetic, not a measurement: the FLOPs of a training step are counted from
the model's layers (:func:`forward_flops`, times :data:`TRAIN_FLOPS_PER_FORWARD` for the
backward pass), and a GPU is assumed to sustain :data:`EFFICIENCY` of its datasheet peak.
What *is* measured is the same step on this project's 2-core CPU
(``benchmarks/RESULTS.md``, by ``benchmarks/train_step.py``): :func:`measured_cpu_step` reads
it, so a reader sees the FLOP rate the code reached on a machine we have. :func:`levers` shows
how the estimate moves with the choices that change it (epochs, batch size, mixed precision,
and the efficiency assumption itself).

Example::

    from camri_utils import cost, protocol
    estimate = cost.protocol_estimate(protocol.preset("cifar10", "full"))
    print(f"{estimate.gpu_hours:,.0f} T4 GPU-hours")
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

__all__ = ["GPU", "T4", "EFFICIENCY", "MIXED_PRECISION_SPEEDUP", "TRAIN_FLOPS_PER_FORWARD", "N_CLASSES",
           "TRAIN_IMAGES", "forward_flops", "model_flops", "Estimate", "estimate", "protocol_runs",
           "protocol_estimate", "measured_cpu_step", "measured_cpu_rate", "measured_breakdown", "levers"]


@dataclass(frozen=True)
class GPU:
    """A GPU's datasheet peaks, in TFLOP/s: float32, and float16 on its tensor cores (what mixed
    precision uses)."""

    name: str
    float32_tflops: float
    float16_tflops: float


# NVIDIA's T4 datasheet: 8.1 TFLOP/s float32, 65 TFLOP/s mixed precision (float16 tensor cores).
T4 = GPU("T4", 8.1, 65.0)
# Assumed, not measured (no GPU here): the share of the float32 peak that a compiled Keras
# training step of a small convolutional network sustains at batch 64. Memory traffic, small
# layers and per-step overhead keep it well below 1.
EFFICIENCY = 1 / 3
# Assumed, not measured: how much faster mixed precision makes such a step. Far less than the
# ratio of the peaks (65 / 8.1): the same limits apply, and the margin is computed in float32.
MIXED_PRECISION_SPEEDUP = 2.0
# A training step costs about three forward passes: the forward pass, and a backward pass of
# about twice its FLOPs (gradients with respect to the activations and to the weights).
TRAIN_FLOPS_PER_FORWARD = 3
N_CLASSES = {"cifar10": 10, "gtsrb": 43, "awa2": 50, "fashion_mnist": 10}
# Official training images (AwA2 has no official split: our 70% training part of its 37,322).
TRAIN_IMAGES = {"cifar10": 50000, "gtsrb": 39209, "awa2": round(37322 * 0.7), "fashion_mnist": 60000}


def forward_flops(model):
    """FLOPs of one image's forward pass through ``model``: the multiply-adds of its
    convolutions and dense layers (and of a cosine head's product), counted as two FLOPs each.
    Batch normalisation, activations, pooling and normalisation are left out (for the paper's
    CNN they are well under 1% of the total)."""
    import keras

    from camri_utils.layers import CosineHead

    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            height, width, filters = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += 2 * height * width * filters * kh * kw * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, (keras.layers.Dense, CosineHead)):
            total += 2 * int(math.prod(layer.kernel.shape))
    return int(total)


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model
            yield from _layers(layer)
        else:
            yield layer


def model_flops(name, dataset, image_size=None, feature_dim=None):
    """:func:`forward_flops` of model ``name`` (``camri_utils.models``) for ``dataset``'s images
    (colour, ``image_size`` pixels square; default: 32, Fashion-MNIST's 28x28 gray)."""
    from camri_utils import models

    if dataset not in N_CLASSES:
        raise ValueError(f"dataset must be one of {sorted(N_CLASSES)}; got {dataset!r}.")
    shape = (28, 28, 1) if dataset == "fashion_mnist" else (image_size or 32, image_size or 32, 3)
    return forward_flops(models.build(name, shape, N_CLASSES[dataset], feature_dim=feature_dim))


@dataclass(frozen=True)
class Estimate:
    """An estimated cost: ``runs`` trainings of ``epochs`` epochs of ``steps_per_epoch`` steps
    of ``batch_size`` images, plus a forward pass over ``eval_images`` after each epoch (the
    validation split), on ``gpu`` at ``efficiency`` of its peak (float16's peak divided by the
    float32 one is not assumed: mixed precision divides the time by ``speedup``)."""

    runs: int
    epochs: int
    train_images: int
    eval_images: int
    batch_size: int
    forward_flops: int
    gpu: GPU
    efficiency: float
    speedup: float

    @property
    def steps_per_epoch(self):
        return math.ceil(self.train_images / self.batch_size)

    @property
    def epoch_flops(self):
        return (TRAIN_FLOPS_PER_FORWARD * self.train_images + self.eval_images) * self.forward_flops

    @property
    def total_flops(self):
        return self.runs * self.epochs * self.epoch_flops

    @property
    def sustained_flops(self):
        """FLOP/s assumed on the GPU."""
        return self.gpu.float32_tflops * 1e12 * self.efficiency * self.speedup

    @property
    def step_seconds(self):
        return TRAIN_FLOPS_PER_FORWARD * self.forward_flops * self.batch_size / self.sustained_flops

    @property
    def gpu_hours(self):
        return self.total_flops / self.sustained_flops / 3600


def _check_positive(value, name, integer=False):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}; got {value!r}.")


def estimate(runs, epochs, train_images, eval_images, batch_size, forward_flops, gpu=T4, efficiency=EFFICIENCY,
             mixed_precision=False, speedup=MIXED_PRECISION_SPEEDUP):
    """An :class:`Estimate`, its inputs checked."""
    for value, name in ((runs, "runs"), (epochs, "epochs"), (train_images, "train_images"),
                        (batch_size, "batch_size"), (forward_flops, "forward_flops")):
        _check_positive(value, name, integer=True)
    if isinstance(eval_images, bool) or not isinstance(eval_images, int) or eval_images < 0:
        raise ValueError(f"eval_images must be an integer >= 0; got {eval_images!r}.")
    _check_positive(efficiency, "efficiency")
    if efficiency > 1:
        raise ValueError(f"efficiency is a share of the GPU's peak, at most 1; got {efficiency!r}.")
    _check_positive(speedup, "speedup")
    return Estimate(runs, epochs, train_images, eval_images, batch_size, forward_flops, gpu, efficiency,
                    speedup if mixed_precision else 1.0)


def _split(dataset, validation_size):
    """(training images, validation images) of ``dataset`` under ``validation_size``."""
    from camri_utils import data

    total = TRAIN_IMAGES[dataset]
    size = data.VALIDATION_SIZE.get(dataset, 0.2) if validation_size == "auto" else (validation_size or 0)
    held_out = size if isinstance(size, int) else round(size * total)
    return total - held_out, held_out


def protocol_runs(spec):
    """(runs shared by the three important classes, class-specific runs) of a protocol spec."""
    from camri_utils import protocol

    return len(protocol.plan(spec, "real")), len(protocol.plan(spec, "real", [0, 1, 2]))


def protocol_estimate(spec, epochs=None, batch_size=None, mixed_precision=False, efficiency=EFFICIENCY, gpu=T4,
                      runs=None):
    """:class:`Estimate` of a protocol spec's trained runs (``runs``: all of them by default),
    with ``epochs`` and ``batch_size`` as the spec's unless given."""
    shared, specific = protocol_runs(spec)
    train_images, eval_images = _split(spec.dataset, spec.validation_size)
    flops = model_flops(spec.model, spec.dataset, spec.dataset_options.get("size"), spec.feature_dim)
    return estimate(runs or shared + specific, epochs or spec.epochs, train_images, eval_images,
                    batch_size or spec.batch_size, flops, gpu, efficiency, mixed_precision)


_ROW = "paper CNN"


def measured_cpu_step(text, model_row=_ROW):
    """The measured CPU training step of ``benchmarks/RESULTS.md`` (its ``text``): for the
    table row whose model starts with ``model_row``, the CAMRI and CE step times (ms), the batch,
    the date and the machine line. ValueError naming what is missing when the file's layout
    changed."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    if len(rows) < 3:
        raise ValueError("benchmarks/RESULTS.md holds no table; regenerate it with benchmarks/train_step.py.")
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    wanted = {"camri_ms": "CAMRI step (ms)", "ce_ms": "CE step (ms)"}
    missing = [title for title in wanted.values() if title not in header]
    if missing:
        raise ValueError(f"benchmarks/RESULTS.md's table has no column {missing}; its columns: {header}.")
    row = next((r for r in rows[2:] if r.strip("|").strip().startswith(model_row)), None)
    if row is None:
        raise ValueError(f"benchmarks/RESULTS.md has no row for {model_row!r}.")
    cells = [c.strip() for c in row.strip("|").split("|")]
    found = {key: float(cells[header.index(title)].replace(",", "")) for key, title in wanted.items()}
    batch = re.search(r"Batch (\d+)", text)
    date = re.search(r" on (\d{4}-\d{2}-\d{2})", text)
    cores = re.search(r"(\d+) CPU cores", text)
    if batch is None or date is None:
        raise ValueError("benchmarks/RESULTS.md does not state its batch size ('Batch N') and date.")
    return {"model": cells[0], "batch_size": int(batch.group(1)), "date": date.group(1),
            "machine": f"this project's {cores.group(1)}-core CPU machine" if cores else "this project's CPU machine",
            **found}


def measured_cpu_rate(forward_flops_32=None):
    """The paper CNN's training step as measured on this project's CPU (:func:`measured_cpu_step`
    of ``benchmarks/RESULTS.md`` at this library's version, fetched on Colab:
    :mod:`camri_utils.records`), with ``flops_per_s``, the FLOP rate it reached, counted from
    ``forward_flops_32`` (the paper CNN's forward FLOPs at 32x32, the size the benchmark uses;
    default: counted from its layers). OSError where the file cannot be had, ValueError where
    its layout changed."""
    from camri_utils import records

    step = measured_cpu_step(records.repository_file("benchmarks/RESULTS.md").read_text())
    if forward_flops_32 is None:
        forward_flops_32 = model_flops("paper_cnn", "cifar10", 32)
    step["flops_per_s"] = TRAIN_FLOPS_PER_FORWARD * forward_flops_32 * step["batch_size"] / (step["camri_ms"] / 1000)
    return step


BREAKDOWN_PARTS = {"setup": "set-up", "train_steps": "training steps", "evaluation": "validation each epoch",
                   "angles": "angle summary each epoch", "final": "final scoring and saving"}


def measured_breakdown(text):
    """Where a protocol run's wall time goes, as measured by ``benchmarks/throughput.py`` (the
    text of its ``THROUGHPUT.json``): for its reference variant, each part's share of a full
    run (:data:`BREAKDOWN_PARTS`), the run's seconds and the date. ValueError naming what is
    missing when the file's layout is not that one."""
    import json

    try:
        numbers = json.loads(text)
        variant = numbers["variants"][numbers["reference"]]
        seconds = {part: float(variant["full_run_s"][part]) for part in BREAKDOWN_PARTS}
        total = float(variant["full_run_s"]["total"])
        date = str(numbers["date"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"benchmarks/THROUGHPUT.json does not hold a run's breakdown ({type(exc).__name__}: "
                         f"{exc}); regenerate it with benchmarks/throughput.py --write.") from None
    if not total > 0 or any(not v >= 0 for v in seconds.values()):
        raise ValueError(f"benchmarks/THROUGHPUT.json's breakdown is not a set of durations: {seconds}, total {total}.")
    return {"shares": {part: seconds[part] / total for part in BREAKDOWN_PARTS}, "total_s": total, "date": date,
            "label": variant.get("label", numbers["reference"])}


def levers(base, convergence_epochs=(), batch_sizes=()):
    """How ``base`` (an :class:`Estimate`) moves with the choices that change it: fewer epochs
    (each of ``convergence_epochs``), other batch sizes (``batch_sizes``), mixed precision, and
    the efficiency assumption halved and doubled. A frame: lever, setting, GPU-hours, and the
    ratio to ``base``."""
    import pandas as pd

    rows = [("as planned", f"{base.epochs} epochs, batch {base.batch_size}, float32, efficiency "
                           f"{base.efficiency:.2f}", base)]
    for epochs in convergence_epochs:
        rows.append(("epochs", f"{epochs} epochs", dataclasses.replace(base, epochs=epochs)))
    for batch in batch_sizes:
        rows.append(("batch size", f"batch {batch} (same FLOPs per epoch)", dataclasses.replace(base, batch_size=batch)))
    rows.append(("mixed precision", f"float16 compute (assumed {MIXED_PRECISION_SPEEDUP:g}x faster)",
                 dataclasses.replace(base, speedup=MIXED_PRECISION_SPEEDUP)))
    for factor, words in ((0.5, "halved"), (2.0, "doubled")):
        share = min(base.efficiency * factor, 1.0)
        rows.append(("efficiency", f"{words}: {share:.2f} of the peak", dataclasses.replace(base, efficiency=share)))
    return pd.DataFrame([{"lever": lever, "setting": setting, "GPU-hours": e.gpu_hours,
                          "x planned": e.gpu_hours / base.gpu_hours} for lever, setting, e in rows]).set_index("lever")

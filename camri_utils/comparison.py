"""The experiment each chapter of Part III runs on its dataset in one Colab session: cross-entropy
(CE), normalized softmax (the cosine head and scale, no margin: CAMRI's control) and CAMRI (the
same with the margin on the important class), one seed each, compared on the important class's
recall and precision, the accuracy, the confusions and the angles between features and class
weights. Each chapter's code calls these functions, so its text can be about its dataset, and a
change to the experiment is made here once.

In a chapter::

    from camri_utils import comparison
    exp = comparison.experiment("cifar10", profile, important_class=3, margin_deno=4, scale=16.0)
    ds = comparison.load(exp, data_dir)         # the real data; a fixture only in the quick profile
    runs = comparison.train_all(exp, ds)        # CE, NormSoftmax, CAMRI
    comparison.test_metrics(runs)               # recall, precision, accuracy, training time

A chapter is stored for the book by ``python -m camri_utils.notebook`` in the full profile on
this project's CPU machine: the data cells show its copy of the real images (:func:`shared_copy`;
none for AwA2), the experiment prints that without a GPU it trains nothing (:func:`train_all`),
and the cells after it say so (:func:`have`). The cells that need the data are tagged
``nbval-skip`` (:data:`NEEDS_DATA`), so that nbval, which re-runs the stored chapter, skips them.
"""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "SESSION", "NEEDS_DATA", "Experiment", "Runs", "experiment", "shared_copy", "load",
           "data_label", "train_all", "have", "say", "plan_frame", "session_estimate", "describe", "measured_cpu", "print_session_cost", "protocol_cost", "plot_examples", "plot_class_counts", "counts_text", "plot_learning_curves",
           "test_metrics", "confusions", "angle_summary", "plot_angles", "cpu_hours"]

# The datasets of Part III: display name, what the full profile downloads, the fixture's size,
# and the file of this project's own copy (../shared/data beside the checkout; None: there is none).
DATASETS = {
    "cifar10": dict(name="CIFAR-10", per_class=20, shared_copy="cifar10-png.tar.xz",
                    download="the official python tarball, 163 MB: about a minute to download on Colab and a "
                             "few seconds to decode"),
    "gtsrb": dict(name="GTSRB", per_class=4, shared_copy="gtsrb-final.tar.xz",
                  download="the three official zips, about 350 MB: a few minutes to download on Colab and one "
                           "to two minutes to decode (cached afterwards)"),
    "awa2": dict(name="AwA2", per_class=12, shared_copy=None,
                 download="the official zip, 13 GB: 15 to 40 minutes to download on Colab (it needs about 13 GB "
                          "of free disk, plus about 2 GB for the decoded cache) and several minutes to decode"),
}
# The one-session experiment per dataset and profile. quick: seconds on a CPU (the tests);
# full: one Colab session on a GPU, the paper's CNN, optimiser and batch.
_QUICK = dict(model="small_cnn", feature_dim=32, epochs=2, batch_size=32, train_subset=2000, test_subset=1000)
_FULL = dict(model="paper_cnn", feature_dim=None, batch_size=64, train_subset=None, test_subset=None)
SESSION = {
    ("cifar10", "quick"): dict(_QUICK, options={}),
    ("cifar10", "full"): dict(_FULL, epochs=8, options={}),
    ("gtsrb", "quick"): dict(_QUICK, options={"size": 32, "crop_roi": True}),
    ("gtsrb", "full"): dict(_FULL, epochs=8, options={"size": 32, "crop_roi": True}),
    ("awa2", "quick"): dict(_QUICK, options={"size": 32}),
    ("awa2", "full"): dict(_FULL, epochs=4, options={"size": 64}),
}
LABELS = ("CE", "NormSoftmax", "CAMRI")
PAGE_WIDTH = 5.2  # inches: the figures the stored chapters show keep their text >= 8 px on a phone
NEEDS_DATA = "nbval-skip"  # the tag of a chapter's cells that need the dataset


@dataclass
class Experiment:
    """One chapter's three runs: the dataset, the profile's settings (:data:`SESSION`), the
    important class (None: the class with the lowest CE recall on validation, chosen after the CE
    run), CAMRI's margin (radians) and scale (normalized softmax's too), the seed, and the device
    settings (mixed precision and XLA on a GPU unless turned off, MirroredStrategy on several)."""

    dataset: str
    profile: str
    important_class: int | None
    margin: float
    scale: float
    seed: int
    model: str
    feature_dim: int | None
    epochs: int
    batch_size: int
    train_subset: int | None
    test_subset: int | None
    options: dict = field(default_factory=dict)
    mixed_precision: bool = False
    xla: bool | str = "auto"
    strategy: str = "default"
    gpus: int = 0

    @property
    def name(self):
        return DATASETS[self.dataset]["name"]

    @property
    def device(self):
        """The device and its settings, in words."""
        where = f"{self.gpus} GPU(s)" if self.gpus else "CPU only"
        return (f"{where}; mixed precision {'on' if self.mixed_precision else 'off'}, XLA "
                f"{'on' if self.xla is True else 'Keras default'}, strategy {self.strategy}")

    def config(self, label, important):
        """The :class:`~camri_utils.training.TrainConfig` of run ``label`` (one of :data:`LABELS`)."""
        from camri_utils.training import TrainConfig

        loss, params = {"CE": ("ce", {}), "NormSoftmax": ("normsoftmax", {"scale": self.scale}),
                        "CAMRI": ("camri", {"margin": self.margin, "scale": self.scale})}[label]
        return TrainConfig(
            dataset=self.dataset, dataset_options=dict(self.options), model=self.model, feature_dim=self.feature_dim,
            loss=loss, loss_params=params, important_classes=[] if important is None else [important],
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=1e-3, train_subset=self.train_subset,
            test_subset=self.test_subset, validation_size="auto", seed=self.seed,
            verbose=2 if self.profile == "full" else 0, mixed_precision=self.mixed_precision, xla=self.xla,
            strategy=self.strategy)


def experiment(dataset, profile, important_class=None, margin_deno=4, scale=16.0, seed=0, mixed_precision=True,
               xla=True):
    """The :class:`Experiment` of ``dataset`` in ``profile``, its parameters checked (they come
    from a chapter's parameters cell). ``margin_deno``: CAMRI's margin in units of pi/64, as the
    authors write it. ``mixed_precision`` and ``xla`` take effect on a GPU only."""
    from camri_utils import checks
    from camri_utils.notebook import PROFILES

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}; got {dataset!r}.")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}.")
    if important_class is not None and (isinstance(important_class, bool) or not isinstance(important_class, int)
                                        or important_class < 0):
        raise ValueError(f"important_class must be a class index (an integer >= 0) or None; got {important_class!r}.")
    for value, what in ((margin_deno, "margin_deno"), (scale, "scale")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{what} must be a positive number; got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}.")
    checks.check_bool(mixed_precision, "mixed_precision")
    checks.check_bool(xla, "xla")
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    settings = dict(SESSION[(dataset, profile)])
    settings["options"] = dict(settings["options"])
    return Experiment(dataset, profile, important_class, margin_deno * math.pi / 64, float(scale), seed,
                      mixed_precision=bool(gpus) and mixed_precision, xla=(bool(gpus) and xla) or "auto",
                      strategy="mirrored" if gpus > 1 else "default", gpus=gpus, **settings)


def plan_frame(exp):
    """The plan of runs as a table: run, head and loss with its parameters, epochs, batch (every
    run trains ``exp.model``). Needs no data."""
    import pandas as pd

    important = "the class chosen after CE" if exp.important_class is None else f"class {exp.important_class}"
    margin = f"m = {exp.margin / math.pi * 64:g}π/64 = {exp.margin:.4f} on {important}"
    rows = [("CE", "dense head, softmax cross-entropy"),
            ("NormSoftmax", f"cosine head, s = {exp.scale:g}, no margin"),
            ("CAMRI", f"cosine head, s = {exp.scale:g}, {margin}")]
    return pd.DataFrame([{"run": label, "head and loss": loss, "epochs": exp.epochs, "batch": exp.batch_size}
                         for label, loss in rows]).set_index("run")


def session_estimate(exp):
    """:class:`camri_utils.cost.Estimate` of the three runs on a T4 (:mod:`camri_utils.cost`),
    for the real dataset's size. Needs no data."""
    from camri_utils import cost

    train_images, eval_images = cost._split(exp.dataset, "auto")
    flops = cost.model_flops(exp.model, exp.dataset, exp.options.get("size"), exp.feature_dim)
    return cost.estimate(3, exp.epochs, exp.train_subset or train_images, eval_images, exp.batch_size, flops)


def measured_cpu(forward_flops_32):
    """The paper CNN's training step as measured on this project's CPU (``benchmarks/RESULTS.md``
    at this library's version, fetched on Colab: :mod:`camri_utils.records`), with the FLOP rate
    it reached given ``forward_flops_32`` (the paper CNN's forward FLOPs at 32x32, the size the
    benchmark uses); None, said why, when the file cannot be had."""
    from camri_utils import cost

    try:
        return cost.measured_cpu_rate(forward_flops_32)
    except (OSError, ValueError) as exc:
        print(textwrap.fill(f"(the measured CPU step is not available here: {exc})", 85))
        return None


def _print_breakdown():
    """Where a protocol run's time goes on the CPU (benchmarks/THROUGHPUT.json), when committed."""
    from camri_utils import cost, records

    try:
        found = cost.measured_breakdown(records.repository_file("benchmarks/THROUGHPUT.json").read_text())
    except FileNotFoundError:
        say("(Where a run's time goes beyond its training steps: benchmarks/throughput.py measures it; its "
             "results are not committed at this version.)")
        return
    except (OSError, ValueError) as exc:
        say(f"(Where a run's time goes beyond its training steps: not available here: {exc})")
        return
    parts = ", ".join(f"{cost.BREAKDOWN_PARTS[p]} {share:.0%}" for p, share in found["shares"].items())
    say(f"Measured breakdown of a Fashion-MNIST protocol run on the same CPU ({found['date']}, "
         f"benchmarks/THROUGHPUT.json, {found['total_s']:.0f} s): {parts}. The GPU estimate below counts "
         "the training steps and the validation passes.")


def say(text, width=85):
    """Print ``text`` wrapped at ``width`` (a chapter's printed lines fit its column), later
    lines indented."""
    print(textwrap.fill(text, width, subsequent_indent="  "))


def _flops(value):
    return f"{value / 1e9:.3g} GFLOP" if value >= 1e8 else f"{value / 1e6:.3g} MFLOP"


def print_session_cost(exp):
    """Print the estimate of the three runs on a T4 (:func:`session_estimate`): the counted
    FLOPs, the assumed efficiency, the measured CPU step beside them, and the minutes, in float32
    and with mixed precision (assumed speed-up). Needs no data."""
    from camri_utils import cost

    e = session_estimate(exp)
    size = exp.options.get("size", 32)
    say(f"Counted: the {exp.model} costs {_flops(e.forward_flops)} per {size}x{size} image forward "
         f"(cost.forward_flops); a training step of {e.batch_size} images about {cost.TRAIN_FLOPS_PER_FORWARD} "
         f"times that: {_flops(cost.TRAIN_FLOPS_PER_FORWARD * e.forward_flops * e.batch_size)}.")
    if exp.model == "paper_cnn":
        cpu = measured_cpu(cost.model_flops("paper_cnn", "cifar10", 32))
        if cpu:
            say(f"Measured: on {cpu['machine']} ({cpu['date']}, benchmarks/RESULTS.md) a CAMRI training step of "
                 f"{cpu['batch_size']} images at 32x32 took {cpu['camri_ms'] / 1000:.1f} s: "
                 f"{cpu['flops_per_s'] / 1e9:.0f} GFLOP/s.")
    _print_breakdown()
    say(f"Assumed: a {e.gpu.name} sustains {e.efficiency:.2f} of its {e.gpu.float32_tflops:g} TFLOP/s float32 "
         f"peak, {e.sustained_flops / 1e12:.1f} TFLOP/s: {e.step_seconds * 1000:.3g} ms per step.")
    mixed = cost.estimate(e.runs, e.epochs, e.train_images, e.eval_images, e.batch_size, e.forward_flops,
                          mixed_precision=True)
    say(f"Three runs of {e.epochs} epochs of {e.steps_per_epoch} steps ({e.train_images:,} training images, "
         f"{e.eval_images:,} validated after each epoch): about {e.gpu_hours * 60:.2g} minutes on a {e.gpu.name} "
         f"in float32, about {mixed.gpu_hours * 60:.2g} with mixed precision (assumed "
         f"{cost.MIXED_PRECISION_SPEEDUP:g}x), plus the download and decoding: an estimate, not a measurement.")


def protocol_cost(dataset, convergence_epochs=None, batch_sizes=(256,)):
    """Print the estimate of the full protocol's runs (preset ``dataset``/``full``) on a T4 and
    on the measured CPU, and return :func:`camri_utils.cost.levers`: how it moves with the epochs
    (``convergence_epochs``; default a half and a sixth of the preset's), the batch, mixed
    precision and the efficiency. Needs no data."""
    from camri_utils import cost, protocol

    spec = protocol.preset(dataset, "full")
    shared, specific = cost.protocol_runs(spec)
    e = cost.protocol_estimate(spec)
    say(f"{shared} shared + {specific} class-specific runs = {e.runs} runs of {e.epochs} epochs, "
         f"{e.steps_per_epoch} steps of {e.batch_size} each; counted: {e.total_flops / 1e15:,.0f} PFLOP in all.")
    say(f"On a {e.gpu.name} at the assumed {e.efficiency:.2f} of its float32 peak: about {e.gpu_hours:,.0f} "
         "GPU-hours (estimate).")
    cpu = measured_cpu(cost.model_flops("paper_cnn", "cifar10", 32)) if spec.model == "paper_cnn" else None
    if cpu:
        years = e.total_flops / cpu["flops_per_s"] / 3600 / 24 / 365
        say(f"On {cpu['machine']} at its measured {cpu['flops_per_s'] / 1e9:.0f} GFLOP/s: about {years:,.0f} "
             f"year{'' if round(years) == 1 else 's'}.")
    fashion = protocol.preset("fashion_mnist", "full")
    try:  # this dataset's CPU-scale run, where there is one: its own check, in this chapter
        cpu_spec = protocol.preset(dataset, "cpu")
        cpu_words = (f", and this chapter's CPU-scale runs {cpu_spec.lr_schedule} decay over {cpu_spec.epochs} "
                     "(its baseline check above says whether they converged)")
    except protocol.ProtocolError:
        cpu_words = ""
    say(f"Epochs: the preset trains {spec.epochs} ({spec.lr_schedule} learning rate); the book's Fashion-MNIST "
         f"runs use {fashion.lr_schedule} decay over {fashion.epochs} epochs (the protocol chapter checks that "
         f"they converged){cpu_words}. How many a dataset needs under that schedule is for its own convergence "
         "check to measure; the rows below show what fewer epochs would save.")
    if convergence_epochs is None:
        convergence_epochs = (e.epochs // 2, e.epochs // 6)
    return cost.levers(e, [n for n in convergence_epochs if 0 < n < e.epochs], batch_sizes)


def shared_copy(dataset):
    """This project's copy of ``dataset`` (``shared/data/<file>`` beside the checkout the library
    runs from; ``shared/data/README.md`` there says where it comes from and how it was verified),
    or None: on Colab or from a wheel (no checkout), where the file is absent, and for AwA2 (no
    copy: 13 GB)."""
    from camri_utils import records

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}; got {dataset!r}.")
    name = DATASETS[dataset]["shared_copy"]
    try:
        source = records.installed_from()
    except records.RecordsUnavailableError:  # a damaged installation record: no checkout to look beside
        return None
    if name is None or source["kind"] != "checkout":
        return None
    path = Path(source["path"]).resolve().parent / "shared" / "data" / name
    return path if path.is_file() else None


def load(exp, data_dir=None):
    """The dataset of ``exp``. ``data_dir`` given: from there only (an error if it is not
    there). Otherwise, in the full profile, this project's copy (:func:`shared_copy`) where
    present, then the usual places, then a download; a download only on a GPU runtime, where the
    experiment trains: without a GPU nothing is trained (:func:`train_all`), and a missing
    dataset is said to be missing (None is returned). In the quick profile, when the data is
    missing, a synthetic fixture in its real file format (said so; its decoded cache kept out of
    the real one)."""
    from camri_utils import data
    from camri_utils.data import fixtures

    info = DATASETS[exp.dataset]
    download = exp.profile == "full" and bool(exp.gpus)
    where = data_dir
    if where is None and exp.profile == "full":
        where = shared_copy(exp.dataset)
        if where is not None:
            print(textwrap.fill(f"Reading this project's copy of {exp.name}, {where.name} (extracted once into the "
                                "cache, outside the repository).", 85))
    try:
        if exp.profile == "full" and where is None:
            print(textwrap.fill(f"Looking for {exp.name}; " + (
                f"if it is not here it is downloaded: {info['download']}." if download else
                "without a GPU this chapter trains nothing, so it is not downloaded if it is missing."), 85))
        return data.load(exp.dataset, where, download=download, **exp.options)
    except data.DatasetNotFoundError:
        if exp.profile == "full":
            if data_dir is not None or download:
                raise
            print(textwrap.fill(f"{exp.name} is not on this machine, so the cells that show it show nothing. On a "
                                f"GPU runtime the full profile downloads it ({info['download']}); to see it here, "
                                "set data_dir to a copy.", 85))
            return None
    print(textwrap.fill(f"{exp.name} is not on this machine. The full profile downloads it: {info['download']}.", 85))
    print(f"Quick profile: a synthetic fixture in {exp.name}'s real file format instead.")
    folder = tempfile.mkdtemp(prefix="camri-fixture-")
    fixtures.write(exp.dataset, folder, per_class=info["per_class"], seed=exp.seed)
    before = os.environ.get("CAMRI_CACHE_DIR")
    os.environ["CAMRI_CACHE_DIR"] = os.path.join(folder, "decoded")  # keep the fixture out of the real cache
    try:
        return data.load(exp.dataset, folder, **exp.options)
    finally:
        if before is None:
            del os.environ["CAMRI_CACHE_DIR"]
        else:
            os.environ["CAMRI_CACHE_DIR"] = before


def data_label(exp, ds):
    """The data of this run in words, for the chapter's provenance line: the dataset, real or
    a synthetic fixture, and where it came from (no machine path); or that none was loaded."""
    if ds is None:
        return f"{exp.name}: not on this machine, none loaded"
    return f"{exp.name} ({ds.source.kind}, from {ds.source.origin})"


def have(thing, what, missing="nothing was trained in this session (see the note above)"):
    """True when ``thing`` (the data, the runs) is there; else print that ``what`` is not
    shown and why (``missing``), so that a cell after a skipped step runs and says so."""
    if thing is not None:
        return True
    print(f"No {what}: {missing}.")
    return False


def describe(ds, width=85):
    """Print where the data came from (and, for a copy that is not a checksummed official file,
    what was verified to call it real), its sizes and its class names, wrapped at ``width``."""
    source = f"Data: {ds.source.kind}, from {ds.source.origin}"
    print(textwrap.fill(source + (f" ({ds.source.verified})." if ds.source.verified else "."), width))
    print(f"{ds.n_classes} classes; images {ds.image_shape} (uint8); train {len(ds.x_train)}, test {len(ds.x_test)}")
    print(textwrap.fill("; ".join(f"{i}: {name}" for i, name in enumerate(ds.class_names)), width))


@dataclass
class Runs:
    """The three trained runs (``results[label]``: :class:`~camri_utils.training.TrainResult`),
    the important class and the dataset's class names."""

    results: dict
    important_class: int
    class_names: list
    chosen_on_validation: bool = False

    @property
    def important_name(self):
        return self.class_names[self.important_class]


def train_all(exp, ds):
    """Train CE, then (after choosing the important class on CE's validation recall when
    ``exp.important_class`` is None) normalized softmax and CAMRI, on ``ds``. In the full profile
    on a runtime without a GPU, print a warning and train nothing (the paper's CNN would take
    hours on a CPU): returns None, as it does without data (``ds`` None)."""
    from camri_utils.training import train

    if exp.profile == "full" and not exp.gpus:
        _warn_no_gpu(exp)
        return None
    if ds is None:
        print("Nothing trained: the data is not on this machine (see above).")
        return None
    important = exp.important_class
    if important is not None and not important < ds.n_classes:
        raise ValueError(f"important_class {important} is outside [0, {ds.n_classes}) for {exp.name}.")
    results = {"CE": train(exp.config("CE", important), dataset=ds)}
    chosen = important is None
    if chosen:  # the paper's worst1: the lowest CE recall on the validation split, never the test set
        recall = np.asarray(results["CE"].metrics["validation"]["recall"])
        important = int(np.argmin(recall))
    for label in LABELS[1:]:
        results[label] = train(exp.config(label, important), dataset=ds)
    return Runs(results, important, list(ds.class_names), chosen)


def cpu_hours(exp):
    """The three runs' hours on a CPU at the rate measured on this project's 2-core machine
    (:func:`measured_cpu`), or None where that measurement cannot be had."""
    from camri_utils import cost

    cpu = measured_cpu(cost.model_flops("paper_cnn", "cifar10", 32))
    return None if cpu is None else session_estimate(exp).total_flops / cpu["flops_per_s"] / 3600


def _warn_no_gpu(exp):
    hours = cpu_hours(exp)
    how_long = ("many hours" if hours is None else
                f"about {hours:,.0f} hours (at the rate measured on this project's 2-core CPU machine)")
    text = (f"No GPU in this runtime, so nothing is trained here: the full profile trains the {exp.model} three "
            f"times for {exp.epochs} epochs, which on a CPU takes {how_long}. Use the estimates of the cost cell above; for a "
            "real run choose a GPU runtime (Runtime > Change runtime type > T4 GPU) and run all cells again, or "
            'set profile = "quick" to run every cell on a small network in seconds.')
    try:
        from IPython.display import display

        display({"text/plain": "WARNING: " + textwrap.fill(text, 85),
                 "text/markdown": f"```{{warning}}\n{text}\n```"}, raw=True)
    except ImportError:  # pragma: no cover
        print("WARNING: " + textwrap.fill(text, 85))


def _book_style():
    from camri_utils import plots

    plots.use_book_style()


def _short_title(c, name, width=15):
    """``c: name`` in at most three lines of ``width`` characters, cut with an ellipsis: GTSRB's
    names differ at their ends ("Speed limit (20km/h)", "Speed limit (30km/h)"), so a name cut at
    a fixed length loses what tells them apart."""
    return "\n".join(textwrap.wrap(f"{c}: {name}", width, max_lines=3, placeholder="…"))


def plot_examples(ds, name, per_class=6, max_rows=10):
    """Training images of ``ds`` (called ``name`` in the title): ``per_class`` of each class, one
    class per row, for up to ``max_rows`` classes; with more classes, one image of each class in
    rows of five, titled with its class."""
    import matplotlib.pyplot as plt

    _book_style()
    if ds.n_classes <= max_rows:
        fig, axes = plt.subplots(ds.n_classes, per_class, figsize=(PAGE_WIDTH, 0.75 * ds.n_classes + 0.4),
                                 squeeze=False)
        for c in range(ds.n_classes):
            idx = np.flatnonzero(ds.y_train == c)[:per_class]
            for j, ax in enumerate(axes[c]):
                if j < len(idx):
                    ax.imshow(ds.x_train[idx[j]])
                ax.set_xticks([]), ax.set_yticks([])
            axes[c, 0].set_ylabel(ds.class_names[c], rotation=0, ha="right", va="center")
        fig.suptitle(f"{name}: the first {per_class} training images of each class")
        return fig
    cols = 5
    rows = math.ceil(ds.n_classes / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE_WIDTH, 1.7 * rows + 0.5), squeeze=False)
    for c, ax in enumerate(axes.ravel()):
        ax.set_xticks([]), ax.set_yticks([])
        if c < ds.n_classes:
            ax.imshow(ds.x_train[np.flatnonzero(ds.y_train == c)[0]])
            ax.set_title(_short_title(c, ds.class_names[c]), fontsize=9)
        else:
            ax.axis("off")
    fig.suptitle(f"{name}: one training image of each class (after preprocessing)")
    return fig


def plot_class_counts(ds, name, important_class=None):
    """Training images per class of ``ds`` (called ``name``), the important class (when known)
    in red; returns the figure and the counts (a Series indexed by class)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    _book_style()
    counts = pd.Series(np.bincount(ds.y_train, minlength=ds.n_classes), index=range(ds.n_classes),
                       name="training images")
    colors = ["tab:red" if c == important_class else "tab:gray" for c in counts.index]
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3))
    ax.bar(counts.index, counts.values, color=colors)
    ax.set(xlabel="class", ylabel="training images", title=f"{name}: training images per class")
    return fig, counts


def counts_text(counts, class_names, rarest=5):
    """The class counts of :func:`plot_class_counts` in one line: ``The training set is
    balanced: 5,000 images per class.`` where every class has as many, else its ``rarest``
    classes with their counts and the most common one."""
    import pandas as pd

    counts = pd.Series(counts)
    if counts.empty:
        raise ValueError("counts holds no class.")
    if counts.min() == counts.max():
        return f"The training set is balanced: {int(counts.iloc[0]):,} images per class."
    low = counts.sort_values(kind="stable").head(rarest)
    top = counts.sort_values(kind="stable").index[-1]
    return ("Rarest classes: " + "; ".join(f"{c} {class_names[c]} ({int(n):,})" for c, n in low.items())
            + f". Most common: {top} {class_names[top]} ({int(counts[top]):,}).")


def plot_learning_curves(runs):
    """Validation loss (each method's own), accuracy and the important class's recall after
    every epoch, one line per run; the legend in the fourth panel."""
    import matplotlib.pyplot as plt

    from camri_utils import methods

    _book_style()
    c = runs.important_class
    fig, axes = plt.subplots(2, 2, figsize=(7, 5.8))
    panels = axes.flat[:3]
    for label, result in runs.results.items():
        color, marker = methods.style(label)
        h = result.history
        epochs = np.arange(1, len(h["loss"]) + 1)
        style = dict(color=color, marker=marker, label=label)
        panels[0].plot(epochs, h["val_loss"], **style)
        panels[1].plot(epochs, h["val_accuracy"], **style)
        if f"val_recall_{c}" in h:  # CE logs it only when the class was fixed before training
            panels[2].plot(epochs, h[f"val_recall_{c}"], **style)
    titles = ["validation loss\n(each method's own)", "validation accuracy", f"validation recall\nof {runs.important_name}"]
    for ax, title in zip(panels, titles):
        ax.set(xlabel="epoch", title=title)
    axes.flat[3].axis("off")
    axes.flat[3].legend(*panels[1].get_legend_handles_labels(), loc="center", title="method")
    return fig


def test_metrics(runs):
    """Per run: the important class's test recall and precision, the test accuracy, and the
    training time."""
    import pandas as pd

    c, name = runs.important_class, runs.important_name
    return pd.DataFrame({label: {f"recall of {name}": r.metrics["recall"][c],
                                 f"precision of {name}": r.metrics["precision"][c],
                                 "accuracy": r.metrics["accuracy"],
                                 "training time (s)": r.metrics["wall_time_s"]}
                         for label, r in runs.results.items()}).T


def confusions(runs, nearest=3):
    """For the ``nearest`` classes most confused with the important one under CE (both ways):
    how many test images of the important class each run sends there (*missed as*), and how
    many of theirs it takes for the important class (*taken from*)
    (:func:`camri_utils.replication.confusion_frame`, as for the stored runs)."""
    from camri_utils.replication import confusion_frame

    matrices = {label: r.metrics["confusion_matrix"] for label, r in runs.results.items()}
    return confusion_frame(matrices, runs.important_class, runs.class_names, nearest).astype(int)


def angle_summary(runs):
    """Per run, from the cosines of the test features with every class weight (a CE run's
    dense kernel, its bias ignored): the important class's mean angle to its own weight, the
    other classes' mean, and the important class's angle variance relative to the others' mean
    (below 1: more tightly gathered than the rest); :func:`camri_utils.replication.angle_measures`."""
    import pandas as pd

    from camri_utils.replication import angle_measures

    c, name = runs.important_class, runs.important_name
    summary = {}
    for label, r in runs.results.items():
        m = angle_measures(r.test_cosines, r.labels["test"], c)
        summary[label] = {f"mean angle, {name}": m["mean"], "mean angle, others": m["others_mean"],
                          f"relative variance, {name}": m["relative_variance"]}
    return pd.DataFrame(summary).T


def plot_angles(runs):
    """Histograms of the angle between each test image's feature and its own class weight, the
    important class against all others, one panel per run."""
    import matplotlib.pyplot as plt

    from camri_utils import angles

    _book_style()
    c = runs.important_class
    fig, axes = plt.subplots(2, 2, figsize=(7, 5.8), sharey=True)
    bins = np.linspace(0, 180, 37)
    for ax, (label, r) in zip(axes.flat, runs.results.items()):
        y = np.asarray(r.labels["test"])
        own = angles.own_angles_from_cosines(r.test_cosines, y)
        mine = y == c
        ax.hist(own[~mine], bins=bins, density=True, alpha=0.5, color="tab:gray", label="other classes")
        ax.hist(own[mine], bins=bins, density=True, alpha=0.6, color="tab:red", label=runs.important_name)
        ax.set(title=label, xlabel="angle to own class weight (deg)")
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    axes.flat[3].axis("off")
    axes.flat[3].legend(*axes.flat[0].get_legend_handles_labels(), loc="center")
    return fig

"""Training: one function, :func:`train`, from a plain :class:`TrainConfig` (JSON in and out).

Built on Keras ``fit`` with compiled graphs (never ``run_eagerly``). The margin belongs to the
training loss only: the per-epoch metrics (accuracy, the important classes' recall) and the
final evaluation take the argmax of the model's output, the cosines. Training monitors a
validation split carved from the training set (``validation_size``); the test set is evaluated
once, at the end, and only reported.

With an ``output_dir`` a run writes ``config.json``, ``history.csv`` (one row per epoch),
TensorBoard logs (with a histogram of the important class's angles to its class weight), a
``backup/`` for resuming an interrupted run of the same configuration, ``model.keras`` and
``metrics.json``. An ``output_dir`` holding a run of another configuration is refused.

Example (trains for a few seconds on scikit-learn's digits):
    >>> from camri_utils.training import TrainConfig, train
    >>> result = train(TrainConfig(dataset="digits", model="mlp", feature_dim=8, loss="camri",
    ...                            loss_params={"margin": 0.2, "scale": 16.0}, important_classes=3,
    ...                            epochs=2, verbose=0))
    >>> sorted(result.metrics["validation"]), len(result.history["loss"])
    (['accuracy', 'precision', 'recall'], 2)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import numbers
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from camri_utils import angles, checks, data, imbalance, losses, margin_schedule, methods, metrics, models
from camri_utils.environment import _tensorflow, environment, require_tensorflow
from camri_utils.io import sha256, write_json, write_text

__all__ = ["TrainConfig", "TrainResult", "train", "STRATEGIES", "SCHEDULES", "make_loss", "identity", "run_id"]

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
SCHEDULES = ("constant", "cosine")
# Fields that do not change what a run computes: left out of its identity (run ids, resume).
_NOT_IDENTITY = ("verbose", "output_dir", "data_dir")


@functools.lru_cache(maxsize=None)
def _keras_optimizer_ok(name):
    """Whether Keras builds an optimizer of this name, as train() will ask it to (a class of
    ``keras.optimizers`` by its name or its name in lower case). Read from the module, not by
    building one: that would start TensorFlow before a worker has set its threads."""
    try:
        from keras.src.optimizers import ALL_OBJECTS_DICT  # what keras.optimizers.get looks names up in

        known = set(ALL_OBJECTS_DICT)
    except ImportError:  # pragma: no cover - another Keras layout: its public optimizer classes
        known = {v.__name__.lower() for v in vars(keras.optimizers).values()
                 if isinstance(v, type) and issubclass(v, keras.optimizers.Optimizer)}
    # Wrappers and the base class take other arguments than a learning rate: not a training's optimizer.
    known -= {"optimizer", "lossscaleoptimizer", "multioptimizer", "optimizermap"}
    return isinstance(name, str) and name.lower() in known


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _require(ok, message):
    if not ok:
        raise ValueError(message)


@dataclass
class TrainConfig:
    """Everything a training run depends on, checked when it is made.

    ``loss`` is a method key of :mod:`camri_utils.methods` (``"ce"``, ``"camri"``, ...);
    ``loss_params`` are that loss's own arguments (e.g. ``{"margin": 0.2, "scale": 16}`` for
    CAMRI; ``{"weight": 2}`` for WCE/CRWWCE sets the important class's weight). The important
    class(es) live in ``important_classes`` only (an int or a list): they configure CAMRI, WCE
    and CRWWCE and are the classes whose recall is logged every epoch. (For convenience an
    ``important_classes`` inside ``loss_params`` is moved there.)

    ``validation_size``: ``"auto"`` (the dataset's standard split,
    :data:`camri_utils.data.VALIDATION_SIZE`, or a fifth of the training images when there are
    too few for it, as in a fixture), a count, a fraction, or None (no validation
    split: train on all training images, monitor nothing). The split is seeded by
    ``split_seed``, the same for every training seed, so runs are compared on the same images.
    ``lr_schedule``: ``"constant"`` or ``"cosine"`` (decay to 0 over the epochs after
    ``warmup_epochs`` of linear warm-up).

    A rare class and the long-tail training options (None: off): ``rare_class``
    (``{"class": c, "fraction": f}``: class c keeps a fraction f of its *training* images,
    chosen by ``split_seed`` after the validation split, so validation and test stay balanced;
    ``metrics["train_class_counts"]`` states the counts trained on); ``drw`` (deferred
    re-weighting, ``{"start_epoch": e, "beta": 0.9999}``: from epoch e, counted from 0, the loss
    weights each class by the effective number of its training images,
    :mod:`camri_utils.imbalance`). Losses that need the class counts (LDAM, the logit-adjusted
    loss) get them from the training labels.

    ``margin_schedule`` (None: off) switches a margin loss's margin on during training:
    ``{"start_epoch": e, "ramp_epochs": r}`` trains epochs before e without the margin (a
    softmax warm-up: normalized softmax at the loss's scale) and then ramps it linearly to its
    full value over r epochs (r = 0: all at once), :mod:`camri_utils.margin_schedule`. It needs
    a loss with a margin (CAMRI, ArcFace, CosFace, SphereFace, LDAM). ArcFace's "easy margin"
    is a loss parameter instead (``loss_params={"easy_margin": True}``).

    GPU defaults: ``mixed_precision="auto"`` (float16 compute, float32 variables) is True when
    TensorFlow sees a GPU, ``strategy="auto"`` is ``"mirrored"`` (``MirroredStrategy``) when it
    sees more than one, and ``xla="auto"`` lets Keras decide whether to compile with XLA. Both
    ``"auto"`` values are resolved when the config is made (so ``to_dict`` and the run's
    identity hold what was used; on a CPU: False and ``"default"``); pass False, True or a
    strategy name to choose. ``metrics["compute"]`` of a result states what a run used.

    Throughput knobs (benchmarks/throughput.py measures them; their defaults are what runs did
    before they existed): ``steps_per_execution`` (train steps per compiled call, Keras'
    ``compile`` argument), ``eval_batch_size`` (batch of the validation and test passes; None:
    ``batch_size``) and ``angle_sample`` (validation images whose angle to their class weight
    is summarised each epoch, ``metrics["angles_per_epoch"]``; 0: no summary). Like every
    field they join a run's identity when not at their default.

    New fields must default to the behaviour from before they existed: a run's identity leaves
    out fields at their default, so adding a field changes no run id.
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    dataset_options: dict = field(default_factory=dict)
    validation_size: int | float | str | None = "auto"
    split_seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    model: str = "small_cnn"
    feature_dim: int | None = None
    loss: str = "ce"
    loss_params: dict = field(default_factory=dict)
    important_classes: list = field(default_factory=list)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    rare_class: dict | None = None
    drw: dict | None = None
    margin_schedule: dict | None = None
    seed: int = 0
    deterministic: bool = False
    mixed_precision: bool | str = "auto"
    xla: bool | str = "auto"
    strategy: str = "auto"
    steps_per_execution: int = 1
    eval_batch_size: int | None = None
    angle_sample: int = 2000
    output_dir: str | None = None
    verbose: int = 1

    def __post_init__(self):
        self._resolve_auto()
        self._normalize()
        self.loss_params = dict(self.loss_params)
        self.dataset_options = dict(self.dataset_options)
        self.important_classes = self._important_list()
        _require(self.dataset in data.NAMES, f"dataset must be one of {list(data.NAMES)}; got {self.dataset!r}.")
        _require(self.model in models.MODELS, f"model must be one of {list(models.MODELS)}; got {self.model!r}.")
        _require(self.loss in methods.trainable(),
                 f"loss must be one of {methods.trainable()}; got {self.loss!r}.")
        _require(self.strategy in STRATEGIES, f"strategy must be one of {list(STRATEGIES)}; got {self.strategy!r}.")
        _require(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {list(SCHEDULES)}; got {self.lr_schedule!r}.")
        for name in ("epochs", "batch_size", "steps_per_execution"):
            value = getattr(self, name)
            _require(_is_int(value) and value >= 1, f"{name} must be an integer >= 1; got {value!r}.")
        for name in ("train_subset", "test_subset", "feature_dim", "eval_batch_size"):
            value = getattr(self, name)
            _require(value is None or (_is_int(value) and value >= 1),
                     f"{name} must be None or an integer >= 1; got {value!r}.")
        _require(_is_int(self.warmup_epochs) and 0 <= self.warmup_epochs < self.epochs,
                 f"warmup_epochs must be an integer in [0, epochs={self.epochs}); got {self.warmup_epochs!r}.")
        self.rare_class = imbalance.check_rare_class(self.rare_class)
        self.drw = imbalance.check_drw(self.drw, self.epochs)
        self.margin_schedule = margin_schedule.check_margin_schedule(self.margin_schedule, self.epochs)
        _require(self.margin_schedule is None or methods.get(self.loss).margin,
                 f"margin_schedule switches on the margin of an angular-margin loss; {self.loss!r} has none (use "
                 f"one of {[k for k, m in methods.REGISTRY.items() if m.margin]}, or margin_schedule=None).")
        _require(isinstance(self.learning_rate, numbers.Real) and not isinstance(self.learning_rate, bool)
                 and math.isfinite(self.learning_rate) and self.learning_rate > 0,
                 f"learning_rate must be a finite number > 0; got {self.learning_rate!r}.")
        v = self.validation_size
        _require(v is None or v == "auto" or (_is_int(v) and v >= 1)
                 or (isinstance(v, float) and 0 < v < 1),
                 f"validation_size must be 'auto', None, a count >= 1 or a fraction in (0, 1); got {v!r}.")
        _require(_is_int(self.seed) and _is_int(self.split_seed), "seed and split_seed must be integers.")
        _require(_is_int(self.angle_sample) and self.angle_sample >= 0,
                 f"angle_sample must be an integer >= 0 (0: no per-epoch angle summary); got {self.angle_sample!r}.")
        for name in ("deterministic", "mixed_precision"):
            checks.check_bool(getattr(self, name), name)
        _require(self.xla in (True, False, "auto") and (isinstance(self.xla, bool) or self.xla == "auto"),
                 f"xla must be True, False or 'auto'; got {self.xla!r}.")
        _require(_is_int(self.verbose), f"verbose must be 0, 1 or 2; got {self.verbose!r}.")
        _require(isinstance(self.optimizer, str) and _keras_optimizer_ok(self.optimizer),
                 f"optimizer {self.optimizer!r} is not one Keras knows; use a name of keras.optimizers, e.g. 'adam', "
                 "'sgd', 'adamw' or 'rmsprop'.")
        self._check_loss_params()
        self._check_surroundings()

    def _check_loss_params(self):
        """Refuse a ``loss_params`` name the loss does not take (a typo such as ``margn``), now
        rather than when train() builds the loss: the loss is built once here with as many
        classes as the important classes need. Only a wrong name is refused here; values that
        depend on the data's classes (per-class lists) are checked by train(), which knows them."""
        method = methods.get(self.loss)
        n = max([10, *(c + 1 for c in self.important_classes if _is_int(c) and c >= 0)])
        try:
            method.build_loss(n, self.important_classes, self.loss_params,
                              class_counts=[1] * n if method.needs_class_counts else None)
        except TypeError as exc:
            import re

            name = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if name is None:
                return  # another problem of the values, for train() to report with the data's classes
            raise ValueError(f"loss_params has {name.group(1)!r}, which the {method.label} loss ({self.loss!r}) does "
                             f"not take; check its spelling against the loss's arguments "
                             f"(camri_utils.methods.get({self.loss!r})).") from None
        except ValueError as exc:
            if "takes" in str(exc) and "got" in str(exc):  # a loss that lists the names it takes (LDAM)
                raise ValueError(f"loss_params: {exc}") from None
        except Exception:  # noqa: BLE001 - values that need the data's classes: train() checks them
            return

    def _normalize(self):
        """NumPy scalars (a value read from an array, ``np.int64(2)``) become Python numbers, so
        that the config is stored as JSON like any other; ``loss_params`` or
        ``dataset_options`` None means none."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                setattr(self, f.name, value.item())
        for name in ("loss_params", "dataset_options"):
            value = {} if getattr(self, name) is None else getattr(self, name)
            _require(isinstance(value, dict), f"{name} must be a dict (or None); got {value!r}.")
            setattr(self, name, checks.plain(value, name))

    def _check_surroundings(self):
        """What :func:`train` would otherwise fail on after it has started (and written files):
        seeds NumPy takes, data options the loader takes, an ``output_dir`` that can be a
        folder, a TPU for ``strategy="tpu"``."""
        for name in ("seed", "split_seed"):
            checks.check_int(getattr(self, name), name, minimum=0, maximum=2**32 - 1)
        self.dataset_options = data.check_options(self.dataset, self.dataset_options)
        for name in ("output_dir", "data_dir"):
            value = getattr(self, name)
            _require(value is None or isinstance(value, (str, Path)), f"{name} must be a path or None; got {value!r}.")
        if self.output_dir is not None:
            out = Path(self.output_dir).expanduser()
            blocker = next((p for p in (out, *out.parents) if p.exists()), None)
            _require(blocker is None or blocker.is_dir(), f"output_dir {str(self.output_dir)!r} cannot be a folder: "
                                                          f"{blocker} is a file. Pass another output_dir.")
        _require(self.strategy != "tpu" or _tpu_visible(),
                 "strategy='tpu' but no TPU is visible here (no TPU device, TPU_NAME or COLAB_TPU_ADDR); use "
                 "'default' (one device) or 'mirrored' (several GPUs).")

    def _resolve_auto(self):
        """The GPU defaults, made concrete when the config is made: ``mixed_precision="auto"``
        is True iff TensorFlow sees a GPU; ``strategy="auto"`` is ``"mirrored"`` with more than
        one GPU, else ``"default"``. On a CPU (or without TensorFlow) they resolve to False and
        ``"default"``, the :data:`IDENTITY_BASELINE` values, so no recorded run id changes."""
        auto_precision, auto_strategy = (isinstance(v, str) and v == "auto"
                                         for v in (self.mixed_precision, self.strategy))
        if auto_precision or auto_strategy:
            n_gpus = _visible_gpus()
            if auto_precision:
                self.mixed_precision = n_gpus > 0
            if auto_strategy:
                self.strategy = "mirrored" if n_gpus > 1 else "default"

    def _important_list(self):
        inner = self.loss_params.pop("important_classes", None)
        given = self.important_classes
        if inner is not None and given not in (None, [], ()) and _as_list(inner) != _as_list(given):
            raise ValueError(f"important_classes is {given!r} but loss_params says {inner!r}; give it once, "
                             "as TrainConfig.important_classes.")
        return _as_list(inner if inner is not None and given in (None, [], ()) else given)

    def validate(self):
        """Check the config again (it is checked when made; call after changing a field)."""
        self.__post_init__()
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, path=None):
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, values):
        return checks.from_fields(cls, values, "TrainConfig")

    @classmethod
    def from_json(cls, text):
        """A config from JSON text (use :meth:`from_file` for a file)."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_file(cls, path):
        """A config from a JSON file, such as a run's ``config.json``."""
        return cls.from_json(Path(path).read_text())


def _tpu_visible():
    """Whether this machine has a TPU TensorFlow can connect to (without connecting: that can
    wait on the network)."""
    import os

    if any(os.environ.get(v) for v in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_WORKER_HOSTNAMES", "TPU_ACCELERATOR_TYPE")):
        return True
    if Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists():  # a TPU VM's chips
        return True
    tf = _tensorflow()
    return tf is not None and bool(tf.config.list_physical_devices("TPU"))


def _visible_gpus():
    """How many GPUs TensorFlow sees (0 without TensorFlow): what ``"auto"`` resolves from."""
    tf = _tensorflow()
    return 0 if tf is None else len(tf.config.list_physical_devices("GPU"))


def _as_list(classes):
    if classes is None:
        return []
    if _is_int(classes) or isinstance(classes, np.integer):
        return [int(classes)]
    if isinstance(classes, (list, tuple, np.ndarray)):
        out = list(np.asarray(classes, dtype=object).ravel())
        for c in out:
            if not (_is_int(c) or isinstance(c, np.integer)):
                raise ValueError(f"important_classes must hold class indices (integers); got {c!r}.")
        return [int(c) for c in out]
    raise ValueError(f"important_classes must be a class index or a list of them; got {classes!r}.")


# The values a run's identity leaves out, frozen when run ids were introduced: changing a
# field's default in TrainConfig later must not change the id of any recorded run. A new field
# joins this table with the value that reproduces the behaviour from before it existed.
IDENTITY_BASELINE = {
    "dataset": "fashion_mnist", "dataset_options": {}, "validation_size": "auto", "split_seed": 0,
    "train_subset": None, "test_subset": None, "model": "small_cnn", "feature_dim": None, "loss": "ce",
    "loss_params": {}, "important_classes": [], "epochs": 10, "batch_size": 64, "optimizer": "adam",
    "learning_rate": 1e-3, "lr_schedule": "constant", "warmup_epochs": 0, "seed": 0, "deterministic": False,
    "rare_class": None, "drw": None, "margin_schedule": None,
    "mixed_precision": False, "xla": "auto", "strategy": "default",
    "steps_per_execution": 1, "eval_batch_size": None, "angle_sample": 2000,
}


def identity(config):
    """What defines a run: the config's fields that change what it computes, those at their
    :data:`IDENTITY_BASELINE` value left out (so neither a field added later, with the old
    behaviour as its baseline, nor a changed default changes an identity). A JSON-ready dict.
    A field missing from the baseline (one added in a subclass) counts at its default.
    ``config`` may also be a config's ``to_dict()`` as a record stores it (read as a TrainConfig's)."""
    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                for f in dataclasses.fields(TrainConfig if isinstance(config, dict) else type(config))}
    baseline = {**defaults, **IDENTITY_BASELINE}
    values = json.loads(json.dumps(config if isinstance(config, dict) else config.to_dict()))
    return {k: v for k, v in values.items() if k not in _NOT_IDENTITY and v != baseline[k]}


def run_id(config, data_kind, **labels):
    """The id of a stored run: the first 20 hex digits of the SHA-256 of its config's
    :func:`identity`, the kind of its data (``Dataset.source.kind``, so that a run on a synthetic
    fixture is never taken for one on the real images) and ``labels`` (the protocol adds the
    method's label), as sorted JSON. The one id of the protocol's records
    (:func:`camri_utils.protocol.run_id`) and of a chapter's stored runs
    (:func:`camri_utils.stored_runs.run_id`): committed records are found under it, so its form
    never changes."""
    clash = sorted({"config", "data"} & set(labels))
    if clash:
        raise ValueError(f"labels may not replace the id's own fields {clash}.")
    key = json.dumps({"config": identity(config), "data": data_kind, **labels}, sort_keys=True)
    return sha256(key.encode())[:20]


@dataclass
class TrainResult:
    """A trained model, its per-epoch history (all epochs, resumed ones included), the final
    metrics (``metrics["diverged"]``: True when the loss or the scores became non-finite, then
    ``metrics["diverged_reason"]`` says where and accuracy, recall, precision and the
    confusion matrix are None; test at top level, ``metrics["validation"]`` for the validation split,
    ``metrics["angles_per_epoch"]``: per epoch and class, mean and std of the angle between
    validation features and their class weight), and the outputs it scored:
    ``scores[split]`` (cosines or logits, float32) with ``labels[split]`` for
    ``"validation"`` (when there is a split) and ``"test"``; ``test_cosines``, the cosines of
    the test features with every class weight, whatever the head."""

    model: keras.Model
    history: dict
    metrics: dict
    config: TrainConfig
    scores: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    test_cosines: np.ndarray | None = None  # cosine of each test feature with each class weight


def make_loss(name, n_classes, important_classes=(), **params):
    """The loss of method ``name`` (:mod:`camri_utils.methods`) built with ``params``."""
    return methods.get(name).build_loss(n_classes, _as_list(important_classes), params)


def _strategy(name):
    tf = require_tensorflow("camri_utils.training")

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        # Without GPUs, mirror over the logical CPUs (how the CPU tests exercise it).
        return tf.distribute.MirroredStrategy(None if gpus or len(cpus) < 2 else [d.name for d in cpus])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _subset(x, y, n, seed):
    if n is None or n >= len(x):
        return x, y
    from sklearn.model_selection import train_test_split

    # A stratified subset keeps every class when the quick profiles take only a few images.
    try:
        _, xs, _, ys = train_test_split(x, y, test_size=n, stratify=y, random_state=seed)
    except ValueError:
        idx = np.random.default_rng(seed).permutation(len(x))[:n]
        xs, ys = x[idx], y[idx]
    return xs, ys


def _validation_size(config, ds):
    if config.validation_size != "auto":
        return config.validation_size
    size = data.VALIDATION_SIZE.get(ds.name, 0.2)
    # A tiny copy of a dataset (a fixture, a subset) cannot spare the standard count: a fifth.
    return size if isinstance(size, float) or size <= len(ds.y_train) // 5 else 0.2


def _prepare_data(config, dataset):
    """The dataset split and subset as ``config`` says (the split before the subset, so the
    validation images do not depend on ``train_subset``)."""
    ds = dataset if dataset is not None else data.load(config.dataset, config.data_dir, **config.dataset_options)
    for c in config.important_classes:
        if not 0 <= c < ds.n_classes:
            raise ValueError(f"important class {c} is outside [0, {ds.n_classes}) for {ds.name}; class indices "
                             "start at 0.")
    if config.validation_size is not None and ds.x_val is None:
        ds = data.split_validation(ds, size=_validation_size(config, ds), seed=config.split_seed)
    x_train, y_train = imbalance.subsample_class(ds.x_train, ds.y_train, config.rare_class, config.split_seed,
                                                 ds.n_classes, ds.name)
    x_train, y_train = _subset(x_train, y_train, config.train_subset, config.seed)
    x_test, y_test = _subset(ds.x_test, ds.y_test, config.test_subset, config.seed)
    return dataclasses.replace(ds, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                               groups_train=None)


def _learning_rate(config, steps_per_epoch):
    if config.lr_schedule == "constant":
        return config.learning_rate
    warmup = config.warmup_epochs * steps_per_epoch
    decay = (config.epochs - config.warmup_epochs) * steps_per_epoch
    if warmup:
        return keras.optimizers.schedules.CosineDecay(0.0, decay, warmup_target=config.learning_rate,
                                                      warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay)


def _class_counts(ds):
    return np.bincount(ds.y_train, minlength=ds.n_classes)


def _build_before_tracing(model, batch_spec):
    """Create the optimizer's and the metrics' variables before :meth:`keras.Model.fit` traces.

    Under TensorFlow without a distribution strategy Keras creates them inside the first trace
    of the train and test steps, and a ``tf.function`` that created variables is traced again:
    each step twice, 20-40% of a small run's time (a test's, a sweep's; measured by
    ``benchmarks/prebuild.py``, report in ``benchmarks/PREBUILD.md``). Under a strategy Keras
    builds them beforehand itself, with this (private) method: symbolic, no step runs and no
    number changes (tested). A Keras without it, or with another signature, traces twice, as
    before.
    """
    build = getattr(model, "_symbolic_build", None)
    if build is not None and "data_batch" in inspect.signature(build).parameters:
        build(data_batch=batch_spec)


def _build_model(config, ds, steps_per_epoch, batch_spec=None):
    method = methods.get(config.loss)
    important = config.important_classes
    policy_before = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with _strategy(config.strategy).scope():
            model = models.build(config.model, ds.image_shape, ds.n_classes, head=method.head,
                                 feature_dim=config.feature_dim)
            loss = method.build_loss(ds.n_classes, important, config.loss_params, class_counts=_class_counts(ds))
            if config.margin_schedule is not None:  # the factor is set by MarginSchedule each epoch
                loss = losses.ScheduledMarginLoss(loss, margin_schedule.margin_factor(0, config.margin_schedule))
            if config.drw is not None:  # weights all 1 until DeferredReweighting switches them on
                loss = losses.ClassReweightedLoss(loss, [1.0] * ds.n_classes)
            optimizer = keras.optimizers.get({"class_name": config.optimizer, "config": {
                "learning_rate": _learning_rate(config, steps_per_epoch)}})
            model.compile(optimizer=optimizer, loss=loss, jit_compile=config.xla,
                          steps_per_execution=config.steps_per_execution,
                          metrics=["accuracy"] + [metrics.ImportantClassRecall(c, name=f"recall_{c}") for c in important])
            if batch_spec is not None:
                _build_before_tracing(model, batch_spec)
    finally:
        keras.config.set_dtype_policy(policy_before)
    return model


class _AngleSummary(keras.callbacks.Callback):
    """Once per epoch, the angle between each of a fixed sample of validation features and its
    own class weight: per class, the mean and standard deviation in degrees (kept in
    ``self.summary``, which :func:`train` returns as ``metrics["angles_per_epoch"]``); with a
    ``logdir``, also a TensorBoard histogram for each important class."""

    def __init__(self, x, y, classes=(), logdir=None, n_classes=None):
        super().__init__()
        self.x, self.y, self.classes, self.n_classes = x, y, classes, n_classes
        self.summary = {"mean": [], "std": []}
        self.writer = None
        if logdir is not None:
            tf = require_tensorflow("camri_utils.training")

            self._tf = tf
            self.writer = tf.summary.create_file_writer(str(Path(logdir) / "angles"))

    def on_train_begin(self, logs=None):
        # One feature model and one input pipeline per run, so that its predict function is
        # traced once: made anew each epoch they cost more than the epoch's training on digits.
        # The batches (500) and the graph are predict's on the array, so the numbers are the same.
        tf = require_tensorflow("camri_utils.training")

        self._features = models.feature_model(self.model)
        self._inputs = tf.data.Dataset.from_tensor_slices(self.x).batch(500)

    def on_epoch_end(self, epoch, logs=None):
        feats = keras.ops.convert_to_numpy(self._features.predict(self._inputs, verbose=0))
        own = angles.own_class_angles(feats, angles.class_weights_of(self.model), self.y)
        per_class = [own[self.y == c] for c in range(self.n_classes)]
        self.summary["mean"].append([float(a.mean()) if a.size else None for a in per_class])
        self.summary["std"].append([float(a.std()) if a.size else None for a in per_class])
        if self.writer is not None:
            with self.writer.as_default():
                for c in self.classes:
                    if per_class[c].size:
                        self._tf.summary.histogram(f"angle_to_own_weight/class_{c}", per_class[c], step=epoch)
            self.writer.flush()


class _Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, tied to one configuration and written atomically: the backup
    holds the identity of the run it belongs to, and a run of another configuration refuses to
    resume from it; weights and progress are each replaced in one step, so an interruption
    never leaves a truncated backup."""

    def __init__(self, backup_dir, config):
        super().__init__(str(backup_dir), delete_checkpoint=True)
        self._identity = identity(config)
        owner = Path(backup_dir) / "config.json"
        if owner.exists():
            if json.loads(owner.read_text()) != self._identity:
                raise ValueError(f"{backup_dir} holds an interrupted run of another configuration; resume it with its "
                                 f"own config ({owner}), or delete {backup_dir} (or use another output_dir) to start "
                                 "this one afresh.")
        elif Path(backup_dir).exists() and any(Path(backup_dir).iterdir()):
            raise ValueError(f"{backup_dir} holds a backup that does not say which configuration made it; delete it "
                             "to start afresh.")
        write_json(owner, self._identity)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"the backup in {self.backup_dir} cannot be read ({exc}); delete that folder to start "
                             "the run afresh.") from exc

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{Path(self._weights_path).name}"  # Keras wants the .weights.h5 suffix
        self.model.save_weights(str(tmp), overwrite=True)
        tmp.replace(self._weights_path)
        write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})


class _NewModelRetracing:
    """Hide TensorFlow's "triggered tf.function retracing" warning while one run fits and predicts.

    Every :func:`train` builds a new model, whose train, test and predict functions are traced
    once; called in a loop (a sweep, chapter 6) TensorFlow counts those first traces as
    "excessive retracing" and warns. The warning is about the loop, not the code, so only this
    message is filtered, and only during the run.
    """

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()

    def __enter__(self):
        tf = require_tensorflow("camri_utils.training")

        self._logger = tf.get_logger()
        self._logger.addFilter(self)
        return self

    def __exit__(self, *exc):
        self._logger.removeFilter(self)


def _callbacks(config, out, ds, extra):
    """(callbacks, the angle summary or None)."""
    cbs = list(extra)
    summary = None
    if config.angle_sample and (ds.x_val is not None or out is not None):
        x, y = (ds.x_val, ds.y_val) if ds.x_val is not None else (ds.x_train, ds.y_train)
        n = config.angle_sample
        summary = _AngleSummary(x[:n].astype("float32") / 255.0, y[:n],
                                config.important_classes, out / "tensorboard" if out is not None else None,
                                ds.n_classes)
        cbs.append(summary)
    if out is None:
        return cbs, summary
    out.mkdir(parents=True, exist_ok=True)
    config.to_json(out / "config.json")
    backup = _Backup(out / "backup", config)  # refuses another configuration's backup
    resuming = (out / "backup" / "training_metadata.json").exists()
    cbs = [backup, keras.callbacks.CSVLogger(str(out / "history.csv"), append=resuming),
           keras.callbacks.TensorBoard(str(out / "tensorboard"))] + cbs
    return cbs, summary


def _cosines(model, head, x_pipeline, scores):
    """Cosines between each feature and each class weight: the outputs themselves for a
    cosine head; computed from the features for a dense head (whose outputs are logits)."""
    if head == "cosine":
        return scores
    feats = keras.ops.convert_to_numpy(models.feature_model(model).predict(x_pipeline, verbose=0))
    return np.cos(angles.feature_class_angles(feats, angles.class_weights_of(model), degrees=False)).astype("float32")


def _full_history(out, history):
    """Every epoch's logs: from ``history.csv`` when the run wrote one (it holds the epochs of
    an interrupted first attempt too), else what ``fit`` returned."""
    if out is None or not (out / "history.csv").exists():
        return dict(history.history)
    import pandas as pd

    frame = pd.read_csv(out / "history.csv")
    return {c: frame[c].tolist() for c in frame.columns if c != "epoch"}


def _compute(config, model):
    """What a run used: mixed precision, XLA (as Keras resolved ``"auto"``), the distribution
    strategy and its replicas, and the devices TensorFlow saw."""
    strategy = getattr(model, "distribute_strategy", None)
    return {"mixed_precision": bool(config.mixed_precision), "xla": getattr(model, "jit_compile", config.xla),
            "strategy": config.strategy,
            "replicas": int(getattr(strategy, "num_replicas_in_sync", 1)),
            "devices": environment()["devices"], "threads": threads()}


def threads():
    """TensorFlow's thread counts in this process, ``{"intra_op": n, "inter_op": m}`` (None:
    TensorFlow's default, about one per core). They change a run's numbers (the order in which
    sums are taken), so every result states them; :func:`camri_utils.protocol.workers.set_threads`
    sets them before TensorFlow starts."""
    tf = _tensorflow()
    if tf is None:
        return None
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or None,
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or None}


class _StopWhenDiverged(keras.callbacks.Callback):
    """Stop at the end of an epoch whose training loss is not finite: nothing trains back from NaN."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


def _divergence(history, scores):
    """Why a run diverged (its loss or its scores became non-finite), or None."""
    for name in ("loss", "val_loss"):
        for epoch, value in enumerate(history.get(name, [])):
            if value is None or not math.isfinite(value):
                return f"the {name.replace('val_', 'validation ')} became {value} in epoch {epoch + 1}"
    for split, s in scores.items():
        if not np.isfinite(s).all():
            return f"the {split} scores hold non-finite values (NaN or inf)"
    return None


# What a run writes into its output_dir: a folder holding any of these is a run's.
_RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras", "tensorboard", "backup")


def _check_output_dir(config):
    """Refuse an ``output_dir`` that holds a run of another configuration (its ``config.json``
    says so) or a run's files without a ``config.json``: writing there would replace a finished
    run and mix two runs' TensorBoard logs. A run of the same configuration (finished, or
    interrupted: it resumes) may write there again."""
    if not config.output_dir:
        return
    out = Path(config.output_dir).expanduser()
    owner = out / "config.json"
    remedy = "Pass another output_dir, or delete that folder to replace the run."
    if owner.is_file():
        try:
            theirs = identity(TrainConfig.from_dict(json.loads(owner.read_text())))
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"output_dir {str(out)!r} holds a config.json that is not a TrainConfig's ({exc}). "
                             f"{remedy}") from None
        mine = identity(config)
        if theirs != mine:
            differ = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
            interrupted = (out / "backup").is_dir() and any((out / "backup").iterdir())
            raise ValueError(f"output_dir {str(out)!r} holds {'an interrupted' if interrupted else 'a'} run of another "
                             f"configuration ({owner} differs in {', '.join(differ)}). "
                             + (f"Resume it with its own config ({owner}), or pass another output_dir, or delete "
                                "that folder to start this one afresh." if interrupted else remedy))
    elif out.is_dir():
        found = sorted(name for name in _RUN_FILES if (out / name).exists())
        if found:
            raise ValueError(f"output_dir {str(out)!r} holds a run's files ({', '.join(found)}) but no config.json "
                             f"saying which configuration made them. {remedy}")
    _check_writable(out)


def _check_writable(out):
    """Refuse an ``output_dir`` this process cannot write into (read-only, another user's, a
    system folder), before training: otherwise the run fails at its first epoch's log with
    TensorFlow's NotFoundError or PermissionDeniedError. Probes the folder, or the nearest
    folder above it that exists (the run creates the rest), with a file it removes at once."""
    import tempfile

    place = out
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".camri-write-check-", dir=place)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ValueError(f"output_dir {str(out)!r} cannot be written: creating a file in {str(place)!r} failed "
                         f"({exc.strerror or exc}). Pass an output_dir in a folder you can write to.") from None


def train(config, callbacks=(), dataset=None):
    """Train and evaluate one model as ``config`` says; see the module docstring.

    Args:
        config: a :class:`TrainConfig` (or a dict of its fields).
        callbacks: extra Keras callbacks.
        dataset: an already loaded :class:`camri_utils.data.Dataset` (skips ``data.load``).
    Returns:
        :class:`TrainResult`.
    """
    tf = require_tensorflow("camri_utils.training")

    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    _check_output_dir(config)  # before anything is loaded or written
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    ds = _prepare_data(config, dataset)
    train_ds = data.pipeline(ds.x_train, ds.y_train, config.batch_size, training=True, seed=config.seed)
    eval_batch = config.eval_batch_size or config.batch_size
    val_ds = data.pipeline(ds.x_val, ds.y_val, eval_batch, training=False) if ds.x_val is not None else None
    test_ds = data.pipeline(ds.x_test, ds.y_test, eval_batch, training=False)
    steps = math.ceil(len(ds.x_train) / config.batch_size)
    model = _build_model(config, ds, steps, train_ds.element_spec)
    out = Path(config.output_dir) if config.output_dir else None
    cbs, angle_summary = _callbacks(config, out, ds, callbacks)
    cbs.append(_StopWhenDiverged())
    if config.drw is not None:
        cbs.append(imbalance.DeferredReweighting(
            model.loss, imbalance.effective_number_weights(_class_counts(ds), config.drw["beta"]),
            config.drw["start_epoch"]))
    if config.margin_schedule is not None:
        cbs.append(margin_schedule.MarginSchedule(model.loss, config.margin_schedule, config.epochs))

    with _NewModelRetracing():
        start = time.perf_counter()
        history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=cbs,
                            verbose=config.verbose, shuffle=False)  # the pipeline shuffles, seeded
        wall = time.perf_counter() - start
        # Scores are the model's outputs (cosines or logits): argmax, no margin.
        scores = {"test": model.predict(test_ds, verbose=0).astype("float32")}
        labels = {"test": ds.y_test}
        if val_ds is not None:
            scores["validation"], labels["validation"] = model.predict(val_ds, verbose=0).astype("float32"), ds.y_val
        test_cosines = _cosines(model, methods.get(config.loss).head, test_ds, scores["test"])
    full_history = _full_history(out, history)
    diverged = _divergence(full_history, scores)
    if diverged is None:
        evaluation = {**metrics.split_metrics(ds.y_test, scores["test"], ds.n_classes), "diverged": False,
                      "confusion_matrix": metrics.confusion_matrix(ds.y_test, scores["test"], ds.n_classes).tolist()}
    else:  # the metrics of NaN scores would be an argmax's arbitrary class: none are computed
        warnings.warn(f"training diverged: {diverged}; its metrics are None. Try a smaller learning rate.",
                      RuntimeWarning, stacklevel=2)
        evaluation = {"accuracy": None, "recall": None, "precision": None, "confusion_matrix": None,
                      "diverged": True, "diverged_reason": diverged}
    result_metrics = {
        **evaluation,
        "important_classes": config.important_classes,
        "train_class_counts": _class_counts(ds).tolist(),
        "wall_time_s": wall,
        "epochs_run": len(full_history.get("loss", [])),
        "data_source": {"location": ds.source.location, "kind": ds.source.kind,
                        **({"verified": ds.source.verified} if ds.source.verified else {})},
        "environment": environment(),
        "compute": _compute(config, model),
    }
    if angle_summary is not None:
        result_metrics["angles_per_epoch"] = angle_summary.summary
    if "validation" in scores and diverged is None:
        result_metrics["validation"] = metrics.split_metrics(ds.y_val, scores["validation"], ds.n_classes)
    if out is not None:
        model.save(out / "model.keras")
        write_json(out / "metrics.json", result_metrics, indent=1)
    return TrainResult(model, full_history, result_metrics, config, scores, labels, test_cosines)

"""Training: one function, :func:`train`, from a plain :class:`TrainConfig` (JSON in and out).

Built on Keras ``fit`` with compiled graphs (never ``run_eagerly``). The margin belongs to the
training loss only: the per-epoch metrics (accuracy, the important classes' recall, on train and
test) and the final evaluation take the argmax of the model's output, the cosines. With an
``output_dir`` a run writes ``config.json``, ``history.csv`` (one row per epoch), TensorBoard
logs (with a histogram of the important class's angles to its class weight),
a ``backup/`` for resuming an interrupted run (Keras' ``BackupAndRestore``), ``model.keras`` and
``metrics.json``.

Example:
    >>> from camri_utils.training import TrainConfig, train
    >>> result = train(TrainConfig(dataset="fashion_mnist", model="small_cnn", loss="camri",
    ...                            loss_params={"important_classes": 6, "margin": 0.2, "scale": 16},
    ...                            important_classes=[6], epochs=5))
    >>> result.metrics["recall"][6], result.metrics["accuracy"]
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from camri_utils import angles, data, losses, metrics, models
from camri_utils.environment import environment

__all__ = ["TrainConfig", "TrainResult", "train", "LOSSES", "STRATEGIES", "make_loss"]

# loss name -> (class, head kind, whether it needs n_classes)
LOSSES = {
    "ce": (None, "dense", False),
    "wce": (losses.WeightedCrossEntropy, "dense", False),
    "crwwce": (losses.RealWorldWeightedCrossEntropy, "dense", False),
    "normsoftmax": (losses.NormalizedSoftmaxLoss, "cosine", False),
    "sphereface": (losses.SphereFaceLoss, "cosine", False),
    "cosface": (losses.CosFaceLoss, "cosine", False),
    "arcface": (losses.ArcFaceLoss, "cosine", False),
    "camri": (losses.CAMRILoss, "cosine", True),
}
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``loss_params`` are the loss's own arguments
    (e.g. ``{"important_classes": 3, "margin": 0.2, "scale": 16}`` for CAMRI; CAMRI's
    ``n_classes`` is filled in from the data). ``important_classes`` are the classes whose
    recall is logged every epoch (default: CAMRI's important classes)."""

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    dataset_options: dict = field(default_factory=dict)
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
    seed: int = 0
    deterministic: bool = False
    mixed_precision: bool = False
    xla: bool | str = "auto"
    strategy: str = "default"
    output_dir: str | None = None
    verbose: int = 1

    def validate(self):
        if self.dataset not in data.NAMES:
            raise ValueError(f"dataset must be one of {list(data.NAMES)}; got {self.dataset!r}.")
        if self.model not in models.MODELS:
            raise ValueError(f"model must be one of {list(models.MODELS)}; got {self.model!r}.")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}; got {self.loss!r}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}; got {self.strategy!r}.")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {getattr(self, name)!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate!r}.")
        if self.xla not in (True, False, "auto"):
            raise ValueError(f"xla must be True, False or 'auto'; got {self.xla!r}.")
        return self

    def to_json(self, path=None):
        text = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path):
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text).read_text()
        values = json.loads(text)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}.")
        return cls(**values).validate()

    def important(self):
        if self.important_classes:
            return [int(c) for c in self.important_classes]
        if self.loss == "camri":
            ic = self.loss_params.get("important_classes", [])
            return [int(ic)] if isinstance(ic, (int, np.integer)) else [int(c) for c in ic]
        return []


@dataclass
class TrainResult:
    model: keras.Model
    history: dict
    metrics: dict
    config: TrainConfig


def make_loss(name, n_classes, **params):
    """The loss ``name`` of :data:`LOSSES` built with ``params`` (``n_classes`` added where
    the loss needs it)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}; got {name!r}.")
    cls, _, needs_classes = LOSSES[name]
    if cls is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, **params)
    if needs_classes:
        params = {"n_classes": n_classes, **params}
    return cls(**params)


def _strategy(name):
    import tensorflow as tf

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


class _AngleHistogram(keras.callbacks.Callback):
    """TensorBoard histogram of the angles between the important classes' test features and
    their class weights, once per epoch."""

    def __init__(self, logdir, x, y, classes):
        super().__init__()
        import tensorflow as tf

        self._tf = tf
        self.writer = tf.summary.create_file_writer(str(Path(logdir) / "angles"))
        self.x, self.y, self.classes = x, y, classes

    def on_epoch_end(self, epoch, logs=None):
        feats = keras.ops.convert_to_numpy(models.feature_model(self.model).predict(self.x, verbose=0, batch_size=256))
        own = angles.own_class_angles(feats, angles.class_weights_of(self.model), self.y)
        with self.writer.as_default():
            for c in self.classes:
                if np.any(self.y == c):
                    self._tf.summary.histogram(f"angle_to_own_weight/class_{c}", own[self.y == c], step=epoch)
        self.writer.flush()


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
        import tensorflow as tf

        self._logger = tf.get_logger()
        self._logger.addFilter(self)
        return self

    def __exit__(self, *exc):
        self._logger.removeFilter(self)


def train(config, callbacks=(), dataset=None):
    """Train and evaluate one model as ``config`` says; see the module docstring.

    Args:
        config: a :class:`TrainConfig` (or a dict of its fields).
        callbacks: extra Keras callbacks.
        dataset: an already loaded :class:`camri_utils.data.Dataset` (skips ``data.load``).
    Returns:
        :class:`TrainResult` with the trained model, the per-epoch history and the final test
        metrics (accuracy, per-class recall and precision, confusion matrix, wall time, versions,
        data source).
    """
    import tensorflow as tf

    if isinstance(config, dict):
        config = TrainConfig(**config)
    config.validate()
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    ds = dataset if dataset is not None else data.load(config.dataset, config.data_dir, **config.dataset_options)
    x_train, y_train = _subset(ds.x_train, ds.y_train, config.train_subset, config.seed)
    x_test, y_test = _subset(ds.x_test, ds.y_test, config.test_subset, config.seed)
    important = config.important()
    for c in important:
        if not 0 <= c < ds.n_classes:
            raise ValueError(f"important class {c} is outside [0, {ds.n_classes}) for {ds.name}.")
    subset = dataclasses.replace(ds, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    train_ds, test_ds = data.pipelines(subset, config.batch_size, seed=config.seed)

    policy_before = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        strategy = _strategy(config.strategy)
        _, head, _ = LOSSES[config.loss]
        with strategy.scope():
            model = models.build(config.model, ds.image_shape, ds.n_classes, head=head, feature_dim=config.feature_dim)
            loss = make_loss(config.loss, ds.n_classes, **config.loss_params)
            optimizer = keras.optimizers.get({"class_name": config.optimizer,
                                              "config": {"learning_rate": config.learning_rate}})
            model.compile(optimizer=optimizer, loss=loss, jit_compile=config.xla,
                          metrics=["accuracy"] + [metrics.ImportantClassRecall(c, name=f"recall_{c}") for c in important])
    finally:
        keras.config.set_dtype_policy(policy_before)

    cbs = list(callbacks)
    out = Path(config.output_dir) if config.output_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        config.to_json(out / "config.json")
        resuming = (out / "backup").exists()
        cbs = [keras.callbacks.BackupAndRestore(str(out / "backup")),
               keras.callbacks.CSVLogger(str(out / "history.csv"), append=resuming),
               keras.callbacks.TensorBoard(str(out / "tensorboard"))] + cbs
        if important:
            cbs.append(_AngleHistogram(out / "tensorboard", x_test.astype("float32") / 255.0, y_test, important))

    with _NewModelRetracing():
        start = time.perf_counter()
        history = model.fit(train_ds, validation_data=test_ds, epochs=config.epochs, callbacks=cbs,
                            verbose=config.verbose, shuffle=False)  # the pipeline shuffles, seeded
        wall = time.perf_counter() - start
        scores = model.predict(test_ds, verbose=0)  # cosines or logits; argmax, no margin
    result_metrics = {
        "accuracy": metrics.accuracy(y_test, scores),
        "recall": metrics.per_class_recall(y_test, scores, ds.n_classes).tolist(),
        "precision": metrics.per_class_precision(y_test, scores, ds.n_classes).tolist(),
        "confusion_matrix": metrics.confusion_matrix(y_test, scores, ds.n_classes).tolist(),
        "important_classes": important,
        "wall_time_s": wall,
        "epochs_run": len(history.history.get("loss", [])),
        "data_source": {"location": ds.source.location, "kind": ds.source.kind},
        "environment": environment(),
    }
    if out is not None:
        model.save(out / "model.keras")
        (out / "metrics.json").write_text(json.dumps(result_metrics, indent=1))
    return TrainResult(model, dict(history.history), result_metrics, config)

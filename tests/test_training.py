"""Models and the training engine on fixtures: every builder trains, a run resumes after an
interruption, mirrored == default, and evaluation never sees the margin."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from camri_utils import CAMRILoss, metrics, models
from camri_utils.data import fixtures
from camri_utils.training import TrainConfig, make_loss, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


def test_paper_cnn_matches_the_authors_description():
    model = models.paper_cnn(feature_dim=128)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64] * 3 + [128] * 3 + [256] * 5 + [512] * 2
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    names = [layer.name for layer in model.layers]
    for i in (2, 5, 8, 11):
        assert names[names.index(f"conv{i}") + 1] == f"bn{i}"
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2
    assert model.get_layer("feature").output.shape[-1] == 128
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("dataset,model,loss,params", [
    ("cifar10", "paper_cnn", "camri", {"margin": 0.2, "scale": 16.0}),
    ("fashion_mnist", "small_cnn", "ce", {}),
    ("gtsrb", "mlp", "arcface", {"margin": 0.1, "scale": 8.0}),
    ("awa2", "small_cnn", "wce", {"class_weights": [1.0, 2.0, 1.0, 1.0, 1.0]}),
])
def test_each_builder_trains_on_a_fixture(dataset, model, loss, params, tmp_path):
    root = fixtures.write(dataset, tmp_path / dataset, per_class=4)
    options = {"size": 16} if dataset in ("gtsrb", "awa2") else {}
    config = TrainConfig(dataset=dataset, data_dir=str(root), dataset_options=options, model=model,
                         feature_dim=16 if model != "mlp" else 2, loss=loss, loss_params=params,
                         important_classes=[1], epochs=2, batch_size=16, verbose=0,
                         output_dir=str(tmp_path / "run"))
    result = train(config)
    assert result.metrics["epochs_run"] == 2 and np.isfinite(result.history["loss"]).all()
    assert result.metrics["data_source"]["kind"] == "synthetic fixture"
    out = tmp_path / "run"
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == ["epoch", "accuracy", "loss", "recall_1", "val_accuracy", "val_loss", "val_recall_1"]
    assert len(rows) == 3
    assert TrainConfig.from_file(out / "config.json") == config
    saved = json.loads((out / "metrics.json").read_text())
    assert len(saved["recall"]) == len(saved["confusion_matrix"]) and saved["environment"]["camri_utils"]
    reloaded = keras.saving.load_model(out / "model.keras")
    x = np.zeros((2, *reloaded.input_shape[1:]), np.float32)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)
    assert any((out / "tensorboard").rglob("*.tfevents*"))


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_interrupted_run_resumes_from_the_saved_epoch(tmp_path):
    root = fixtures.write("fashion_mnist", tmp_path / "f", per_class=4)
    config = TrainConfig(data_dir=str(root), epochs=4, batch_size=8, verbose=0, feature_dim=8,
                         loss="normsoftmax", loss_params={"scale": 8.0}, output_dir=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[_Interrupt(at_epoch=1)])
    assert (tmp_path / "run" / "backup").exists()
    # Another configuration must not continue from this backup.
    other = dataclasses.replace(config, loss="ce", loss_params={})
    with pytest.raises(ValueError, match="interrupted run of another configuration"):
        train(other)
    result = train(config)
    # Epochs 0 and 1 were done before the interruption; the rerun trains only 2 and 3, and the
    # result still describes the whole run.
    assert result.metrics["epochs_run"] == 4 and len(result.history["loss"]) == 4
    epochs = [int(line.split(",")[0]) for line in (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2, 3]
    assert not (tmp_path / "run" / "backup").exists()  # removed once the run completed


def test_an_unreadable_backup_is_a_clear_error(tmp_path):
    root = fixtures.write("fashion_mnist", tmp_path / "f", per_class=4)
    config = TrainConfig(data_dir=str(root), epochs=3, batch_size=8, verbose=0, feature_dim=8, model="mlp",
                         output_dir=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[_Interrupt(at_epoch=0)])
    backup = tmp_path / "run" / "backup"
    assert not [p for p in backup.iterdir() if p.name.startswith(".")]  # written atomically: no leftovers
    weights = next(backup.glob("*.weights.h5"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.raises(ValueError, match="delete that folder"):
        train(config)


def test_evaluation_of_a_camri_model_ignores_the_labels(tmp_path, rng):
    """The model has no label input and the metrics use argmax of the cosines, so evaluating
    with other labels changes the scores only as the labels do, never the predictions."""
    keras.utils.set_random_seed(0)
    model = models.mlp(6, 4, hidden=(16,), feature_dim=3)
    model.compile(optimizer="adam", loss=CAMRILoss(4, 2, 1.0, 16.0),
                  metrics=["accuracy", metrics.ImportantClassRecall(2, name="recall_2")])
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=200)
    model.fit(x, y, epochs=2, verbose=0)
    predictions = model.predict(x, verbose=0)
    for labels in (y, rng.permutation(y), np.full(200, 2)):
        logs = model.evaluate(x, labels, verbose=0, return_dict=True)
        assert logs["accuracy"] == pytest.approx(metrics.accuracy(labels, predictions), abs=1e-6)
        assert logs["recall_2"] == pytest.approx(metrics.important_class_recall(labels, predictions, 2), abs=1e-6)
    np.testing.assert_array_equal(model.predict(x, verbose=0), predictions)


def test_mirrored_strategy_on_two_cpus_matches_default(tmp_path):
    """Run in a fresh interpreter: logical devices must be set before TensorFlow starts. One
    batch per epoch (80 images), so that the comparison is of the gradient aggregation and not
    of how each strategy orders a shuffled dataset."""
    root = fixtures.write("fashion_mnist", tmp_path / "f", per_class=8)
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from camri_utils.training import TrainConfig, train
        out = {{}}
        for strategy in ("default", "mirrored"):
            config = TrainConfig(data_dir={str(root)!r}, epochs=3, batch_size=80, verbose=0, feature_dim=8,
                                 model="mlp", loss="camri", loss_params={{"margin": 0.3, "scale": 8.0}}, important_classes=6,
                                 strategy=strategy, seed=0, deterministic=True)
            out[strategy] = train(config).history["loss"]
        print(json.dumps(out))
    """)
    env = {**os.environ, "CAMRI_CACHE_DIR": str(tmp_path / "c"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(losses["mirrored"], losses["default"], rtol=1e-4)


def test_bad_configs_are_rejected_when_made():
    for kwargs, match in [({"dataset": "mnist"}, "dataset must be one of"), ({"loss": "focal"}, "loss must be one of"),
                          ({"epochs": 0}, "epochs must be an integer >= 1"), ({"strategy": "gpu"}, "strategy"),
                          ({"model": "resnet"}, "model must be one of"), ({"xla": "yes"}, "xla"),
                          ({"learning_rate": float("inf")}, "learning_rate must be a finite"),
                          ({"learning_rate": float("nan")}, "learning_rate must be a finite"),
                          ({"train_subset": -5}, "train_subset must be None or an integer >= 1"),
                          ({"train_subset": 0}, "train_subset must be None or an integer >= 1"),
                          ({"validation_size": 1.5}, "validation_size"), ({"mixed_precision": "False"}, "True or False"),
                          ({"lr_schedule": "step"}, "lr_schedule"), ({"warmup_epochs": 10}, "warmup_epochs"),
                          ({"important_classes": [1.5]}, "integers"),
                          ({"important_classes": [1], "loss_params": {"important_classes": 2}}, "give it once")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_json('{"epochz": 3}')
    with pytest.raises(ValueError, match="important class 12 is outside"):
        train(TrainConfig(dataset="digits", loss="camri", loss_params={"margin": 0.2}, important_classes=12, epochs=1,
                          verbose=0))
    assert make_loss("camri", 10, important_classes=3, margin=0.2, scale=16).n_classes == 10


def test_important_classes_live_in_one_place():
    assert TrainConfig(important_classes=3).important_classes == [3]  # an int, as the loss accepts
    moved = TrainConfig(loss="camri", loss_params={"important_classes": 6, "margin": 0.2})
    assert moved.important_classes == [6] and "important_classes" not in moved.loss_params
    assert TrainConfig.from_json(moved.to_json()) == moved


def test_cosine_schedule_decays_to_zero_after_warmup(tmp_path):
    from camri_utils.training import _learning_rate

    config = TrainConfig(epochs=4, lr_schedule="cosine", warmup_epochs=1, learning_rate=0.01)
    schedule = _learning_rate(config, steps_per_epoch=10)
    lr = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert lr[0] == pytest.approx(0.0) and lr[1] == pytest.approx(0.005) and lr[2] == pytest.approx(0.01)
    assert lr[3] == pytest.approx(0.005, rel=1e-3) and lr[4] == pytest.approx(0.0, abs=1e-9)
    assert _learning_rate(TrainConfig(learning_rate=0.01), 10) == 0.01


def test_validation_split_is_monitored_and_scored_test_only_at_the_end(tmp_path):
    from camri_utils import data

    digits = data.load("digits")
    result = train(TrainConfig(dataset="digits", model="mlp", feature_dim=4, epochs=2, verbose=0,
                               validation_size=200), dataset=digits)
    assert result.labels["validation"].shape == (200,) and len(result.labels["test"]) == len(digits.y_test)
    assert result.metrics["validation"]["accuracy"] == metrics.accuracy(result.labels["validation"],
                                                                         result.scores["validation"])
    assert result.history["val_accuracy"][-1] == pytest.approx(result.metrics["validation"]["accuracy"], abs=1e-6)
    # The validation images are the same for every training seed (split_seed), disjoint from training.
    other = train(TrainConfig(dataset="digits", model="mlp", feature_dim=4, epochs=1, verbose=0, seed=5,
                              validation_size=200), dataset=digits)
    np.testing.assert_array_equal(other.labels["validation"], result.labels["validation"])


def test_gpu_defaults_resolve_from_the_gpus_tensorflow_sees(monkeypatch):
    """mixed_precision and strategy default to "auto", resolved when the config is made: mixed
    precision iff there is a GPU, MirroredStrategy iff there are several; on a CPU (or without
    TensorFlow) the values of IDENTITY_BASELINE, so a config's identity is the same as before."""
    from camri_utils import training

    for n_gpus, expected in [(0, (False, "default")), (1, (True, "default")), (4, (True, "mirrored"))]:
        monkeypatch.setattr(training, "_visible_gpus", lambda n=n_gpus: n)
        config = TrainConfig(epochs=3)
        assert (config.mixed_precision, config.strategy) == expected
        assert TrainConfig.from_json(config.to_json()) == config  # stored resolved, read back as is
        # An explicit choice wins over the GPUs.
        chosen = TrainConfig(mixed_precision=False, strategy="default")
        assert (chosen.mixed_precision, chosen.strategy) == (False, "default")
        assert training.identity(chosen) == {}
        assert training.identity(config) == {"epochs": 3, **({} if n_gpus == 0 else {"mixed_precision": True}),
                                             **({"strategy": "mirrored"} if n_gpus > 1 else {})}
    monkeypatch.undo()
    monkeypatch.setattr(training, "_tensorflow", lambda: None)
    assert training._visible_gpus() == 0
    assert (TrainConfig().mixed_precision, TrainConfig().strategy) == (False, "default")
    # This machine: resolved from what TensorFlow sees.
    monkeypatch.undo()
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    assert training._visible_gpus() == gpus
    assert TrainConfig().mixed_precision is (gpus > 0)


def test_mixed_precision_run_is_finite_and_restores_the_policy(tmp_path):
    root = fixtures.write("fashion_mnist", tmp_path / "f", per_class=4)
    before = keras.config.dtype_policy().name
    result = train(TrainConfig(data_dir=str(root), epochs=1, batch_size=8, verbose=0, feature_dim=8,
                               loss="camri", loss_params={"important_classes": 2, "margin": 0.3, "scale": 16.0},
                               mixed_precision=True))
    assert np.isfinite(result.history["loss"]).all()
    assert result.model.get_layer("conv1").compute_dtype == "float16"
    assert result.model.get_layer("head").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == before
    compute = result.metrics["compute"]
    assert compute["mixed_precision"] is True and compute["strategy"] == "default" and compute["replicas"] == 1
    assert isinstance(compute["xla"], bool) and compute["devices"] == result.metrics["environment"]["devices"]


def test_train_in_a_loop_logs_no_retracing_warning():
    """A sweep calls train() again and again; each new model's first trace is not the
    'excessive retracing' TensorFlow warns about, so that warning must not reach the reader."""
    import logging

    import tensorflow as tf

    from camri_utils import data

    digits = data.load("digits")
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect()
    tf.get_logger().addHandler(handler)
    try:
        for seed in range(7):
            train(TrainConfig(dataset="digits", model="mlp", feature_dim=2, epochs=1, train_subset=200,
                              test_subset=100, seed=seed, verbose=0), dataset=digits)
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in seen if "retracing" in m]
    assert not tf.get_logger().filters  # the filter is removed after each call


def test_angles_are_summarised_every_epoch_and_cosines_come_with_any_head():
    from camri_utils import angles, data

    digits = data.load("digits")
    for loss in ("ce", "normsoftmax"):
        result = train(TrainConfig(dataset="digits", model="mlp", feature_dim=4, epochs=2, verbose=0, loss=loss),
                       dataset=digits)
        summary = result.metrics["angles_per_epoch"]
        assert len(summary["mean"]) == 2 and len(summary["mean"][0]) == 10
        # The last epoch's summary is the angle of the final model's validation features.
        feats = models.feature_model(result.model).predict(_val_images(digits), verbose=0)
        own = angles.own_class_angles(feats, angles.class_weights_of(result.model), result.labels["validation"])
        y = result.labels["validation"]
        assert summary["mean"][-1][3] == pytest.approx(own[y == 3].mean(), abs=1e-3)
        assert summary["std"][-1][3] == pytest.approx(own[y == 3].std(), abs=1e-3)
        cos = result.test_cosines
        assert cos.shape == result.scores["test"].shape and np.all(np.abs(cos) <= 1 + 1e-6)
        if loss == "normsoftmax":
            np.testing.assert_array_equal(cos, result.scores["test"])  # the cosine head's own outputs
        else:
            feats = models.feature_model(result.model).predict(digits.x_test.astype("float32") / 255.0, verbose=0)
            ref = np.cos(np.radians(angles.feature_class_angles(feats, angles.class_weights_of(result.model))))
            np.testing.assert_allclose(cos, ref, atol=1e-5)


def _val_images(digits):
    from camri_utils import data

    split = data.split_validation(digits, size=data.VALIDATION_SIZE["digits"], seed=0)
    return split.x_val.astype("float32") / 255.0


# ---------------------------------------------------------------------------------------------
# Training practice for margin losses: a warm-up or ramp of the margin, the easy margin
# ---------------------------------------------------------------------------------------------
def test_margin_factor_follows_the_schedule_it_documents():
    from camri_utils.margin_schedule import check_margin_schedule, margin_factor

    # Written out from the definition: 0 before start_epoch, then (t - e) / r up to 1.
    cases = {(2, 4): [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1], (3, 0): [0, 0, 0, 1, 1, 1, 1, 1, 1],
             (0, 5): [0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1]}
    for (e, r), expected in cases.items():
        schedule = check_margin_schedule({"start_epoch": e, "ramp_epochs": r}, epochs=9)
        assert [margin_factor(t, schedule) for t in range(9)] == pytest.approx(expected, abs=1e-15)
    assert check_margin_schedule({"start_epoch": 4}, 9) == {"start_epoch": 4, "ramp_epochs": 0}
    assert margin_factor(0, None) == 1.0


@pytest.mark.parametrize("schedule,match", [
    ("warmup", "must be None or"), ({"ramp_epochs": 3}, "must be None or"),
    ({"start_epoch": 2, "ramp": 3}, "must be None or"), ({"start_epoch": -1}, r"\['start_epoch'\] must be an integer >= 0"),
    ({"start_epoch": 2.5}, "start_epoch"), ({"start_epoch": True}, "start_epoch"),
    ({"start_epoch": 1, "ramp_epochs": -2}, "ramp_epochs"), ({"start_epoch": 0, "ramp_epochs": 0}, "schedules nothing"),
    ({"start_epoch": 3, "ramp_epochs": 2}, r"reaches the full margin at epoch .* = 5, but epochs=5"),
    ({"start_epoch": 5}, "epochs=5"),
])
def test_a_bad_margin_schedule_is_refused_when_the_config_is_made(schedule, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(loss="camri", loss_params={"margin": 0.3}, important_classes=3, epochs=5, margin_schedule=schedule)


@pytest.mark.parametrize("loss", ["ce", "normsoftmax", "wce", "logit_adjusted"])
def test_a_margin_schedule_needs_a_loss_with_a_margin(loss):
    with pytest.raises(ValueError, match=f"'{loss}' has none .*camri"):
        TrainConfig(loss=loss, important_classes=3, epochs=5, margin_schedule={"start_epoch": 2})
    # A margin loss whose margin is 0 is caught when the loss is built, before anything is written.
    from camri_utils.margin_schedule import MarginSchedule

    with pytest.raises(ValueError, match="needs a ScheduledMarginLoss"):
        MarginSchedule(CAMRILoss(10, 3, 0.3, 8.0), {"start_epoch": 1}, epochs=3)


def test_the_new_options_are_off_by_default_and_change_no_run_id():
    from camri_utils import training

    base = TrainConfig(dataset="digits", model="mlp", loss="camri", loss_params={"margin": 0.3}, important_classes=3)
    assert base.margin_schedule is None and training.IDENTITY_BASELINE["margin_schedule"] is None
    assert "margin_schedule" not in training.identity(base)
    scheduled = dataclasses.replace(base, margin_schedule={"start_epoch": 2, "ramp_epochs": 3})
    assert training.identity(scheduled)["margin_schedule"] == {"start_epoch": 2, "ramp_epochs": 3}
    assert training.identity(TrainConfig.from_json(scheduled.to_json())) == training.identity(scheduled)


def test_a_warm_up_trains_as_normalized_softmax_until_the_margin_switches_on():
    """Epochs before start_epoch are normalized softmax at the loss's scale: the same seed gives
    the same losses as a NormSoftmax run (the same arithmetic, m2 = 0 * m, in another graph:
    hence a float32 tolerance); the factor the compiled step reads each epoch is the schedule's."""
    from camri_utils import data

    digits = data.load("digits")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(float(keras.ops.convert_to_numpy(self.model.loss.margin_factor)))

    common = dict(dataset="digits", model="mlp", feature_dim=2, important_classes=3, batch_size=64,
                  learning_rate=3e-3, seed=1, verbose=0, angle_sample=0)
    warm = train(TrainConfig(loss="camri", loss_params={"margin": 0.9, "scale": 8.0}, epochs=5,
                             margin_schedule={"start_epoch": 2, "ramp_epochs": 2}, **common),
                 callbacks=[Probe()], dataset=digits)
    plain = train(TrainConfig(loss="normsoftmax", loss_params={"scale": 8.0}, epochs=5, **common), dataset=digits)
    assert seen == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(warm.history["loss"][:3], plain.history["loss"][:3], rtol=1e-5)
    # From epoch 3 the margin acts, and the runs part.
    assert not np.allclose(warm.history["loss"][3:], plain.history["loss"][3:], rtol=1e-2)


def test_a_margin_schedule_and_deferred_reweighting_work_together(tmp_path):
    from camri_utils import losses

    result = train(TrainConfig(dataset="digits", model="mlp", feature_dim=2, loss="camri",
                               loss_params={"margin": 0.5, "scale": 8.0, "easy_margin": True}, important_classes=3,
                               epochs=3, margin_schedule={"start_epoch": 1}, drw={"start_epoch": 2}, verbose=0,
                               angle_sample=0, output_dir=str(tmp_path / "run")))
    loss = result.model.loss
    assert isinstance(loss, losses.ClassReweightedLoss) and isinstance(loss.base_loss, losses.ScheduledMarginLoss)
    assert float(keras.ops.convert_to_numpy(loss.base_loss.margin_factor)) == 1.0
    assert loss.base_loss.base_loss.easy_margin is True and not result.metrics["diverged"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["margin_schedule"] == {"start_epoch": 1, "ramp_epochs": 0}


@pytest.mark.parametrize("loss,params", [("ce", {}), ("camri", {"margin": 0.2, "scale": 16.0})])
def test_building_before_fit_traces_each_step_once_and_changes_no_number(loss, params, monkeypatch):
    """train() creates the optimizer's and metrics' variables before fit (_build_before_tracing):
    the train step is then traced once, not twice, and the run (batch normalization, dropout,
    a cosine schedule) is the same to the last bit as one that builds them inside the trace."""
    from camri_utils import data, training
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    ds = data.load("cifar10", data_dir=fixtures.write("cifar10", Path(os.environ["CAMRI_CACHE_DIR"]) / "fx",
                                                      per_class=8))
    traces = []
    step = TensorFlowTrainer.train_step

    def counted(self, batch):
        traces.append(1)
        return step(self, batch)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    config = TrainConfig(dataset="cifar10", model="cpu_cnn_s", loss=loss, loss_params=params,
                         important_classes=[3] if loss == "camri" else [], epochs=2, batch_size=16,
                         validation_size=20, seed=1, verbose=0)
    runs = {}
    for prebuild in (True, False):
        traces.clear()
        with monkeypatch.context() as mp:
            if not prebuild:
                mp.setattr(training, "_build_before_tracing", lambda model, spec: None)
            result = train(config, dataset=ds)
        runs[prebuild] = (len(traces), result)
    assert runs[True][0] == 1 and runs[False][0] == 2
    first, second = runs[True][1], runs[False][1]
    assert first.history == second.history  # exactly: the same steps in the same order
    for split in first.scores:
        np.testing.assert_array_equal(first.scores[split], second.scores[split])


def test_a_keras_whose_build_method_differs_trains_as_before(monkeypatch):
    """The pre-build uses a private Keras method: one with another signature is left alone (the
    run traces twice, as plain Keras does), never called wrongly."""
    from keras.src.trainers.trainer import Trainer

    from camri_utils import data, training

    monkeypatch.setattr(Trainer, "_symbolic_build", lambda self, iterator: pytest.fail("called with data_batch"))
    ds = data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist",
                                                            Path(os.environ["CAMRI_CACHE_DIR"]) / "fx", per_class=6))
    result = training.train(TrainConfig(dataset="fashion_mnist", model="mlp", epochs=1, batch_size=16,
                                        validation_size=20, verbose=0), dataset=ds)
    assert len(result.history["loss"]) == 1

"""benchmarks/eval_noise.py: the moving statistics of batch normalization, refreshed with the
weights frozen, against a NumPy reference; its flags' errors; one smoke run on a fixture."""

import json

import keras
import numpy as np
import pytest

from tests import benchmark_script


@pytest.fixture(scope="module")
def noise():
    with benchmark_script.loaded("eval_noise") as module:
        yield module


@pytest.mark.parametrize("argv,message", [
    (["--windows", "2"], "--windows must be a whole number of at least 3; got '2'"),
    (["--windows", "six"], "--windows must be a whole number of at least 3; got 'six'"),
    (["--seed", "-1"], "--seed must be a whole number of at least 0; got '-1'"),
    (["--epochs", "0"], "--epochs must be a whole number of at least 1; got '0'"),
    (["--dataset", "awa2"], "invalid choice: 'awa2'"),
    (["--output", "OUT/noise.txt"], "--output must be a .json file in an existing folder"),
    (["--output", "OUT/missing/noise.json"], "--output must be a .json file in an existing folder"),
])
def test_bad_flags_name_the_flag_and_what_it_takes(noise, argv, message, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "noise.json")]
    with pytest.raises(SystemExit) as exc:
        noise.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_ranges_are_over_consecutive_windows(noise):
    assert noise.ranges([0.70, 0.72, 0.71, 0.75]) == pytest.approx([0.02, 0.04])
    assert noise.ranges([0.5, 0.5, 0.5]) == [0.0]


def test_windows_move_only_the_moving_statistics_as_batch_normalization_defines_them(noise):
    """One window of one batch: the weights stay as they were; each moving mean becomes
    momentum * old + (1 - momentum) * the batch's mean of the layer's input (NumPy, float64)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, name="proj")(inputs)
    out = keras.layers.BatchNormalization(name="bn", momentum=0.9)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(out))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 5)).astype("uint8")
    y = rng.integers(0, 3, size=16)
    bn = model.get_layer("bn")
    before = np.asarray(bn.moving_mean, np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("proj").weights)
    batch_mean = (x / 255.0 @ kernel + bias).mean(axis=0)
    trainable = [np.array(w) for w in model.trainable_weights]
    accuracies = noise.statistics_windows(model, x, y, batch_size=16, windows=1, x_val=x, y_val=y, seed=0)
    # float32 products of 5 terms in [0, 1] against the float64 reference: 1e-5 is far above their rounding.
    np.testing.assert_allclose(np.asarray(bn.moving_mean), 0.9 * before + 0.1 * batch_mean, atol=1e-5)
    assert not np.allclose(np.asarray(bn.moving_mean), before)  # it did move
    for w, old in zip(model.trainable_weights, trainable):
        np.testing.assert_array_equal(np.array(w), old)
    assert len(accuracies) == 1 and 0.0 <= accuracies[0] <= 1.0


def test_a_smoke_run_on_a_fixture_writes_its_record(noise, tmp_path, monkeypatch):
    from camri_utils.data import fixtures
    from camri_utils.protocol import workers

    monkeypatch.setattr(workers, "set_threads", lambda threads: None)  # TensorFlow already runs in this process
    root = fixtures.write("cifar10", tmp_path / "fx", per_class=6, layout="png")
    out = tmp_path / "noise.json"
    noise.main(["--data-dir", str(root), "--output", str(out), "--epochs", "3", "--windows", "4"])
    record = json.loads(out.read_text())
    assert record["smoke_test"] is True and record["epochs"] == 3 and record["model"] == "cpu_cnn_m"
    assert len(record["history"]["val_accuracy"]) == 3 and len(record["windows_val_accuracy"]) == 4
    assert record["windows_ranges"] == pytest.approx(noise.ranges(record["windows_val_accuracy"]))
    assert record["windows_max_range"] == max(record["windows_ranges"])
    assert record["data_source"]["kind"] == "synthetic fixture" and str(tmp_path) not in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name != "fx"] == ["noise.json"]  # no temporary file left

"""The train-step benchmark's measuring and reporting (benchmarks/train_step.py) on a tiny model
and a few steps: its structure, not its timings."""

import importlib.util
import math
import pathlib
import statistics

import keras
import numpy as np
import pytest

PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_step_benchmark", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny(method, eager):
    from camri_utils import methods, models

    keras.utils.set_random_seed(0)
    m = methods.get(method)
    model = models.build("mlp", (6,), 4, head=m.head)
    loss = (m.build_loss(4, [1], {"margin": 4 * math.pi / 64, "scale": 16.0}) if method == "camri"
            else m.build_loss(4, [], {}))
    model.compile(optimizer="adam", loss=loss, run_eagerly=eager)
    return model


@pytest.fixture(scope="module")
def measured(bench):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6)).astype("float32"), rng.integers(0, 4, 8)
    variants = {"camri": (_tiny("camri", False), 3), "ce": (_tiny("ce", False), 3),
                "camri_eager": (_tiny("camri", True), 2)}
    return bench.measure(variants, x, y, repeats=4, warmup=1)


def test_every_variant_is_timed_once_a_round_in_rotated_order(measured):
    names = ["camri", "ce", "camri_eager"]
    assert len(measured["order"]) == 4
    for r, round_order in enumerate(measured["order"]):
        assert sorted(round_order) == sorted(names)  # each variant exactly once per round
        assert round_order == names[r % 3:] + names[:r % 3]
    for kind in ("wall", "cpu"):
        assert set(measured[kind]) == set(names)
        assert all(len(t) == 4 for t in measured[kind].values())
        assert all(v >= 0 and math.isfinite(v) for t in measured[kind].values() for v in t)
    assert all(v > 0 for t in measured["wall"].values() for v in t)


def test_ratios_are_per_round_and_summarised(bench, measured):
    s = bench.summarize(measured["wall"])
    assert set(s["ratios"]) == {("camri", "ce"), ("camri_eager", "camri")}
    for (num, den), r in s["ratios"].items():
        expected = [a / b for a, b in zip(measured["wall"][num], measured["wall"][den])]
        assert r["per_round"] == pytest.approx(expected)
        assert all(v > 0 for v in r["per_round"])
        assert r["min"] <= r["median"] <= r["max"]
        assert r["median"] == pytest.approx(statistics.median(expected))
    for name, t in measured["wall"].items():
        assert min(t) <= s["median"][name] <= max(t)


def test_summarize_on_known_blocks(bench):
    s = bench.summarize({"camri": [2.0, 3.0, 9.0], "ce": [1.0, 3.0, 3.0], "camri_eager": [8.0, 6.0, 9.0]})
    r = s["ratios"][("camri", "ce")]
    assert r["per_round"] == [2.0, 1.0, 3.0]
    assert (r["median"], r["min"], r["max"]) == (2.0, 1.0, 3.0)
    assert s["ratios"][("camri_eager", "camri")]["per_round"] == [4.0, 2.0, 1.0]
    assert s["median"] == {"camri": 3.0, "ce": 3.0, "camri_eager": 8.0}
    with pytest.raises(ValueError):  # rounds that do not pair up
        bench.summarize({"camri": [1.0, 2.0], "ce": [1.0]})


def test_measure_rejects_empty_rounds(bench):
    model = _tiny("ce", False)
    x, y = np.zeros((2, 6), "float32"), np.zeros(2, "int64")
    with pytest.raises(ValueError, match="repeats"):
        bench.measure({"ce": (model, 1)}, x, y, repeats=0)
    with pytest.raises(ValueError, match="steps"):
        bench.measure({"ce": (model, 0)}, x, y, repeats=1)


def test_report_has_one_full_row_per_model(bench, measured):
    row = {"label": "tiny", "repeats": 4, "steps": 3, "eager_steps": 2,
           "summary": bench.summarize(measured["wall"]), "cpu": bench.summarize(measured["cpu"]),
           "tf_data": 1000.0, "consumes": 100.0, "load": {"own": 0.5, "niced": 0.25, "normal": 0.0}}
    args = bench.parse_args(["--note", "a note"])
    env = {"camri_utils": "0", "tensorflow": "2", "keras": "3", "python": "3", "machine": "x",
           "cpu_count": 2, "devices": ["CPU"]}
    text = bench.report([row, dict(row, label="tiny 2", load=None)], args, env=env, code="abc1234")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    rows = [line for line in lines if line.startswith("| tiny")]
    assert len(rows) == 2
    assert all(r.count("|") == header.count("|") for r in rows)
    assert "25% / 0%" in rows[0] and rows[1].rstrip().endswith("n/a |")
    assert "a note" in lines and "abc1234" in text and "--batch 128" in text


def test_default_arguments(bench):
    args = bench.parse_args([])
    assert (args.batch, args.steps, args.repeats) == (128, 25, 30)
    assert args.models == ["small", "paper"] and args.write is None

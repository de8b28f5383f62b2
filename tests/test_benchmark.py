"""The benchmarks' measuring and reporting on tiny settings: their structure, not their timings.
The train-step benchmark (benchmarks/train_step.py) on a tiny model and a few steps; the
throughput benchmark (benchmarks/throughput.py) on known numbers and one tiny invocation."""

import json
import math
import pathlib
import statistics
import sys

import keras
import numpy as np
import pytest

from tests import benchmark_script

PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


@pytest.fixture(scope="module")
def bench():
    yield benchmark_script.load("train_step_benchmark", PATH)
    del sys.modules["train_step_benchmark"]


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


# ---------------------------------------------------------------------------------------------
# The throughput benchmark (benchmarks/throughput.py): its bookkeeping on known numbers, and one
# tiny invocation on a synthetic Fashion-MNIST for the structure of what it writes.

THROUGHPUT = PATH.with_name("throughput.py")


@pytest.fixture(scope="module")
def tp():
    yield benchmark_script.load("throughput_benchmark", THROUGHPUT)
    del sys.modules["throughput_benchmark"]


def _events(*pairs):
    return [(name, float(t)) for name, t in pairs]


def test_parts_of_a_run_from_its_fit_events(tp):
    events = _events(("train_begin", 2), ("epoch_begin", 2), ("test_begin", 7), ("test_end", 8), ("epoch_end", 8.5),
                     ("epoch_begin", 9), ("test_begin", 13), ("test_end", 13.5), ("epoch_end", 14),
                     ("train_end", 14.25))
    parts = tp.parts_of(events, start=0.0, end=20.0)
    assert parts["setup"] == 2.0 and parts["final"] == 5.75
    assert parts["epochs"] == [{"train_steps": 5.0, "evaluation": 1.0, "angles": 0.5},
                               {"train_steps": 4.0, "evaluation": 0.5, "angles": 0.25}]
    # Without a validation split there is no evaluation: the epoch's steps run to its end.
    bare = tp.parts_of(_events(("train_begin", 1), ("epoch_begin", 1), ("epoch_end", 3), ("train_end", 3)), 0.0, 4.0)
    assert bare["epochs"] == [{"train_steps": 2.0, "evaluation": 0.0, "angles": 0.0}]
    with pytest.raises(ValueError, match="no complete fit"):
        tp.parts_of([], 0.0, 1.0)
    with pytest.raises(ValueError, match="no complete fit"):
        tp.parts_of(events[:-1], 0.0, 1.0)


def _run(seed=0, train=(6.0, 4.0, 4.0), evaluation=(1.5, 1.0, 1.0), angles=(0.75, 0.5, 0.5), setup=2.0, final=3.0,
         record=None):
    epochs = [{"train_steps": t, "evaluation": e, "angles": a} for t, e, a in zip(train, evaluation, angles)]
    return {"seed": seed, "setup": setup, "final": final, "epochs": epochs, "total": 0.0,
            "record": record or {"history": {"loss": [1.0, 0.5]}, "test_scores": [[0.25, 0.75]], "accuracy": 0.5,
                                 "angles": True}}


SHAPE = {"train": 1000, "validation": 500, "test": 500, "full_train": 5000, "epochs": 3, "full_epochs": 12}


def test_a_run_scales_to_the_full_run(tp):
    full = tp.full_run(_run(), SHAPE)
    # Steps: first-epoch extra (6 - 4) + 12 epochs x 4 s x 5 times the images.
    assert full["train_steps"] == pytest.approx(2 + 12 * 4 * 5)
    assert full["evaluation"] == pytest.approx(0.5 + 12 * 1.0)  # the validation set is whole
    assert full["angles"] == pytest.approx(0.25 + 12 * 0.5)
    assert (full["setup"], full["final"]) == (2.0, 3.0)
    assert full["total"] == pytest.approx(sum(full[p] for p in tp.PARTS))
    # A first epoch faster than the steady ones adds nothing negative.
    assert tp.full_run(_run(train=(3.0, 4.0, 4.0)), SHAPE)["train_steps"] == pytest.approx(12 * 4 * 5)
    with pytest.raises(ValueError, match="at least 2 epochs"):
        tp.full_run(_run(train=(4.0,), evaluation=(1.0,), angles=(0.5,)), SHAPE)


def _trial(runs_per_worker, windows=None, load=None):
    windows = windows or [[0.0, 10.0]] * len(runs_per_worker)
    return {"workers": [{"process": i, "threads": {"intra_op": None, "inter_op": None}, "startup": 5.0, "warmup": 3.0,
                         "shape": SHAPE, "window": w, "runs": runs}
                        for i, (runs, w) in enumerate(zip(runs_per_worker, windows))],
            "load": load, "wall_s": 60.0}


def test_runs_per_hour_sum_the_processes_and_overlap_is_shared_time(tp):
    one = tp.full_run(_run(), SHAPE)["total"]
    assert tp.trial_rate(_trial([[_run(), _run()]])) == pytest.approx(3600 / one)
    slow = _run(train=(12.0, 8.0, 8.0))
    two = tp.trial_rate(_trial([[_run()], [slow]]))
    assert two == pytest.approx(3600 / one + 3600 / tp.full_run(slow, SHAPE)["total"])
    assert tp.overlap(_trial([[_run()], [_run()]], windows=[[0.0, 10.0], [2.0, 12.0]])) == pytest.approx(8 / 12)
    assert tp.overlap(_trial([[_run()], [_run()]], windows=[[0.0, 1.0], [2.0, 3.0]])) == 0.0


def test_records_are_compared_seed_by_seed(tp):
    ref = {0: _run()["record"], 1: _run()["record"]}
    same = tp.compare_records(ref, [_run(0), _run(1), _run(7)])  # seed 7 has no reference
    assert same["compared"] == 2 and same["identical"]
    other = _run(1, record={"history": {"loss": [1.0, 0.4]}, "test_scores": [[0.5, 0.5]], "accuracy": 1.0,
                            "angles": True})
    diff = tp.compare_records(ref, [_run(0), other])
    assert not diff["identical"] and diff["differing_keys"] == ["loss"]
    assert diff["history_max_diff"] == pytest.approx(0.1) and diff["scores_max_diff"] == pytest.approx(0.25)
    assert diff["accuracy_max_diff"] == pytest.approx(0.5)
    shorter = _run(0, record={"history": {"loss": [1.0]}, "test_scores": [[0.25, 0.75]], "accuracy": 0.5,
                              "angles": True})
    assert tp.compare_records(ref, [shorter])["history_max_diff"] == math.inf
    assert not tp.compare_records(ref, [_run(9)])["identical"]  # nothing compared is not "identical"


def test_variants_alternate_in_rotated_order(tp):
    calls = []

    def fake(key, variant, round_index, args, folder):
        calls.append((round_index, key))
        return _trial([[_run()]] * variant.processes)

    args = tp.parse_args(["--variants", "baseline", "2x1", "spe8", "--repeats", "4"])
    trials, order = tp.run(args, trial=fake)
    names = ["baseline", "2x1", "spe8"]
    assert order == [names[r % 3:] + names[:r % 3] for r in range(4)]
    assert calls == [(r, k) for r, keys in enumerate(order) for k in keys]
    assert all(len(trials[k]) == 4 for k in names)


def _summary(tp):
    trials = {"baseline": [_trial([[_run(0), _run(1)]], load={"own": 0.5, "niced": 0.0, "normal": 0.0})] * 2,
              "2x1": [_trial([[_run(0)], [_run(2, train=(12.0, 8.0, 8.0))]])] * 2}
    return tp.summarize(trials, tp.VARIANTS)


def test_summary_gives_rates_speedups_breakdown_and_record_checks(tp):
    s = _summary(tp)
    assert s["reference"] == "baseline" and set(s["variants"]) == {"baseline", "2x1"}
    base, two = s["variants"]["baseline"], s["variants"]["2x1"]
    assert base["speedup"]["per_round"] == [1.0, 1.0]
    assert two["speedup"]["median"] == pytest.approx(two["runs_per_hour"]["median"] / base["runs_per_hour"]["median"])
    assert set(base["full_run_s"]) == {*tp.PARTS, "total"}
    assert base["records"]["identical"] and base["records"]["compared"] == 2  # its second round
    assert two["records"]["compared"] == 2  # seed 0, both rounds; seed 2 has no baseline run
    assert (two["processes"], two["threads"]) == (2, 1)
    json.dumps(s)  # what --write stores


def test_report_has_a_row_per_variant_and_flags_a_busy_machine(tp):
    s = _summary(tp)
    args = tp.parse_args(["--variants", "baseline", "2x1", "--repeats", "2", "--note", "a note"])
    env = {"camri_utils": "0", "tensorflow": "2", "keras": "3", "python": "3", "machine": "x", "cpu_count": 2,
           "devices": ["CPU"]}
    text = tp.report(s, args, env=env, code="abc1234", date="2026-01-01")
    lines = text.splitlines()
    for header_start in ("| variant | processes", "| variant | set-up"):
        header = next(i for i, line in enumerate(lines) if line.startswith(header_start))
        rows = lines[header + 2:header + 4]
        assert [r.split("|")[1].strip() for r in rows] == [tp.VARIANTS[k].label for k in ("baseline", "2x1")]
        assert all(r.count("|") == lines[header].count("|") for r in rows)
    assert "a note" in lines and "abc1234" in text and "--variants baseline 2x1" in text
    assert "busy machine" not in text
    busy = dict(s, variants={k: dict(v, load=[{"own": 0.4, "niced": 0.3, "normal": 0.1}])
                             for k, v in s["variants"].items()})
    assert "**Measured on a busy machine**: other processes used up to 40%" in tp.report(busy, args, env=env)


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "1"], "at least 2"), (["--runs", "0"], ">= 1"), (["--repeats", "x"], ">= 1"),
    (["--variants", "nope"], "invalid choice"), (["--variants", "spe8", "spe8"], "twice"),
    (["--write", "/no/such/folder/T.md"], "does not exist"), (["--write", "T.txt"], ".md"),
    (["--data-dir", "/no/such/folder"], "no such folder"), (["--data-dir", ""], "--data-dir is empty"),
    (["--write", ""], "--write is empty"),
])
def test_bad_arguments_are_clear_errors(tp, argv, message, capsys):
    with pytest.raises(SystemExit):
        tp.parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_fashion_mnist(tmp_path_factory):
    from camri_utils.data import fixtures

    # Enough training images for a measured run of 4 batches of 128 (tp.MIN_BATCHES) after the validation split.
    return fixtures.write("fashion_mnist", tmp_path_factory.mktemp("tp") / "fashion_mnist", per_class=70)


def test_a_tiny_invocation_writes_the_report_and_its_numbers(tp, tiny_fashion_mnist, tmp_path, capsys):
    out = tmp_path / "THROUGHPUT.md"
    tp.main(["--data-dir", str(tiny_fashion_mnist), "--variants", "baseline", "combined", "--repeats", "1",
             "--runs", "1", "--epochs", "2", "--train-subset", "512", "--write", str(out)])
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert out.read_text() == capsys.readouterr().out.rstrip("\n") + "\n"
    assert numbers["reference"] == "baseline" and set(numbers["variants"]) == {"baseline", "combined"}
    assert numbers["order"] == [["baseline", "combined"]] and numbers["environment"]["cpu_count"] >= 1
    shape = numbers["shape"]
    assert (shape["train"], shape["epochs"], shape["full_epochs"]) == (512, 2, 12) and shape["full_train"] > 512
    # A fixture's numbers are never reported as Fashion-MNIST's throughput.
    assert numbers["data"] == {"kind": "synthetic fixture", "real": False}
    assert "**Not a measurement of Fashion-MNIST**: the runs trained on a synthetic fixture" in out.read_text()
    assert "full preset's configuration on a synthetic fixture, trained" in out.read_text()
    base, combined = numbers["variants"]["baseline"], numbers["variants"]["combined"]
    for v in (base, combined):
        assert v["runs_per_hour"]["median"] > 0 and len(v["runs_per_hour"]["per_round"]) == 1
        assert v["full_run_s"]["total"] == pytest.approx(sum(v["full_run_s"][p] for p in tp.PARTS))
        assert all(v["full_run_s"][p] >= 0 for p in tp.PARTS) and v["full_run_s"]["train_steps"] > 0
    assert combined["threads_reported"] == {"intra_op": 1, "inter_op": 1}
    assert base["threads_reported"] == {"intra_op": None, "inter_op": None}  # TensorFlow's default
    assert combined["options"] == {"steps_per_execution": 32, "eval_batch_size": 1024}
    assert combined["records"]["compared"] == 1 and base["records"]["compared"] == 0
    assert 0 <= combined["overlap"] <= 1
    assert "| today: 1 process, default threads | 1 x default |" in out.read_text()


def test_a_measured_run_of_too_few_images_is_refused(tp, tmp_path, capsys):
    """One image scaled 50,000-fold is no run time: the subset must hold several full batches,
    as asked and as the data allows."""
    from camri_utils.data import fixtures

    with pytest.raises(SystemExit):
        tp.parse_args(["--train-subset", "1"])
    assert "--train-subset 1: a measured run needs at least 4 batches of 128 images (512)" in capsys.readouterr().err
    small = fixtures.write("fashion_mnist", tmp_path / "small", per_class=20)
    args = tp.parse_args(["--data-dir", str(small), "--runs", "1", "--epochs", "2", "--train-subset", "512"])
    with pytest.raises(RuntimeError, match=r"(?s)worker 0 failed.*would train on \d+ images, fewer than 4 batches"):
        tp.run_trial("baseline", tp.VARIANTS["baseline"], 0, args, tmp_path / "trial")


def test_a_failing_worker_is_reported_with_its_variant(tp, tiny_fashion_mnist, tmp_path):
    args = tp.parse_args(["--data-dir", str(tiny_fashion_mnist), "--runs", "1", "--epochs", "2",
                          "--train-subset", "512"])
    broken = tp.Variant("broken", options={"steps_per_execution": 0})
    with pytest.raises(RuntimeError, match=r"(?s)variant 'broken' \(round 1\), worker 0 failed.*steps_per_execution"):
        tp.run_trial("broken", broken, 0, args, tmp_path)


# ---------------------------------------------------------------------------------------------
# The GPU step benchmark (benchmarks/gpu_step.py), on a tiny invocation on the CPU
# ---------------------------------------------------------------------------------------------
GPU_PATH = PATH.parent / "gpu_step.py"


@pytest.fixture(scope="module")
def gpu_bench():
    yield benchmark_script.load("gpu_step_benchmark", GPU_PATH)
    del sys.modules["gpu_step_benchmark"]


def test_gpu_step_benchmark_reports_each_variant_with_its_flop_rate(gpu_bench, tmp_path):
    out = tmp_path / "GPU_STEP.md"
    result = gpu_bench.main(["--batches", "4", "8", "--steps", "2", "--repeats", "2", "--model", "small_cnn",
                             "--methods", "ce", "--peak-tflops", "2.0", "--write", str(out)])
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(json.dumps(result))
    rows = result["rows"]
    assert [(r["precision"], r["batch"]) for r in rows] == [("float32", 4), ("float32", 8), ("mixed", 4), ("mixed", 8)]
    flops = result["forward_gflops"] * 1e9
    for r in rows:
        assert r["ms_min"] <= r["ms_per_step"] <= r["ms_max"]
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["ms_per_step"] / 1000))
        assert r["tflops"] == pytest.approx(3 * flops * r["images_per_s"] / 1e12)
        assert r["share_of_float32_peak"] == pytest.approx(r["tflops"] / 2.0)
        base = next(b for b in rows if (b["batch"], b["precision"]) == (r["batch"], "float32"))
        assert r["speedup_over_float32"] == pytest.approx(base["ms_per_step"] / r["ms_per_step"])
    assert result["mixed_policy"] == "mixed_bfloat16" and result["device"] == "CPU"
    text = out.read_text()
    assert "| ce | mixed | 8 |" in text and "small_cnn" in text
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"  # the policy is put back


@pytest.mark.parametrize("args, match", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--batches", "0"], "--batches must be positive"),
    (["--peak-tflops", "-3"], "--peak-tflops must be a positive number"),
    (["--write", "report.txt"], "--write must name a .md file"),
    (["--write", "no/such/folder/x.md"], "--write must name a .md file in an existing folder"),
])
def test_gpu_step_benchmark_refuses_bad_arguments_before_building_anything(gpu_bench, args, match, capsys):
    with pytest.raises(SystemExit):
        gpu_bench.main(args)
    assert match in capsys.readouterr().err

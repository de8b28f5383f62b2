"""Part III (CIFAR-10, GTSRB, AwA2): the chapters share their experiment through
camri_utils.comparison and their cost model through camri_utils.cost, tested here against
independent references (scikit-learn, float64 NumPy, FLOPs counted by hand); the chapters are
stored from a full-profile run on a CPU (python -m camri_utils.notebook): the data from this
project's copy where there is one, the CPU-scale replication from its records, and no training
(no GPU), so no output computed on a fixture; the tests still run every cell on fixtures
(test_notebooks.py passes the quick profile explicitly)."""

import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from camri_utils import comparison, cost, protocol
from camri_utils.data import Source
from camri_utils.notebook import FIXTURE_BANNER, fixture_banner

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {"10_cifar10": "cifar10", "11_gtsrb": "gtsrb", "12_awa2": "awa2"}


def _notebook(stem):
    return nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_banner_only_for_fixtures(capsys):
    assert fixture_banner(Source("somewhere", real=True)) is False
    assert fixture_banner(Source("somewhere", real=False), "angles") is True
    out = capsys.readouterr().out
    assert FIXTURE_BANNER in out or out == ""  # IPython's display prints the text form outside a kernel


@pytest.mark.parametrize("stem", list(CHAPTERS))
def test_chapter_is_in_the_toc_as_part_three(stem):
    toc = (ROOT / "book" / "_toc.yml").read_text()
    part3 = toc[toc.index("Part III"):]
    assert f"notebooks/{stem}" in part3


# The stored chapters: what a reader of the book sees.

@pytest.mark.parametrize("stem", list(CHAPTERS))
def test_stored_chapter_holds_no_output_computed_on_a_fixture(stem):
    nb = _notebook(stem)
    meta = nb.metadata["camri"]
    assert meta["profile"] == "full" and meta["device"] == "CPU"
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert 'profile = "full"' in params.source  # a reader's Run all runs the real experiment
    code = _code(nb)
    assert all(c.execution_count is not None for c in code)
    needs_data = [c for c in code if comparison.NEEDS_DATA in c.metadata.get("tags", [])]
    assert needs_data, "no cell is marked as needing the data"
    text = json.dumps([o for c in code for o in c.outputs])
    assert FIXTURE_BANNER not in text and "synthetic" not in text
    # The data: the project's real copy where there is one (its verification said), none for AwA2.
    if CHAPTERS[stem] == "awa2":
        assert meta["data"] == "AwA2: not on this machine, none loaded"
    else:
        assert meta["data"] == f"{comparison.DATASETS[CHAPTERS[stem]]['name']} (real, from the archive " \
                               f"{comparison.DATASETS[CHAPTERS[stem]]['shared_copy']})"
        assert "not a checksummed official file" in text
    # No GPU where the chapter was stored: the session trains nothing and says so, and so do the cells after it.
    train = next(c for c in needs_data if "comparison.train_all(" in c.source)
    assert "No GPU in this runtime, so nothing is trained here" in json.dumps(train.outputs)
    after = needs_data[needs_data.index(train) + 1:]
    assert after and all("nothing was trained in this session" in json.dumps(c.outputs) for c in after)
    # The data-independent outputs are there: the replication (or why there is none), the plan, the costs.
    expected = ["paper (IJCNN 2022 poster, 10 trials, the authors' CNN)", "CAMRI", "GFLOP", "T4", "GPU-hours",
                "benchmarks/RESULTS.md", "No run of the full protocol (the paper's network) is committed"]
    if (ROOT / "results" / f"{CHAPTERS[stem]}-cpu" / "protocol.json").is_file():
        expected += ["this book (CPU-scale network, 5 seeds)", "Does the Fashion-MNIST answer hold on"]
    else:
        expected += ["has not been recorded yet" if CHAPTERS[stem] != "awa2" else "No run of this book is stored"]
    flat = " ".join(text.replace("\\n", " ").split())  # printed lines are wrapped
    for words in expected:
        assert words in flat, words
    # the cells that need the data load it, and only those cells use it
    for cell in code:
        if cell not in needs_data:
            assert not re.search(r"\b(ds|runs)\b", cell.source), cell.source[:60]


@pytest.mark.parametrize("stem", list(CHAPTERS))
def test_chapter_says_what_each_figure_will_show_and_labels_the_papers_numbers(stem):
    nb = _notebook(stem)
    intro = nb.cells[0].source
    assert "appear when you run it" in intro and "not a result" in intro
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "the paper's numbers, not ours." in markdown
    for command in ("camri protocol --dataset", "--shard", "camri protocol report"):
        assert command in markdown
    for figure in ("example images", "learning curves", "histograms"):
        assert f"**What to look for in the {figure}" in markdown or f"**The {figure}" in markdown, figure
    # The paper's geometric claim is the paper's: "tighter" appears only where it is attributed.
    for paragraph in markdown.split("\n\n"):
        if "tighter" in paragraph or "more tightly" in paragraph:
            assert "claim" in paragraph and "depends on how" in paragraph, paragraph[:120]


def test_the_three_chapters_share_their_code():
    """Only the parameters and the dataset's name differ: a change to the experiment is made once."""
    cells = {stem: _code(_notebook(stem)) for stem in CHAPTERS}
    counts = {stem: len(code) for stem, code in cells.items()}
    assert len(set(counts.values())) == 1, counts
    for i, group in enumerate(zip(*cells.values())):
        sources = {c.source.replace(f'DATASET = "{CHAPTERS[stem]}"', 'DATASET = "?"')
                   for stem, c in zip(CHAPTERS, group)}
        if "parameters" not in group[0].metadata.get("tags", []):
            assert len(sources) == 1, f"code cell {i} differs between the chapters"
        assert all(len(c.source.splitlines()) <= 16 for c in group), f"code cell {i} is long"


# The library: one trained fixture experiment, checked against independent references.

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import tempfile

    folder = tmp_path_factory.mktemp("fixture")
    before = tempfile.tempdir
    tempfile.tempdir = str(folder)  # the fixture's files land in this test's folder
    try:
        exp = comparison.experiment("cifar10", "quick", important_class=None, margin_deno=4, scale=16.0)
        ds = comparison.load(exp)
        runs = comparison.train_all(exp, ds)
    finally:
        tempfile.tempdir = before
    return exp, ds, runs


def test_fixture_is_loaded_only_in_the_quick_profile(trained, tmp_path):
    exp, ds, runs = trained
    assert not ds.source.real
    full = comparison.experiment("cifar10", "full", 3)
    import camri_utils.data as data

    with pytest.raises(data.DatasetNotFoundError):  # no data, no download here: an error, never a fixture
        comparison.load(full, tmp_path / "empty-but-named")


def test_important_class_is_chosen_on_ce_validation_recall(trained):
    from sklearn.metrics import recall_score

    exp, ds, runs = trained
    ce = runs.results["CE"]
    y, scores = ce.labels["validation"], ce.scores["validation"]
    recall = recall_score(y, scores.argmax(1), labels=range(ds.n_classes), average=None, zero_division=0)
    assert runs.chosen_on_validation and runs.important_class == int(np.argmin(recall))
    for label in ("NormSoftmax", "CAMRI"):
        assert runs.results[label].config.important_classes == [runs.important_class]
    camri = runs.results["CAMRI"].config.loss_params
    assert camri == {"margin": pytest.approx(4 * math.pi / 64), "scale": 16.0}
    assert runs.results["NormSoftmax"].config.loss_params == {"scale": 16.0}


def test_test_metrics_and_confusions_match_scikit_learn(trained):
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score

    exp, ds, runs = trained
    c, name = runs.important_class, runs.important_name
    table = comparison.test_metrics(runs)
    frame = comparison.confusions(runs, nearest=3)
    for label, r in runs.results.items():
        y, pred = r.labels["test"], r.scores["test"].argmax(1)
        assert table.loc[label, f"recall of {name}"] == pytest.approx(
            recall_score(y, pred, labels=[c], average=None, zero_division=0)[0])
        assert table.loc[label, f"precision of {name}"] == pytest.approx(
            precision_score(y, pred, labels=[c], average=None, zero_division=0)[0])
        assert table.loc[label, "accuracy"] == pytest.approx(accuracy_score(y, pred))
        cm = confusion_matrix(y, pred, labels=range(ds.n_classes))
        rows = frame.loc[label]
        assert len(rows) == 3
        for row, values in rows.iterrows():
            k = int(row.split(":")[0])
            assert k != c
            assert values[f"{name} missed as"] == cm[c, k] and values[f"{name} taken from"] == cm[k, c]


def test_angle_summary_matches_float64_numpy(trained):
    exp, ds, runs = trained
    c, name = runs.important_class, runs.important_name
    summary = comparison.angle_summary(runs)
    for label, r in runs.results.items():
        cos = np.clip(np.asarray(r.test_cosines, dtype=np.float64), -1, 1)
        y = np.asarray(r.labels["test"])
        own = np.degrees(np.arccos(cos[np.arange(len(y)), y]))
        means = np.array([own[y == k].mean() for k in range(ds.n_classes)])
        variances = np.array([own[y == k].var() for k in range(ds.n_classes)])
        others = np.arange(ds.n_classes) != c
        assert summary.loc[label, f"mean angle, {name}"] == pytest.approx(means[c], rel=1e-5)
        assert summary.loc[label, "mean angle, others"] == pytest.approx(means[others].mean(), rel=1e-5)
        assert summary.loc[label, f"relative variance, {name}"] == pytest.approx(
            variances[c] / variances[others].mean(), rel=1e-4)


def test_figures_have_their_panels(trained):
    import matplotlib.pyplot as plt

    exp, ds, runs = trained
    curves = comparison.plot_learning_curves(runs)
    assert [len(ax.lines) for ax in curves.axes[:2]] == [3, 3] and curves.axes[3].get_legend() is not None
    hist = comparison.plot_angles(runs)
    assert [ax.get_title() for ax in hist.axes[:3]] == list(comparison.LABELS)
    examples = comparison.plot_examples(ds, exp.name)
    assert examples.get_suptitle().startswith("CIFAR-10:")
    fig, counts = comparison.plot_class_counts(ds, exp.name, 3)
    assert counts.sum() == len(ds.y_train)
    assert [p.get_facecolor() for p in fig.axes[0].patches].count(fig.axes[0].patches[3].get_facecolor()) == 1
    plt.close("all")


def test_example_titles_keep_what_tells_gtsrbs_classes_apart():
    import types

    import matplotlib.pyplot as plt

    from camri_utils.data.gtsrb import CLASS_NAMES

    n = len(CLASS_NAMES)
    ds = types.SimpleNamespace(n_classes=n, class_names=CLASS_NAMES, y_train=np.arange(n),
                               x_train=np.zeros((n, 4, 4, 3), np.uint8))
    fig = comparison.plot_examples(ds, "GTSRB")
    titles = [ax.get_title() for ax in fig.axes[:n]]
    # Cut at ten characters, classes 0-5, 7 and 8 all read "Speed limi": now each title is its own.
    names = [t.split(": ", 1)[1] for t in titles]  # without the class number, which differs anyway
    assert len(set(names)) == n and titles[0] == "0: Speed limit\n(20km/h)"
    assert all(len(line) <= 15 for t in titles for line in t.split("\n")) and max(t.count("\n") for t in titles) == 2
    assert titles[42].endswith("…")  # the longest name, cut where it must be
    plt.close("all")


def test_shared_copy_is_the_file_beside_a_checkout_only(tmp_path, monkeypatch):
    from camri_utils import records

    repo, data_dir = tmp_path / "repo", tmp_path / "shared" / "data"
    repo.mkdir()
    data_dir.mkdir(parents=True)
    (data_dir / "cifar10-png.tar.xz").write_bytes(b"x")
    monkeypatch.setattr(records, "installed_from", lambda: {"kind": "checkout", "path": repo})
    assert comparison.shared_copy("cifar10") == data_dir.resolve() / "cifar10-png.tar.xz"
    assert comparison.shared_copy("gtsrb") is None  # its file is not there
    assert comparison.shared_copy("awa2") is None  # no copy of AwA2 anywhere
    monkeypatch.setattr(records, "installed_from", lambda: {"kind": "git", "url": "u", "commit": "0" * 40})
    assert comparison.shared_copy("cifar10") is None  # Colab: no checkout to look beside
    with pytest.raises(ValueError, match="dataset must be one of"):
        comparison.shared_copy("mnist")


def _no_gpu(exp):
    import dataclasses

    return dataclasses.replace(exp, gpus=0, mixed_precision=False)


def test_without_a_gpu_nothing_is_downloaded_or_trained(tmp_path, monkeypatch, capsys):
    import camri_utils.data as data
    from camri_utils import training

    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("CAMRI_DATA_DIR", raising=False)
    calls = []
    real_load = data.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("download"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(data, "load", spy)
    exp = _no_gpu(comparison.experiment("awa2", "full"))
    assert comparison.load(exp) is None and calls == [False]
    out = capsys.readouterr().out
    assert "AwA2 is not on this machine" in " ".join(out.split()) and "set data_dir" in out
    assert comparison.data_label(exp, None) == "AwA2: not on this machine, none loaded"
    with pytest.raises(data.DatasetNotFoundError):  # a folder named by the reader is the only place looked at
        comparison.load(exp, tmp_path / "empty-but-named")

    def no_training(*args, **kwargs):
        raise AssertionError("trained without a GPU")

    monkeypatch.setattr(training, "train", no_training)
    assert comparison.train_all(exp, object()) is None  # never reaches the data
    out = " ".join(capsys.readouterr().out.split())
    assert "No GPU in this runtime, so nothing is trained here" in out and "T4 GPU" in out
    hours = comparison.cpu_hours(exp)
    assert f"takes about {hours:,.0f} hours" in out and hours > 1
    assert comparison.train_all(exp, None) is None  # no GPU comes first: it is what a Colab reader can change
    assert "No GPU in this runtime" in capsys.readouterr().out
    quick = comparison.experiment("awa2", "quick")
    assert comparison.train_all(quick, None) is None
    assert "Nothing trained: the data is not on this machine" in capsys.readouterr().out


def test_cpu_hours_is_the_session_estimate_at_the_measured_rate():
    exp = _no_gpu(comparison.experiment("cifar10", "full", 3))
    rate = comparison.measured_cpu(cost.model_flops("paper_cnn", "cifar10", 32))["flops_per_s"]
    assert comparison.cpu_hours(exp) == pytest.approx(comparison.session_estimate(exp).total_flops / rate / 3600)


def test_counts_text_says_balanced_or_names_the_rarest():
    names = [f"c{k}" for k in range(4)]
    assert comparison.counts_text([5000] * 4, names) == "The training set is balanced: 5,000 images per class."
    text = comparison.counts_text([300, 2250, 210, 210], names, rarest=3)
    assert text == "Rarest classes: 2 c2 (210); 3 c3 (210); 0 c0 (300). Most common: 1 c1 (2,250)."
    with pytest.raises(ValueError, match="no class"):
        comparison.counts_text([], [])


def test_chapter_10_says_which_setting_each_part_uses():
    """The authors' setting is the Colab experiment's; the CPU-scale run sweeps its preset's grid
    (the intro's margins and scales are the preset's)."""
    from camri_utils import protocol

    intro = _notebook("10_cifar10").cells[0].source
    assert "this chapter's Colab experiment\nuses exactly that" in intro
    grid = protocol.preset("cifar10", "cpu").camri_grid
    margins = sorted({round(g["margin"] * 64 / math.pi) for g in grid})
    scales = sorted({g["scale"] for g in grid})
    assert "$m \\in \\{" + ", ".join(map(str, margins)) + "\\}\\pi/64$" in intro
    assert " and ".join(f"$s = {s:g}$" for s in scales) in intro
    for stem in ("10_cifar10", "11_gtsrb"):  # the data copies: checked by counts (and statistics), no checksum
        box = _notebook(stem).cells[0].source
        assert "verified copy" not in box and "not by a checksum" in box


def test_have_says_what_is_not_shown(capsys):
    assert comparison.have(object(), "learning curves") is True and capsys.readouterr().out == ""
    assert comparison.have(None, "learning curves") is False
    assert capsys.readouterr().out == "No learning curves: nothing was trained in this session (see the note above).\n"
    assert comparison.have(None, "class counts", "the data is not on this machine") is False
    assert capsys.readouterr().out == "No class counts: the data is not on this machine.\n"


def test_describe_and_the_label_say_where_the_data_came_from(trained, capsys):
    import dataclasses

    exp, ds, runs = trained
    comparison.describe(ds)
    out = capsys.readouterr().out
    assert out.startswith("Data: synthetic fixture, from a local folder.\n") and "10 classes" in out
    copy = dataclasses.replace(ds, source=Source("cifar10-png.tar.xz", real=True, verified="counts checked"))
    comparison.describe(copy)
    assert capsys.readouterr().out.startswith("Data: real, from the archive cifar10-png.tar.xz (counts checked).")
    assert comparison.data_label(exp, copy) == "CIFAR-10 (real, from the archive cifar10-png.tar.xz)"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dataset="mnist"), "dataset must be one of"),
    (dict(profile="fast"), "profile must be one of"),
    (dict(important_class=-1), "important_class"),
    (dict(important_class="3"), "important_class"),
    (dict(important_class=True), "important_class"),
    (dict(margin_deno=0), "margin_deno"),
    (dict(margin_deno=float("nan")), "margin_deno"),
    (dict(scale=-16.0), "scale"),
    (dict(seed=-1), "seed"),
    (dict(mixed_precision="yes"), "mixed_precision"),
])
def test_experiment_refuses_bad_parameters_by_name(kwargs, message):
    args = dict(dataset="cifar10", profile="quick", important_class=3)
    with pytest.raises((ValueError, TypeError), match=message):
        comparison.experiment(**{**args, **kwargs})


def test_an_important_class_outside_the_dataset_is_refused_before_training(trained):
    exp, ds, runs = trained
    with pytest.raises(ValueError, match="outside"):
        comparison.train_all(comparison.experiment("cifar10", "quick", important_class=10), ds)


# The cost model.

def test_forward_flops_counts_convolutions_and_dense_layers_by_hand():
    import keras

    from camri_utils.layers import CosineHead

    inputs = keras.Input((9, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)                 # 9x8x4
    x = keras.layers.Conv2D(6, (3, 1), strides=2, padding="valid")(x)     # 4x4x6
    x = keras.layers.Conv2D(6, 1, groups=2)(x)                            # 4x4x6, 3 inputs per group
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, CosineHead(7)(x))
    expected = 2 * (9 * 8 * 4 * 3 * 3 * 3 + 4 * 4 * 6 * 3 * 1 * 4 + 4 * 4 * 6 * 1 * 1 * 3 + 96 * 5 + 5 * 7)
    assert cost.forward_flops(model) == expected


def test_paper_cnn_flops_from_its_published_layers():
    """The authors' CNN at 32x32: 3x3 convolutions 64x3 (32x32), 128x3 (16x16), 256x5 and 512x2
    (8x8), a 512-d dense feature and a 10-class head."""
    widths = [(3, 64, 32), (64, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16), (128, 128, 16),
              (128, 256, 8)] + [(256, 256, 8)] * 4 + [(256, 512, 8), (512, 512, 8)]
    expected = sum(2 * side * side * cout * 9 * cin for cin, cout, side in widths) + 2 * (512 * 512 + 512 * 10)
    assert cost.model_flops("paper_cnn", "cifar10") == expected
    assert 1.1e9 < expected < 1.2e9  # the "about 1.1 GFLOP" of the chapters
    assert cost.model_flops("paper_cnn", "awa2", 64) == pytest.approx(4 * expected, rel=0.01)


def test_estimate_is_the_closed_form():
    e = cost.estimate(runs=3, epochs=8, train_images=45000, eval_images=5000, batch_size=64, forward_flops=10**9)
    flops = 3 * 8 * (3 * 45000 + 5000) * 1e9
    assert e.total_flops == flops and e.steps_per_epoch == 704
    assert e.gpu_hours == pytest.approx(flops / (8.1e12 / 3) / 3600)
    assert e.step_seconds == pytest.approx(3 * 1e9 * 64 / (8.1e12 / 3))
    mixed = cost.estimate(3, 8, 45000, 5000, 64, 10**9, mixed_precision=True)
    assert mixed.gpu_hours == pytest.approx(e.gpu_hours / cost.MIXED_PRECISION_SPEEDUP)
    levers = cost.levers(e, convergence_epochs=(4,), batch_sizes=(256,))
    assert levers["x planned"].tolist() == pytest.approx([1, 0.5, 1, 1 / cost.MIXED_PRECISION_SPEEDUP, 2, 0.5])


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(epochs=0), "epochs"), (dict(runs=2.5), "runs"), (dict(batch_size=True), "batch_size"),
    (dict(eval_images=-1), "eval_images"), (dict(efficiency=1.5), "at most 1"),
    (dict(efficiency=float("nan")), "efficiency"), (dict(speedup=0), "speedup"),
])
def test_estimate_refuses_bad_inputs_by_name(kwargs, message):
    args = dict(runs=3, epochs=8, train_images=100, eval_images=10, batch_size=64, forward_flops=1000)
    with pytest.raises(ValueError, match=message):
        cost.estimate(**{**args, **kwargs})


def test_protocol_estimate_counts_the_presets_runs():
    from camri_utils import protocol

    spec = protocol.preset("cifar10", "full")
    shared, specific = cost.protocol_runs(spec)
    e = cost.protocol_estimate(spec)
    assert e.runs == shared + specific == len(protocol.plan(spec, "real")) + len(protocol.plan(spec, "real", [0, 1, 2]))
    assert (e.epochs, e.batch_size, e.train_images, e.eval_images) == (300, 64, 45000, 5000)
    assert cost.protocol_estimate(spec, epochs=30).gpu_hours == pytest.approx(e.gpu_hours / 10)


def test_measured_cpu_step_reads_the_committed_benchmark():
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    step = cost.measured_cpu_step(text)
    row = next(line for line in text.splitlines() if line.startswith("| paper CNN"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert step["camri_ms"] == float(cells[2]) and step["ce_ms"] == float(cells[3])
    assert step["batch_size"] == 128 and step["machine"] == "this project's 2-core CPU machine"


@pytest.mark.parametrize(("text", "message"), [
    ("no table here", "holds no table"),
    ("| model | step |\n| --- | --- |\n| paper CNN | 1 |\n", "no column"),
    ("| model | CAMRI step (ms) | CE step (ms) |\n| --- | --- | --- |\n| small CNN | 1 | 2 |\n", "no row"),
    ("| model | CAMRI step (ms) | CE step (ms) |\n| --- | --- | --- |\n| paper CNN | 1 | 2 |\n", "batch size"),
])
def test_measured_cpu_step_names_what_is_missing(text, message):
    with pytest.raises(ValueError, match=message):
        cost.measured_cpu_step(text)


def test_cost_cells_need_no_data(capsys):
    exp = comparison.experiment("gtsrb", "full", 14, scale=32.0)
    comparison.print_session_cost(exp)
    levers = comparison.protocol_cost("gtsrb")
    out = capsys.readouterr().out
    assert "GFLOP per 32x32 image" in out and "measured" in out.lower() and "GPU-hours" in out
    assert "epochs" in levers.index and "mixed precision" in levers.index
    assert levers.loc["as planned", "x planned"] == 1
    # The chapter's own CPU-scale epochs are named beside Fashion-MNIST's; AwA2 has no CPU preset.
    cpu = protocol.preset("gtsrb", "cpu")
    assert f"this chapter's CPU-scale runs {cpu.lr_schedule} decay over {cpu.epochs}" in out
    comparison.protocol_cost("awa2")
    assert "CPU-scale" not in capsys.readouterr().out


def _throughput(**variant):
    parts = {"setup": 3.0, "train_steps": 55.0, "evaluation": 9.0, "angles": 6.0, "final": 3.0, "total": 76.0}
    base = {"label": "today", "full_run_s": parts}
    return json.dumps({"date": "2026-11-30", "reference": "baseline", "variants": {"baseline": {**base, **variant}}})


def test_measured_breakdown_reads_the_throughput_benchmarks_numbers():
    found = cost.measured_breakdown(_throughput())
    assert found["shares"]["train_steps"] == pytest.approx(55 / 76) and found["total_s"] == 76.0
    assert set(found["shares"]) == set(cost.BREAKDOWN_PARTS) and found["date"] == "2026-11-30"


@pytest.mark.parametrize("text", ["{not json", "{}", _throughput(full_run_s={"setup": 1.0}),
                                  _throughput(full_run_s={p: -1.0 for p in (*cost.BREAKDOWN_PARTS, "total")})])
def test_measured_breakdown_refuses_another_layout(text):
    with pytest.raises(ValueError, match="THROUGHPUT.json"):
        cost.measured_breakdown(text)

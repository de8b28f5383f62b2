"""The protocol: ranking and selection on hand-made records, the quick profile end to end on a
fixture through the CLI, resuming, sharding, and bad results folders."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from camri_utils import protocol, stats, training
from camri_utils.cli import main as camri
from camri_utils.data import fixtures

N = 4


def record(method, seed, acc, recall, role=None, c=None, params=None, run_id=None):
    """A hand-made record; with a ``role`` it is laid out as schema 1 (trained once per role)."""
    r = {"schema": protocol.SCHEMA, "run_id": run_id or f"{method}-{role}-{c}-{seed}-{json.dumps(params)}",
         "method": method, "important_class": c, "params": params or {}, "seed": seed,
         "accuracy": acc, "recall": list(recall), "precision": [0.5] * N,
         "data_source": {"kind": "synthetic fixture", "location": "x"}, "environment": {"camri_utils": "t"}}
    if role is not None:
        r["role"] = role
    return r


def ce_records():
    # Mean CE recall per class: [0.9, 0.5, 0.5, 0.7]: classes 1 and 2 tie for worst, median is 2.
    return [record("CE", 0, 0.80, [0.9, 0.4, 0.6, 0.7]), record("CE", 1, 0.82, [0.9, 0.6, 0.4, 0.7])]


def test_ranking_breaks_ties_by_class_index():
    order, important = protocol.rank_classes(ce_records())
    assert order == [1, 2, 3, 0]
    assert important == {"worst1": 1, "worst2": 2, "median": 2}


def test_selection_keeps_accuracy_and_takes_the_best_recall():
    recs = ce_records()
    # threshold = 0.81 - std([0.80, 0.82]) = 0.81 - 0.01414
    for seed in (0, 1):
        recs.append(record("CAMRI", seed, 0.81, [0.9, 0.80, 0.5, 0.7], "worst1", 1, {"margin": 0.1}))
        recs.append(record("CAMRI", seed, 0.81, [0.9, 0.95, 0.5, 0.7], "worst1", 1, {"margin": 0.2}))
        recs.append(record("CAMRI", seed, 0.70, [0.9, 0.99, 0.5, 0.7], "worst1", 1, {"margin": 0.4}))  # loses accuracy
        recs.append(record("WCE", seed, 0.60, [0.9, 0.99, 0.5, 0.7], "worst1", 1, {"weight": 4.0}))  # never keeps it
    sel = protocol.select(recs, accuracy_k=1.0)
    assert sel.threshold == pytest.approx(0.81 - np.std([0.80, 0.82], ddof=1))
    assert sel.chosen[("CAMRI", "worst1")].params == {"margin": 0.2}
    assert sel.chosen[("WCE", "worst1")] is None
    assert sel.chosen.get(("ArcFace", "worst1")) is None  # no runs at all
    # A looser rule lets the margin that costs accuracy win.
    assert protocol.select(recs, accuracy_k=10.0).chosen[("CAMRI", "worst1")].params == {"margin": 0.4}


def test_a_fixed_important_class_replaces_the_ranking():
    """The rare-class setting names its important class: one role, whatever CE ranks worst."""
    recs = ce_records()  # the ranking would make class 1 worst1
    for seed in (0, 1):
        recs.append(record("CAMRI", seed, 0.81, [0.9, 0.5, 0.5, 0.95], c=3, params={"margin": 0.2}))
    sel = protocol.select(recs, important={"rare": 3})
    assert sel.important == {"rare": 3}
    assert sel.chosen[("CAMRI", "rare")].params == {"margin": 0.2}
    assert ("CAMRI", "worst1") not in sel.chosen


def test_report_shows_a_dash_where_no_setting_keeps_accuracy(tmp_path):
    out = tmp_path / "r"
    (out / "runs").mkdir(parents=True)
    spec = protocol.preset("fashion_mnist", "quick")
    (out / "protocol.json").write_text(json.dumps(spec.to_dict()))
    recs = ce_records()
    for seed in (0, 1):
        recs.append(record("CAMRI", seed, 0.81, [0.9, 0.95, 0.5, 0.7], "worst1", 1, {"margin": 0.2}))
        recs.append(record("WCE", seed, 0.60, [0.9, 0.99, 0.5, 0.7], "worst1", 1, {"weight": 4.0}))
    for i, r in enumerate(recs):
        r["run_id"] = f"r{i}"
        (out / "runs" / f"r{i}.json").write_text(json.dumps(r))
    text = protocol.report(out)
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| ")}
    assert rows["WCE"] == "-" and rows["ArcFace"] == "-"
    assert rows["CAMRI"].startswith("0.9500 ± 0.0000 (0.8100)") and "n=2" in rows["CAMRI"]
    # Paired over seeds, the gains are 0.95 - 0.4 and 0.95 - 0.6: mean 0.45, Student t with one degree of
    # freedom: 0.45 -+ 12.7062 * 0.1414 / sqrt(2) = 0.45 -+ 1.2706.
    assert "Δ +0.4500 [-0.8206, +1.7206]" in rows["CAMRI"]
    summary = (out / "summary.csv").read_text()
    assert summary.splitlines()[0].startswith("method,role,class,setting,n_seeds")


def test_selection_ties_go_to_accuracy_then_grid_order():
    recs = ce_records()
    for seed in (0, 1):
        recs.append(record("ArcFace", seed, 0.81, [0.9, 0.8, 0.5, 0.7], "worst1", 1, {"margin": 0.1}))
        recs.append(record("ArcFace", seed, 0.82, [0.9, 0.8, 0.5, 0.7], "worst1", 1, {"margin": 0.2}))
        recs.append(record("ArcFace", seed, 0.82, [0.9, 0.8, 0.5, 0.7], "worst1", 1, {"margin": 0.3}))
    assert protocol.select(recs).chosen[("ArcFace", "worst1")].params == {"margin": 0.2}


def _tiny_spec(seeds=(0, 1)):
    """CAMRI only: per seed, 1 CE run + one run per important class (3 distinct here) = 4 runs."""
    return protocol.ProtocolSpec("fashion_mnist", "quick", "mlp", epochs=1, batch_size=32, learning_rate=1e-3,
                                 seeds=list(seeds), camri_grid=[{"margin": 0.3, "scale": 8.0}], arcface_grid=[],
                                 wce_weights=[], crwwce_weights=[], feature_dim=4, note="test",
                                 validation_size=8)


@pytest.fixture
def fixture_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "cache"))
    from camri_utils import data

    return data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist", tmp_path / "f", per_class=4))


def test_quick_profile_end_to_end_through_the_cli(tmp_path, fixture_data, capsys):
    root = fixtures.write("fashion_mnist", tmp_path / "fx", per_class=4)
    out = tmp_path / "results"
    assert camri(["protocol", "--dataset", "fashion_mnist", "--profile", "quick", "--data-dir", str(root),
                  "--output", str(out), "--quiet"]) == 0
    first = capsys.readouterr().out
    n_runs = len(list((out / "runs").glob("*.json")))
    # Shared runs (CE, normalized softmax, ArcFace) once; CAMRI, WCE and CRWWCE per important class.
    classes = len(set(protocol.summarize(out).selection.important.values()))
    assert n_runs == 3 + classes * 3
    assert len(list((out / "runs").glob("*.npz"))) == n_runs  # every run's scores are stored
    summary = (out / "summary.md").read_text()
    assert "| CAMRI |" in summary and "synthetic fixture" in summary and "Selection rule" in summary
    assert "| NormSoftmax |" in summary and "| CE + threshold |" in summary and "validation split" in summary
    assert "monotonic=False" in summary  # the theta + m > pi policy is stated
    assert summary in first
    # A second invocation trains nothing and reports the same table.
    assert camri(["protocol", "--dataset", "fashion_mnist", "--profile", "quick", "--data-dir", str(root),
                  "--output", str(out), "--quiet"]) == 0
    assert "trained 0 run(s)" in capsys.readouterr().out
    assert (out / "summary.md").read_text() == summary
    assert camri(["protocol", "report", "--output", str(out)]) == 0
    assert (out / "summary.md").read_text() == summary
    # A run still missing (another shard's) is said as such, never shown as "no setting kept accuracy".
    wce = next(p for p in (out / "runs").glob("*.json") if json.loads(p.read_text())["method"] == "WCE")
    wce.unlink()
    wce.with_suffix(".npz").unlink()
    partial = protocol.report(out)
    assert "**Incomplete: " in partial.splitlines()[2] and "WCE (class" in partial.splitlines()[2]
    row = next(line for line in partial.splitlines() if line.startswith("| WCE |"))
    assert "no run yet (0 of 1)" in row  # its one seed's run, for that class


def test_interrupted_sweep_loses_and_duplicates_nothing(tmp_path, fixture_data, monkeypatch):
    spec, out = _tiny_spec(seeds=[0]), tmp_path / "r"
    real_train, calls = training.train, {"n": 0}

    def flaky(config, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_train(config, **kwargs)

    monkeypatch.setattr(training, "train", flaky)
    with pytest.raises(KeyboardInterrupt):
        protocol.run(spec, out, progress=False, dataset=fixture_data)
    assert len(list((out / "runs").glob("*.json"))) == 2
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(training, "train", real_train)
    assert protocol.run(spec, out, progress=False, dataset=fixture_data) == 4 - 2
    assert len(list((out / "runs").glob("*.json"))) == 4


def test_two_shards_give_the_same_table_as_one_run(tmp_path, fixture_data):
    spec = _tiny_spec(seeds=[0])
    protocol.run(spec, tmp_path / "one", progress=False, dataset=fixture_data)
    whole = protocol.report(tmp_path / "one")
    for _ in range(2):  # stage 1 on both shards, then stage 2 on both
        for i in range(2):
            protocol.run(spec, tmp_path / "two", shard=(i, 2), progress=False, dataset=fixture_data)
    assert protocol.report(tmp_path / "two") == whole


def test_bad_results_folders_are_clear_errors(tmp_path, fixture_data):
    spec, out = _tiny_spec(seeds=[0]), tmp_path / "r"
    spec.camri_grid = []
    protocol.run(spec, out, progress=False, dataset=fixture_data)
    (out / "runs" / "notes.txt").write_text("mine")
    with pytest.raises(protocol.ProtocolError, match="not a protocol record"):
        protocol.report(out)
    (out / "runs" / "notes.txt").unlink()
    (out / "runs" / "abc.json").write_text("{broken")
    with pytest.raises(protocol.ProtocolError, match="not valid JSON"):
        protocol.report(out)
    (out / "runs" / "abc.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(protocol.ProtocolError, match="not a record of this protocol"):
        protocol.report(out)
    with pytest.raises(protocol.ProtocolError, match="no protocol.json"):
        protocol.report(tmp_path)
    other = _tiny_spec()
    other.epochs = 2
    with pytest.raises(protocol.ProtocolError, match="describes another protocol"):
        protocol.run(other, out, progress=False, dataset=fixture_data)
    assert camri(["protocol", "report", "--output", str(tmp_path / "nothing")]) == 2


def test_committed_pilot_results_are_exactly_what_report_produces(tmp_path):
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "results" / "fashion_mnist-pilot"
    copy = shutil.copytree(committed, tmp_path / "r")
    assert protocol.report(copy) == (committed / "summary.md").read_text()
    assert (copy / "summary.csv").read_text() == (committed / "summary.csv").read_text()
    records = protocol.load_records(committed)
    assert len(records) == 5 * (1 + 3 * 8) and {r["data_source"]["kind"] for r in records} == {"real"}
    summary = protocol.summarize(committed)
    assert summary.selection.split == "test" and "before the validation split" in summary.markdown
    with pytest.raises(protocol.ProtocolError, match="not resumed"):
        protocol.run(summary.spec, copy, progress=False, dataset=_no_data())


def _no_data():
    from camri_utils.data import Dataset, Source

    x = np.zeros((20, 28, 28, 1), np.uint8)
    y = np.arange(20) % 10
    return Dataset("fashion_mnist", x, y, x, y, [str(c) for c in range(10)], Source("here", real=True))


def test_records_frame_has_one_row_per_run_and_ce_once_per_role():
    recs = ce_records() + [record("CAMRI", 0, 0.81, [0.9, 0.95, 0.3, 0.7], "worst1", 1, {"margin": 0.2})]
    frame = protocol.records_frame(recs)
    ce = frame[frame.method == "CE"]
    # Two CE seeds, each compared in three roles (worst1 = class 1, worst2 = median = class 2).
    assert len(ce) == 6 and sorted(set(ce.role)) == ["median", "worst1", "worst2"]
    assert ce[(ce.role == "worst1") & (ce.seed == 0)].recall.item() == 0.4
    assert ce[(ce.role == "worst2") & (ce.seed == 0)].recall.item() == 0.6
    camri = frame[frame.method == "CAMRI"].iloc[0]
    assert (camri.role, camri.important_class, camri.recall, camri.precision) == ("worst1", 1, 0.95, 0.5)
    assert json.loads(camri.setting) == {"margin": 0.2}


def test_summarize_writes_nothing_and_matches_report(tmp_path):
    out = tmp_path / "r"
    (out / "runs").mkdir(parents=True)
    (out / "protocol.json").write_text(json.dumps(protocol.preset("fashion_mnist", "quick").to_dict()))
    recs = ce_records() + [record("CAMRI", s, 0.81, [0.9, 0.95, 0.5, 0.7], "worst1", 1, {"margin": 0.2})
                           for s in (0, 1)]
    for i, r in enumerate(recs):
        r["run_id"] = f"r{i}"
        (out / "runs" / f"r{i}.json").write_text(json.dumps(r))
    before = sorted(p.name for p in out.rglob("*"))
    summary = protocol.summarize(out)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert summary.table.set_index(["method", "role"]).loc[("CAMRI", "worst1"), "recall_mean"] == pytest.approx(0.95)
    assert protocol.report(out) == summary.markdown == (out / "summary.md").read_text()
    assert protocol.summarize(out, accuracy_k=0.0).accuracy_k == 0.0


def _sweep_records():
    recs = ce_records()
    for seed in (0, 1):
        recs.append(record("CAMRI", seed, 0.81, [0.9, 0.80 + 0.02 * seed, 0.5, 0.7], "worst1", 1, {"margin": 0.1}))
        recs.append(record("CAMRI", seed, 0.81, [0.9, 0.95, 0.5, 0.7], "worst1", 1, {"margin": 0.2}))
        recs.append(record("WCE", seed, 0.60, [0.9, 0.99, 0.5, 0.7], "worst1", 1, {"weight": 4.0}))
    return recs


def test_sweep_figure_plots_each_setting_rings_the_chosen_and_marks_the_threshold():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from camri_utils import plots

    recs = _sweep_records()
    sel = protocol.select(recs)
    fig, ax = plt.subplots()
    plots.draw_protocol_sweep(ax, protocol.records_frame(recs), sel, "worst1", class_name="one")
    points = {(round(c.lines[0].get_xdata()[0], 6), round(c.lines[0].get_ydata()[0], 6)) for c in ax.containers}
    assert points == {(0.81, 0.5), (0.81, 0.81), (0.81, 0.95), (0.6, 0.99)}  # CE, two CAMRI settings, WCE
    rings = [line for line in ax.lines if line.get_markersize() == 16]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in rings] == [(0.81, 0.95)]  # only CAMRI m=0.2
    threshold = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert threshold[0].get_xdata()[0] == pytest.approx(sel.threshold)
    assert "class 1 (one)" in ax.get_title()
    with pytest.raises(ValueError, match="no records for role 'median'"):
        frame = protocol.records_frame(recs)
        plots.draw_protocol_sweep(ax, frame[frame.role == "worst1"], sel, "median")
    plt.close(fig)


def test_protocol_figures_axis_labels_fit_their_axes_at_the_chapters_size(tmp_path):
    """At the size chapter 7 draws them (5.2 in wide, the book's style), each figure's y label
    is no taller than its axes: a longer one ran past them (a reader's report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from camri_utils import plots

    plots.use_book_style()
    recs = _sweep_records()
    sel = protocol.select(recs)
    frame = protocol.records_frame(recs)
    out = tmp_path / "r"
    (out / "runs").mkdir(parents=True)
    (out / "protocol.json").write_text(json.dumps(protocol.preset("fashion_mnist", "quick").to_dict()))
    for i, r in enumerate(recs):
        (out / "runs" / f"r{i}.json").write_text(json.dumps({**r, "run_id": f"r{i}"}))
    table = protocol.summarize(out).table
    # The chapter's sweep figures carry a legend of up to 13 entries below the axes: as many here.
    many = {f"NormSoftmax + threshold (s = {s})": pd.DataFrame({"accuracy": [0.6, 0.9], "recall": [0.9, 0.5]})
            for s in (8, 16, 32)}
    for height, draw in ((4.2, lambda ax: plots.draw_protocol_sweep(ax, frame, sel, "worst1", curves=many)),
                         (4.2, lambda ax: plots.draw_tradeoff(ax, frame, sel, "worst1", curves=many)),
                         (3.8, lambda ax: plots.draw_recall_gains(ax, table))):
        fig, ax = plt.subplots(figsize=(5.2, height))
        draw(ax)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        label, axes = ax.yaxis.label.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert 0 < label.height <= axes.height, (ax.get_ylabel(), label.height, axes.height)
        plt.close(fig)


def test_gain_figure_draws_each_kept_method_at_its_gain(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from camri_utils import plots

    out = tmp_path / "r"
    (out / "runs").mkdir(parents=True)
    (out / "protocol.json").write_text(json.dumps(protocol.preset("fashion_mnist", "quick").to_dict()))
    for i, r in enumerate(_sweep_records()):
        r["run_id"] = f"r{i}"
        (out / "runs" / f"r{i}.json").write_text(json.dumps(r))
    table = protocol.summarize(out).table
    fig, ax = plt.subplots()
    plots.draw_recall_gains(ax, table)
    drawn = {c.get_label(): list(c.lines[0].get_ydata()) for c in ax.containers}
    # CAMRI m=0.2 gains 0.95 - 0.4 and 0.95 - 0.6 (mean 0.45); WCE never kept accuracy: not drawn.
    assert drawn == {"CAMRI": [pytest.approx(0.45)]}
    plt.close(fig)


def test_results_folder_lookup_order_and_clear_error(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMRI_RESULTS_DIR", raising=False)
    repo_copy = Path(protocol.__file__).resolve().parents[2] / "results" / "fashion_mnist"
    if (repo_copy / "protocol.json").is_file():  # an editable install finds the repository's results
        assert protocol.results_folder("results/fashion_mnist") == repo_copy
    here = tmp_path / "results" / "fashion_mnist"
    here.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="git clone"):
        protocol.results_folder("results/elsewhere")  # a folder without protocol.json is no result
    (here / "protocol.json").write_text("{}")
    assert protocol.results_folder("results/fashion_mnist") == Path("results/fashion_mnist")  # cwd first
    env = tmp_path / "env"
    (env / "mine").mkdir(parents=True)
    (env / "mine" / "protocol.json").write_text("{}")
    monkeypatch.setenv("CAMRI_RESULTS_DIR", str(env))
    assert protocol.results_folder("results/mine") == env / "mine"


def test_selection_uses_validation_metrics_not_test():
    recs = ce_records()
    for r in recs:
        r["validation"] = {"accuracy": r["accuracy"], "recall": r["recall"], "precision": r["precision"]}
    for seed in (0, 1):
        # On test, margin 0.1 looks best; on validation, margin 0.2 is: validation must decide.
        for margin, test_rec, val_rec in ((0.1, 0.99, 0.70), (0.2, 0.80, 0.90)):
            r = record("CAMRI", seed, 0.81, [0.9, test_rec, 0.5, 0.7], c=1, params={"margin": margin})
            r["validation"] = {"accuracy": 0.81, "recall": [0.9, val_rec, 0.5, 0.7], "precision": [0.5] * N}
            recs.append(r)
    sel = protocol.select(recs)
    assert sel.split == "validation"
    assert sel.chosen[("CAMRI", "worst1")].params == {"margin": 0.2}
    # Without validation metrics (records made before the split), test decides, and says so.
    for r in recs:
        r.pop("validation")
    sel = protocol.select(recs)
    assert sel.split == "test" and sel.chosen[("CAMRI", "worst1")].params == {"margin": 0.1}


def test_two_records_of_one_seed_in_one_cell_are_an_error():
    recs = ce_records() + [record("CAMRI", 0, 0.81, [0.9, 0.9, 0.5, 0.7], "worst1", 1, {"margin": 0.2},
                                  run_id=f"dup{i}") for i in range(2)]
    with pytest.raises(protocol.ProtocolError,
                       match=r"two records of seed 0 \(dup0.json, dup1.json\): stale or copied records"):
        protocol.select(recs)


def test_class_specific_records_of_another_class_are_never_used():
    recs = ce_records()  # worst1 = class 1
    recs.append(record("CAMRI", 0, 0.81, [0.9, 0.99, 0.5, 0.99], c=3, params={"margin": 0.2}))  # made for class 3
    recs.append(record("ArcFace", 0, 0.81, [0.9, 0.7, 0.5, 0.7], params={"margin": 0.2}))  # shared by all classes
    sel = protocol.select(recs)
    assert sel.chosen[("CAMRI", "worst1")] is None
    assert sel.chosen[("ArcFace", "worst1")].params == {"margin": 0.2}
    assert sel.chosen[("ArcFace", "median")].params == {"margin": 0.2}


def test_threshold_moving_chooses_one_bias_exactly_on_validation():
    # Two classes, CE logits; class 1 loses near-ties to class 0 until a bias is added to it.
    val = np.array([[1.0, 0.5], [1.0, 0.9], [0.2, 1.0], [2.0, 0.0]], "float32")
    y = np.array([1, 1, 1, 0])
    ce = record("CE", 0, 0.5, [1.0, 1 / 3], run_id="ce0")
    ce["recall"], ce["precision"] = [1.0, 1 / 3], [1 / 3, 1.0]
    ce["validation"] = {"accuracy": 0.5, "recall": [1.0, 1 / 3], "precision": [1 / 3, 1.0]}
    stored = {"validation": val, "test": val, "y_validation": y, "y_test": y}
    # Switch points of class 1: 0.1 and 0.5 (images 1 and 0), 2.0 (image 3). Keeping accuracy >= 0.75
    # the most recall is 1.0, reached for biases in (0.5, 2.0): the chosen bias lies there.
    moved = protocol.threshold_records([ce], [1], 0.75, lambda r: stored)
    assert len(moved) == 1 and 0.5 < moved[0]["params"]["bias"] < 2.0
    assert moved[0]["validation"]["recall"][1] == 1.0 and moved[0]["validation"]["accuracy"] == 1.0
    assert moved[0]["method"] == "CE + threshold" and moved[0]["important_class"] == 1
    # Asking for more accuracy than any bias reaches gives no threshold row at all.
    assert protocol.threshold_records([ce], [1], 1.01, lambda r: stored) == []


def _gap_row(**values):
    """A row of comparison_table as the cells read it: every gap 0.01 [0.005, 0.015] unless given."""
    row = {"n": 5, "n_recall": 5, "n_oos": 5, "n_oos_recall": 5, "above": 3, "on": 0, "below": 2,
           "oos_recall_offset": 0.002}
    for gap in ("recall_gap", "accuracy_gap", "precision_gap", "oos_accuracy_gap", "oos_recall_gap",
                "oos_precision_gap"):
        row.update({gap: 0.01, f"{gap}_low": 0.005, f"{gap}_high": 0.015})
    row.update(values)
    return row


def test_comparison_cells_say_the_seeds_a_recall_gap_rests_on_and_never_print_minus_zero():
    # Two of five seeds define the recall gap: the cell says n = 2 beside the three past the end.
    row = _gap_row(n_recall=2, recall_gap=0.024, recall_gap_low=-0.542, recall_gap_high=0.589)
    recall, accuracy, precision, seeds = protocol.comparison_cells(row, points=True)
    assert recall == "+2.4 [-54.2, +58.9] (n = 2, 3 seed(s) beyond the curve's end)"
    assert seeds == "3/0/2"
    # Counts read from a frame whose columns hold NaN elsewhere arrive as floats: still whole numbers.
    floats = _gap_row(n=5.0, n_recall=2.0, above=1.0, on=0.0, below=4.0, recall_gap=0.024)
    recall, _, _, seeds = protocol.comparison_cells(floats, points=True)
    assert seeds == "1/0/4" and recall.endswith("(n = 2, 3 seed(s) beyond the curve's end)")
    one = protocol.comparison_cells(_gap_row(n_recall=1, recall_gap_low=np.nan, recall_gap_high=np.nan))[0]
    assert one == "+0.010 (n = 1, 4 seed(s) beyond the curve's end)"  # one seed: no interval
    assert protocol.comparison_cells(_gap_row(n_recall=0, recall_gap=np.nan))[0] == "beyond the curve's end"
    # Two seeds whose recall gaps are equal (recall moves in steps of one test image): a paired t
    # interval of zero width, said in words rather than printed as "[-4.7, -4.7]".
    mean, low, high, n = stats.paired_t([-0.047, -0.047, np.nan, np.nan, np.nan])
    same = _gap_row(n_recall=n, recall_gap=mean, recall_gap_low=low, recall_gap_high=high)
    assert protocol.comparison_cells(same, points=True)[0] == (
        "-4.7, its seeds equal (n = 2, 3 seed(s) beyond the curve's end)")
    oos = protocol.out_of_sample_cells(_gap_row(n_oos_recall=3), points=True)[1]
    assert oos.endswith("(n = 3, 2 seed(s) beyond the curve's end)")
    # An interval end that rounds to zero at two decimals (points) keeps its sign with the decimals
    # its first digit needs; a mean that is zero to print prints unsigned, never "-0.00".
    row = _gap_row(accuracy_gap=0.0024, accuracy_gap_low=0.00003, accuracy_gap_high=0.0048,
                   oos_accuracy_gap=-0.0, oos_accuracy_gap_low=-0.0025, oos_accuracy_gap_high=0.0024,
                   oos_recall_offset=-0.0002)
    assert protocol.comparison_cells(row, points=True)[1] == "+0.24 [+0.003, +0.48]"
    assert protocol.out_of_sample_cells(row, points=True)[0] == "0.00 [-0.25, +0.24] (recall -0.02)"
    assert protocol.comparison_cells(row)[1] == "+0.0024 [+0.00003, +0.0048]"  # fractions: four decimals, one more


def test_setting_text_gives_a_bias_three_significant_digits_and_the_report_its_unit():
    assert protocol.setting_text({"bias": 0.607421875}) == "bias 0.607"
    assert protocol.setting_text({"scale": 8.0, "bias": 1.11328125}) == "s = 8, bias 1.11"
    assert protocol.setting_text(json.dumps({"bias": 1.5126953125})) == "bias 1.51"
    assert protocol.setting_text({"bias": 1.703125}) == "bias 1.70"  # three digits, a trailing zero too
    assert protocol.setting_text({"bias": -123.4}) == "bias -123" and protocol.setting_text({"bias": 0.0}) == "bias 0.00"
    assert protocol.setting_text({"margin": 4 * np.pi / 64, "scale": 16.0}) == "m = 4π/64, s = 16"
    assert protocol.setting_text({"weight": 2.0}) == "weight 2"


def test_a_setting_more_accurate_than_the_whole_curve_gets_no_fallback_gap():
    """The report's comparison: a CAMRI run more accurate than every point of CE's curve has no
    recall gap ("beyond the curve's end"), and the accuracy axis carries the comparison."""
    val = np.array([[1.0, 0.5], [1.0, 0.9], [0.2, 1.0], [2.0, 0.0]], "float32")
    y = np.array([1, 1, 0, 0])  # CE's best accuracy over every bias is 0.75
    ce = record("CE", 0, 0.5, [0.5, 0.5], run_id="ce0")
    ce["recall"], ce["precision"] = [0.5, 0.5], [0.5, 0.5]
    stored = {"test": val, "y_test": y}
    curve_sets = {1: protocol.reference_curves([ce], 1, lambda r: stored)}
    assert max(curve_sets[1][("CE", 0)].accuracy) == 0.75
    camri = record("CAMRI", 0, 0.9, [0.9, 0.6], c=1, params={"margin": 0.2}, run_id="c0")
    camri["precision"] = [0.8, 0.9]
    frame = protocol.curve_comparisons([ce, camri], {"worst1": 1}, curve_sets)
    row = frame[(frame.method == "CAMRI") & (frame.reference == "CE")].iloc[0]
    assert np.isnan(row.recall_gap) and row.beyond_end and row.position == "above"
    # At recall >= 0.6 the curve's best accuracy is 0.75 (bias past 0.1): 0.9 - 0.75.
    assert row.accuracy_gap == pytest.approx(0.15)
    table = protocol.comparison_table(frame)
    cells = protocol.comparison_cells(table[table.method == "CAMRI"].iloc[0].to_dict())
    assert cells[0] == "beyond the curve's end" and cells[3] == "1/0/0"


def test_the_report_compares_each_setting_with_both_references_and_gives_the_verdict():
    """curve_comparisons with validation curves: each seed's out-of-sample columns are
    curves.out_of_sample of that record's own validation point (a class-specific method's record
    for the role's class, not the same setting's record for another class); the table's verdict
    follows curves.verdict; a record without validation metrics gets no out-of-sample value."""
    from camri_utils.protocol import curves

    rng = np.random.default_rng(7)
    stored, ce = {}, []
    for seed in range(3):
        split = {}
        for name in ("validation", "test"):
            y = rng.integers(0, 2, size=400)
            scores = rng.normal(size=(400, 2))
            scores[np.arange(400), y] += 1.0
            split[name], split[f"y_{name}"] = scores, y
        stored[f"ce{seed}"] = split
        r = record("CE", seed, 0.8, [0.8, 0.8], run_id=f"ce{seed}")
        r["validation"] = {"accuracy": 0.8, "recall": [0.8, 0.8], "precision": [0.8, 0.8]}
        ce.append(r)
    load = lambda r: stored[r["run_id"]]  # noqa: E731
    test_sets = {c: protocol.reference_curves(ce, c, load) for c in (0, 1)}
    val_sets = {c: protocol.reference_curves(ce, c, load, "validation") for c in (0, 1)}
    camri = []
    for seed in range(3):
        for c, val_recall in ((1, 0.7), (0, 0.95)):  # the class-0 run's validation point is far from the class-1 run's
            r = record("CAMRI", seed, 0.79 + 0.01 * seed, [0.8, 0.85], c=c, params={"margin": 0.2}, run_id=f"m{c}{seed}")
            r["precision"] = [0.8, 0.8]
            recall = [0.8, 0.8]
            recall[c] = val_recall
            r["validation"] = {"accuracy": 0.8, "recall": recall, "precision": [0.8, 0.8]}
            camri.append(r)
    frame = protocol.curve_comparisons(ce + camri, {"worst1": 1}, test_sets, val_sets)
    rows = frame[(frame.method == "CAMRI") & (frame.reference == "CE")].sort_values("seed")
    assert len(rows) == 3
    for row in rows.itertuples():
        point = {"accuracy": row.accuracy, "recall": row.recall, "precision": row.precision}
        expected = curves.out_of_sample({"accuracy": 0.8, "recall": 0.7}, point, val_sets[1][("CE", row.seed)],
                                        test_sets[1][("CE", row.seed)])
        assert row.oos_accuracy_gap == pytest.approx(expected["oos_accuracy_gap"])
        assert row.oos_recall_offset == pytest.approx(expected["oos_recall_offset"])
        assert row.oos_precision_gap == pytest.approx(expected["oos_precision_gap"])
    table = protocol.comparison_table(frame)
    got = table[table.method == "CAMRI"].iloc[0]
    mean, low, high, n = curves.paired_t(rows.oos_accuracy_gap)
    assert (got.oos_accuracy_gap, got.oos_accuracy_gap_low, got.oos_accuracy_gap_high, got.n_oos) == \
        pytest.approx((mean, low, high, n))
    assert got.verdict == curves.verdict((got.accuracy_gap_low, got.accuracy_gap_high), (low, high))
    assert protocol.out_of_sample_cells(got.to_dict())[0].startswith(f"{mean:+.4f}")
    # In points (hundredths) as the chapters' prose says them: accuracy to 2 decimals.
    assert protocol.out_of_sample_cells(got.to_dict(), points=True)[0].startswith(
        f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] (recall {100 * got.oos_recall_offset:+.1f})")
    assert protocol.comparison_cells(got.to_dict(), points=True)[1] == \
        f"{100 * got.accuracy_gap:+.2f} [{100 * got.accuracy_gap_low:+.2f}, {100 * got.accuracy_gap_high:+.2f}]"
    # Without validation curves (records made before the split) nothing out of sample is said.
    plain = protocol.comparison_table(protocol.curve_comparisons(ce + camri, {"worst1": 1}, test_sets))
    row = plain[plain.method == "CAMRI"].iloc[0].to_dict()
    assert row["n_oos"] == 0 and protocol.out_of_sample_cells(row) == ("no validation scores",) * 3
    assert row["verdict"] == "not told apart" or row["accuracy_gap_low"] > 0


def test_the_converged_run_in_progress_is_the_current_full_preset(tmp_path):
    """results/fashion_mnist/ is recorded shard by shard, committed as it goes: whatever is
    there belongs to the current full preset, and its summary is what report makes of it."""
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "results" / "fashion_mnist"
    if not committed.exists():
        pytest.skip("the converged Fashion-MNIST run has not recorded anything yet")
    spec, source = protocol.read_spec(committed)
    assert spec.to_dict() == protocol.preset("fashion_mnist", "full").to_dict() and source == "real"
    records = protocol.load_records(committed)
    assert protocol.current_records(protocol.preset("fashion_mnist", "full"), "real", records)[1] == 0
    for r in records:
        assert (committed / "runs" / f"{r['run_id']}.npz").exists()
    if (committed / "summary.md").exists():
        copy = shutil.copytree(committed, tmp_path / "r")
        text = protocol.report(copy)
        assert text == (committed / "summary.md").read_text()
        # The threshold rows' biases: three significant digits, and what they are added to.
        chosen = next(line for line in text.splitlines() if line.startswith("Chosen settings: "))
        biases = re.findall(r"bias ([0-9.]+)", chosen)
        assert biases and all(len(b.replace("0.", "", 1).replace(".", "").lstrip("0")) <= 3 for b in biases)
        assert chosen.endswith("Bias: added to the important class's logit after training (for normalized softmax "
                               "the logit is s·cos θ).")


def test_a_record_with_wrong_content_is_a_clear_error(tmp_path):
    out = tmp_path / "r"
    (out / "runs").mkdir(parents=True)
    (out / "protocol.json").write_text(json.dumps(protocol.preset("fashion_mnist", "quick").to_dict()))
    good = ce_records()[0]
    for bad, match in [({"recall": [0.5]}, "malformed per-class recall"),
                       ({"precision": [0.5] * (N + 1)}, "malformed per-class recall"),
                       ({"important_class": N}, "outside"), ({"accuracy": None, "recall": None}, "malformed")]:
        r = {**good, **bad, "run_id": "x"}
        (out / "runs" / "x.json").write_text(json.dumps(r))
        with pytest.raises(protocol.ProtocolError, match=match):
            protocol.report(out)


def test_a_single_seed_cell_says_it_has_no_interval(tmp_path):
    out = tmp_path / "r"
    (out / "runs").mkdir(parents=True)
    (out / "protocol.json").write_text(json.dumps(protocol.preset("fashion_mnist", "quick").to_dict()))
    recs = [ce_records()[0], record("CAMRI", 0, 0.81, [0.9, 0.95, 0.5, 0.7], "worst1", 1, {"margin": 0.2})]
    for i, r in enumerate(recs):
        r["run_id"] = f"r{i}"
        (out / "runs" / f"r{i}.json").write_text(json.dumps(r))
    text = protocol.report(out)
    assert "nan" not in text and "one seed: no interval" in text


def _tradeoff_frame():
    import pandas as pd

    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for b, (a, r) in enumerate([(0.90, 0.50), (0.88, 0.60), (0.80, 0.80)]):
            rows.append({"method": "CE + threshold", "role": "worst1", "important_class": 1,
                         "setting": json.dumps({"bias": float(b)}), "seed": seed, "accuracy": a + shift,
                         "recall": r, "precision": 1 - r, "sel_accuracy": a, "sel_recall": r})
        rows.append({"method": "CAMRI", "role": "worst1", "important_class": 1, "setting": json.dumps({"margin": 0.1}),
                     "seed": seed, "accuracy": 0.89 + shift, "recall": 0.60, "precision": 0.4,
                     "sel_accuracy": 0.89, "sel_recall": 0.6})
        rows.append({"method": "CE", "role": "worst1", "important_class": 1, "setting": "", "seed": seed,
                     "accuracy": 0.90 + shift, "recall": 0.50, "precision": 0.5, "sel_accuracy": 0.9, "sel_recall": 0.5})
    return pd.DataFrame(rows)


def test_tradeoff_figure_draws_the_curve_the_chosen_point_and_the_other_settings():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from camri_utils import plots

    import pandas as pd

    frame = _tradeoff_frame()
    sel = protocol.Selection({("CE + threshold", "worst1"): protocol.Choice({"bias": 1.0}, [], 0.6, 0.89),
                              ("CAMRI", "worst1"): None}, [], {"worst1": 1}, [1, 0], 0.85, "validation")
    exact = {"CE + threshold": pd.DataFrame({"bias": [-1.0, 0.5, 2.0], "accuracy": [0.91, 0.89, 0.81],
                                             "recall": [0.5, 0.6, 0.8], "precision": [0.5, 0.4, 0.2]})}
    fig, ax = plt.subplots()
    plots.draw_tradeoff(ax, frame, sel, "worst1", class_name="one", curves=exact)
    curve = [line for line in ax.lines if line.get_label() == "CE + threshold"]
    assert curve and list(curve[0].get_xdata()) == pytest.approx([0.91, 0.89, 0.81])  # the exact curve as given
    fig2, ax2 = plt.subplots()
    twin = {f"NormSoftmax + threshold (s = {s})": exact["CE + threshold"] for s in (16, 8)}
    plots.draw_tradeoff(ax2, frame, sel, "worst1", curves=twin)
    a, b = [line for line in ax2.lines if line.get_label().startswith("NormSoftmax + threshold (")]
    # One pattern per scale, told apart by the pattern (not a shade): the largest scale dotted.
    assert a.get_label().endswith("(s = 16)") and a.get_linestyle() == ":"
    assert b.get_linestyle() not in (":", "-") and a.get_color() == b.get_color()
    plt.close(fig2)
    # The patterns follow the scale, whatever order the curves come in; CE's curve is solid.
    labels = ["NormSoftmax + threshold (s = 8)", "CE + threshold (n = 5)", "NormSoftmax + threshold (s = 32)",
              "NormSoftmax + threshold (s = 16, n = 3 of 5)"]  # the seeds, as Part III's figures give them
    patterns = plots.curve_patterns(labels)
    assert patterns["CE + threshold (n = 5)"] == "-" and patterns["NormSoftmax + threshold (s = 32)"] == ":"
    assert patterns["NormSoftmax + threshold (s = 16, n = 3 of 5)"] == plots._CURVE_PATTERNS[1]
    assert len({str(patterns[k]) for k in labels}) == 4  # four curves, four patterns
    assert patterns == plots.curve_patterns(list(reversed(labels)))
    hollow = [line for line in ax.lines if line.get_label() == "CAMRI (other settings)"]
    assert hollow and (hollow[0].get_xdata()[0], hollow[0].get_ydata()[0]) == (pytest.approx(0.9), 0.6)
    ring = [line for line in ax.lines if line.get_markersize() == 9]
    assert [(round(line.get_xdata()[0], 6), line.get_ydata()[0]) for line in ring] == [(0.89, 0.6)]
    assert [c.get_label() for c in ax.containers] == ["CE"]  # no chosen CAMRI setting: no filled marker
    with pytest.raises(ValueError, match="x and y"):
        plots.draw_tradeoff(ax, frame, sel, "worst1", x="loss")
    plt.close(fig)
    # Settings told apart by another parameter are labelled with it (a tau-only setting once crashed).
    other = frame[frame.method == "CAMRI"].assign(method="Logit-adjusted CE", setting=json.dumps({"tau": 2.0}))
    sel.chosen[("Logit-adjusted CE", "worst1")] = None
    fig, ax = plt.subplots()
    plots.draw_tradeoff(ax, pd.concat([frame, other]), sel, "worst1", show_all=("CAMRI", "Logit-adjusted CE"))
    assert sorted(t.get_text() for t in ax.texts) == ["2", "2"]  # CAMRI m = 0.1 = 2.04 pi/64; tau 2
    plt.close(fig)
    assert [plots._setting_tag(p) for p in ({"max_margin": 0.5, "scale": 16.0, "drw_start_epoch": 9},
                                           {"weight": 10.0}, {"scale": 8.0}, {})] == ["0.5", "10", "8", ""]

"""Part III's stored runs as chapters 10 and 11 show them (camri_utils.replication): the paper's
Table 1 beside ours, the verdict lines and the one-line answer, the important class's confusions
and angles. On a quick fixture protocol run in CIFAR-10's format with role_grids (2 seeds; a
smoke test of the code, not a result), its comparisons rebuilt from hand-made per-seed gaps where
a verdict must come out exactly, and on hostile folders (another dataset, empty, incomplete)."""

import dataclasses
import json
import math
import shutil
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from sklearn.metrics import confusion_matrix

from camri_utils import protocol, replication
from camri_utils.data import fixtures
from camri_utils.protocol.report import comparison_table
from camri_utils.stats import signed


def _pts(fraction):
    """A gap in points as the chapters print it (camri_utils.stats.signed, two decimals)."""
    return signed(100 * fraction, 2)


_M = math.pi / 64
_AUTHORS = [{"margin": 4 * _M, "scale": 16.0}]
K_ALL = 100.0  # accuracy_k so large that every setting keeps "accuracy" (the fixture trains to chance)


def _spec():
    return protocol.ProtocolSpec(
        "cifar10", "quick", "mlp", epochs=1, batch_size=32, learning_rate=1e-3, seeds=[0, 1],
        camri_grid=[{"margin": 4 * _M, "scale": 16.0}, {"margin": 8 * _M, "scale": 8.0}], arcface_grid=_AUTHORS,
        wce_weights=[4.0], crwwce_weights=[], feature_dim=8, note="test", validation_size=40,
        normsoftmax_grid=[{"scale": 16.0}, {"scale": 8.0}], threshold_biases=[0.0, 1.0],
        role_grids={"worst2": {"camri_grid": _AUTHORS, "wce_weights": []},
                    "median": {"camri_grid": _AUTHORS, "wce_weights": []}})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from camri_utils import data

    root = tmp_path_factory.mktemp("replication")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAMRI_CACHE_DIR", str(root / "cache"))
        ds = data.load("cifar10", data_dir=fixtures.write("cifar10", root / "fx", per_class=12))
        protocol.run(_spec(), root / "results", progress=False, dataset=ds)
    return root / "results"


@pytest.fixture(scope="module")
def summary(folder):
    return replication.summarize(folder, "cifar10", accuracy_k=K_ALL)


def _chosen_records(summary, method, role):
    return summary.selection.chosen[(method, role)].runs


# The paper's Table 1 and ours

def test_table_1_holds_the_papers_numbers_and_ours_in_its_layout(summary):
    table = replication.table_1(summary, "cifar10")
    assert list(table.columns) == ["worst1", "worst2", "median"]
    paper, ours = replication.PAPER_LABEL, "this book (quick profile, mlp: not a result, 2 seeds)"
    assert paper == "paper (IJCNN 2022 poster, 10 trials, the authors' CNN)"
    # The poster's cells as it prints them: '-' where no setting kept accuracy, CE's accuracy only in the median.
    assert table.loc[("CAMRI", paper)].tolist() == [".7919 (.8821)", ".8505 (.8821)", ".9171 (.8798)"]
    assert table.loc[("WCE", paper)].tolist() == [".8023 (.8797)", "-", "-"]
    assert table.loc[("CE", paper)].tolist() == [".7383", ".8342", ".8886 (.8796)"]
    # Ours: WCE trains on worst1 only (role_grids), CRWWCE not at all: 'not run', never '-'.
    assert table.loc[("WCE", ours), "worst2"] == "not run" and table.loc[("CRWWCE", ours)].tolist() == ["not run"] * 3
    assert table.loc[("NormSoftmax", paper)].tolist() == ["not in the paper"] * 3
    # Our CAMRI cell from the chosen setting's records, by hand, in the paper's format (".7919 (.8821)").
    for role, c in summary.selection.important.items():
        runs = _chosen_records(summary, "CAMRI", role)
        recall, accuracy = (f"{v:.4f}".lstrip("0") for v in (np.mean([r["recall"][c] for r in runs]),
                                                              np.mean([r["accuracy"] for r in runs])))
        assert table.loc[("CAMRI", ours), role] == f"{recall} ({accuracy})"
    assert table.attrs["progress"] == ""
    assert {role: c for role, (c, _) in table.attrs["classes"].items()} == summary.selection.important


def test_the_cpu_presets_label_and_the_papers_gtsrb_cells():
    assert replication.ours_label(protocol.preset("cifar10", "cpu")) == "this book (CPU-scale network, 5 seeds)"
    gtsrb = replication.PAPER_TABLE_1["gtsrb"]
    assert replication.paper_cell(gtsrb["WCE"]["worst2"]) == ".9450 (.9814)"  # the poster: ".945"
    assert replication.paper_cell(gtsrb["CE"]["worst1"]) == ".7600"  # not ".76"
    assert replication.paper_cell(gtsrb["CE"]["median"]) == ".9896 (.9800)"
    assert replication.paper_cell(gtsrb["CRWWCE"]["median"]) == "-"
    assert set(replication.PAPER_TABLE_1) == {"cifar10", "gtsrb", "awa2"}
    for rows in replication.PAPER_TABLE_1.values():
        assert set(rows) == set(replication.PAPER_METHODS)


def _dash(summary, method, role):
    """The summary as summarize makes it when no setting of ``method`` keeps accuracy for ``role``."""
    chosen = {**summary.selection.chosen, (method, role): None}
    table = summary.table.copy()
    at = (table.method == method) & (table.role == role)
    table.loc[at, "setting"] = "-"
    table.loc[at, ["recall_mean", "accuracy_mean"]] = np.nan
    return dataclasses.replace(summary, selection=dataclasses.replace(summary.selection, chosen=chosen), table=table)


def test_no_setting_kept_gives_dash_not_not_run(summary, folder):
    dashed = _dash(summary, "CAMRI", "worst1")
    ours = replication.table_1(dashed).xs("this book (quick profile, mlp: not a result, 2 seeds)", level="source")
    assert ours.loc["CAMRI", "worst1"] == "-" and ours.loc["WCE", "worst2"] == "not run"
    lines = replication.verdict_lines(dashed)
    line = next(x for x in lines if x.startswith("worst1 (") and ", CAMRI:" in x)
    assert line.endswith(": no setting kept validation accuracy; nothing to compare.")
    assert "Undefined for worst1 (no setting kept validation accuracy)" in replication.fashion_mnist_answer(dashed)
    # The same through the real selection rule, wherever it leaves a cell empty.
    strict = replication.summarize(folder, "cifar10", accuracy_k=0.0)
    ours = replication.table_1(strict).xs("this book (quick profile, mlp: not a result, 2 seeds)", level="source")
    for (method, role), best in strict.selection.chosen.items():
        if method in ("CAMRI", "ArcFace") and best is None:
            assert ours.loc[method, role] == "-"


def test_gain_table_pairs_the_papers_gain_with_ours(summary):
    gains = replication.gain_table(summary).set_index(["method", "role"])
    assert gains.loc[("CAMRI", "worst1"), "paper_gain"] == pytest.approx(.7919 - .7383, abs=1e-12)
    assert np.isnan(gains.loc[("WCE", "worst2"), "paper_gain"]) and np.isnan(gains.loc[("WCE", "worst2"), "gain"])
    c = summary.selection.important["worst1"]
    ce = {r["seed"]: r["recall"][c] for r in summary.selection.ce}
    diffs = [r["recall"][c] - ce[r["seed"]] for r in _chosen_records(summary, "CAMRI", "worst1")]
    assert gains.loc[("CAMRI", "worst1"), "gain"] == pytest.approx(np.mean(diffs), abs=1e-12)


def test_paper_table_is_the_papers_rows_of_table_1(summary):
    for dataset in replication.PAPER_TABLE_1:
        alone = replication.paper_table(dataset)
        assert list(alone.columns) == ["worst1", "worst2", "median"]
        assert list(alone.index) == [(m, replication.PAPER_LABEL) for m in replication.PAPER_METHODS]
        paper = replication.PAPER_TABLE_1[dataset]
        for method in replication.PAPER_METHODS:
            assert alone.loc[(method, replication.PAPER_LABEL)].tolist() == [
                replication.paper_cell(paper[method][r]) for r in ("worst1", "worst2", "median")]
    # The same cells as the paper's rows of the table beside ours.
    both = replication.table_1(summary).xs(replication.PAPER_LABEL, level="source", drop_level=False)
    pd.testing.assert_frame_equal(both.loc[list(replication.paper_table("cifar10").index)],
                                  replication.paper_table("cifar10"))
    with pytest.raises(ValueError, match="dataset must be one of"):
        replication.paper_table("fashion_mnist")


def test_short_sources_only_relabel(summary):
    table = replication.table_1(summary)
    short = replication.short_sources(table, summary.spec)
    assert set(short.index.get_level_values("source")) == {"paper", "this book"}
    np.testing.assert_array_equal(short.to_numpy(), table.to_numpy())  # the cells, unchanged
    assert replication.sources_text(summary.spec) == (f"{replication.PAPER_LABEL}; "
                                                      f"{replication.ours_label(summary.spec)}")
    assert replication.sources_text() == replication.PAPER_LABEL
    alone = replication.short_sources(replication.paper_table("gtsrb"))
    assert set(alone.index.get_level_values("source")) == {"paper"}
    nets = replication.short_sources(replication.network_frame(summary.spec), summary.spec)
    assert list(nets.index) == ["this book", "paper"]


def test_gain_lines_say_the_gain_tables_numbers_and_why_one_is_missing(summary):
    gains = replication.gain_table(summary)
    lines = replication.gain_lines(summary)
    assert len(lines) == len(gains)
    for row, line in zip(gains.itertuples(), lines):
        assert line.startswith(f"{row.role} (") and f"), {row.method}: recall gain over CE" in line
        if np.isnan(row.paper_gain):
            assert "paper: no setting kept accuracy" in line
        else:
            assert f"paper {100 * row.paper_gain:+.2f};" in line
        if np.isnan(row.gain):
            assert "ours: " in line and "[" not in line.split("ours")[1]  # no number where it is undefined
        else:
            # stats.signed's form (tested on its own): an exact zero prints "0.00", never "+0.00"
            assert f"ours {_pts(row.gain)} [{_pts(row.gain_low)}, {_pts(row.gain_high)}] (n = 2)" in line
    wce = next(x for x in lines if x.startswith("worst2 (") and ", WCE:" in x)
    assert wce.endswith("ours: not run (the preset trains no setting of it for this role).")
    dashed = replication.gain_lines(_dash(summary, "CAMRI", "worst1"))
    assert next(x for x in dashed if x.startswith("worst1 (") and ", CAMRI:" in x).endswith(
        "ours: no setting kept validation accuracy.")


def test_tradeoff_draws_chapter_7s_figure_from_the_folder(summary, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = summary.selection.important["worst1"]
    fig, ax = plt.subplots()
    replication.tradeoff(ax, summary, folder, "worst1")
    curves = protocol.threshold_curve_frames(summary.records, c, lambda r: protocol.load_scores(folder, r), "test")
    # Each threshold curve drawn from the stored scores: CE's and the control's at both scales.
    assert set(curves) == {"CE + threshold", "NormSoftmax + threshold (s = 16)", "NormSoftmax + threshold (s = 8)"}
    drawn = {line.get_label(): line for line in ax.lines}
    for label, curve in curves.items():
        line = next(v for k, v in drawn.items() if k.startswith(label.removesuffix(")")))
        np.testing.assert_array_equal(line.get_xdata(), curve["accuracy"].to_numpy())
    # Each curve's legend entry says the seeds it is the mean of: all of them here.
    assert "CE + threshold (n = 2)" in drawn and "NormSoftmax + threshold (s = 16, n = 2)" in drawn
    assert ax.get_title() == f"worst1: class {c} ({summary.records[0]['class_names'][c]})"
    with pytest.raises(ValueError, match="role must be one of"):
        replication.tradeoff(ax, summary, folder, "worst3")
    plt.close(fig)


def test_network_frame_counts_both_networks_from_their_layers():
    from camri_utils import cost, models

    spec = protocol.preset("gtsrb", "cpu")
    frame = replication.network_frame(spec)
    ours, paper = frame.iloc[0], frame.iloc[1]
    assert list(frame.index) == [replication.ours_label(spec), replication.PAPER_LABEL]
    assert (ours.network, ours.epochs, ours.trials) == ("cpu_cnn_mx2", 12, 5)  # results/gtsrb-pilot's choice
    # GTSRB: 43 classes at 32x32; the paper states no epochs for it.
    model = models.build("cpu_cnn_mx2", (32, 32, 3), 43, feature_dim=spec.feature_dim)
    cosine, dense = replication.PARAMETERS
    assert ours[cosine] == model.count_params()
    # CE's dense head: the same kernel plus one bias per class (the pilot counted CE's network).
    assert ours[dense] - ours[cosine] == 43 and paper[dense] - paper[cosine] == 43
    assert ours["forward MFLOP per image"] == pytest.approx(cost.forward_flops(model) / 1e6, rel=1e-12)
    assert paper["forward MFLOP per image"] == pytest.approx(cost.model_flops("paper_cnn", "gtsrb") / 1e6, rel=1e-12)
    assert (paper.network, paper.epochs, paper.trials) == ("paper_cnn", "not stated", 10)
    assert replication.network_frame(protocol.preset("cifar10", "cpu")).iloc[1].epochs == 300
    cells = replication.network_cells(frame)
    assert cells[cosine].tolist() == [f"{int(v):,}" for v in frame[cosine]] and "," in cells.iloc[0][cosine]
    assert cells["forward MFLOP per image"].tolist() == [f"{v:,.1f}" for v in frame["forward MFLOP per image"]]


def test_network_lines_time_the_papers_network_at_the_measured_rate():
    from camri_utils import cost

    spec = protocol.preset("cifar10", "cpu")
    frame = replication.network_frame(spec)
    ratio, cpu = replication.network_lines(frame, spec)
    flops = frame["forward MFLOP per image"]
    assert f"costs {flops.iloc[1] / flops.iloc[0]:.0f} times the FLOPs" in ratio
    # By hand: (3 passes per training image + 1 per validated image) x the paper CNN's forward FLOPs,
    # at the rate of benchmarks/RESULTS.md's paper-CNN step; the chapters' Colab cost cell uses the same rate.
    rate = cost.measured_cpu_rate()["flops_per_s"]
    epoch_s = (3 * 45000 + 5000) * cost.model_flops("paper_cnn", "cifar10", 32) / rate
    assert "(45,000 training images, 5,000 validated)" in cpu
    assert f"about {epoch_s / 60:.0f} minutes there" in cpu
    assert f"65 planned trainings of 20 epochs about {65 * 20 * epoch_s / 86400:.0f} days" in cpu
    assert replication._duration(7.4 * 3600) == "7 hours" and replication._duration(90) == "90 seconds"


def test_not_recorded_text_names_the_command_or_why_there_is_none():
    text = replication.not_recorded_text("gtsrb", "results/gtsrb-cpu")
    assert "has not been recorded yet" in text and "`results/gtsrb-cpu`" in text
    assert text.endswith(replication.paper_network_on_cpu(protocol.preset("gtsrb", "cpu")))
    assert "camri protocol --dataset gtsrb --profile cpu" in text and "--output results/gtsrb-cpu" in text
    awa2 = replication.not_recorded_text("awa2", "results/awa2-cpu")
    assert "No run of this book is stored for AwA2" in awa2 and "13 GB" in awa2 and "fixtures" in awa2
    assert "--profile cpu" not in awa2  # there is no CPU preset for AwA2
    with pytest.raises(ValueError, match="dataset must be one of"):
        replication.not_recorded_text("mnist", "results/mnist")


# The verdict lines and the answer

def test_verdict_lines_name_the_reports_numbers(summary):
    rows = replication.verdicts(summary)
    assert len(rows) == 3 * 3 * 2  # roles x methods x references
    comp = summary.comparison
    lines = replication.verdict_lines(summary)
    for row in rows[rows.verdict.isin(["above", "not told apart", "below"])].itertuples():
        mine = comp[(comp.role == row.role) & (comp.method == row.method) & (comp.setting == row.setting)
                    & (comp.reference == row.reference)].iloc[0]
        assert row.verdict == mine.verdict and row.resolved  # two seeds: an interval
        words = "CE's threshold curve" if row.reference == "CE" else "its control's"
        line = next(x for x in lines if x.startswith(f"{row.role} (") and f", {row.method} (" in x and words in x)
        # Two seeds with the same gap (the fixture's) give a zero-width interval, said in words.
        spread = (", its seeds equal" if mine.accuracy_gap_low == mine.accuracy_gap_high
                  else f" [{_pts(mine.accuracy_gap_low)}, ")
        assert f"oracle {_pts(mine.accuracy_gap)}{spread}" in line
        spread = ", its seeds equal" if mine.oos_accuracy_gap_low == mine.oos_accuracy_gap_high else " ["
        assert f"out of sample {_pts(mine.oos_accuracy_gap)}{spread}" in line and line.endswith("n = 2.")
    wce = rows[(rows.method == "WCE") & (rows.role == "worst1") & (rows.reference == "control")].iloc[0]
    assert wce.verdict == "no control" and "its control is CE itself" in wce.why
    assert any(x.startswith("worst2 (") and ", WCE: the preset trains no setting of it" in x for x in lines)


def _rebuilt(summary, per_seed_gaps, role="worst1"):
    """The summary with CAMRI's ``role`` comparison with its control replaced by hand-made
    per-seed accuracy gaps (oracle and out of sample equal), its table rebuilt by the report."""
    per_seed = summary.comparisons.copy()
    key = protocol.setting_key(summary.selection.chosen[("CAMRI", role)].params)
    mask = ((per_seed.role == role) & (per_seed.method == "CAMRI") & (per_seed.setting == key)
            & (per_seed.reference == "control"))
    rows = per_seed[mask].sort_values("seed").iloc[:len(per_seed_gaps)].copy()
    rows["accuracy_gap"] = rows["oos_accuracy_gap"] = per_seed_gaps
    per_seed = pd.concat([per_seed[~mask], rows])
    return dataclasses.replace(summary, comparisons=per_seed, comparison=comparison_table(per_seed))


@pytest.mark.parametrize("gaps,verdict", [([-0.020, -0.021], "below"), ([0.020, 0.021], "above")])
def test_a_margin_off_its_controls_curve_says_no_with_its_numbers(summary, gaps, verdict):
    below = _rebuilt(summary, gaps)
    row = replication.verdicts(below).set_index(["role", "method", "reference"]).loc[("worst1", "CAMRI", "control")]
    assert row.verdict == verdict
    half = st.t.ppf(0.975, 1) * np.std(gaps, ddof=1) / np.sqrt(2)  # the paired t interval, by hand
    mean = np.mean(gaps)
    assert (row.accuracy_gap_low, row.accuracy_gap_high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    answer = replication.fashion_mnist_answer(below)
    way = {"below": "and not in the margin's favour", "above": "in the margin's favour"}[verdict]
    assert answer.startswith(f"Does the Fashion-MNIST answer hold on CIFAR-10? No ({way}: ")
    assert f"): CAMRI's chosen setting is {verdict} its control's threshold curve for worst1" in answer
    assert f"{_pts(mean)} [{_pts(mean - half)}, {_pts(mean + half)}] points" in answer
    # The same setting against CE's threshold moving: the other half of the question, its own verdict.
    ce = replication.verdicts(below).set_index(["role", "method", "reference"]).loc[("worst1", "CAMRI", "CE")]
    assert "Against CE's threshold moving, the other half of the book's question, the same setting" in answer
    assert f"{ce.verdict} for worst1 (accuracy at the same recall {_pts(ce.accuracy_gap)} [" in answer


@pytest.mark.parametrize("oracle,oos,words", [
    ([-0.020, -0.021], [0.01, -0.01], "not told apart (below the oracle, the best threshold on the test set, but not "
                                      "below the threshold chosen on validation)"),
    ([0.01, -0.01], [0.020, 0.021], "not told apart (above the threshold chosen on validation, but not above the "
                                    "oracle)"),
    ([0.01, -0.01], [0.01, -0.01], "not told apart. Accuracy")])
def test_a_not_told_apart_clearing_zero_on_one_reference_says_which(summary, oracle, oos, words):
    rebuilt = _rebuilt(summary, oracle)
    per_seed = rebuilt.comparisons.copy()
    key = protocol.setting_key(summary.selection.chosen[("CAMRI", "worst1")].params)
    mask = ((per_seed.role == "worst1") & (per_seed.method == "CAMRI") & (per_seed.setting == key)
            & (per_seed.reference == "control") & per_seed.accuracy_gap.isin(oracle))
    per_seed.loc[mask, "oos_accuracy_gap"] = oos
    rebuilt = dataclasses.replace(rebuilt, comparisons=per_seed, comparison=comparison_table(per_seed))
    (line,) = [t for t in replication.verdict_lines(rebuilt)
               if t.startswith("worst1") and "CAMRI" in t and "its control's" in t]
    assert f"(normalized softmax, s = 16): {words}" in line


def test_a_no_with_roles_off_the_curve_both_ways_says_so(summary):
    both = _rebuilt(_rebuilt(summary, [-0.020, -0.021]), [0.020, 0.021], role="worst2")
    verdicts = replication.verdicts(both).set_index(["role", "method", "reference"]).verdict
    assert (verdicts[("worst1", "CAMRI", "control")], verdicts[("worst2", "CAMRI", "control")]) == ("below", "above")
    answer = replication.fashion_mnist_answer(both)
    assert "? No (one way in some roles, the other in others): CAMRI's chosen setting is below its control's" in answer
    assert "; above its control's threshold curve for worst2" in answer


def test_an_answer_holds_only_where_every_verdict_is_not_told_apart(summary):
    held = _rebuilt(summary, [0.01, -0.01])
    verdicts = replication.verdicts(held)
    camri = verdicts[(verdicts.method == "CAMRI") & (verdicts.reference == "control")]
    assert camri.set_index("role").verdict["worst1"] == "not told apart"  # [+1, -1] points: the interval holds 0
    answer = replication.fashion_mnist_answer(held)
    if (camri.verdict == "not told apart").all():
        assert "? Yes, in 3 of 3 roles" in answer
    else:
        assert "? No (" in answer


def test_one_seed_gives_no_verdict_and_no_answer(summary):
    one = _rebuilt(summary, [-0.02])
    row = replication.verdicts(one).set_index(["role", "method", "reference"]).loc[("worst1", "CAMRI", "control")]
    assert not row.resolved and row.why == "1 seed: no interval"
    assert "Undefined for worst1 (1 seed: no interval)" in replication.fashion_mnist_answer(one)
    (line,) = [t for t in replication.verdict_lines(one) if t.startswith("worst1") and "CAMRI" in t
               and "its control" in t]
    assert ": no verdict (1 seed: no interval). Accuracy at the same recall" in line  # not "not told apart"


def test_a_missing_control_is_undefined_not_substituted(summary):
    comp = summary.comparison
    gone = dataclasses.replace(summary, comparison=comp[~((comp.method == "CAMRI") & (comp.reference == "control"))])
    rows = replication.verdicts(gone)
    camri = rows[(rows.method == "CAMRI") & (rows.reference == "control")]
    assert (camri.verdict == "undefined").all()
    assert camri.why.str.startswith("no normalized-softmax run at s = ").all()
    assert np.isnan(camri.accuracy_gap).all() if "accuracy_gap" in camri else True
    assert "Not answerable from these records" in replication.fashion_mnist_answer(gone)
    none = dataclasses.replace(summary, comparison=None)
    assert "no threshold curves in this run" in replication.verdicts(none).why.iloc[0]


# The important class's confusions and angles

def _stored(folder, record):
    return protocol.load_scores(folder, record)


def test_confusions_are_the_records_mean_matrices(folder, summary):
    c = summary.selection.important["worst1"]
    frame = replication.confusions(summary, "worst1", nearest=3)
    runs = replication.compared_runs(summary, "worst1")
    assert len(runs) == 3 and list(runs)[1] == "control: NormSoftmax s = " + f"{runs[list(runs)[2]][0]['params']['scale']:g}"
    name = summary.records[0]["class_names"][c]
    for label, records in runs.items():
        # Independently: scikit-learn's confusion matrix of each run's stored test scores, mean over seeds.
        mean = np.mean([confusion_matrix(_stored(folder, r)["y_test"], _stored(folder, r)["test"].argmax(1),
                                         labels=range(10)) for r in records], axis=0)
        part = frame.loc[f"{label} (n=2)"]
        for k_text, row in part.iterrows():
            k = int(k_text.split(":")[0])
            assert row[f"{name} missed as"] == mean[c, k] and row[f"{name} taken from"] == mean[k, c]


def test_angle_summary_matches_float64_numpy(folder, summary):
    c = summary.selection.important["worst1"]
    frame = replication.angle_summary(summary, folder, "worst1")
    name = summary.records[0]["class_names"][c]
    for label, records in replication.compared_runs(summary, "worst1").items():
        means = []
        for r in records:
            s = _stored(folder, r)
            cos = (s["test_cosines"] if r["method"] == "CE" else s["test"]).astype(np.float64)
            y = s["y_test"]
            means.append(np.degrees(np.arccos(np.clip(cos[y == c, c], -1, 1))).mean())
        # Same inputs, summed in another order: equal to rounding.
        assert frame.loc[label, f"mean angle, {name} (deg)"] == pytest.approx(np.mean(means), rel=1e-12)
        assert frame.loc[label, "n"] == 2
    classes = replication.class_angles(summary, folder, "worst1")
    assert classes.index[c].endswith(" *") and list(classes.columns) == list(frame.index)
    assert classes.iloc[c].tolist() == pytest.approx(frame[f"mean angle, {name} (deg)"].tolist(), rel=1e-12)
    tests = replication.angle_verdicts(summary, folder, "worst1")
    assert len(tests) == 10 and set(tests.verdict) <= {"holds", "reversed", "unresolved"}


# Hostile folders

def test_another_datasets_folder_is_refused(folder):
    with pytest.raises(protocol.ProtocolError, match="holds a protocol run on 'cifar10', not on 'gtsrb'"):
        replication.summarize(folder, "gtsrb")
    with pytest.raises(ValueError, match="the datasets of the paper's Table 1"):
        replication.summarize(folder, "fashion_mnist")


def test_an_empty_folder_says_no_ce_records(folder, tmp_path):
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    shutil.copy(folder / "protocol.json", empty / "protocol.json")
    with pytest.raises(protocol.ProtocolError, match="no CE run of this protocol is recorded"):
        replication.summarize(empty, "cifar10")
    with pytest.raises(protocol.ProtocolError):
        replication.summarize(tmp_path / "nowhere", "cifar10")


def test_an_incomplete_folder_says_so_everywhere(folder, tmp_path):
    part = tmp_path / "part"
    shutil.copytree(folder, part, ignore=shutil.ignore_patterns(".locks"))
    summary = replication.summarize(folder, "cifar10", accuracy_k=K_ALL)
    for r in _chosen_records(summary, "CAMRI", "worst1"):  # drop seed 1 of CAMRI's chosen worst1 setting
        if r["seed"] == 1:
            for suffix in (".json", ".npz"):
                (part / "runs" / f"{r['run_id']}{suffix}").unlink()
    incomplete = replication.summarize(part, "cifar10", accuracy_k=K_ALL)
    table = replication.table_1(incomplete)
    assert table.attrs["progress"].startswith("Incomplete: ")
    ours = table.xs("this book (quick profile, mlp: not a result, 2 seeds)", level="source")
    assert any(cell.endswith("; n = 1 of 2") for cell in ours.loc["CAMRI"])
    lines = replication.verdict_lines(incomplete)
    assert lines[0].startswith("Incomplete: ") and "the answer may change" in replication.fashion_mnist_answer(
        incomplete)
    assert any("n = 1 of 2" in label for label in replication.confusions(incomplete, "worst1").index.get_level_values(0))


def _without(folder, tmp_path, drop):
    """A copy of the fixture folder without the runs whose record ``drop`` accepts (what a
    run in progress holds), summarized."""
    import json

    part = tmp_path / "part"
    shutil.copytree(folder, part, ignore=shutil.ignore_patterns(".locks"))
    for path in sorted((part / "runs").glob("*.json")):
        if drop(json.loads(path.read_text())):
            path.unlink()
            path.with_suffix(".npz").unlink()
    return part, replication.summarize(part, "cifar10", accuracy_k=K_ALL)


def test_a_method_with_no_run_recorded_is_not_a_selection_failure(folder, tmp_path):
    """No CAMRI run recorded yet: every page says so, with the planned count, once per role
    (never 'no setting kept accuracy', never doubled brackets)."""
    _, none = _without(folder, tmp_path, lambda r: r["method"] == "CAMRI")
    planned = {c: t for (m, c), (d, t) in none.status.items() if m == "CAMRI"}
    # The fixture's plan: two CAMRI settings x 2 seeds on worst1, the authors' setting on worst2 and median.
    important = none.selection.important
    assert planned[important["worst1"]] == 4 and planned[important["median"]] == 2
    ours = replication.table_1(none).xs(replication.ours_label(none.spec), level="source")
    for role, c in important.items():
        assert ours.loc["CAMRI", role] == f"no run yet (0 of {planned[c]})"
    rows = replication.verdicts(none)
    camri = rows[rows.method == "CAMRI"]
    assert (camri.verdict == "no run yet").all()
    assert camri.why.str.fullmatch(r"no run recorded yet, 0 of \d+ planned").all()
    lines = replication.verdict_lines(none)
    line = next(x for x in lines if x.startswith("worst1 (") and ", CAMRI:" in x)
    assert line.endswith(f": no run recorded yet, 0 of {planned[important['worst1']]} planned; nothing to compare.")
    answer = replication.fashion_mnist_answer(none)
    assert answer == ("Does the Fashion-MNIST answer hold on CIFAR-10? Not answerable yet: no CAMRI run is recorded for "
                      f"any role (0 of {sum(planned.values())} planned). {replication.progress_text(none)}: the answer "
                      "may change.")
    gains = [x for x in replication.gain_lines(none) if ", CAMRI:" in x]
    assert all("ours: no run recorded yet, 0 of " in x for x in gains)
    for text in (answer, *lines, *gains):
        assert "((" not in text and "))" not in text, text
    # The others are still there, and say nothing of CAMRI.
    assert ours.loc["CE", "worst1"][0] == "."


def test_a_method_partly_recorded_says_how_much(folder, tmp_path):
    """Some of CAMRI's worst1 runs recorded, none of them kept accuracy: '- (k of N recorded)',
    and the answer names each role's reason once."""
    # One of worst1's two CAMRI settings (the one at s = 8, worst1's only), both seeds.
    _, part = _without(folder, tmp_path, lambda r: r["method"] == "CAMRI" and r["params"]["scale"] == 8.0)
    c = part.selection.important["worst1"]
    done, total = part.status[("CAMRI", c)]
    assert (done, total) == (2, 4)
    dashed = _dash(part, "CAMRI", "worst1")
    ours = replication.table_1(dashed).xs(replication.ours_label(part.spec), level="source")
    assert ours.loc["CAMRI", "worst1"] == "- (2 of 4 recorded)"
    row = replication.verdicts(dashed).set_index(["role", "method", "reference"]).loc[("worst1", "CAMRI", "CE")]
    assert row.verdict == "no setting kept accuracy"
    assert row.why == "no recorded setting kept validation accuracy, 2 of 4 planned runs recorded"
    answer = replication.fashion_mnist_answer(dashed)
    assert "Undefined for worst1 (no recorded setting kept validation accuracy, 2 of 4 planned runs recorded)." in answer
    assert answer.count("Undefined for") == 1 and "((" not in answer


def test_roles_with_one_reason_are_named_together(summary):
    dashed = _dash(_dash(summary, "CAMRI", "worst1"), "CAMRI", "median")
    answer = replication.fashion_mnist_answer(dashed)
    assert "Undefined for worst1 and median (no setting kept validation accuracy)." in answer


def test_a_curve_of_missing_seeds_says_so_in_the_legend(folder, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part, missing = _without(folder, tmp_path, lambda r: r["method"] == "NormSoftmax" and r["seed"] == 1
                             and r["params"]["scale"] == 16.0)
    fig, ax = plt.subplots()
    replication.tradeoff(ax, missing, part, "worst1")
    labels = {line.get_label() for line in ax.lines}
    assert "CE + threshold (n = 2)" in labels and "NormSoftmax + threshold (s = 16, n = 1 of 2)" in labels
    assert "NormSoftmax + threshold (s = 8, n = 2)" in labels
    plt.close(fig)


def test_the_report_counts_the_runs_behind_an_empty_cell():
    from camri_utils.protocol.report import cell_runs, empty_cell, empty_reason

    status = {("CE", None): (5, 5), ("ArcFace", None): (0, 5), ("CAMRI", 3): (12, 30), ("WCE", 3): (5, 5)}
    assert cell_runs(status, "ArcFace", 3) == (0, 5) and empty_cell((0, 5)) == "no run yet (0 of 5)"
    assert cell_runs(status, "CAMRI", 3) == (12, 30) and empty_cell((12, 30)) == "- (12 of 30 recorded)"
    assert empty_cell(cell_runs(status, "WCE", 3)) == "-" and empty_reason((5, 5)) == "no setting kept validation accuracy"
    assert cell_runs(status, "CE + threshold", 3) == (5, 5)  # the post-hoc row counts CE's runs
    assert cell_runs({}, "CAMRI", 3) is None and empty_cell(None) == "-"  # no plan: a '-' is final
    waiting = {("CE", None): (3, 5), ("class-specific", None): (0, 40)}
    assert cell_runs(waiting, "CAMRI", 3) == (None, None) and empty_cell((None, None)) == "- (CE runs missing)"
    assert "once every CE run is recorded" in empty_reason((None, None))


# Is the baseline trained? (chapter 7's criterion on the Part III records)

def _history_record(method, seed, last, accuracy=0.8, **extra):
    """A record whose validation accuracy ends with ``last`` (earlier epochs far away)."""
    return {"method": method, "seed": seed, "accuracy": accuracy,
            "history": {"val_accuracy": [0.1, 0.2, *last]}, **extra}


def _baseline_summary(ce, others=(), dataset="cifar10", seeds=5, schedule="cosine"):
    from types import SimpleNamespace

    spec = SimpleNamespace(dataset=dataset, seeds=list(range(seeds)), lr_schedule=schedule)
    return SimpleNamespace(spec=spec, selection=SimpleNamespace(ce=ce), records=[*ce, *others])


def test_baseline_check_passes_a_converged_baseline_in_two_lines():
    ce = [_history_record("CE", s, [0.79, 0.792, 0.7905]) for s in range(5)]
    conv, lines = replication.baseline_check(_baseline_summary(ce))
    assert conv.converged.all() and conv.last_epochs_range.tolist() == pytest.approx([0.002] * 5, abs=1e-12)
    assert len(lines) == 2 and "at least 0.75 (the pilot's target" in lines[0]
    assert lines[1] == ("5 of 5 recorded CE seeds converged; largest range 0.20 points; mean CE test accuracy 0.8000 "
                        "(at least the target). Criterion met: yes.")


def test_baseline_check_names_the_seeds_that_still_move_and_whether_other_methods_do():
    ce = [_history_record("CE", 0, [0.79, 0.792, 0.7905], accuracy=0.74),
          _history_record("CE", 3, [0.778, 0.7976, 0.7932], accuracy=0.74)]  # range 0.0196
    moving = _history_record("NormSoftmax", 3, [0.70, 0.71, 0.70], params={"scale": 8.0})
    threshold = {**ce[1], "method": "CE + threshold", "source_run": "x"}  # post-hoc: not a training run
    conv, lines = replication.baseline_check(_baseline_summary(ce, [moving, _history_record("CAMRI", 0, [.8] * 3),
                                                                   threshold]))
    assert conv.converged.tolist() == [True, False]
    assert "1 of 2 recorded CE seeds (of 5 planned) converged; largest range 1.96 points" in lines[1]
    assert "0.7400 (below the target). Criterion met: no." in lines[1]
    assert lines[2].startswith("Not converged by this criterion, with the learning rate decaying to zero by the last "
                               "epoch (cosine schedule): seed 3 (1.96 points over the last 3 epochs, 0.44 in the last "
                               "one). The protocol keeps these seeds")
    assert conv.last_epoch_change.tolist() == pytest.approx([0.0015, 0.0044], abs=1e-12)
    assert lines[3] == ("The same range over every recorded run: 2 of 4 miss it (CE: 1 of 2; NormSoftmax s = 8: 1 of 1; "
                        "CAMRI: 0 of 1): the movement is not CE's alone, but this network's at the end of its training; "
                        "a comparison with the control rests on two such final models.")
    # CE alone moving, on a constant schedule (GTSRB: another target); and no CE run at all.
    _, lines = replication.baseline_check(_baseline_summary(ce, dataset="gtsrb", schedule="constant"))
    assert "at least 0.95" in lines[0] and "cosine" not in lines[2] and lines[3].endswith("CE's alone.")
    assert replication.baseline_check(_baseline_summary([])) == (None, ["No CE run is recorded yet: nothing to check."])


def _noise_check(seed, windows, history, smoke=False):
    """A check as benchmarks/eval_noise.py writes it (the fields the chapter reads)."""
    return {"dataset": "cifar10", "seed": seed, "smoke_test": smoke, "epochs": len(history),
            "history": {"val_accuracy": history}, "windows_val_accuracy": windows}


def test_baseline_check_says_whether_the_weights_or_the_statistics_move():
    moving = [0.1, 0.2, 0.778, 0.7976, 0.7932]  # seed 4: range 1.96 points
    ce = [_history_record("CE", 0, [0.79, 0.792, 0.7905]), _history_record("CE", 4, moving[2:])]
    summary = _baseline_summary(ce)
    summary.spec.epochs = 20
    quiet = _noise_check(4, [0.7940, 0.7944, 0.7932, 0.7936], moving)  # ranges 0.12, 0.12 points
    _, lines = replication.baseline_check(summary, [quiet])
    assert lines[-1].startswith("What moves? benchmarks/eval_noise.py trained CE seed 4 again as the preset trains it "
                                "(the same network as the record of seed 4: equal validation histories), froze")
    assert ("Over 4 epochs of them, validation accuracy moved by at most 0.12 points within any 3 consecutive ones "
            "(seed 4: 0.12; the criterion allows 0.5)") in lines[-1]
    # cosine over 20 epochs: at the start of epoch 19 the rate is (1 + cos(0.9 pi)) / 2 = 2.45% of the initial one
    assert "froze the weights, and passed more epochs of training batches through it: that" in lines[-1]
    assert lines[-1].endswith("The statistics alone stay within the criterion. Of the seeds that miss it, seed 4 moved "
                              "1.96 points, 16.3 times its statistics' 0.12: more than the statistics alone move it, "
                              "so their weights still moved in the last epochs, at learning rates of at most 2.5% of "
                              "the initial one (the cosine schedule's last 2 epochs).")
    _, lines = replication.baseline_check(summary, [{**quiet, "seed": 0}])  # the seed that misses is not checked
    assert "Of the seeds that miss it, seed 4 moved 1.96 points, its statistics not checked: more" in lines[-1]
    calm = _baseline_summary(ce[:1])
    _, lines = replication.baseline_check(calm, [{**quiet, "seed": 0}])
    assert lines[-1].endswith("The statistics alone stay within the criterion, and every CE seed meets it.")
    other = _noise_check(0, [0.70, 0.71, 0.70], [0.1, 0.2, 0.79, 0.792, 0.7915])  # not seed 0's recorded history
    _, lines = replication.baseline_check(summary, [other, quiet])
    assert "trained CE seeds 0 and 4 again as the preset trains them" in lines[-1]
    assert ("(the same network as the record of seed 4: equal validation histories; seed 0: not the recorded network, "
            "whose validation history differs; it stands for") in lines[-1]
    assert "Over 3 to 4 epochs of them, validation accuracy moved by at most 1.00 points within any 3 consecutive ones " \
           "(seed 0: 1.00, seed 4: 0.12;" in lines[-1]
    assert lines[-1].endswith("a seed's miss may be this evaluation noise, not training.")
    assert replication.baseline_check(summary)[1] == replication.baseline_check(summary, [])[1] == lines[:-1]
    _, lines = replication.baseline_check(summary, [quiet, {**quiet, "seed": 7}])  # no CE record of seed 7
    assert ("again as the preset trains them (the same network as the record of seed 4: equal validation histories; "
            "seed 7: no CE record of that seed yet to compare with), froze") in lines[-1]
    with pytest.raises(ValueError, match="checks of this cifar10 folder include checks of gtsrb: move them"):
        replication.baseline_check(summary, [quiet, {**quiet, "dataset": "gtsrb"}])


def _write_check(folder, name, value):
    where = folder / replication.NOISE_FOLDER
    where.mkdir(exist_ok=True)
    (where / name).write_text(value if isinstance(value, str) else json.dumps(value))


@pytest.mark.parametrize("window", [2, 3, 4])
def test_the_last_learning_rate_is_keras_cosine_decay_at_the_windows_first_changed_epoch(window):
    import keras

    spec = types.SimpleNamespace(lr_schedule="cosine", epochs=20)
    # The range over the last `window` epochs measures the changes of the last window - 1 epochs.
    expected = float(keras.optimizers.schedules.CosineDecay(1.0, decay_steps=20)(20 - window + 1))
    # Keras computes 1 + cos in float32: near cos = -1 its error is absolute, a few float32 eps of 1.
    assert replication._last_rate(spec, window) == pytest.approx(expected, abs=1e-6)
    assert replication._last_rate(types.SimpleNamespace(lr_schedule="constant", epochs=20), window) is None


def test_eval_noise_reads_the_folders_checks_by_seed(tmp_path):
    assert replication.eval_noise(tmp_path) == []  # no check committed
    _write_check(tmp_path, "seed-4.json", _noise_check(4, [0.5] * 3, [0.5]))
    _write_check(tmp_path, "seed-0.json", _noise_check(0, [0.5] * 3, [0.5]))
    assert [c["seed"] for c in replication.eval_noise(tmp_path)] == [0, 4]
    _write_check(tmp_path, "seed-4-again.json", _noise_check(4, [0.5] * 3, [0.5]))
    with pytest.raises(ValueError, match="seed-4.json checks seed 4 again \\(seed-4-again.json did\\): keep one file"):
        replication.eval_noise(tmp_path)


@pytest.mark.parametrize("value,message", [
    ("{", "is not valid JSON"),
    ([], "it is not a JSON object"),
    (_noise_check(-1, [0.5] * 3, [0.5]), "field 'seed' must be a whole number of at least 0; got -1"),
    (_noise_check(True, [0.5] * 3, [0.5]), "field 'seed' must be a whole number of at least 0; got True"),
    (_noise_check(0, [0.5] * 2, [0.5]), "field 'windows_val_accuracy' must be a list of at least 3 accuracies"),
    (_noise_check(0, [0.5, 0.5, 1.5], [0.5]), "field 'windows_val_accuracy' must be a list of at least 3 accuracies"),
    (_noise_check(0, [0.5] * 3, ["0.5"]), "field 'history' must be an object whose val_accuracy is a list"),
    ({**_noise_check(0, [0.5] * 3, [0.5]), "smoke_test": "no"}, "field 'smoke_test' must be true or false"),
    (_noise_check(0, [0.5] * 3, [0.5, 0.6], smoke=True), "is a smoke test (trained for --epochs 2), not a result"),
])
def test_eval_noise_refuses_a_file_that_is_not_a_check_naming_it(tmp_path, value, message):
    _write_check(tmp_path, "seed-0.json", value)
    with pytest.raises(ValueError) as exc:
        replication.eval_noise(tmp_path)
    assert message in str(exc.value) and "seed-0.json" in str(exc.value)
    assert "benchmarks/eval_noise.py" in str(exc.value)


def test_baseline_check_of_runs_too_short_for_the_criterion_says_so(summary):
    conv, lines = replication.baseline_check(summary)  # the module's fixture: 1 epoch
    assert conv is None and lines == ["The CE runs record 1 epoch(s) of validation accuracy: too few for the "
                                      "criterion's 3, so it cannot be checked."]


def test_a_choice_among_partly_recorded_settings_says_so(summary):
    assert summary.settings and replication.partial_choice_lines(summary) == []  # the fixture is complete
    c = summary.selection.important["worst1"]
    names = replication._class_names(summary)
    done, missing = (protocol.setting_key({"margin": m * _M, "scale": s, "monotonic": False}) for m, s in
                     ((4, 16.0), (8, 8.0)))
    partial = dataclasses.replace(summary, settings={**summary.settings, ("CAMRI", c): {done: (2, 2), missing: (0, 2)},
                                                     ("WCE", c): {"w": (0, 2)}})  # none recorded: said elsewhere
    assert replication.partial_choice_lines(partial) == [
        f"worst1 ({names[c]}), CAMRI: 1 of its 2 settings recorded so far (m = 4π/64, s = 16: 2 of 2 seeds): its "
        "choice is made among these, on the seeds recorded so far, and may change as the others arrive."]
    # Every setting started, one of them on 1 seed of 2: the choice may still change.
    started = dataclasses.replace(summary, settings={**summary.settings, ("CAMRI", c): {done: (2, 2), missing: (1, 2)}})
    assert replication.partial_choice_lines(started) == [
        f"worst1 ({names[c]}), CAMRI: all 2 of its settings recorded, not all their seeds (m = 4π/64, s = 16: 2 of 2 "
        "seeds; m = 8π/64, s = 8: 1 of 2 seeds): its choice is made among these, on the seeds recorded so far, and "
        "may change as the others arrive."]
    # A grid of one setting (WCE's one weight) reads as one, not as "all 1 of its settings".
    weight = protocol.setting_key({"weight": 4.0})
    single = dataclasses.replace(summary, settings={**summary.settings, ("WCE", c): {weight: (1, 2)}})
    assert replication.partial_choice_lines(single) == [
        f"worst1 ({names[c]}), WCE: its one setting recorded, not all its seeds (weight 4: 1 of 2 seeds): its choice is "
        "made among these, on the seeds recorded so far, and may change as the others arrive."]


# The chapter's summary in numbers

def test_summary_points_read_their_numbers_from_the_records(summary, folder):
    points = replication.summary_points(summary, folder)
    names, table = replication._class_names(summary), summary.table.set_index(["method", "role"])
    gains = replication.gain_table(summary).set_index(["method", "role"])
    verdicts = {(r["role"], r["reference"]): r for r in replication.verdicts(summary).to_dict("records")
                if r["method"] == "CAMRI"}
    for role, c in summary.selection.important.items():
        (text,) = [p for p in points if p.startswith(f"**{role} ({names[c]})**")]
        mine, ce, gain = table.loc[("CAMRI", role)], table.loc[("CE", role)], gains.loc[("CAMRI", role)]
        assert f"from CE's {ce.recall_mean:.4f} to {mine.recall_mean:.4f}, {signed(100 * gain.gain, 1)} [" in text
        assert f"at a test accuracy of {mine.accuracy_mean:.4f} against CE's {ce.accuracy_mean:.4f}" in text
        moved = table.loc[("CE + threshold", role)]
        assert f"reaches {moved.recall_mean:.4f} at {moved.accuracy_mean:.4f}" in text
        for reference, words in (("CE", "CE's threshold moving"),
                                 ("control", "the threshold moving of the same head without the margin")):
            v = verdicts[(role, reference)]
            said = ({"above": "above", "below": "below", "not told apart": "not told apart from"}[v["verdict"]]
                    if v["resolved"] else "without a verdict against")
            assert f"{said} {words}" in text
        assert "largest margin of the grid" not in text  # one margin per scale in the fixture's grid
    angles = replication.angle_verdicts(summary, folder, "worst1")
    closer = angles[angles.against.str.startswith("control")].iloc[0]
    (text,) = [p for p in points if p.startswith("**Angles (")]
    assert f"changes by {signed(closer['diff'], 1)} [" in text and f"closer: {closer['verdict']})" in text
    assert points[-1] == "**Every planned run is recorded**: these are the run's final numbers."


def test_summary_points_say_what_is_open_missing_or_untried(summary, folder, tmp_path):
    part, incomplete = _without(folder, tmp_path, lambda r: r["method"] == "CAMRI" and r["seed"] == 1
                                and r.get("important_class") != summary.selection.important["worst1"])
    names, important = replication._class_names(summary), summary.selection.important
    last = replication.summary_points(incomplete, part)[-1]
    done = sum(d for d, _ in incomplete.status.values())
    assert last.startswith(f"**Still open**: {done} of {sum(t for _, t in incomplete.status.values())} planned runs")
    assert f"CAMRI on {names[important['worst2']]} (worst2): 1 of 2 runs" in last
    assert f"CAMRI on {names[important['worst1']]}" not in last  # worst1's grid is complete
    # One seed of worst2's setting: its gain without an interval, and no verdict, said once.
    (bird,) = [p for p in replication.summary_points(incomplete, part) if p.startswith("**worst2 (")]
    assert "points over CE, paired by seed (n = 1 of 2: no interval; the paper's gain: " in bird and "nan" not in bird
    assert bird.endswith("No verdict yet against either threshold curve (1 seed: no interval).")
    # One seed of every CAMRI setting: no interval anywhere, and never a "nan" printed.
    part1, one = _without(folder, tmp_path / "one", lambda r: r["method"] == "CAMRI" and r["seed"] == 1)
    points = replication.summary_points(one, part1)
    assert not any("nan" in p for p in points)
    (angles,) = [p for p in points if p.startswith("**Angles (")]
    assert angles.endswith("; n = 1).")
    # No setting kept accuracy: the role's bullet says why instead of a number.
    dashed = replication.summary_points(_dash(summary, "CAMRI", "median"), folder)
    assert f"**median ({names[important['median']]})**: no CAMRI result to summarize (" in "\n".join(dashed)
    # A chosen margin that is the largest of its scale's grid: larger ones were not tried, said so.
    chosen = summary.selection.chosen[("CAMRI", "worst1")].params
    smaller = dict(chosen, margin=chosen["margin"] / 2)
    for grid, said in (([chosen, smaller], True), ([chosen, dict(chosen, margin=2 * chosen["margin"])], False)):
        spec = dataclasses.replace(summary.spec, camri_grid=grid)
        text = replication.summary_points(dataclasses.replace(summary, spec=spec), folder)[0]
        assert ("That is the largest margin of the grid: larger ones were not tried." in text) is said

"""CAMRI's margin x scale sweep: planning on a protocol's setup and ranking, sharing the runs
the protocol holds, resuming, the paired frame, clear errors; and the committed sweep."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from camri_utils import protocol
from camri_utils.cli import main as camri
from camri_utils.data import fixtures
from camri_utils.protocol import sensitivity

ROOT = Path(__file__).resolve().parents[1]


def _tiny_protocol():
    return protocol.ProtocolSpec("fashion_mnist", "quick", "mlp", epochs=1, batch_size=32, learning_rate=1e-3,
                                 seeds=[0], camri_grid=[], arcface_grid=[], wce_weights=[], crwwce_weights=[],
                                 feature_dim=4, note="test", validation_size=8, normsoftmax_grid=[{"scale": 8.0}],
                                 threshold_biases=[0.0, 1.0, 3.0])


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A fixture protocol (CE and normalized softmax at s = 8, one seed) and a 2 x 2 sweep on it."""
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "cache"))
    from camri_utils import data

    ds = data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist", tmp_path / "f", per_class=4))
    spec = _tiny_protocol()
    monkeypatch.setattr(sensitivity.SweepSpec, "protocol", lambda self: _tiny_protocol())
    protocol.run(spec, tmp_path / "p", progress=False, dataset=ds)
    sweep = sensitivity.SweepSpec("fashion_mnist", "quick", margins=[0.0, 0.3], scales=[8.0, 16.0], seeds=[0])
    return sweep, ds, tmp_path / "p", tmp_path / "s"


def test_sweep_shares_the_protocols_runs_resumes_and_pairs_against_the_control(setup):
    sweep, ds, prot, out = setup
    # Normalized softmax at s = 8 is the protocol's control: read from it, not trained again.
    assert protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds) == 3
    assert protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds) == 0
    mine = protocol.load_records(out)
    assert sorted((r["method"], r["params"]["scale"]) for r in mine) == [("CAMRI", 8.0), ("CAMRI", 16.0),
                                                                         ("NormSoftmax", 16.0)]
    assert all(r["important_class"] == (None if r["method"] == "NormSoftmax" else
                                        protocol.rank_classes([x for x in protocol.load_records(prot)
                                                               if x["method"] == "CE"])[1]["worst1"])
               for r in mine)
    frame = protocol.sweep_frame(sweep, out, prot)
    c = frame.attrs["important_class"]
    assert list(frame.n_seeds) == [1, 1, 1, 1]
    assert (frame[frame.margin == 0].val_recall_gain == 0).all()
    records = {(r["params"]["scale"], r["params"].get("margin", 0.0)): r
               for r in mine + protocol.load_records(prot) if r["method"] in ("CAMRI", "NormSoftmax")}
    for row in frame.itertuples():
        cell, control = records[(row.scale, row.margin)], records[(row.scale, 0.0)]
        assert row.val_recall_gain == pytest.approx(cell["validation"]["recall"][c] - control["validation"]["recall"][c])
        assert row.test_accuracy_change == pytest.approx(cell["accuracy"] - control["accuracy"])
        assert row.maintains_accuracy == (cell["validation"]["accuracy"] >= frame.attrs["threshold"])
        # Against CE's exact test curve, from the CE run's scores directly (a dense sweep of biases).
        ce = next(r for r in protocol.load_records(prot) if r["method"] == "CE")
        scores = protocol.load_scores(prot, ce)
        points = []
        for b in np.linspace(-20, 20, 8001):
            shifted = scores["test"].astype(np.float64)
            shifted[:, c] += b
            pred = shifted.argmax(1)
            points.append((float(np.mean(pred == scores["y_test"])), float(np.mean(pred[scores["y_test"] == c] == c))))
        acc, rec = np.array(points).T
        best_acc = acc[rec >= cell["recall"][c] - 1e-9].max()
        assert row.ce_accuracy_gap == pytest.approx(cell["accuracy"] - best_acc)
        reach = rec[acc >= cell["accuracy"] - 1e-9]
        if reach.size:
            assert row.ce_recall_gap == pytest.approx(cell["recall"][c] - reach.max())
        else:  # more accurate than the whole curve: no recall gap, never a substitute
            assert np.isnan(row.ce_recall_gap) and row.ce_recall_n == 0
        assert row.ce_above == int(cell["accuracy"] - best_acc > 1e-9)
        # The m = 0 cells are the control: compared with CE only.
        assert np.isnan(row.control_accuracy_gap) if row.margin == 0 else not np.isnan(row.control_accuracy_gap)
    markdown = protocol.sweep_report(sweep, out, prot)
    assert (out / "sensitivity.md").read_text() == markdown and "(n=1)" in markdown
    assert (out / "sensitivity.csv").exists()


def test_sweep_errors_say_what_to_do(setup, tmp_path):
    sweep, ds, prot, out = setup
    with pytest.raises(protocol.ProtocolError, match="run `camri protocol` first"):
        empty = tmp_path / "empty"
        shutil.copytree(prot, empty)
        for p in (empty / "runs").iterdir():
            p.unlink()
        protocol.run_sweep(sweep, out, empty, progress=False, dataset=ds)
    other = tmp_path / "other"
    shutil.copytree(prot, other)
    stored = json.loads((other / "protocol.json").read_text())
    stored["spec"]["epochs"] = 2
    (other / "protocol.json").write_text(json.dumps(stored))
    with pytest.raises(protocol.ProtocolError, match="another protocol"):
        protocol.run_sweep(sweep, out, other, progress=False, dataset=ds)
    protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds)
    stored = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**stored, "data_source": "real"}))
    with pytest.raises(protocol.ProtocolError, match="holds runs on real data"):
        protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds)
    (out / "sweep.json").write_text(json.dumps({**stored, "sweep": {**stored["sweep"], "seeds": [0, 1]}}))
    with pytest.raises(protocol.ProtocolError, match="another sweep"):
        protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds)


def test_a_sweep_pins_its_data_and_threads_and_refuses_others_naming_both(setup):
    """The sweep pools the protocol's runs with its own: one data set and one thread setting for
    both folders (a sweep.json made before the pins gets them once its records agree)."""
    import dataclasses

    sweep, ds, prot, out = setup
    protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds)
    pins = protocol.read_pins(out)
    assert pins == protocol.read_pins(prot) and pins["fingerprint"] == ds.fingerprint
    x = ds.x_train.copy()
    x.flat[0] = 255 - x.flat[0]
    other = dataclasses.replace(ds, x_train=x)  # another copy of "the same" data
    with pytest.raises(protocol.ProtocolError, match=f"protocol.json holds runs on .*fingerprint {ds.fingerprint[:12]}"
                                                     f".*this data is .*fingerprint {other.fingerprint[:12]}"):
        protocol.run_sweep(sweep, out, prot, progress=False, dataset=other)
    with pytest.raises(protocol.ProtocolError, match="7 intra-op and 7 inter-op threads"):
        protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds, workers=2, threads=7)
    # The sweep's own pin: a sweep.json made before pins is pinned by the next run whose data agree.
    stored = json.loads((out / "sweep.json").read_text())
    del stored["data"]
    (out / "sweep.json").write_text(json.dumps(stored))
    assert protocol.read_pins(out) is None
    assert protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds) == 0
    assert protocol.read_pins(out) == pins
    stored["data"] = {**pins, "threads": {"intra_op": 3, "inter_op": 3}}  # as if its runs had 3 threads
    (out / "sweep.json").write_text(json.dumps(stored))
    with pytest.raises(protocol.ProtocolError, match="sweep.json holds runs trained with 3 intra-op"):
        protocol.run_sweep(sweep, out, prot, progress=False, dataset=ds)
    stored["data"] = "x"
    (out / "sweep.json").write_text(json.dumps(stored))
    with pytest.raises(protocol.ProtocolError, match="sweep.json field 'data' must hold exactly"):
        protocol.load_records(out)


@pytest.mark.parametrize("bad, match", [
    ({"margins": [-0.1]}, "margins"), ({"margins": [math.pi]}, "margins"), ({"scales": [0.0]}, "scales"),
    ({"seeds": []}, "seeds"), ({"scales": [8.0, 8.0]}, "distinct"), ({"role": "best"}, "role"),
])
def test_bad_sweep_values_are_clear_errors(bad, match):
    values = {"dataset": "fashion_mnist", "profile": "quick", "margins": [0.0, 0.3], "scales": [8.0], "seeds": [0]}
    with pytest.raises(ValueError, match=match):
        sensitivity.SweepSpec(**{**values, **bad})


def test_cli_without_a_protocol_folder_is_a_one_line_error(tmp_path, capsys):
    assert camri(["sensitivity", "report", "--protocol", str(tmp_path / "none"), "--output", str(tmp_path / "s")]) == 2
    assert "no protocol.json" in capsys.readouterr().err


def test_full_sweep_reuses_the_committed_protocol_runs_it_shares():
    """The sweep's s = 16 cells up to 8π/64 are the protocol's own runs (same ids): a change
    that broke the sharing would retrain them, and this would fail."""
    folder = ROOT / "results" / "fashion_mnist"
    sweep = protocol.sweep_preset("fashion_mnist", "full")
    spec, kind, records, c = sensitivity._protocol_state(sweep, folder)
    ids = {r["run_id"] for r in records}
    shared = [p for p in protocol.sweep_plan(sweep, spec, c, kind)
              if p.params["scale"] == 16.0 and p.params.get("margin", 0.0) <= 8 * math.pi / 64 + 1e-12]
    assert len(shared) == 5 * len(sweep.seeds)
    assert all(p.run_id in ids for p in shared)


def test_committed_sweep_is_what_report_makes_of_its_records(tmp_path):
    folder = ROOT / "results" / "fashion_mnist-sensitivity"
    if not (folder / "sweep.json").exists():
        pytest.skip("the sensitivity sweep has not recorded anything yet")
    assert protocol.results_folder("results/fashion_mnist-sensitivity", marker="sweep.json").resolve() == folder
    with pytest.raises(FileNotFoundError):
        protocol.results_folder("results/fashion_mnist-sensitivity")  # not a protocol folder
    sweep = protocol.sweep_preset("fashion_mnist", "full")
    assert json.loads((folder / "sweep.json").read_text()) == {"sweep": json.loads(json.dumps(sweep.to_dict())),
                                                               "data_source": "real"}
    spec, kind, _, c = sensitivity._protocol_state(sweep, ROOT / "results" / "fashion_mnist")
    planned = {p.run_id for p in protocol.sweep_plan(sweep, spec, c, kind)}
    for r in protocol.load_records(folder):
        assert r["run_id"] in planned and (folder / "runs" / f"{r['run_id']}.npz").exists()
    if (folder / "sensitivity.md").exists():
        copy = shutil.copytree(folder, tmp_path / "s")
        assert protocol.sweep_report(sweep, copy, ROOT / "results" / "fashion_mnist") == \
            (folder / "sensitivity.md").read_text()
        assert np.isfinite(protocol.sweep_frame(sweep, copy, ROOT / "results" / "fashion_mnist").n_seeds).all()


def test_sensitivity_heatmap_places_each_cell_and_outlines_the_accuracy_keeping_ones():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from camri_utils import plots

    frame = pd.DataFrame([
        {"scale": 8.0, "margin_pi64": 0.0, "n_seeds": 3, "val_recall_gain": 0.0, "maintains_accuracy": True},
        {"scale": 8.0, "margin_pi64": 4.0, "n_seeds": 3, "val_recall_gain": 0.05, "maintains_accuracy": False},
        {"scale": 16.0, "margin_pi64": 0.0, "n_seeds": 2, "val_recall_gain": 0.0, "maintains_accuracy": True},
        {"scale": 16.0, "margin_pi64": 4.0, "n_seeds": 0, "val_recall_gain": np.nan, "maintains_accuracy": np.nan},
    ])
    fig, ax = plt.subplots()
    plots.draw_sweep_grid(ax, frame, "val_recall_gain")
    image = ax.images[0]
    grid = image.get_array()
    assert grid[0, 1] == pytest.approx(0.05) and np.ma.is_masked(grid[1, 1]) or np.isnan(grid[1, 1])
    assert image.get_clim() == (pytest.approx(-0.05), pytest.approx(0.05))  # centred on zero
    outlined = [(p.get_x(), p.get_y()) for p in ax.patches]
    assert sorted(outlined) == [(-0.5, -0.5), (-0.5, 0.5)]  # m = 0 at both scales
    assert sorted(t.get_text() for t in ax.texts) == ["+0.000\nn=2", "+0.000\nn=3", "+0.050\nn=3"]
    with pytest.raises(ValueError, match="no column"):
        plots.draw_sweep_grid(ax, frame, "gain")
    plt.close(fig)


def test_sensitivity_heatmap_labels_cells_as_asked():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from camri_utils import plots

    frame = pd.DataFrame([{"scale": 8.0, "margin_pi64": 4.0, "n_seeds": 3, "test_recall_vs_threshold": 0.02,
                           "seeds_above_threshold": 2, "maintains_accuracy": False}])
    fig, ax = plt.subplots()
    plots.draw_sweep_grid(ax, frame, "test_recall_vs_threshold",
                          label=lambda r: f"{r.seeds_above_threshold}/{r.n_seeds} above")
    assert [t.get_text() for t in ax.texts] == ["+0.020\n2/3 above"] and not ax.patches
    plt.close(fig)

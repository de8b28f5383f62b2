"""Part III's protocol: the CPU presets' plan (a sweep on worst1, the authors' setting on worst2
and median: ProtocolSpec.role_grids), the report's 'not run' cells, and the Slurm job-array
script's shard selection under a simulated array environment."""

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from camri_utils import protocol
from camri_utils.data import fixtures
from camri_utils.protocol.runner import important_classes

REPO = Path(__file__).resolve().parents[1]
TASK = REPO / "scripts" / "slurm" / "protocol_task.sh"


@pytest.mark.parametrize("dataset", ["cifar10", "gtsrb"])
def test_cpu_presets_plan_the_papers_layout_in_65_runs(dataset):
    spec = protocol.preset(dataset, "cpu")
    shared = Counter(p.method for p in protocol.plan(spec, "real"))
    assert shared == {"CE": 5, "NormSoftmax": 10, "ArcFace": 5}
    worst1, worst2, median = 3, 5, 1
    specific = Counter((p.method, p.important_class) for p in protocol.plan(spec, "real", [worst1, worst2, median]))
    # worst1: CAMRI m in {4, 6, 8} pi/64 x s in {8, 16} and WCE weight 4; worst2 and median: the authors' CAMRI.
    assert specific == {("CAMRI", worst1): 30, ("WCE", worst1): 5, ("CAMRI", worst2): 5, ("CAMRI", median): 5}
    assert sum(shared.values()) + sum(specific.values()) == 65
    authors = [(p.params["margin"], p.params["scale"]) for p in protocol.plan(spec, "real", [worst1, worst2, median])
               if p.important_class == worst2]
    assert authors == [(pytest.approx(4 * 3.141592653589793 / 64, rel=1e-15), 16.0)] * 5


def test_a_class_playing_two_roles_gets_both_grids_once():
    spec = protocol.preset("cifar10", "cpu")
    runs = protocol.plan(spec, "real", [2, 2, 7])  # worst1 and worst2 the same class
    settings = Counter((p.method, p.important_class) for p in runs)
    assert settings[("CAMRI", 2)] == 30  # the authors' setting is one of worst1's sweep: not twice
    assert len({p.run_id for p in runs}) == len(runs)


@pytest.mark.parametrize("grids,problem", [
    ({"worst3": {"camri_grid": []}}, "worst3"),
    ({"worst2": {"arcface_grid": []}}, "arcface"),
    ({"worst2": {"camri_grid": {"margin": 0.1}}}, "lists"),
    ({"worst2": []}, "lists"),
    ("worst2", "lists"),
])
def test_bad_role_grids_are_refused(grids, problem):
    values = {**protocol.preset("cifar10", "cpu").to_dict(), "role_grids": grids}
    with pytest.raises(ValueError, match="role_grids must map roles"):
        protocol.ProtocolSpec.from_dict(values)


def test_role_grids_need_the_ranking():
    values = {**protocol.preset("cifar10", "cpu").to_dict(), "important_class": 3}
    with pytest.raises(ValueError, match="role_grids needs the CE ranking"):
        protocol.ProtocolSpec.from_dict(values)


def _tiny_spec():
    return protocol.ProtocolSpec(
        "fashion_mnist", "quick", "mlp", epochs=1, batch_size=32, learning_rate=1e-3, seeds=[0],
        camri_grid=[{"margin": 0.3, "scale": 8.0}], arcface_grid=[], wce_weights=[2.0], crwwce_weights=[],
        feature_dim=4, note="test", validation_size=8, threshold_biases=[0.0, 1.0],
        role_grids={"worst2": {"camri_grid": [], "wce_weights": []}, "median": {"wce_weights": []}})


def test_report_says_not_run_where_a_role_has_no_setting(tmp_path, monkeypatch):
    from camri_utils import data

    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "cache"))
    ds = data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist", tmp_path / "f", per_class=4))
    out = tmp_path / "results"
    protocol.run(_tiny_spec(), out, progress=False, dataset=ds)
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert Counter(r["method"] for r in records) == {"CE": 1, "CAMRI": 2, "WCE": 1}  # CAMRI on worst1 and median
    summary = protocol.summarize(out)
    rows = {(r.method, r.role): r for r in summary.table.itertuples()}
    assert rows[("CAMRI", "worst2")].setting == "not run" and rows[("WCE", "median")].setting == "not run"
    assert rows[("CAMRI", "median")].setting != "not run" and rows[("WCE", "worst1")].setting != "not run"
    line = next(x for x in summary.markdown.splitlines() if x.startswith("| WCE |"))
    assert line.count("not run") == 2
    assert "'not run': the preset trains no setting of that method for that role" in summary.markdown


def _task(env, tmp_path):
    camri = Path(sys.executable).parent / "camri"
    command = str(camri) if camri.exists() else f"{sys.executable} -m camri_utils.cli"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(TASK)], env={**base, "CAMRI": command, "CAMRI_CACHE_DIR": str(tmp_path / "c"),
                                                     "TF_CPP_MIN_LOG_LEVEL": "3", **env},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_slurm_array_task_runs_its_share(tmp_path):
    """Two array tasks (ids 0 and 1 of an array 0-1) each train the share `--shard i/2` gives:
    together every shared run once; the second pass of the array trains the class-specific runs."""
    root = fixtures.write("fashion_mnist", tmp_path / "fx", per_class=4)
    out = tmp_path / "results"
    env = {"DATASET": "fashion_mnist", "PROFILE": "quick", "OUTPUT": str(out), "DATA_DIR": str(root),
           "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "2"}
    spec = protocol.preset("fashion_mnist", "quick")
    shared = [p.run_id for p in protocol.plan(spec, "synthetic fixture")]
    done = set()
    for task in ("1", "0"):  # share 2 first: it cannot rank the classes before share 1 has trained CE
        result = _task({**env, "SLURM_ARRAY_TASK_ID": task}, tmp_path)
        share = int(task) + 1
        assert f"share {share}/2 of fashion_mnist/quick" in result.stdout, result.stderr[-2000:]
        now = {p.stem for p in (out / "runs").glob("*.json")}
        # Exactly this share's shared runs were added (the runner's shard i/n: every n-th run from i - 1).
        assert (now - done) & set(shared) == set(shared[share - 1::2])
        done = now
    assert set(shared) <= done and len(done) < 3 + 9, "share 2's class-specific runs wait for the second pass"
    for task in ("0", "1"):  # the array's second pass: the rest of the class-specific runs
        _task({**env, "SLURM_ARRAY_TASK_ID": task}, tmp_path)
    ce = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    ranked = important_classes(spec, [r for r in ce if r["method"] == "CE"])
    planned = {p.run_id for p in protocol.plan(spec, "synthetic fixture", ranked)} | set(shared)
    assert {p.stem for p in (out / "runs").glob("*.json")} == planned


@pytest.mark.parametrize("env,message", [
    ({}, "SLURM_ARRAY_TASK_ID is not set"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not set"),
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "2"}, "outside the array"),
])
def test_slurm_task_outside_an_array_is_refused(env, message, tmp_path):
    result = _task({"DATASET": "fashion_mnist", "PROFILE": "quick", "OUTPUT": str(tmp_path / "o"), **env}, tmp_path)
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "o").exists()

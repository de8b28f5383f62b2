"""Compact score files (ProtocolSpec.score_storage = "compact", issue 29 item 3: GTSRB's folder
under 60 MB). One quick fixture protocol in GTSRB's format (43 classes) is trained once and
written twice, each run's very arrays in full and in the compact layout; every output the book
computes from stored scores (the table, the curves and comparisons, threshold moving, the
out-of-sample references, the replication chapter's tables, verdicts, confusions and angles,
chapter 8's angles) must be *equal* from the two folders: the same float16 values feed the
same float64 arithmetic, so no tolerance. Then the budget, on synthetic arrays of GTSRB's
shape, and hostile compact files."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camri_utils import angles, io, metrics, protocol, replication
from camri_utils.data import fixtures
from camri_utils.protocol import compact, curves, runner, store
from camri_utils.protocol.selection import THRESHOLD_SOURCES

RESULTS = Path(__file__).resolve().parents[1] / "results"
_M = math.pi / 64
_AUTHORS = [{"margin": 4 * _M, "scale": 16.0}]
K_ALL = 100.0  # accuracy_k so large that every setting keeps "accuracy" (the fixture trains to chance)
CURVE_FIELDS = ("c", "bias", "accuracy", "recall", "precision", "switch")


def _spec(storage):
    return protocol.ProtocolSpec(
        "gtsrb", "quick", "mlp", epochs=1, batch_size=32, learning_rate=1e-3, seeds=[0, 1],
        camri_grid=[{"margin": 4 * _M, "scale": 16.0}, {"margin": 8 * _M, "scale": 8.0}], arcface_grid=_AUTHORS,
        wce_weights=[4.0], crwwce_weights=[], feature_dim=8, note="test", validation_size=86,
        dataset_options={"size": 8}, normsoftmax_grid=[{"scale": 16.0}, {"scale": 8.0}], threshold_biases=[0.0],
        role_grids={"worst2": {"camri_grid": _AUTHORS, "wce_weights": []},
                    "median": {"camri_grid": _AUTHORS, "wce_weights": []}}, score_storage=storage)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(full, compact): one training, each run's arrays written in both layouts."""
    from camri_utils import data

    root = tmp_path_factory.mktemp("compact")
    full, packed = root / "full", root / "compact"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAMRI_CACHE_DIR", str(root / "cache"))
        ds = data.load("gtsrb", data_dir=fixtures.write("gtsrb", root / "fx", per_class=8), size=8)
        store.open_output(_spec("full"), full, ds.source.kind)
        write = store.write_record

        def both(output, record, scores=None, compact_classes=None):
            write(full, record, scores)  # the same arrays, in full
            return write(output, record, scores, compact_classes)

        mp.setattr(runner, "write_record", both)
        protocol.run(_spec("compact"), packed, progress=False, dataset=ds)
    return full, packed


@pytest.fixture(scope="module")
def summaries(folders):
    return tuple(replication.summarize(f, "gtsrb", accuracy_k=K_ALL) for f in folders)


def _npz(folder, record):
    with np.load(folder / "runs" / f"{record['run_id']}.npz") as stored:
        return {k: stored[k] for k in stored.files}


# ---------------------------------------------------------------------------------------------
# The layout
# ---------------------------------------------------------------------------------------------
def _random_scores(rng, n, n_classes, ties=True):
    s = rng.normal(0, 0.3, size=(n, n_classes)).astype(np.float16)
    if ties:  # ties everywhere the argmax must break them as the full array does
        s[: n // 8, 3] = s[: n // 8, 9]
        s[n // 8: n // 4, 2] = s[n // 8: n // 4, 3]
        s[n // 4: n // 3, :] = s[n // 4: n // 3, :1]  # a whole row equal
    return s


def _as_read(arrays):
    """What load_scores reads from a file: float16 as float32."""
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in arrays.items()}


def test_the_compact_layout_gives_every_stored_classs_curve_and_every_angle_exactly():
    rng = np.random.default_rng(0)
    n, n_classes, c = 600, 43, 3
    y = rng.integers(0, n_classes, n).astype(np.int16)
    full = {"test": _random_scores(rng, n, n_classes), "y_test": y,
            "validation": _random_scores(rng, 300, n_classes), "y_validation": y[:300],
            "test_cosines": np.clip(_random_scores(rng, n, n_classes), -1, 1), "class_weights": rng.normal(size=(8, 43))}
    packed = compact.compact(full, [c])
    assert set(packed) == {"y_test", "y_validation", "class_weights", "stored_classes",
                           *(k for name in ("test", "validation", "test_cosines") for k in compact.compact_keys(name))}
    dense, problem = compact.expand(_as_read(packed), n_classes, ["test", "validation"])
    assert problem is None
    for name in ("test", "validation", "test_cosines"):
        ref, got, labels = full[name].astype(np.float32), dense[name], full[compact.SCORE_ARRAYS[name]]
        assert isinstance(got, compact.PartialScores) and got.stored_classes == (c,)
        assert np.array_equal(ref[:, c], got[:, c]) and np.array_equal(ref.argmax(1), got.argmax(1))
        for scale in (1.0, 16.0):
            a, b = curves.threshold_curve(ref, labels, c, scale), curves.threshold_curve(got, labels, c, scale)
            for field in CURVE_FIELDS:
                assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), (name, field)
            for bias in (-1.0, 0.0, float(a.switch[len(a.switch) // 2]), 2.5):
                np.testing.assert_equal(curves.moved_metrics(ref, labels, c, bias, scale),
                                        curves.moved_metrics(got, labels, c, bias, scale))
        np.testing.assert_equal(metrics.split_metrics(labels, ref, n_classes),
                                metrics.split_metrics(labels, got, n_classes))
        assert angles.cosine_angle_stats(ref, labels).equals(angles.cosine_angle_stats(got, labels))
        for k in range(n_classes):  # every class's geometry: its images' own and best other cosines only
            if (labels == k).any():
                np.testing.assert_equal(angles.class_geometry(ref, labels, full["class_weights"], k, 0.3),
                                        angles.class_geometry(got, labels, full["class_weights"], k, 0.3))
                np.testing.assert_equal(angles.class_spread(ref, labels, k), angles.class_spread(got, labels, k))
                assert np.array_equal(angles.decision_gap(ref, labels, k), angles.decision_gap(got, labels, k))
    # A class whose every score is not stored: no curve, said so (never a wrong one), scaled scores included;
    # what is computed from the scores (an argmax, a maximum) is a plain array.
    for scores in (dense["test"], 16.0 * dense["test"], dense["test"][y != 0]):
        with pytest.raises(ValueError, match="stored compactly.*classes \\[3\\] only, so class 4's threshold curve"):
            curves.threshold_curve(scores, y[: len(scores)], 4)
    assert type(dense["test"].argmax(1)) is np.ndarray and type(dense["test"].max(0)) is np.ndarray
    with pytest.raises(ValueError, match="float16 scores"):
        compact.compact({"test": full["test"].astype(np.float32), "y_test": y})
    with pytest.raises(ValueError, match=r"classes to keep must lie in \[0, 43\)"):
        compact.compact(full, [43])


def test_the_presets_choose_the_storage_and_a_bad_one_is_refused():
    assert protocol.preset("gtsrb", "cpu").score_storage == "compact"
    for key in protocol.PRESETS:
        if key != ("gtsrb", "cpu"):
            assert protocol.PRESETS[key].score_storage == "full", key
    with pytest.raises(ValueError, match="score_storage must be one of \\['full', 'compact'\\]; got 'small'"):
        dataclasses.replace(protocol.preset("gtsrb", "cpu"), score_storage="small")
    # The storage is no part of a run's identity: the same runs, stored in another layout.
    gtsrb = protocol.preset("gtsrb", "cpu")
    ids = [p.run_id for p in protocol.plan(gtsrb, "real", [1, 2, 3])]
    assert ids == [p.run_id for p in protocol.plan(dataclasses.replace(gtsrb, score_storage="full"), "real", [1, 2, 3])]
    # The runs whose curves the analyses draw keep every class (and CE's post-hoc adjustment reads every class).
    assert set(THRESHOLD_SOURCES) | {"CE"} <= set(compact.FULL_METHODS)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in RESULTS.glob("*/protocol.json")))
def test_committed_protocol_files_load_as_their_preset_and_a_resume_leaves_them_byte_for_byte(name, tmp_path):
    folder = RESULTS / name
    spec, kind = protocol.read_spec(folder)
    if kind is None:
        pytest.skip(f"results/{name} is of schema 1 (made before the validation split): reported, never resumed")
    preset = protocol.preset(spec.dataset, spec.profile)
    assert spec.to_dict() == preset.to_dict()
    copy = tmp_path / name
    copy.mkdir()
    shutil.copy(folder / "protocol.json", copy / "protocol.json")
    store.open_output(preset, copy, kind)  # what a resume does first
    assert (copy / "protocol.json").read_bytes() == (folder / "protocol.json").read_bytes()


def test_a_compact_protocol_stores_each_run_in_the_layout_its_analyses_need(folders):
    full, packed = folders
    records = protocol.load_records(packed)
    assert {r["method"] for r in records} == {"CE", "NormSoftmax", "ArcFace", "CAMRI", "WCE"}
    assert {r["run_id"] for r in records} == {r["run_id"] for r in protocol.load_records(full)}
    for r in records:
        stored = _npz(packed, r)
        if r["method"] in ("CE", "NormSoftmax"):
            assert stored.keys() == _npz(full, r).keys() and "test" in stored
            assert (packed / "runs" / f"{r['run_id']}.npz").read_bytes() == \
                   (full / "runs" / f"{r['run_id']}.npz").read_bytes()
        else:
            kept = [] if r["important_class"] is None else [r["important_class"]]
            assert compact.is_compact(stored) and stored["stored_classes"].tolist() == kept
            assert "test" not in stored and ("validation_top" in stored) == (r["important_class"] is None)
            assert (packed / "runs" / f"{r['run_id']}.npz").stat().st_size < \
                   (full / "runs" / f"{r['run_id']}.npz").stat().st_size
        assert r["scores_sha256"] == io.sha256(packed / "runs" / f"{r['run_id']}.npz")
        assert store.scores_problem(packed, r) is None  # shapes, labels and metrics recomputed from the file


# ---------------------------------------------------------------------------------------------
# Every output, equal
# ---------------------------------------------------------------------------------------------
def _same_but_digests(a, b):
    """Whether two summaries or selections are equal but for their records' scores_sha256 (the
    two folders' files differ, as they must)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "scores_sha256"}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        if dataclasses.is_dataclass(value):
            return {f.name: strip(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if not isinstance(getattr(value, f.name), (pd.DataFrame, str))}
        return value
    return strip(a) == strip(b)


def test_the_report_its_curves_comparisons_and_threshold_rows_are_equal(folders, summaries):
    full, packed = summaries
    assert packed.markdown == full.markdown
    pd.testing.assert_frame_equal(packed.table, full.table)
    pd.testing.assert_frame_equal(packed.comparisons, full.comparisons)
    pd.testing.assert_frame_equal(packed.comparison, full.comparison)
    for a, b in ((packed.selection, full.selection), (packed, full)):
        assert _same_but_digests(a, b)  # the threshold rows among the records, from the curves chosen on validation
    assert any(r["method"] == "NormSoftmax + threshold" for r in packed.records)
    assert len(packed.comparisons) > 0 and packed.comparisons.oos_accuracy_gap.notna().any()  # out of sample too
    classes = set(packed.selection.important.values())
    assert len(classes) == 3
    records = [r for r in packed.records if "source_run" not in r]
    for c in classes:
        for split in ("test", "validation"):
            got = protocol.reference_curves(records, c, lambda r: protocol.load_scores(folders[1], r), split)
            want = protocol.reference_curves(records, c, lambda r: protocol.load_scores(folders[0], r), split)
            assert got.keys() == want.keys() and len(got) == 6  # CE and normalized softmax at 2 scales, 2 seeds
            for key in got:
                for field in CURVE_FIELDS:
                    assert np.array_equal(getattr(got[key], field), getattr(want[key], field), equal_nan=True)
            frames = [protocol.threshold_curve_frames(records, c, lambda r, f=f: protocol.load_scores(f, r), split)
                      for f in folders]
            assert frames[0].keys() == frames[1].keys()
            for label in frames[0]:
                pd.testing.assert_frame_equal(frames[0][label], frames[1][label])


def test_the_replication_chapter_s_outputs_are_equal(folders, summaries):
    full, packed = summaries
    pd.testing.assert_frame_equal(replication.table_1(packed), replication.table_1(full))
    pd.testing.assert_frame_equal(replication.gain_table(packed), replication.gain_table(full))
    pd.testing.assert_frame_equal(replication.verdicts(packed), replication.verdicts(full))
    assert replication.verdict_lines(packed) == replication.verdict_lines(full)
    assert replication.fashion_mnist_answer(packed) == replication.fashion_mnist_answer(full)
    for role in ("worst1", "worst2", "median"):
        pd.testing.assert_frame_equal(replication.confusions(packed, role), replication.confusions(full, role))
        for fn in (replication.angle_summary, replication.class_angles, replication.angle_verdicts):
            pd.testing.assert_frame_equal(fn(packed, folders[1], role), fn(full, folders[0], role))
    assert len(replication.angle_summary(packed, folders[1], "worst1")) == 3  # CE, the control, CAMRI


def test_chapter_8_s_angles_of_every_run_are_equal(folders, summaries):
    """Chapter 8 (and its exercises) reads every run's cosines: the class means, each role's
    geometry and spread, with the model's own prediction."""
    important = summaries[1].selection.important
    full = {r["run_id"]: r for r in protocol.load_records(folders[0])}
    for r in protocol.load_records(folders[1]):
        a, b = protocol.load_scores(folders[0], full[r["run_id"]]), protocol.load_scores(folders[1], r)
        assert a.keys() == b.keys()
        assert np.array_equal(a["class_weights"], b["class_weights"]) and np.array_equal(a["y_test"], b["y_test"])
        cos_a, cos_b = (s["test_cosines"] if r["method"] == "CE" else s["test"] for s in (a, b))
        y = a["y_test"]
        assert angles.cosine_angle_stats(cos_a, y).equals(angles.cosine_angle_stats(cos_b, y))
        for c in important.values():
            margin = r["params"].get("margin", 0.0)
            np.testing.assert_equal(angles.class_geometry(cos_a, y, a["class_weights"], c, margin),
                                    angles.class_geometry(cos_b, y, b["class_weights"], c, margin))
            np.testing.assert_equal(angles.class_spread(cos_a, y, c, a["test"].argmax(1)),
                                    angles.class_spread(cos_b, y, c, b["test"].argmax(1)))


# ---------------------------------------------------------------------------------------------
# The budget: GTSRB's 65 runs under 60 MB
# ---------------------------------------------------------------------------------------------
def _gtsrb_shaped_arrays(rng, planned, n_test, n_validation, dim, n_classes=43):
    """A run's arrays as train_one stores them, of GTSRB's shape: random scores (little to
    compress: the committed CIFAR-10 score files compress to 93% of their raw size)."""
    from camri_utils import methods

    labels = {"test": rng.integers(0, n_classes, n_test), "validation": rng.integers(0, n_classes, n_validation)}
    splits = ["test", "validation"] if planned.important_class is None else ["test"]
    arrays = {s: rng.uniform(-1, 1, (len(labels[s]), n_classes)).astype(np.float16) for s in splits}
    arrays.update({f"y_{s}": labels[s].astype(np.int16) for s in splits})
    arrays["class_weights"] = rng.normal(size=(dim, n_classes)).astype(np.float32)
    if methods.get(planned.config.loss).head == "dense" and planned.important_class is None:
        arrays["test_cosines"] = rng.uniform(-1, 1, (n_test, n_classes)).astype(np.float16)
    return arrays


def test_gtsrb_s_65_runs_fit_the_budget_compact_and_would_not_in_full(tmp_path, folders):
    from camri_utils import methods
    from camri_utils.data import VALIDATION_SIZE
    from camri_utils.data.gtsrb import OFFICIAL_COUNTS

    budget = 60e6  # bytes: the "under about 60 MB" per dataset's committed folder
    spec = protocol.preset("gtsrb", "cpu")
    planned = protocol.plan(spec, "real") + protocol.plan(spec, "real", [7, 20, 33])  # three distinct classes
    assert len(planned) == 65
    n_test = OFFICIAL_COUNTS["test images"]
    # The validation split: 10% of the training images in whole tracks of 30 frames, rounded up.
    n_validation = math.ceil(VALIDATION_SIZE["gtsrb"] * OFFICIAL_COUNTS["training images"] / 30) * 30
    rng = np.random.default_rng(0)
    sizes = {"full": {}, "compact": {}}
    for p in planned:  # one file per kind of run (its layout, splits and head): the others are the same size
        head = methods.get(p.config.loss).head
        kind = (runner.kept_classes(spec, p) is None, p.important_class is None, head)
        if kind in sizes["compact"]:
            continue
        arrays = _gtsrb_shaped_arrays(rng, p, n_test, n_validation, spec.feature_dim)
        for storage, keep in (("full", None), ("compact", runner.kept_classes(spec, p))):
            out = tmp_path / storage
            (out / "runs").mkdir(parents=True, exist_ok=True)
            record = store.write_record(out, {"run_id": p.run_id}, arrays, keep)
            sizes[storage][kind] = (out / "runs" / f"{record['run_id']}.npz").stat().st_size
    # The record beside each file: one of the fixture's GTSRB records (43 classes), its per-epoch
    # fields repeated to the preset's epochs.
    template = max(protocol.load_records(folders[1]), key=lambda r: len(json.dumps(r)))
    per_epoch = {"history": {k: v * spec.epochs for k, v in template["history"].items()},
                 "angles_per_epoch": {k: v * spec.epochs for k, v in template["angles_per_epoch"].items()}}
    record_bytes = len(json.dumps({**template, **per_epoch}).encode())

    def folder_bytes(storage):
        return sum(sizes[storage][(runner.kept_classes(spec, p) is None, p.important_class is None,
                                   methods.get(p.config.loss).head)] + record_bytes for p in planned)

    print(f"GTSRB's 65 runs: {folder_bytes('compact') / 1e6:.1f} MB compact, {folder_bytes('full') / 1e6:.1f} MB "
          f"in full (records {65 * record_bytes / 1e6:.1f} MB of each)")
    assert folder_bytes("compact") < budget < folder_bytes("full")


# ---------------------------------------------------------------------------------------------
# Hostile compact files
# ---------------------------------------------------------------------------------------------
def _one(folder, method, shared):
    return next(r for r in protocol.load_records(folder)
                if r["method"] == method and (r["important_class"] is None) == shared)


def _tamper(folder, record, change):
    """Rewrite ``record``'s score file with ``change`` applied, and the record's digest to
    match (as a consistent hand edit, or a bug, would): the content checks must catch it."""
    path = folder / "runs" / f"{record['run_id']}.npz"
    arrays = _npz(folder, record)
    change(arrays)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    edited = {**record, "scores_sha256": io.sha256(path)}
    (folder / "runs" / f"{record['run_id']}.json").write_text(json.dumps(edited))
    return edited


def _drop(key):
    return lambda a: a.pop(key)


def _set(key, value):
    return lambda a: a.__setitem__(key, value(a))


def _swap_top(a):
    a["test_top_scores"] = a["test_top_scores"][:, ::-1].copy()


@pytest.mark.parametrize("method, shared, change, message", [
    ("CAMRI", False, _drop("test_own"), "it has no 'test_own' array \\(a compact file stores 'test_top'"),
    ("ArcFace", True, _drop("validation_columns"), "it has no 'validation_columns' array"),
    ("ArcFace", True, lambda a: [a.pop(k) for k in compact.compact_keys("validation")],
     "it has no 'validation_top' array"),
    ("CAMRI", False, _set("test_top", lambda a: np.zeros((len(a["y_test"]), 3), np.uint8)),
     "its 'test_top' array has shape \\(\\d+, 3\\), not \\(\\d+, 2\\)"),
    ("CAMRI", False, _set("test_columns", lambda a: a["test_columns"][:-1]), "its 'test_columns' array has shape"),
    ("CAMRI", False, _set("test_top", lambda a: a["test_top"].astype(np.float32)), "holds float32, not class indices"),
    ("CAMRI", False, _set("stored_classes", lambda a: np.array([], np.int16)),
     "its 'test_columns' array has shape \\(\\d+, 1\\), not \\(\\d+, 0\\)"),
    ("CAMRI", False, lambda a: a.update(stored_classes=np.array([], np.int16), test_columns=a["test_columns"][:, :0]),
     "it stores the scores of classes \\[\\] for every image, not the run's important class"),
    ("CAMRI", False, _set("stored_classes", lambda a: np.array([43], np.int16)),
     "its stored classes \\[43\\] are not distinct class indices 0..42"),
    ("ArcFace", True, lambda a: a.update(stored_classes=np.array([5, 5], np.int16),
                                         test_columns=a["test_own"][:, None].repeat(2, 1),
                                         validation_columns=a["validation_own"][:, None].repeat(2, 1)),
     "are not distinct class indices"),
    ("CAMRI", False, _set("test_top", lambda a: np.full_like(a["test_top"], 44)), "is not two distinct class indices"),
    ("CAMRI", False, _swap_top, "its test arrays disagree with each other"),
    ("CAMRI", False, _set("test_own", lambda a: a["test_own"] + np.float16(0.5)), "disagree with each other"),
    ("CAMRI", False, _set("test_own", lambda a: np.full_like(a["test_own"], np.nan)), "non-finite"),
])
def test_a_broken_compact_file_names_itself_what_is_wrong_and_the_remedy(folders, tmp_path, method, shared, change,
                                                                         message):
    folder = shutil.copytree(folders[1], tmp_path / "r")
    record = _tamper(folder, _one(folder, method, shared), change)
    with pytest.raises(protocol.ProtocolError, match=message) as err:
        protocol.load_scores(folder, record)
    text = str(err.value)
    assert f"{record['run_id']}.npz" in text and f"--rerun {record['run_id']}" in text
    assert store.scores_problem(folder, record) == text  # a resume trains it again


def test_a_compact_file_for_a_run_whose_curves_are_drawn_is_refused(folders, tmp_path):
    folder = shutil.copytree(folders[1], tmp_path / "r")
    ce = _one(folder, "CE", True)
    arrays = _npz(folder, ce)
    packed = compact.compact(arrays, [])
    path = folder / "runs" / f"{ce['run_id']}.npz"
    with open(path, "wb") as f:
        np.savez_compressed(f, **packed)
    edited = {**ce, "scores_sha256": io.sha256(path)}
    with pytest.raises(protocol.ProtocolError, match="a CE run's scores must be stored in full"):
        protocol.load_scores(folder, edited)
    # Without the digest's update, the digest says it first: the file is not the one written with the record.
    with pytest.raises(protocol.ProtocolError, match="its SHA-256 differs"):
        protocol.load_scores(folder, ce)

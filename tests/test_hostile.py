"""Hostile input, case by case: each value, file or folder a user (or a sync tool, a typo, a
second process) can hand the library is either taken correctly or refused at once with an
error that names it and says what to do. Grouped by the surface it enters through: data, values
and configs, metrics, the results store, the command line and the notebook runner."""

import gzip
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from camri_utils import checks, data, metrics
from camri_utils.data import fixtures


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "decoded-cache"))
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("CAMRI_DATA_DIR", raising=False)


# ---------------------------------------------------------------------------------------------
# Data: where it is looked for, its options, its files and its cache
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["missing", "file", "empty folder"])
def test_camri_data_dir_pointing_at_nothing_is_an_error_naming_it(kind, tmp_path, monkeypatch):
    target = tmp_path / "typo"
    if kind == "file":
        target.write_text("not a folder")
    elif kind == "empty folder":
        target.mkdir()
    monkeypatch.setenv("CAMRI_DATA_DIR", str(target))
    # Never a silent fall-back to the system copy (Debian's Fashion-MNIST, on this machine).
    with pytest.raises(data.DatasetNotFoundError, match="CAMRI_DATA_DIR") as caught:
        data.load("fashion_mnist")
    assert str(target) in str(caught.value) and "unset" in str(caught.value)


def test_camri_data_dir_holding_the_dataset_is_used(tmp_path, monkeypatch):
    root = fixtures.write("fashion_mnist", tmp_path / "fx", per_class=2)
    monkeypatch.setenv("CAMRI_DATA_DIR", str(root))
    assert data.load("fashion_mnist").source.location == str(root)


@pytest.mark.parametrize("name, options, match", [
    ("gtsrb", {"crop_roi": "False"}, "crop_roi' must be True or False; got 'False'"),
    ("gtsrb", {"crop_roi": 0}, "crop_roi' must be True or False"),
    ("gtsrb", {"size": "32"}, "'size' must be an integer; got '32'"),
    ("gtsrb", {"size": 32.0}, "'size' must be an integer"),
    ("digits", {"test_fraction": "0.3"}, "'test_fraction' must be a number; got '0.3'"),
    ("digits", {"test_fraction": 1.0}, r"'test_fraction' must be a finite number in \(0, 1\)"),
    ("digits", {"split_seed": -1}, "'split_seed' must be an integer in"),
    ("awa2", {"sha256": "abc"}, "SHA-256"),
    ("fashion_mnist", {"size": 28}, "fashion_mnist has no option 'size'; it accepts none"),
    ("gtsrb", {"crop": True}, "gtsrb has no option 'crop'"),
])
def test_data_options_are_checked_against_what_the_loader_accepts(name, options, match):
    with pytest.raises(ValueError, match=match):
        data.load(name, **options)
    with pytest.raises(ValueError, match=match):
        data.check_options(name, options)


def test_numpy_scalars_are_accepted_as_data_options(tmp_path):
    root = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    ds = data.load("gtsrb", data_dir=root, size=np.int64(8), crop_roi=np.bool_(False))
    assert ds.x_train.shape[1:] == (8, 8, 3) and ds.notes == {"size": 8, "crop_roi": False}
    assert data.check_options("digits", {"test_fraction": np.float32(0.25)}) == {"test_fraction": 0.25}
    assert type(data.check_options("gtsrb", {"size": np.int64(8)})["size"]) is int


def _rewrite_idx(path, header_dims):
    with gzip.open(path) as f:
        raw = f.read()
    n_dims = len(header_dims)
    with gzip.open(path, "wb") as f:
        f.write(raw[:4] + b"".join(int(d).to_bytes(4, "big") for d in header_dims) + raw[4 + 4 * n_dims:])


def test_idx_header_that_disagrees_with_its_data_is_corrupt(tmp_path):
    root = fixtures.write("fashion_mnist", tmp_path / "fx", per_class=2)
    labels = root / "train-labels-idx1-ubyte.gz"
    _rewrite_idx(labels, [60000])  # the real count in the header of a 20-label file
    manifest = json.loads((root / "CAMRI_SYNTHETIC_FIXTURE.json").read_text())
    manifest["sha256"][labels.name] = __import__("camri_utils.data._common", fromlist=["x"]).file_hash(labels, "sha256")
    (root / "CAMRI_SYNTHETIC_FIXTURE.json").write_text(json.dumps(manifest))
    with pytest.raises(data.CorruptDataError, match="header announces 60000 values but it holds 20"):
        data.load("fashion_mnist", data_dir=root)


def test_extracted_cifar10_fixture_without_its_marker_is_not_taken_for_real_data(tmp_path):
    import tarfile

    packed = fixtures.write("cifar10", tmp_path / "packed", per_class=5)
    with tarfile.open(packed / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    with pytest.raises(data.CorruptDataError, match=r"(?s)md5 .* not the official release.*marker"):
        data.load("cifar10", data_dir=tmp_path / "unpacked")
    fixtures.copy_marker(packed, tmp_path / "unpacked")
    assert data.load("cifar10", data_dir=tmp_path / "unpacked").source.kind == "synthetic fixture"


def test_an_overwritten_or_copied_over_decoded_cache_is_detected_and_rebuilt(tmp_path):
    root = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    crop = data.load("gtsrb", data_dir=root, size=8)
    full = data.load("gtsrb", data_dir=root, size=8, crop_roi=False)
    cache = tmp_path / "decoded-cache"
    (crop_file,) = cache.glob("gtsrb-8px-roi-*.npz")
    (full_file,) = cache.glob("gtsrb-8px-full-*.npz")
    # Another option's cache copied over this one: valid arrays, but not these.
    shutil.copy(full_file, crop_file)
    with pytest.warns(UserWarning, match="does not hold what was cached there"):
        again = data.load("gtsrb", data_dir=root, size=8)
    np.testing.assert_array_equal(again.x_train, crop.x_train)
    # The arrays overwritten in place (same names, other pixels).
    with np.load(crop_file) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["x_train"] = 255 - arrays["x_train"]
    np.savez(crop_file, **arrays)
    with pytest.warns(UserWarning, match="does not hold what was cached there"):
        again = data.load("gtsrb", data_dir=root, size=8)
    np.testing.assert_array_equal(again.x_train, crop.x_train)
    # Rebuilt once: the next load reads the cache quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(data.load("gtsrb", data_dir=root, size=8).x_train, crop.x_train)
    assert not np.array_equal(full.x_train, crop.x_train)


# ---------------------------------------------------------------------------------------------
# Values: checked once, in camri_utils.checks
# ---------------------------------------------------------------------------------------------
def test_checks_take_numpy_scalars_as_numbers_and_refuse_strings_and_booleans():
    assert checks.check_int(np.int64(3), "n") == 3 and type(checks.check_int(np.int32(3), "n")) is int
    assert checks.check_number(np.float32(0.5), "x") == 0.5 and type(checks.check_number(np.int8(2), "x")) is float
    assert checks.check_bool(np.bool_(True), "flag") is True
    for bad in ("3", 3.0, True, None):
        with pytest.raises(ValueError, match="n must be an integer"):
            checks.check_int(bad, "n")
    for bad in ("0.3", True, None, [0.3]):
        with pytest.raises(ValueError, match="x must be a number"):
            checks.check_number(bad, "x")
    for bad in ("False", "True", 0, 1, None):
        with pytest.raises(ValueError, match="flag must be True or False"):
            checks.check_bool(bad, "flag")
    with pytest.raises(ValueError, match=r"must be a finite number in \[0, 1\]; got nan"):
        checks.check_number(float("nan"), "x", 0, 1)
    assert checks.check_int(None, "n", none=True) is None
    assert checks.plain({"a": np.float32(0.5), "b": [np.int64(2)], "c": np.arange(2)}) == {"a": 0.5, "b": [2], "c": [0, 1]}
    with pytest.raises(ValueError, match=r"params\['f'\] must hold numbers"):
        checks.plain({"f": object()}, "params")


def test_environment_variable_checks_name_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_DIR", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match=r"SOME_DIR=.*names nothing"):
        checks.check_env_dir("SOME_DIR")
    monkeypatch.setenv("SOME_DIR", "")
    assert checks.check_env_dir("SOME_DIR") is None
    monkeypatch.setenv("SOME_DIR", str(tmp_path))
    assert checks.check_env_dir("SOME_DIR") == tmp_path


# ---------------------------------------------------------------------------------------------
# Metrics: scores that predict nothing
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_metrics_refuse_non_finite_scores_instead_of_predicting_class_0(bad):
    y = np.array([0, 1, 2, 1])
    scores = np.eye(3)[y].astype("float32")
    scores[2, 1] = bad
    for fn in (metrics.accuracy, metrics.split_metrics, metrics.confusion_matrix, metrics.per_class_recall):
        with pytest.raises(ValueError, match=r"non-finite values \(NaN or inf\), first in row 2"):
            fn(y, scores) if fn is metrics.accuracy else fn(y, scores, 3)
    all_nan = np.full((4, 3), np.nan, "float32")
    with pytest.raises(ValueError, match="diverged"):
        metrics.split_metrics(y, all_nan, 3)


# ---------------------------------------------------------------------------------------------
# The notebook runner's parameters cell
# ---------------------------------------------------------------------------------------------
def _nb(parameters_source, injected_source=None):
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell(parameters_source)]
    cells[0].metadata["tags"] = ["parameters"]
    if injected_source is not None:
        cells.append(new_code_cell(injected_source))
        cells[1].metadata["tags"] = ["injected-parameters"]
    cells.append(new_code_cell("print(profile)"))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_folding_replaces_a_multi_line_value_whole_and_keeps_comments_and_hashes_in_strings():
    import ast

    from camri_utils.notebook import _fold_injected_parameters

    source = ('profile = "full"  # the book\'s run\n'
              'grid = [\n    1, 2,  # two values\n    3,\n]  # the grid\n'
              'title = "a # b"  # a hash inside a string\n'
              'seed = 0')
    nb = _nb(source, 'profile = "quick"\ngrid = [4, 5]\ntitle = "c # d"\n')
    _fold_injected_parameters(nb)
    folded = nb.cells[0].source
    assert folded == ('profile = "quick"  # the book\'s run\n'
                      'grid = [4, 5]  # the grid\n'
                      'title = "c # d"  # a hash inside a string\n'
                      'seed = 0')
    ast.parse(folded)  # valid Python
    assert len(nb.cells) == 2  # the injected cell is gone
    # A value injected over several lines replaces a one-line one.
    nb = _nb('grid = [1]  # g\nseed = 0', 'grid = [\n    7,\n]\n')
    _fold_injected_parameters(nb)
    assert nb.cells[0].source == 'grid = [\n    7,\n]  # g\nseed = 0'
    # Non-ASCII text before the value does not shift the comment (ast counts bytes).
    nb = _nb('label = "θ é"  # angle\nseed = 0', 'label = "m"\n')
    _fold_injected_parameters(nb)
    assert nb.cells[0].source == 'label = "m"  # angle\nseed = 0'


def test_an_unknown_parameter_is_refused_before_anything_runs(tmp_path):
    import nbformat

    from camri_utils.notebook import _fold_injected_parameters, run

    path = tmp_path / "nb.ipynb"
    nbformat.write(_nb('profile = "full"\nseed = 0'), path)
    with pytest.raises(ValueError, match=r"has no parameter 'sede'; its parameters cell sets \['profile', 'seed'\]"):
        run(path, tmp_path / "out.ipynb", parameters={"sede": 1})
    assert not (tmp_path / "out.ipynb").exists()
    nb = _nb('profile = "full"', 'profile = "quick"\nextra = 1\n')
    with pytest.raises(ValueError, match="has no parameter 'extra'"):
        _fold_injected_parameters(nb)
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_nb('profile = "full"\nseed = ('), bad)
    with pytest.raises(ValueError, match="parameters cell of .* is not valid Python"):
        run(bad, tmp_path / "out.ipynb", profile="quick")


def test_a_run_with_a_multi_line_parameter_stores_valid_python(tmp_path):
    import ast

    import nbformat

    from camri_utils.notebook import run

    path = tmp_path / "nb.ipynb"
    nb = _nb('profile = "full"\ngrid = [\n    1,\n]  # grid\n')
    nb.cells[-1].source = ("from camri_utils.notebook import provenance\nprovenance(profile, data='test')\n"
                           "print(sum(grid))")
    nbformat.write(nb, path)
    out = run(path, tmp_path / "out.ipynb", profile="quick", parameters={"grid": [2, 3]})
    stored = nbformat.read(out, as_version=4)
    ast.parse(stored.cells[0].source)
    assert stored.cells[0].source == 'profile = "quick"\ngrid = [2, 3]  # grid'
    assert "5" in stored.cells[-1].outputs[-1]["text"]

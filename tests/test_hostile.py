"""Hostile input, case by case: each value, file or folder a user (or a sync tool, a typo, a
second process) can hand the library is either taken correctly or refused at once with an
error that names it and says what to do. Grouped by the surface it enters through: data, values
and configs, metrics, the results store, the command line and the notebook runner."""

import dataclasses
import gzip
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from camri_utils import checks, data, metrics
from camri_utils.data import fixtures


pytestmark = pytest.mark.usefixtures("isolated_caches")  # tests/conftest.py: caches of each test's own


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
    assert ds.x_train.shape[1:] == (8, 8, 3) and ds.notes["size"] == 8 and ds.notes["crop_roi"] is False
    assert type(ds.notes["size"]) is int  # plain Python values: the notes go into JSON records
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
    assert stored.cells[0].source == 'profile = "quick"\ngrid = [2, 3]  # grid\n'  # only the values changed
    assert "5" in stored.cells[-1].outputs[-1]["text"]


def test_values_are_rewritten_by_assignment_whatever_the_layout():
    from camri_utils.notebook import _fold_injected_parameters, _literal, _set_values

    nb = _nb('profile = "full"; seed = 0  # two on a line\nsize: int = 8\nlabel = (\n  "a"  # one\n)')
    _set_values(nb.cells[0], {"seed": "5", "size": "16", "label": '"b"'}, "nb")
    # The value only: parentheses around it (and a comment inside them) stay.
    assert nb.cells[0].source == 'profile = "full"; seed = 5  # two on a line\nsize: int = 16\nlabel = (\n  "b"  # one\n)'
    nb = _nb('profile = "full"; seed = 0', 'seed = 5\n')
    _fold_injected_parameters(nb)
    assert nb.cells[0].source == 'profile = "full"; seed = 5'
    twice = _nb('seed = 0\nprofile = "full"\nseed = 1')
    with pytest.raises(ValueError, match="assigns 'seed' 2 times: keep one"):
        _set_values(twice.cells[0], {"seed": "5"}, "nb")
    # Each value as a literal that reads back equal and of its own type.
    assert _literal((1, 2), "t") == "(1, 2)" and _literal((1,), "t") == "(1,)" and _literal(b"\x00a", "b") == "b'\\x00a'"
    assert _literal(np.int64(3), "n") == "3" and _literal(np.float32(0.5), "x") == "0.5"
    assert _literal(np.bool_(True), "f") == "True" and _literal(Path("data") / "x", "p") == '"data/x"'
    assert _literal({"a": [1, (2.5, None)], "s": {3}}, "d") == '{"a": [1, (2.5, None)], "s": {3}}'
    assert _literal(set(), "e") == "set()" and _literal('say "θ"', "q") == '"say \\"θ\\""'


@pytest.mark.parametrize("value, message", [
    (np.array([1, 2]), "parameter 'p': a numpy.ndarray cannot be written .* \\(an array as .tolist\\(\\)\\)"),
    (object(), "parameter 'p': a builtins.object cannot be written"),
    ({"k": lambda: 1}, "parameter 'p': a builtins.function cannot be written"),
    (float("nan"), "parameter 'p': nan has no literal"),
    ([np.inf], "parameter 'p': inf has no literal"),
])
def test_a_value_with_no_literal_is_refused_before_anything_runs(tmp_path, value, message):
    import nbformat

    from camri_utils.notebook import run

    path = tmp_path / "nb.ipynb"
    nbformat.write(_nb('profile = "full"\np = 0'), path)
    with pytest.raises((TypeError, ValueError), match=message):
        run(path, tmp_path / "out.ipynb", parameters={"p": value})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"] or not (tmp_path / "out.ipynb").exists()


def test_two_parameters_cells_are_refused_before_anything_runs(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell

    from camri_utils.notebook import parameter_names, run

    nb = _nb('profile = "full"')
    second = new_code_cell("seed = 0")
    second.metadata["tags"] = ["parameters"]
    nb.cells.insert(1, second)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    for call in (lambda: run(path, tmp_path / "out.ipynb", parameters={"seed": 1}),
                 lambda: run(path, tmp_path / "out.ipynb"), lambda: parameter_names(path)):
        with pytest.raises(ValueError, match=r"2 cells tagged 'parameters' \(cells 0, 1\): keep the tag on one"):
            call()
    assert not (tmp_path / "out.ipynb").exists()


def test_a_run_passes_tuples_bytes_numpy_scalars_and_paths_as_what_they_are(tmp_path):
    import nbformat

    from camri_utils.notebook import run

    path = tmp_path / "nb.ipynb"
    nb = _nb('profile = "full"; seed = 0\nshape = (1, 1)\nraw = b""\nrate = 0.1\nwhere = "."')
    nb.cells[-1].source = ("from camri_utils.notebook import provenance\nprovenance(profile, data='test')\n"
                           "print([type(v).__name__ for v in (profile, seed, shape, raw, rate, where)], "
                           "profile, seed, shape, raw, rate, where)")
    nbformat.write(nb, path)
    out = run(path, tmp_path / "out.ipynb", profile="quick",
              parameters={"seed": np.int64(5), "shape": (2, 3), "raw": b"\x00z", "rate": np.float32(0.25),
                          "where": tmp_path / "data"})
    stored = nbformat.read(out, as_version=4)
    assert stored.cells[0].source == (f'profile = "quick"; seed = 5\nshape = (2, 3)\nraw = b\'\\x00z\'\nrate = 0.25\n'
                                      f'where = "{tmp_path / "data"}"')
    printed = stored.cells[-1].outputs[-1]["text"]
    assert printed.startswith("['str', 'int', 'tuple', 'bytes', 'float', 'str'] quick 5 (2, 3) b'\\x00z' 0.25 ")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary input left


# ---------------------------------------------------------------------------------------------
# Training configs: refused when made, not deep inside a run
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    (dict(optimizer="adamm"), "optimizer 'adamm' is not one Keras knows"),
    (dict(optimizer="Adam "), "optimizer 'Adam ' is not one Keras knows"),
    (dict(optimizer=3), "optimizer 3 is not one Keras knows"),
    (dict(loss="camri", loss_params={"margin": 0.2, "scale": 16, "margn": 1}),
     r"loss_params has 'margn', which the CAMRI loss \('camri'\) does not take"),
    (dict(loss="normsoftmax", loss_params={"scale": 8, "marginn": 2}), "loss_params has 'marginn'"),
    (dict(loss="ce", loss_params={"from_logit": True}), "loss_params has 'from_logit', which the CE loss"),
    (dict(loss="wce", loss_params={"weight": 2.0, "wieght": 1}), "loss_params has 'wieght'"),
    (dict(loss="ldam", loss_params={"max_margn": 0.5}), r"loss_params: LDAM takes max_margin and scale"),
])
def test_names_keras_would_reject_are_refused_when_the_config_is_made(changes, message):
    """An optimizer or loss parameter Keras rejects once training starts (files written, data
    loaded) is refused when the config is made, and as read from a stored config."""
    from camri_utils.training import TrainConfig

    base = dict(dataset="digits", model="mlp", important_classes=3)
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**base, **changes})
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({**TrainConfig(**base).to_dict(), **changes})
    # What Keras takes stays accepted: other optimizers, per-class lists of the data's length.
    for fine in (dict(optimizer="SGD"), dict(optimizer="adamw"),
                 dict(dataset="gtsrb", loss="wce", loss_params={"class_weights": [1.0] * 43})):
        TrainConfig(**{**base, **fine})


def test_numpy_scalars_are_numbers_in_a_config_and_it_stays_json():
    from camri_utils.training import TrainConfig

    config = TrainConfig(epochs=np.int64(2), batch_size=np.int32(16), learning_rate=np.float32(0.5),
                         seed=np.uint8(3), deterministic=np.bool_(False), loss_params=None,
                         dataset="gtsrb", dataset_options={"size": np.int64(16)}, verbose=0)
    assert (type(config.epochs), type(config.learning_rate), type(config.seed)) == (int, float, int)
    assert config.loss_params == {} and config.dataset_options == {"size": 16}
    assert TrainConfig.from_json(config.to_json()).to_dict() == config.to_dict()
    camri = TrainConfig(loss="camri", loss_params={"margin": np.float32(0.25), "scale": np.int64(16)},
                        important_classes=np.array([3]), verbose=0)
    json.dumps(camri.to_dict())
    assert camri.loss_params == {"margin": 0.25, "scale": 16} and camri.important_classes == [3]


@pytest.mark.parametrize("changes, match", [
    ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\]; got -1"),
    ({"split_seed": 2**40}, "split_seed must be an integer in"),
    ({"loss_params": [0.2]}, "loss_params must be a dict"),
    ({"dataset_options": {"size": 32}}, "fashion_mnist has no option 'size'"),
    ({"dataset": "digits", "dataset_options": {"test_fraction": "0.3"}}, "'test_fraction' must be a number; got '0.3'"),
    ({"dataset": "gtsrb", "dataset_options": {"crop_roi": "False"}}, "'crop_roi' must be True or False"),
    ({"strategy": "tpu"}, "strategy='tpu' but no TPU is visible here"),
    ({"epochs": 2.0}, "epochs must be an integer >= 1"),
    ({"output_dir": 3}, "output_dir must be a path or None"),
])
def test_configs_that_train_would_fail_on_are_refused_when_made(changes, match, monkeypatch):
    from camri_utils.training import TrainConfig

    for variable in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_WORKER_HOSTNAMES", "TPU_ACCELERATOR_TYPE"):
        monkeypatch.delenv(variable, raising=False)
    if changes.get("strategy") == "tpu" and (Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists()):
        pytest.skip("this machine has a TPU")
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_an_output_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    from camri_utils.training import TrainConfig

    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker, blocker / "run"):
        with pytest.raises(ValueError, match=r"cannot be a folder: .*file is a file"):
            TrainConfig(output_dir=str(target))
    assert {p.name for p in tmp_path.iterdir()} - {"decoded-cache", "keras-home"} == {"file"} and blocker.is_file()


@pytest.mark.parametrize("where", ["the folder", "a folder above it"])
def test_an_output_dir_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch, where):
    """(Tests run as root here, where chmod does not deny: the refusal is simulated where the
    operating system raises it, creating a file.) Before: TensorFlow's NotFoundError at the
    first epoch's log."""
    import tempfile

    from camri_utils.training import TrainConfig, train

    out = tmp_path / "run"
    if where == "the folder":
        out.mkdir()
    real = tempfile.mkstemp

    def denied(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == (out if where == "the folder" else tmp_path):
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    config = TrainConfig(dataset="digits", model="mlp", feature_dim=4, epochs=1, batch_size=256, verbose=0,
                         output_dir=str(out / "inner" if where != "the folder" else out))
    place = out if where == "the folder" else tmp_path
    with pytest.raises(ValueError, match=rf"cannot be written: creating a file in '{place}' failed \(Permission "
                                         r"denied\)\. Pass an output_dir in a folder you can write to"):
        train(config)
    assert not (out / "inner").exists() and (where == "the folder") == out.exists()  # nothing created


def test_an_output_dir_holding_another_configurations_run_is_refused_and_kept(tmp_path):
    """A finished run in output_dir is never replaced by a run of another configuration (nor are
    their TensorBoard logs mixed); the same configuration may write there again."""
    from camri_utils.training import TrainConfig, train

    out = tmp_path / "run"
    config = TrainConfig(dataset="digits", model="mlp", feature_dim=4, epochs=1, batch_size=256, verbose=0,
                         output_dir=str(out))
    train(config)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for other, differ in ((dict(seed=3), "seed"), (dict(loss="normsoftmax", loss_params={"scale": 8.0}),
                                                     "loss, loss_params")):
        with pytest.raises(ValueError, match=rf"holds a run of another configuration \(.*config.json differs in "
                                             rf"{differ}\)\. Pass another output_dir"):
            train(dataclasses.replace(config, **other))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    train(dataclasses.replace(config, verbose=2))  # the same run (verbose changes nothing): allowed
    (out / "config.json").unlink()
    with pytest.raises(ValueError, match=r"holds a run's files \(.*history.csv.*\) but no config.json"):
        train(config)
    (out / "config.json").write_text('{"loss": "nonsense", "epochs": "x"}')
    with pytest.raises(ValueError, match="holds a config.json that is not a TrainConfig's"):
        train(config)


def test_a_diverged_training_is_flagged_and_computes_no_metric():
    from camri_utils.training import TrainConfig, train

    config = TrainConfig(dataset="digits", model="mlp", feature_dim=8, loss="ce", learning_rate=1e6, epochs=3,
                         batch_size=256, validation_size=0.2, verbose=0)
    with pytest.warns(RuntimeWarning, match="training diverged"):
        result = train(config)
    m = result.metrics
    assert m["diverged"] is True and "became nan" in m["diverged_reason"]
    assert m["accuracy"] is None and m["recall"] is None and m["confusion_matrix"] is None
    assert "validation" not in m
    assert m["epochs_run"] == 1  # stopped at the end of the first non-finite epoch
    assert m["compute"]["threads"].keys() == {"intra_op", "inter_op"}
    with pytest.raises(ValueError, match="non-finite"):
        metrics.accuracy(result.labels["test"], result.scores["test"])


# ---------------------------------------------------------------------------------------------
# The results store: records, their scores, protocol.json and sweep.json
# ---------------------------------------------------------------------------------------------
def _tiny_spec(**changes):
    from camri_utils import protocol

    values = dict(epochs=1, batch_size=16, learning_rate=1e-3, seeds=[0], camri_grid=[{"margin": 0.3, "scale": 8.0}],
                  arcface_grid=[], wce_weights=[], crwwce_weights=[], feature_dim=4, note="test", validation_size=20,
                  normsoftmax_grid=[{"scale": 8.0}], threshold_biases=[0.0, 1.0])
    return protocol.ProtocolSpec("fashion_mnist", "quick", "mlp", **{**values, **changes})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished fixture protocol (CE, normalized softmax, CAMRI for each important class) and
    its dataset; each test works on its own copy (:func:`folder`)."""
    from camri_utils import protocol

    root = tmp_path_factory.mktemp("store")
    ds = data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist", root / "fx", per_class=6))
    protocol.run(_tiny_spec(), root / "made", progress=False, dataset=ds)
    return root / "made", ds


@pytest.fixture
def folder(made, tmp_path):
    return shutil.copytree(made[0], tmp_path / "r"), made[1]


def _records(out):
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}


def _by_method(out, method):
    return next((rid, r) for rid, r in _records(out).items() if r["method"] == method)


def _edit(out, rid, change):
    path = out / "runs" / f"{rid}.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("change, match", [
    (lambda r: r.update(accuracy="0.9"), r"field 'accuracy' must be a number in \[0, 1\]; got '0.9'"),
    (lambda r: r.update(recall=r["recall"][:5]), "malformed per-class recall/precision: field 'recall' must be a list of 10"),
    (lambda r: r.pop("data_source"), r"lacks \['data_source'\]"),
    (lambda r: r.update(data_source="real"), "field 'data_source' must be"),
    (lambda r: r.update(seed="0"), "field 'seed' must be an integer"),
    (lambda r: r.update(validation=None), "field 'validation' is null"),
    (lambda r: r["validation"].update(recall=r["validation"]["recall"][:5]), "'validation.recall' must be a list of 10"),
    (lambda r: r["validation"]["recall"].__setitem__(2, float("nan")), r"validation.recall\[2\] must be a number"),
    (lambda r: r.pop("validation"), "lacks its 'validation' metrics, though its config has a validation split"),
    (lambda r: r["validation"].pop("accuracy"), r"field 'validation' lacks \['accuracy'\]"),
    (lambda r: r.update(accuracy=0.99), "does not agree with the record's confusion matrix"),
    (lambda r: r["config"].update(epochs=2), "its run id is not the hash of its config"),
    (lambda r: r.update(important_class=3), "CE runs are shared by every class"),
    (lambda r: r.update(method="Softmax"), "no method labelled 'Softmax'"),
    (lambda r: r.update(diverged="no"), "field 'diverged' must be true or false"),
    (lambda r: r.update(split_sizes={"test": 0}), "field 'split_sizes' must be"),
    (lambda r: r.update(train_class_counts=r["train_class_counts"][:9]), "field 'train_class_counts' must be a list of 10"),
    (lambda r: r.update(train_class_counts=[-1] + r["train_class_counts"][1:]), "field 'train_class_counts' must be"),
    (lambda r: r.update(train_class_counts=["5"] * 10), "field 'train_class_counts' must be"),
    (lambda r: r.update(train_class_counts=[0] * 10), "field 'train_class_counts' must be"),
    (lambda r: r.update(train_class_counts={"6": 500}), "field 'train_class_counts' must be"),
])
def test_a_record_of_the_wrong_shape_names_the_file_the_field_and_what_to_do(folder, change, match):
    from camri_utils import protocol

    out, _ = folder
    rid, _ = _by_method(out, "CE")
    path = _edit(out, rid, change)
    with pytest.raises(protocol.ProtocolError, match=match) as caught:
        protocol.load_records(out)
    assert str(path) in str(caught.value) and f"--rerun {rid}" in str(caught.value)
    with pytest.raises(protocol.ProtocolError, match=match):  # so does the report: it never ranks on another split
        protocol.report(out)


# A record vouches for itself: what it states beside its config is its config's, its metrics its
# scores', and it holds no field a record does not have.
@pytest.mark.parametrize("method, change, match", [
    ("CAMRI", lambda r: r["params"].update(margin=0.5), r"field 'params' says \{'margin': 0.5.*but its config says"),
    ("CE", lambda r: r.update(seed=7), "field 'seed' says 7 .*but its config says 0"),
    ("CE", lambda r: r.update(class_names=r["class_names"][::-1]), "field 'class_names' is not fashion_mnist's"),
    ("CE", lambda r: r.update(source_run="abc"), r"has fields a record does not have, \['source_run'\]"),
    ("NormSoftmax", lambda r: r.update(params={}), r"field 'params' says \{\} .*but its config says \{'scale': 8.0\}"),
    ("CAMRI", lambda r: r.update(important_class=(r["important_class"] + 1) % 10), "field 'important_class' says"),
])
def test_a_record_whose_fields_are_not_its_configs_is_refused(folder, method, change, match):
    from camri_utils import protocol

    out, _ = folder
    rid, _ = _by_method(out, method)
    path = _edit(out, rid, change)
    for read in (protocol.load_records, protocol.report):
        with pytest.raises(protocol.ProtocolError, match=match) as caught:
            read(out)
        assert str(path) in str(caught.value) and f"--rerun {rid}" in str(caught.value)


@pytest.mark.parametrize("split, field, value", [
    ("validation", "accuracy", None), ("validation", "recall", None), ("test", "accuracy", None),
])
def test_metrics_are_recomputed_from_the_stored_scores_despite_a_valid_digest(folder, split, field, value):
    """CE's validation accuracy set to 0.9 (and its confusion-matrix-free fields made to agree)
    would move the accuracy threshold and every selection; its validation recall, the ranking."""
    from camri_utils import protocol

    out, _ = folder
    rid, record = _by_method(out, "CE")

    def change(r):
        block = r["validation"] if split == "validation" else r
        if field == "accuracy":
            block["accuracy"] = 0.9 if block["accuracy"] != 0.9 else 0.8
        else:
            block["recall"] = block["recall"][::-1] if block["recall"] != block["recall"][::-1] else [0.5] * 10
        if split == "test":  # keep the confusion matrix check quiet: the scores must catch it
            r.pop("confusion_matrix")

    _edit(out, rid, change)
    with pytest.raises(protocol.ProtocolError, match=rf"{rid}.npz .*does not belong to .*{rid}.json|{rid}.json"):
        protocol.report(out)


def test_the_report_opens_every_score_file_it_relies_on(folder):
    from camri_utils import protocol

    out, _ = folder
    rid, _ = _by_method(out, "CAMRI")
    (out / "runs" / f"{rid}.npz").unlink()
    with pytest.raises(protocol.ProtocolError, match=rf"{rid}.npz \(the scores of the record {rid}.json\) is missing"):
        protocol.report(out)
    from camri_utils.cli import main as camri

    assert camri(["protocol", "report", "--output", str(out)]) == 2


def test_an_important_class_outside_the_data_is_named(folder, capsys):
    from camri_utils import protocol
    from camri_utils.cli import main as camri

    out, ds = folder
    stored = json.loads((out / "protocol.json").read_text())
    stored["spec"]["important_class"] = 99
    (out / "protocol.json").write_text(json.dumps(stored))
    with pytest.raises(protocol.ProtocolError, match=r"protocol.json names important_class 99, but its runs' data "
                                                     r"has 10 classes \(0 to 9\)"):
        protocol.report(out)
    assert camri(["protocol", "report", "--output", str(out)]) == 2
    assert "important_class 99" in capsys.readouterr().err
    with pytest.raises(protocol.ProtocolError, match=r"important_class 99 is not a class of fashion_mnist \(10"):
        protocol.run(_tiny_spec(important_class=99), out.parent / "fresh", progress=False, dataset=ds)
    assert not (out.parent / "fresh").exists()


@pytest.mark.parametrize("case", ["none yet", "another configuration", "all diverged"])
def test_a_table_without_this_protocols_ce_runs_says_why(folder, case):
    from camri_utils import protocol
    from camri_utils.protocol.report import WaitingForCE

    out, _ = folder
    rid, record = _by_method(out, "CE")
    if case == "none yet":
        for suffix in (".json", ".npz"):
            (out / "runs" / f"{rid}{suffix}").unlink()
        with pytest.raises(WaitingForCE, match=r"no CE run of this protocol is recorded in .* yet \(0 of 1\)"):
            protocol.report(out)
    elif case == "another configuration":
        stored = json.loads((out / "protocol.json").read_text())
        stored["spec"]["learning_rate"] = 0.5  # every planned run id changes: the records are another protocol's
        (out / "protocol.json").write_text(json.dumps(stored))
        with pytest.raises(protocol.ProtocolError, match=rf"holds 1 CE record\(s\), but none of this protocol's "
                                                         rf"plan .*{rid}.json"):
            protocol.report(out)
    else:
        (out / "runs" / f"{rid}.npz").unlink()
        _edit(out, rid, lambda r: r.update(diverged=True, diverged_reason="the loss became nan in epoch 1", accuracy=None,
                                           recall=None, precision=None, confusion_matrix=None, validation=None,
                                           scores_sha256=None))
        with pytest.raises(protocol.ProtocolError, match=r"every CE run of this protocol in .* diverged \(1\)"):
            protocol.report(out)


def test_a_shard_that_did_its_share_before_ce_exits_0_saying_the_table_waits(monkeypatch, tmp_path, capsys):
    from camri_utils import protocol
    from camri_utils.cli import main as camri
    from camri_utils.protocol.report import WaitingForCE

    root = fixtures.write("fashion_mnist", tmp_path / "fx", per_class=6)
    monkeypatch.setattr(protocol, "run", lambda *a, **k: 3)

    def waiting(*a, **k):
        raise WaitingForCE("no CE run of this protocol is recorded in x yet (0 of 5)")

    monkeypatch.setattr(protocol, "report", waiting)
    assert camri(["protocol", "--data-dir", str(root), "--output", str(tmp_path / "out"), "--shard", "2/2"]) == 0
    out = capsys.readouterr().out
    assert "trained 3 run(s)" in out and "this shard's runs are done; no table yet: no CE run" in out
    assert camri(["protocol", "report", "--output", str(tmp_path / "out")]) == 2  # asked for a table: an error


def test_a_damaged_record_file_is_named(folder):
    from camri_utils import protocol

    out, _ = folder
    rid, _ = _by_method(out, "CE")
    (out / "runs" / f"{rid}.json").write_text('{"schema": "camri-protocol-record/2", "run_id"')
    with pytest.raises(protocol.ProtocolError, match=rf"{rid}.json is not valid JSON.*--rerun {rid}"):
        protocol.load_records(out)


@pytest.mark.parametrize("content, match", [
    ("[1, 2]", "holds list, not an object"),
    ('{"spec": {}, "data_source": "reel"}', "field 'data_source' must be one of"),
    ('{"spec": [], "data_source": "real"}', "field 'spec' is not an object"),
    ('{"spec": {}, "data_source": "real", "x": 1}', r"has unknown fields \['x'\]"),
    ("{broken", "is not valid JSON"),
])
def test_a_bad_protocol_json_is_named(folder, content, match):
    from camri_utils import protocol

    out, _ = folder
    (out / "protocol.json").write_text(content)
    with pytest.raises(protocol.ProtocolError, match=match) as caught:
        protocol.report(out)
    assert "protocol.json" in str(caught.value)


@pytest.mark.parametrize("field, value, match", [
    ("epochs", "12", "epochs must be an integer"), ("batch_size", -1, "batch_size must be an integer >= 1"),
    ("seeds", [], "seeds must be a non-empty list"), ("model", "resnet", "model must be one of"),
    ("typo_field", 1, "unknown protocol fields"),
])
def test_a_protocol_json_with_a_bad_field_is_named(folder, field, value, match):
    from camri_utils import protocol

    out, _ = folder
    stored = json.loads((out / "protocol.json").read_text())
    stored["spec"][field] = value
    (out / "protocol.json").write_text(json.dumps(stored))
    with pytest.raises(protocol.ProtocolError, match=rf"protocol.json is not a valid protocol description.*{match}"):
        protocol.read_spec(out)


def _swap(a, b):
    tmp = a.with_suffix(".tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def test_scores_are_bound_to_their_record(folder):
    from camri_utils import protocol

    out, _ = folder
    records = _records(out)
    shared = [rid for rid, r in records.items() if r["important_class"] is None]
    assert all(r["scores_sha256"] and r["split_sizes"]["test"] == sum(map(sum, r["confusion_matrix"]))
               for r in records.values())
    a, b = (out / "runs" / f"{rid}.npz" for rid in shared[:2])
    _swap(a, b)  # two runs' score files swapped (a sync conflict, a hand copy)
    with pytest.raises(protocol.ProtocolError, match=r"(?s)not the file written with .*json.*SHA-256") as caught:
        protocol.load_scores(out, records[a.stem])
    assert a.name in str(caught.value) and f"--rerun {a.stem}" in str(caught.value)
    with pytest.raises(protocol.ProtocolError, match="SHA-256"):
        protocol.report(out)  # the threshold rows re-read CE's scores: refused, not changed


def _rewrite_scores(path, change):
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    change(arrays)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(test=np.full_like(a["test"], np.nan)), "non-finite"),
    (lambda a: a.update(test=-a["test"]), "do not give the record's confusion matrix"),
    (lambda a: a.update(y_test=a["y_test"][::-1].copy()), "do not give the record's confusion matrix"),
    (lambda a: a.update(test=a["test"][:5], y_test=a["y_test"][:5]), "holds 5 test images, but the record's metrics count"),
    (lambda a: a.update(validation=a["validation"][:, :5]), "validation scores have shape"),
    (lambda a: a.pop("y_test"), "it has no 'y_test' array"),
])
def test_scores_of_a_record_without_a_digest_are_checked_by_their_content(folder, change, match):
    """Records written before the digest existed (as some committed ones): a stale, negated,
    shuffled, truncated or NaN score file is refused by what it holds."""
    from camri_utils import protocol

    out, _ = folder
    rid, _ = _by_method(out, "CE")
    _edit(out, rid, lambda r: (r.pop("scores_sha256"), r.pop("split_sizes")))
    record = _records(out)[rid]
    assert protocol.load_scores(out, record)["test"].dtype == np.float32  # untouched: accepted
    _rewrite_scores(out / "runs" / f"{rid}.npz", change)
    with pytest.raises(protocol.ProtocolError, match=match):
        protocol.load_scores(out, record)


def test_another_runs_scores_copied_over_are_refused(folder, made):
    from camri_utils import protocol

    out, _ = folder
    records = _records(out)
    ce, ns = (next(rid for rid, r in records.items() if r["method"] == m) for m in ("CE", "NormSoftmax"))
    _edit(out, ce, lambda r: (r.pop("scores_sha256"), r.pop("split_sizes")))
    shutil.copy(out / "runs" / f"{ns}.npz", out / "runs" / f"{ce}.npz")
    with pytest.raises(protocol.ProtocolError, match=f"{ce}.npz .* does not belong to .*{ce}.json"):
        protocol.load_scores(out, _records(out)[ce])


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "empty"])
def test_a_missing_or_damaged_score_file_says_how_to_recover_and_a_resume_trains_it_again(folder, damage, capsys):
    from camri_utils import protocol

    out, ds = folder
    rid, before = _by_method(out, "CE")
    path = out / "runs" / f"{rid}.npz"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(b"" if damage == "empty" else b"PK\x03\x04 not a zip")
    with pytest.raises(protocol.ProtocolError, match=rf"{rid}.npz .*(missing|cannot be read).*--rerun {rid}"):
        protocol.load_scores(out, before)
    assert protocol.run(_tiny_spec(), out, progress=False, dataset=ds) == 1  # only that run
    assert "training again" in capsys.readouterr().out
    after = _records(out)[rid]
    assert protocol.load_scores(out, after)["test"].shape[0] == after["split_sizes"]["test"]
    assert protocol.run(_tiny_spec(), out, progress=False, dataset=ds) == 0


def test_rerun_removes_a_run_under_its_lock_and_refuses_what_is_not_a_run_id(folder):
    from camri_utils import protocol
    from camri_utils.protocol import store
    from camri_utils.protocol.locks import Lock

    out, ds = folder
    rid, _ = _by_method(out, "NormSoftmax")
    for bad in ("../protocol", "x" * 20, rid + "0"):
        with pytest.raises(protocol.ProtocolError, match="--rerun takes run ids"):
            store.rerun(out, [bad])
    held = Lock(out, rid)
    assert held.acquire()
    with pytest.raises(protocol.ProtocolError, match=rf"{rid} is held by process {__import__('os').getpid()}"):
        store.rerun(out, [rid])
    held.release()
    assert store.rerun(out, [rid, "0" * 20]) == [rid]
    assert not (out / "runs" / f"{rid}.json").exists() and not (out / "runs" / f"{rid}.npz").exists()
    assert protocol.run(_tiny_spec(), out, progress=False, dataset=ds) == 1


def test_add_digests_binds_old_records_and_changes_nothing_else(folder):
    from camri_utils.protocol import store

    out, _ = folder
    before = _records(out)
    for rid in before:
        _edit(out, rid, lambda r: (r.pop("scores_sha256"), r.pop("split_sizes")))
    updated = store.add_digests(out)
    assert sorted(updated) == sorted(before)
    after = _records(out)
    for rid, r in before.items():
        stored_sizes = {k: v for k, v in r["split_sizes"].items() if k == "test" or r["important_class"] is None}
        assert after[rid] == {**r, "split_sizes": stored_sizes}
    assert store.add_digests(out) == []


def test_a_diverged_run_is_recorded_as_such_and_not_trained_again(tmp_path):
    from camri_utils import protocol

    ds = data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist", tmp_path / "fx", per_class=6))
    spec = _tiny_spec(learning_rate=1e8, normsoftmax_grid=[], threshold_biases=[])
    out = tmp_path / "r"
    with pytest.warns(RuntimeWarning, match="training diverged"):
        # The CE run diverges: recorded, and there is no ranking for the CAMRI runs.
        with pytest.raises(protocol.ProtocolError, match="every CE run in .* diverged"):
            protocol.run(spec, out, progress=False, dataset=ds)
    (record,) = protocol.load_records(out)  # valid
    assert record["diverged"] is True and "nan" in record["diverged_reason"]
    assert record["accuracy"] is None and record["recall"] is None and "validation" not in record
    assert not (out / "runs" / f"{record['run_id']}.npz").exists()
    json.loads((out / "runs" / f"{record['run_id']}.json").read_text(), parse_constant=pytest.fail)  # no NaN
    with pytest.raises(protocol.ProtocolError, match="diverged run: it has no scores"):
        protocol.load_scores(out, record)
    stored = (out / "runs" / f"{record['run_id']}.json").read_text()
    with pytest.raises(protocol.ProtocolError, match="every CE run in .* diverged"):
        protocol.run(spec, out, progress=False, dataset=ds)
    assert (out / "runs" / f"{record['run_id']}.json").read_text() == stored  # not trained again
    edited = dict(record, accuracy=0.1)
    (out / "runs" / f"{record['run_id']}.json").write_text(json.dumps(edited))
    with pytest.raises(protocol.ProtocolError, match="is marked diverged, so field 'accuracy' must be null"):
        protocol.load_records(out)


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--shard", "-1/2"], "shard i/n needs 1 <= i <= n; got '-1/2'"),
    (["--shard", "3/2"], "shard i/n needs 1 <= i <= n; got '3/2'"),
    (["--shard", "a/b"], "shard must look like 2/8"),
    (["--workers", "0"], "workers must be a whole number >= 1; got '0'"),
    (["--workers", "-2"], "workers must be a whole number >= 1; got '-2'"),
    (["--threads-per-worker", "two"], "threads-per-worker must be a whole number >= 1; got 'two'"),
    (["--accuracy-k", "-1"], "accuracy-k must be a finite number >= 0; got '-1'"),
])
def test_bad_command_line_values_are_named(args, message, capsys):
    from camri_utils.cli import main as camri

    with pytest.raises(SystemExit) as caught:
        camri(["protocol", *args])
    assert caught.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["protocol", "--output", ""], ["protocol", "report", "--output", " "], ["protocol", "--data-dir", ""],
    ["sensitivity", "--protocol", "", "--output", "x"], ["sensitivity", "--protocol", "p", "--output", ""],
])
def test_an_empty_folder_argument_is_an_error_not_the_default(args, tmp_path, monkeypatch, capsys):
    """``--output ''`` once meant the default folder: a typo (an unset shell variable) wrote
    into, or reported, another folder than the one meant."""
    from camri_utils.cli import main as camri

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(SystemExit) as caught:
        camri(args)
    option = next(a for a, v in zip(args, args[1:]) if a.startswith("--") and not v.strip())
    assert caught.value.code == 2 and f"{option} is empty; give a folder" in capsys.readouterr().err
    assert not list((tmp_path / "cwd").iterdir())  # nothing written, neither here nor in a default folder


def test_the_notebook_runners_empty_output_dir_is_an_error(tmp_path, monkeypatch, capsys):
    from camri_utils.notebook import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(["nb.ipynb", "--output-dir", ""])
    assert caught.value.code == 2 and "--output-dir is empty" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_camri_results_dir_naming_no_folder_is_an_error_not_the_checkouts_results(kind, tmp_path, monkeypatch):
    from camri_utils import records

    target = {"missing": tmp_path / "typo", "file": tmp_path / "file"}[kind]
    if kind == "file":
        target.write_text("x")
    monkeypatch.setenv("CAMRI_RESULTS_DIR", str(target))
    with pytest.raises(FileNotFoundError, match=r"CAMRI_RESULTS_DIR is .*(missing|a file): set it to "
                                                r"the folder that holds your results folders \(such as fashion_mnist\)"):
        records.find("results/fashion_mnist")
    from camri_utils.stored_runs import RunStore

    with pytest.raises(FileNotFoundError, match="CAMRI_RESULTS_DIR"):
        RunStore.find("results/digits_2d")
    monkeypatch.setenv("CAMRI_RESULTS_DIR", str(tmp_path))  # a folder without it: the committed results
    assert (records.find("results/fashion_mnist") / "protocol.json").is_file()


def test_rerun_takes_run_ids_only_and_only_when_running(made, tmp_path, capsys):
    from camri_utils.cli import main as camri

    out = shutil.copytree(made[0], tmp_path / "r")
    assert camri(["protocol", "report", "--output", str(out), "--rerun", "0" * 20]) == 2
    assert "--rerun needs the 'run' action" in capsys.readouterr().err
    assert camri(["protocol", "--output", str(out), "--data-dir", str(tmp_path / "missing"), "--rerun", "x"]) == 2
    assert "not found" in capsys.readouterr().err  # the data is checked first: nothing is removed
    assert len(list((out / "runs").glob("*.json"))) == len(list((made[0] / "runs").glob("*.json")))


def _sweep_folder(tmp_path, sweep):
    out = tmp_path / "s"
    (out / "runs").mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps({"sweep": sweep, "data_source": "synthetic fixture"}))
    return out


def test_sensitivity_report_reads_sweep_json_and_refuses_another_sweep(made, tmp_path, capsys):
    from camri_utils import protocol
    from camri_utils.cli import main as camri

    quick = protocol.sweep_preset("fashion_mnist", "quick").to_dict()
    report = ["sensitivity", "report", "--protocol", str(made[0])]
    other = _sweep_folder(tmp_path, {**quick, "seeds": [0, 1, 2]})
    before = sorted(p.name for p in other.iterdir())
    assert camri([*report, "--output", str(other)]) == 2
    assert "describes another sweep" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == before  # no sensitivity.md written over it
    (other / "sweep.json").write_text(json.dumps({"sweep": {**quick, "scales": ["8"]}, "data_source": "real"}))
    assert camri([*report, "--output", str(other)]) == 2
    assert "field 'sweep.scales' must be a non-empty list of numbers" in capsys.readouterr().err
    (other / "sweep.json").write_text("{")
    assert camri([*report, "--output", str(other)]) == 2
    assert "sweep.json is not valid JSON" in capsys.readouterr().err
    assert camri([*report, "--output", str(tmp_path / "nothing")]) == 2
    assert "not a sensitivity sweep's folder" in capsys.readouterr().err


@pytest.mark.parametrize("content, match", [
    ({"sweep": {}, "data_source": "real", "extra": 1}, "does not hold exactly 'sweep' and 'data_source'"),
    ({"sweep": {}, "data_source": "reel"}, "field 'data_source' must be one of"),
    ({"sweep": [], "data_source": "real"}, "field 'sweep' is not an object"),
])
def test_a_bad_sweep_json_is_named(content, match, tmp_path):
    from camri_utils import protocol
    from camri_utils.protocol import store

    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps(content))
    with pytest.raises(protocol.ProtocolError, match=rf"sweep.json {match}"):
        store.read_sweep(out)


# ---------------------------------------------------------------------------------------------
# Exercise checks: an answer of any form gets a verdict, never NumPy's or Keras' exception
# ---------------------------------------------------------------------------------------------
def test_a_ragged_list_or_a_symbolic_tensor_is_named_by_every_check():
    import keras

    from camri_utils import exercises

    symbolic = keras.Input((3,))
    ragged = [1.0, [2.0, 3.0]]
    answers = {"ragged": ragged, "symbolic": symbolic, "function of ragged": lambda *a, **k: ragged,
               "function of symbolic": lambda *a, **k: symbolic}
    seen = set()
    for stem in exercises.stems():
        ex = exercises.chapter(stem)
        for e in ex.exercises:
            if not e.checked:
                continue
            for kind, answer in answers.items():
                v = ex.verdict(e.id, answer)  # never raises
                assert v.status in ("unreadable", "incorrect"), (stem, e.id, kind, v)
                if v.status == "unreadable":
                    seen.add((kind, "symbolic tensor" in v.message or "ragged list" in v.message
                              or "cannot be read" in v.message or "must be" in v.message))
    assert ("ragged", True) in seen and ("symbolic", True) in seen and ("function of ragged", True) in seen
    ch1 = exercises.chapter(1)
    assert "is a symbolic tensor (KerasTensor): a placeholder" in ch1.verdict(4, symbolic).message
    assert "its rows have different lengths (a ragged list)" in ch1.verdict(4, ragged).message
    assert "its rows have different lengths" in ch1.verdict(1, ragged).message


def test_a_read_only_results_folder_is_a_clear_error_not_a_traceback(folder, monkeypatch, capsys):
    """(Tests run as root here, where chmod does not deny: the refusal is simulated where the
    operating system would raise it.)"""
    import filelock

    from camri_utils import protocol
    from camri_utils.cli import main as camri
    import sys

    from camri_utils.protocol import locks

    report = sys.modules["camri_utils.protocol.report"]  # the module (the package exports its function)
    out, ds = folder

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report, "write_text", denied)
    with pytest.raises(protocol.ProtocolError, match=r"cannot write the table into .*\(Permission denied\): the "
                                                     r"folder is read-only"):
        protocol.report(out)
    assert camri(["protocol", "report", "--output", str(out)]) == 2
    assert "read-only" in capsys.readouterr().err
    monkeypatch.setattr(filelock.FileLock, "acquire", denied)
    with pytest.raises(protocol.ProtocolError, match=r"cannot lock .*\.locks \(Permission denied\): the results "
                                                     r"folder is read-only"):
        protocol.run(_tiny_spec(), out, progress=False, dataset=ds)
    assert locks.LOCKS == ".locks"

"""Labels checked where data enters (Dataset), the validation split (split_validation) and the
one-pipeline builder (pipeline)."""

import dataclasses
import math

import numpy as np
import pytest

from camri_utils import data
from camri_utils.data import fixtures


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("CAMRI_DATA_DIR", raising=False)


def toy(y_train, y_test=(0, 1), n_classes=3, name="toy", **fields):
    """A Dataset of unique 2x2 images (image i holds the number i) with these labels."""
    y_train = np.asarray(y_train)
    x = np.arange(len(y_train) * 4, dtype=np.int64).reshape(-1, 2, 2, 1)
    return data.Dataset(name, x, y_train, np.zeros((len(y_test), 2, 2, 1), np.uint8), np.asarray(y_test),
                        [str(c) for c in range(n_classes)], data.Source("test", real=False), **fields)


def index_of(images):
    """Each toy image's index in the original training set (it holds its own number)."""
    return images[:, 0, 0, 0] // 4


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels,message", [
    ([0, 1, -1], r"toy train label -1 is outside \[0, 3\)"),
    ([0, 1, 3], r"toy train label 3 is outside \[0, 3\)"),
    ([0, 2.7, 1], r"toy train labels must be class indices \(integers\); got 2\.7 at index 1"),
    ([0, np.nan, 1], "must be class indices"),
    ([[0], [1], [2]], r"toy train labels have shape \(3, 1\).*y\.ravel\(\)"),
    (["a", "b", "c"], "must be integer class indices; got dtype <U1"),
])
def test_bad_labels_are_refused_where_data_enters(labels, message):
    with pytest.raises(ValueError, match=message):
        toy(labels)


def test_labels_count_each_split_and_integer_floats_are_converted():
    with pytest.raises(ValueError, match="toy test has 2 images but 3 labels"):
        data.Dataset("toy", np.zeros((3, 1)), np.array([0, 1, 2]), np.zeros((2, 1)), np.array([0, 1, 2]),
                     ["a", "b", "c"], data.Source("test", real=False))
    ds = toy(np.array([0.0, 2.0, 1.0]))
    assert ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="toy val label 5 is outside"):
        toy([0, 1, 2], x_val=np.zeros((1, 2, 2, 1)), y_val=np.array([5]))
    with pytest.raises(ValueError, match="give both x_val and y_val"):
        toy([0, 1, 2], y_val=np.array([0]))


def test_training_subsets_still_replace_the_arrays():
    """training.py takes subsets with dataclasses.replace: the checks run again and pass."""
    ds = toy([0, 1, 2, 0])
    sub = dataclasses.replace(ds, x_train=ds.x_train[:2], y_train=ds.y_train[:2])
    assert sub.y_train.tolist() == [0, 1]
    with pytest.raises(ValueError, match="4 images but 2 labels"):
        dataclasses.replace(ds, y_train=ds.y_train[:2])


# ---------------------------------------------------------------------------------------------
# split_validation
# ---------------------------------------------------------------------------------------------
def test_split_is_sized_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [40, 20, 60])  # unbalanced, 120 images
    ds = toy(np.random.default_rng(5).permutation(labels))
    split = data.split_validation(ds, size=30, seed=1)
    assert len(split.x_val) == 30 and len(split.x_train) == 90
    # Stratified: each class's share of the validation part is its share of the training set.
    np.testing.assert_allclose(np.bincount(split.y_val, minlength=3), [10, 5, 15], atol=1)
    # Disjoint, complete, and each label still with its image.
    train_idx, val_idx = index_of(split.x_train), index_of(split.x_val)
    assert not set(train_idx) & set(val_idx) and sorted([*train_idx, *val_idx]) == list(range(120))
    np.testing.assert_array_equal(split.y_val, ds.y_train[val_idx])
    np.testing.assert_array_equal(split.y_train, ds.y_train[train_idx])
    # Seeded: the same seed the same split, another seed another one; the input is untouched.
    np.testing.assert_array_equal(data.split_validation(ds, size=30, seed=1).x_val, split.x_val)
    assert not np.array_equal(data.split_validation(ds, size=30, seed=2).x_val, split.x_val)
    assert ds.x_val is None and len(ds.x_train) == 120
    assert split.notes["validation"] == {"size": 30, "requested": 30, "seed": 1, "by_group": False,
                                         "method": "stratified"}


def test_fractions_and_the_per_dataset_default():
    ds = toy(np.tile([0, 1, 2], 20))
    assert len(data.split_validation(ds, size=0.25).x_val) == 15
    assert len(data.split_validation(ds, size=np.float32(0.1)).x_val) == 6
    digits = data.split_validation(data.load("digits"))
    assert data.VALIDATION_SIZE["digits"] == 0.2
    assert len(digits.x_val) == math.ceil(0.2 * (len(digits.x_train) + len(digits.x_val)))
    assert set(data.VALIDATION_SIZE) == set(data.NAMES)


@pytest.mark.parametrize("size,message", [
    (0, "leave at least one"), (-3, "leave at least one"), (60, "leave at least one"), (1.0, "a count .* or a fraction"),
    (1.5, "a count .* or a fraction"), (0.0, "a count"), (True, "a count"), ("10", "a count"), (None, "no default"),
])
def test_bad_sizes_are_refused(size, message):
    with pytest.raises(ValueError, match=message):
        data.split_validation(toy(np.tile([0, 1, 2], 20)), size=size)


def test_a_dataset_is_split_once():
    once = data.split_validation(toy(np.tile([0, 1, 2], 20)), size=6)
    with pytest.raises(ValueError, match="already has a validation split"):
        data.split_validation(once, size=6)


def test_too_few_per_class_falls_back_to_a_permutation_keeping_every_class():
    ds = toy([0, 1, 1, 1, 1, 2, 2, 2, 2, 2])  # class 0 has a single image: no stratified split
    for seed in range(5):
        split = data.split_validation(ds, size=4, seed=seed)
        assert len(split.x_val) == 4 and set(split.y_train) == {0, 1, 2}
        assert "permutation" in split.notes["validation"]["method"]
    # Asked for more than can leave every class in training: as many classes as possible stay.
    split = data.split_validation(ds, size=8, seed=0)
    assert len(split.x_train) == 2 and len(set(split.y_train)) == 2


def group_of_each_image(ds, groups):
    return groups[index_of(ds.x_train)], groups[index_of(ds.x_val)]


def test_groups_never_straddle_the_split():
    groups = np.repeat(np.arange(60), 3)  # 60 tracks of 3 frames, each track one class
    labels = np.repeat(np.tile([0, 1, 2], 20), 3)
    ds = toy(labels, groups_train=groups)
    for seed in range(3):
        split = data.split_validation(ds, size=0.2, seed=seed)
        train_groups, val_groups = group_of_each_image(split, groups)
        assert not set(train_groups) & set(val_groups)
        np.testing.assert_array_equal(split.groups_train, train_groups)
        assert abs(len(split.x_val) - 36) <= 3 and set(split.y_val) == {0, 1, 2}
        assert split.notes["validation"]["by_group"] and split.notes["validation"]["method"] == "stratified by group"
    assert not np.array_equal(data.split_validation(ds, size=0.2, seed=0).x_val,
                              data.split_validation(ds, size=0.2, seed=1).x_val)


def test_group_split_errors():
    ds = toy(np.tile([0, 1, 2], 20), groups_train=np.arange(60) // 3)
    with pytest.raises(ValueError, match="at most half"):
        data.split_validation(ds, size=0.6)
    subset = dataclasses.replace(ds, x_train=ds.x_train[:30], y_train=ds.y_train[:30])
    with pytest.raises(ValueError, match=r"groups_train has shape \(60,\) but there are 30 training images.*same subset"):
        data.split_validation(subset, size=6)
    with pytest.raises(ValueError, match="at least two groups"):
        data.split_validation(dataclasses.replace(ds, groups_train=np.zeros(60, int)), size=6)


def test_too_few_per_class_for_folds_falls_back_to_whole_groups_in_a_permutation():
    # 15 groups of 2 images, 3 groups (6 images) per class: 7 or more folds have no stratified split.
    groups = np.repeat(np.arange(15), 2)
    ds = toy(np.repeat(np.tile(np.arange(5), 3), 2), n_classes=5, groups_train=groups)
    for seed in range(4):
        split = data.split_validation(ds, size=4, seed=seed)
        train_groups, val_groups = group_of_each_image(split, groups)
        assert not set(train_groups) & set(val_groups) and len(split.x_val) == 4
        assert set(split.y_train) == set(range(5)) and "permutation" in split.notes["validation"]["method"]
    assert len(data.split_validation(ds, size=3).x_val) == 4  # whole groups: 3 images round up to 4


def test_gtsrb_validation_keeps_tracks_whole(tmp_path):
    ds = data.load("gtsrb", data_dir=fixtures.write("gtsrb", tmp_path / "g", per_class=10), size=8)
    assert len(np.unique(ds.groups_train)) == 43 * 5
    split = data.split_validation(ds)  # the default: 0.1, by track
    assert data.VALIDATION_SIZE["gtsrb"] == 0.1 and split.notes["validation"]["method"] == "stratified by group"
    # Map each image back to its track through its pixels (the fixture's images are unique).
    track_of = {img.tobytes(): g for img, g in zip(ds.x_train, ds.groups_train)}
    assert len(track_of) == len(ds.x_train)
    val_tracks = {track_of[img.tobytes()] for img in split.x_val}
    train_tracks = {track_of[img.tobytes()] for img in split.x_train}
    assert val_tracks and not val_tracks & train_tracks
    assert len(split.x_val) % 2 == 0 and set(split.y_train) == set(range(43))  # whole tracks of 2 frames


# ---------------------------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------------------------
def test_pipeline_builds_one_validation_or_training_pipeline():
    ds = data.split_validation(toy(np.tile([0, 1, 2], 20)), size=12)
    x = ds.x_val.astype(np.uint8)
    val = data.pipeline(x, ds.y_val, batch_size=5, training=False)
    xs = np.concatenate([b.numpy() for b, _ in val])
    np.testing.assert_allclose(xs, x.astype(np.float32) / 255, rtol=1e-6)  # in order, scaled
    assert [len(y) for _, y in val] == [5, 5, 2]
    dropped = data.pipeline(x, ds.y_val, batch_size=5, training=True, seed=3, drop_remainder=True)
    epochs = [np.concatenate([b.numpy()[:, 0, 0, 0] for b, _ in dropped]) for _ in range(2)]
    assert all(len(e) == 10 for e in epochs) and not np.array_equal(epochs[0], epochs[1])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.pipeline(x, ds.y_val, batch_size=0, training=False)

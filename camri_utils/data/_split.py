"""A validation split carved from a dataset's training images: seeded, stratified, and by
group where images are not independent (GTSRB's tracks)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

# Per dataset: a count of training images, or a fraction of them.
VALIDATION_SIZE = {"fashion_mnist": 10000, "cifar10": 5000, "gtsrb": 0.1, "awa2": 0.1, "digits": 0.2}


def split_validation(dataset, size=None, seed=0):
    """A new :class:`~camri_utils.data.Dataset` whose ``x_val``/``y_val`` are carved from
    ``dataset``'s training images and whose training part is what remains.

    Args:
        size: a count of images (int >= 1) or a fraction of the training images (in (0, 1));
            default :data:`VALIDATION_SIZE` for the dataset. With ``groups_train`` whole groups
            move, so the size is approximate, and at most half the training images.
        seed: the split's seed; the same seed gives the same split.

    The split is stratified (class proportions kept on both sides). Where ``groups_train`` is
    set, no group is on both sides. Where there are too few images per class to stratify, it is
    a seeded permutation that keeps every class in training if it can. ``dataset.notes``
    records what was done under ``"validation"``.
    """
    if dataset.x_val is not None:
        raise ValueError(f"{dataset.name} already has a validation split ({len(dataset.x_val)} images): "
                         "split the dataset as loaded, once.")
    if size is None:
        if dataset.name not in VALIDATION_SIZE:
            raise ValueError(f"no default validation size for {dataset.name!r}: pass size (a count or a fraction).")
        size = VALIDATION_SIZE[dataset.name]
    y, groups = dataset.y_train, dataset.groups_train
    n_val = validation_count(size, len(y))
    if groups is None:
        train_idx, val_idx, method = _split_images(y, n_val, seed)
    else:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f"{dataset.name}: groups_train has shape {groups.shape} but there are {len(y)} "
                             "training images; when taking a subset of x_train, take the same subset of "
                             "groups_train (or set it to None).")
        train_idx, val_idx, method = _split_groups(y, groups, n_val, seed)
    notes = {**dataset.notes, "validation": {"size": len(val_idx), "requested": size, "seed": seed,
                                             "by_group": groups is not None, "method": method}}
    return dataclasses.replace(
        dataset, x_train=dataset.x_train[train_idx], y_train=y[train_idx],
        x_val=dataset.x_train[val_idx], y_val=y[val_idx],
        groups_train=None if groups is None else groups[train_idx], notes=notes)


def validation_count(size, n):
    """How many of ``n`` training images ``size`` (a count or a fraction) asks for; at least
    one image must stay on each side."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        count = int(size)
    elif isinstance(size, numbers.Real) and not isinstance(size, bool) and 0 < size < 1:
        count = math.ceil(size * n)  # as scikit-learn rounds a fractional test_size
    else:
        raise ValueError(f"validation size must be a count (an int >= 1) or a fraction in (0, 1); got {size!r}.")
    if not 1 <= count < n:
        raise ValueError(f"a validation split of {size!r} ({count} images) must leave at least one of the "
                         f"{n} training images on each side.")
    return count


def _split_images(y, n_val, seed):
    """(train indices, validation indices, method) for independent images."""
    try:
        train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed)
        return np.sort(train_idx), np.sort(val_idx), "stratified"
    except ValueError:  # a class with one image, or fewer validation images than classes
        return (*_permutation_split(y, np.arange(len(y)), n_val, seed),
                "seeded permutation (too few images per class to stratify)")


def _split_groups(y, groups, n_val, seed):
    """(train indices, validation indices, method) where whole groups go to one side: one fold
    of a seeded StratifiedGroupKFold of about ``n_val`` images."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"a split by group needs at least two groups; groups_train has {n_groups}.")
    if n_val > len(y) / 2:
        raise ValueError(f"a split by group takes one fold of at most half the {len(y)} training images; "
                         f"{n_val} asked for. Ask for at most half.")
    n_splits = min(round(len(y) / n_val), n_groups)
    try:
        with warnings.catch_warnings():  # some classes with fewer images than folds: stratified as well as it can
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            folds = list(StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                         .split(np.zeros(len(y)), y, groups))
    except ValueError:  # every class has fewer images than folds
        return (*_permutation_split(y, groups, n_val, seed),
                "by group, seeded permutation (too few images per class to stratify)")
    # The first non-empty fold that leaves every class in training (else the first non-empty one).
    folds = [(train, val) for train, val in folds if len(val)]
    n_classes = len(np.unique(y))
    train_idx, val_idx = next((f for f in folds if len(np.unique(y[f[0]])) == n_classes), folds[0])
    return np.sort(train_idx), np.sort(val_idx), "stratified by group"


def _permutation_split(y, groups, n_val, seed):
    """(train indices, validation indices): whole groups in a seeded order, taken from the front
    until about ``n_val`` images; one group of each class is moved to the back first, so that
    every class stays in training if it can. A group's class is that of its first image."""
    _, first_image, group_of = np.unique(groups, return_index=True, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(first_image))
    _, first_of_class = np.unique(y[first_image[order]], return_index=True)
    last = np.zeros(len(order), bool)
    last[first_of_class] = True
    order = np.concatenate([order[~last], order[last]])
    reached = np.cumsum(np.bincount(group_of)[order]) >= n_val
    n_val_groups = min(int(np.argmax(reached)) + 1, len(order) - 1)
    in_val = np.isin(group_of, order[:n_val_groups])
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)

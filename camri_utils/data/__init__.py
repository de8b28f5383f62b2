"""Datasets: one entry point, :func:`load`, for Fashion-MNIST, scikit-learn's digits, CIFAR-10,
GTSRB and AwA2; :func:`split_validation` to carve a validation split from the training images;
:func:`pipelines` (train and test) and :func:`pipeline` (any one) to turn them into ``tf.data``.

Where a dataset is looked for, in order: the ``data_dir`` argument (then the only place), the
``CAMRI_DATA_DIR`` environment variable (when set, the only place too: a variable naming a
missing folder, a file or a folder without the dataset is an error that names it, never a
silent fall-back to another copy), known system locations (Debian's
``/usr/share/datasets/fashion-mnist``), the Keras cache, and finally a download with checksum
(Keras' ``get_file``, with its progress bar). Errors say what was looked for where and how to get
it; nothing half-written is left in a cache. Set ``CAMRI_MIRROR`` to a base URL to download
every file from there instead (``$CAMRI_MIRROR/<official file name>``, still checked against the
official checksums). AwA2's download (13 GB) first checks that the disk has room for it. :mod:`camri_utils.data.fixtures` writes tiny
synthetic datasets in each dataset's real on-disk format, which ``load`` reports as synthetic.

Decoded arrays (GTSRB, AwA2, CIFAR-10 from its tarball) are cached in ``CAMRI_CACHE_DIR``
(default: the Keras cache's ``camri-decoded``). Where that folder cannot be written, ``load``
warns before decoding and returns the data uncached: set ``CAMRI_CACHE_DIR`` to a writable
folder to make later loads fast.

Example:
    >>> from camri_utils import data
    >>> ds = data.load("fashion_mnist")
    >>> ds.source.kind, ds.x_train.shape
    ('real', (60000, 28, 28, 1))
    >>> train, test = data.pipelines(ds, batch_size=128, seed=0)
    >>> ds = data.split_validation(ds)  # 10,000 of the training images, stratified
    >>> val = data.pipeline(ds.x_val, ds.y_val, batch_size=128, training=False)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from camri_utils import checks
from camri_utils.data import awa2, cifar10, digits, fashion_mnist, gtsrb
from camri_utils.data._common import (DATA_DIR_ENV, CorruptDataError, Dataset, DataLayoutError, DatasetNotFoundError,
                                      Source, describe_location)
from camri_utils.data._extract import archive_label, extracted, is_tar_archive
from camri_utils.data._split import VALIDATION_SIZE, split_validation

__all__ = ["NAMES", "load", "check_options", "pipelines", "pipeline", "split_validation", "describe_location", "VALIDATION_SIZE", "Dataset", "Source",
           "DatasetNotFoundError", "CorruptDataError", "DataLayoutError"]

_LOADERS = {"fashion_mnist": fashion_mnist, "digits": digits, "cifar10": cifar10, "gtsrb": gtsrb, "awa2": awa2}
NAMES = tuple(_LOADERS)


def _sha256(value, name):
    if value is None or (isinstance(value, str) and len(value) == 64
                         and all(ch in "0123456789abcdef" for ch in value.lower())):
        return value
    raise ValueError(f"{name} must be None or a SHA-256 checksum (64 hex digits); got {value!r}.")


# How each option of a loader is checked (and normalized: NumPy scalars become Python ones).
# An option a loader accepts that is not listed here is passed on as given.
_CHECKS = {
    "size": lambda v, name: checks.check_int(v, name, minimum=4),
    "crop_roi": checks.check_bool,
    "test_fraction": checks.check_fraction,
    "split_seed": lambda v, name: checks.check_int(v, name, minimum=0, maximum=2**32 - 1),
    "sha256": _sha256,
}


def check_options(name, options):
    """``options`` for dataset ``name`` checked against what its loader accepts (an unknown
    option, a string for a boolean or a number, is a ValueError naming it), as a new dict with
    NumPy scalars made Python numbers. :class:`~camri_utils.training.TrainConfig` calls it on
    its ``dataset_options``, so a bad option fails when the config is made."""
    import inspect

    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(NAMES)}.")
    if not isinstance(options, dict):
        raise ValueError(f"the options of {name} must be a dict; got {options!r}.")
    accepted = [p for p in inspect.signature(_LOADERS[name].load).parameters if p not in ("data_dir", "download")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name} has no option {unknown[0]!r}; it accepts "
                         f"{', '.join(map(repr, accepted)) if accepted else 'none'}.")
    return {k: _CHECKS[k](v, f"{name} option {k!r}") if k in _CHECKS else v for k, v in options.items()}


def load(name, data_dir=None, download=True, **options):
    """Load dataset ``name`` (one of :data:`NAMES`) as a :class:`Dataset`.

    Args:
        data_dir: folder holding the dataset's files; when given, the only place looked at. A
            tar archive (``.tar.xz``, ``.tar.gz``, ``.tar``...) of such a folder is extracted once
            into the cache (``CAMRI_CACHE_DIR``) and read from there; the data's source then names
            the archive's file. ``CAMRI_DATA_DIR`` may name an archive too.
        download: allow a download when the dataset is nowhere to be found.
        **options: per dataset: ``size`` and ``crop_roi`` (GTSRB), ``size``, ``test_fraction``,
            ``split_seed`` and ``sha256`` (AwA2), ``test_fraction`` and ``split_seed`` (digits;
            it ships inside scikit-learn, so a ``data_dir`` is an error).
    """
    options = check_options(name, options)
    archive = _tar_archive_named(data_dir)
    if archive is None:
        return _LOADERS[name].load(data_dir=data_dir, download=download, **options)
    ds = _LOADERS[name].load(data_dir=extracted(archive), download=False, **options)
    ds.source = dataclasses.replace(ds.source, location=archive_label(archive))  # not the cache folder it went to
    return ds


def _tar_archive_named(data_dir):
    """The tar archive that ``data_dir`` (or, without it, ``CAMRI_DATA_DIR``) names, or None."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV, "").strip() or None
    return Path(data_dir).expanduser() if data_dir is not None and is_tar_archive(Path(data_dir).expanduser()) else None


def pipeline(x, y, batch_size, training, seed=0, cache=True, shuffle_buffer=None, drop_remainder=False):
    """One ``tf.data`` pipeline of (float32 images in [0, 1], int labels) from uint8 images
    ``x`` and labels ``y``: converted, cached after the conversion (``cache``), shuffled only
    when ``training`` (seeded, reshuffled each epoch, ``shuffle_buffer`` default all images),
    batched and prefetched."""
    from camri_utils.environment import require_tensorflow

    tf = require_tensorflow("camri_utils.data.pipeline")

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.map(lambda img, label: (tf.cast(img, tf.float32) / 255.0, label), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer or len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def pipelines(dataset, batch_size=64, seed=0, shuffle_buffer=None, cache=True, drop_remainder=False):
    """(train, test) pipelines of ``dataset`` made by :func:`pipeline`, the training one
    shuffled; ``drop_remainder`` applies to the training one only."""
    options = dict(seed=seed, cache=cache, shuffle_buffer=shuffle_buffer)
    return (pipeline(dataset.x_train, dataset.y_train, batch_size, True, drop_remainder=drop_remainder, **options),
            pipeline(dataset.x_test, dataset.y_test, batch_size, False, **options))

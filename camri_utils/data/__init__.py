"""Datasets: one entry point, :func:`load`, for Fashion-MNIST, scikit-learn's digits, CIFAR-10,
GTSRB and AwA2, and :func:`pipelines` to turn one into ``tf.data`` pipelines.

Where a dataset is looked for, in order: the ``data_dir`` argument (then the only place), the
``CAMRI_DATA_DIR`` environment variable, known system locations (Debian's
``/usr/share/datasets/fashion-mnist``), the Keras cache, and finally a download with checksum
(Keras' ``get_file``, with its progress bar). Errors say what was looked for where and how to get
it; nothing half-written is left in a cache. :mod:`camri_utils.data.fixtures` writes tiny
synthetic datasets in each dataset's real on-disk format, which ``load`` reports as synthetic.

Example:
    >>> from camri_utils import data
    >>> ds = data.load("fashion_mnist")
    >>> ds.source.kind, ds.x_train.shape
    ('real', (60000, 28, 28, 1))
    >>> train, test = data.pipelines(ds, batch_size=128, seed=0)
"""

from __future__ import annotations

from camri_utils.data import awa2, cifar10, digits, fashion_mnist, gtsrb
from camri_utils.data._common import (CorruptDataError, Dataset, DataLayoutError, DatasetNotFoundError,
                                      Source)

__all__ = ["NAMES", "load", "pipelines", "Dataset", "Source", "DatasetNotFoundError", "CorruptDataError",
           "DataLayoutError"]

_LOADERS = {"fashion_mnist": fashion_mnist, "digits": digits, "cifar10": cifar10, "gtsrb": gtsrb, "awa2": awa2}
NAMES = tuple(_LOADERS)


def load(name, data_dir=None, download=True, **options):
    """Load dataset ``name`` (one of :data:`NAMES`) as a :class:`Dataset`.

    Args:
        data_dir: folder holding the dataset's files; when given, the only place looked at.
        download: allow a download when the dataset is nowhere to be found.
        **options: per dataset: ``size`` and ``crop_roi`` (GTSRB), ``size``, ``test_fraction``,
            ``split_seed`` and ``sha256`` (AwA2), ``test_fraction`` and ``split_seed`` (digits).
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(NAMES)}.")
    return _LOADERS[name].load(data_dir=data_dir, download=download, **options)


def pipelines(dataset, batch_size=64, seed=0, shuffle_buffer=None, cache=True, drop_remainder=False):
    """(train, test) ``tf.data`` pipelines of (float32 images in [0, 1], int labels): the
    training one shuffled (seeded, reshuffled each epoch), both batched, cached after the
    conversion and prefetched."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")

    def make(x, y, training):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        ds = ds.map(lambda img, label: (tf.cast(img, tf.float32) / 255.0, label),
                    num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            ds = ds.cache()
        if training:
            ds = ds.shuffle(shuffle_buffer or len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder and training).prefetch(tf.data.AUTOTUNE)

    return (make(dataset.x_train, dataset.y_train, True), make(dataset.x_test, dataset.y_test, False))

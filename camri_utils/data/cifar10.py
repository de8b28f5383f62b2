"""CIFAR-10: the official python tarball (``cifar-10-python.tar.gz``) or its extracted folder
``cifar-10-batches-py``; downloaded by Keras' own loader when neither is found."""

from __future__ import annotations

import pickle
import tarfile

import keras
import numpy as np

from camri_utils.data._common import (CorruptDataError, Dataset, DataLayoutError, Source, cache_key,
                                      data_dir_candidates, decoded_cache_dir, fixture_manifest, keras_cache_dir,
                                      not_found, verify)
from camri_utils.io import atomic_dir

FOLDER = "cifar-10-batches-py"
TARBALL = "cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HOW_TO_GET = ("Get it with `keras.datasets.cifar10.load_data()` (online), or put the official "
              f"{TARBALL} (or its extracted {FOLDER}/ folder) in a folder and pass it as data_dir "
              "or CAMRI_DATA_DIR.")


def _load_batch(path):
    from keras.src.datasets.cifar import load_batch  # Keras' own parser of the pickled batches

    try:
        data, labels = load_batch(str(path))
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, OSError) as exc:
        raise CorruptDataError(f"{path} is not a readable CIFAR-10 batch ({exc}).") from exc
    return data.transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def _class_names(folder):
    meta = folder / "batches.meta"
    if not meta.exists():
        return list(CLASS_NAMES)
    with open(meta, "rb") as f:
        names = pickle.load(f, encoding="bytes").get(b"label_names")
    return [n.decode() for n in names] if names else list(CLASS_NAMES)


def _read_folder(folder, source_root):
    missing = [b for b in BATCHES if not (folder / b).exists()]
    if missing:
        raise DataLayoutError(f"{folder} lacks {missing}: not an extracted CIFAR-10 python release.")
    parts = [_load_batch(folder / b) for b in BATCHES]
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    x_test, y_test = parts[5]
    real = fixture_manifest(source_root) is None
    return Dataset("cifar10", x_train, y_train, x_test, y_test, _class_names(folder),
                   Source(str(source_root), real=real))


def _extract(tarball):
    """Extract the tarball once into the decoded-data cache (atomically: a temporary folder
    renamed into place) and return its ``cifar-10-batches-py`` folder."""
    manifest = fixture_manifest(tarball.parent)
    verify(tarball, manifest["sha256"][TARBALL] if manifest else SHA256, "sha256")
    stat = tarball.stat()
    target = decoded_cache_dir() / f"cifar10-{cache_key(path=str(tarball.resolve()), size=stat.st_size, mtime=stat.st_mtime)}"
    if not (target / FOLDER).is_dir():
        try:
            with atomic_dir(target) as tmp, tarfile.open(tarball, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise CorruptDataError(f"{tarball} is truncated or corrupt ({exc}); download it again.") from exc
    return target / FOLDER


def load(data_dir=None, download=True):
    explicit, places = data_dir_candidates(data_dir)
    if not explicit:
        places.append(keras_cache_dir() / "cifar-10-batches-py-target")
    for place in places:
        if (place / FOLDER).is_dir():
            return _read_folder(place / FOLDER, place)
        if (place / TARBALL).is_file():
            return _read_folder(_extract(place / TARBALL), place)
    if explicit or not download:
        raise not_found("CIFAR-10", places, HOW_TO_GET)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()  # hash-checked
    except Exception as exc:
        raise not_found("CIFAR-10", places + [f"download failed: {str(exc)[:120]}"], HOW_TO_GET) from exc
    return Dataset("cifar10", x_train, y_train.ravel().astype(np.int64), x_test, y_test.ravel().astype(np.int64),
                   list(CLASS_NAMES), Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", real=True))

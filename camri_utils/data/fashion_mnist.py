"""Fashion-MNIST: the four IDX ``.gz`` files Keras downloads (Debian's ``dataset-fashion-mnist``
package installs the same files in ``/usr/share/datasets/fashion-mnist``)."""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from camri_utils.data._common import (CorruptDataError, Dataset, DataLayoutError, Source, data_dir_candidates,
                                      fetch, fixture_manifest, keras_cache_dir, not_found, verify)

BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
SYSTEM_DIRS = ["/usr/share/datasets/fashion-mnist"]
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot"]
HOW_TO_GET = ("Get it with `keras.datasets.fashion_mnist.load_data()` (online), `apt-get install "
              "dataset-fashion-mnist` (Debian), or put the four files "
              f"{sorted(SHA256)} in a folder and pass it as data_dir or CAMRI_DATA_DIR.")


def _read_idx(path, magic, offset):
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDataError(f"{path} is truncated or not gzip ({exc}); download it again.") from exc
    if len(raw) < offset or int.from_bytes(raw[:4], "big") != magic:
        raise CorruptDataError(f"{path} is not an IDX file (magic number {magic} expected).")
    return np.frombuffer(raw, np.uint8, offset=offset)


def _read(folder, real):
    manifest = fixture_manifest(folder)
    hashes = manifest["sha256"] if manifest else SHA256
    for name, digest in hashes.items():
        verify(folder / name, digest, "sha256")
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 2049, 8)
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 2051, 16)
        if images.size != labels.size * 28 * 28:
            raise CorruptDataError(f"{folder}: {prefix} images and labels do not match in number.")
        arrays[split] = (images.reshape(-1, 28, 28, 1), labels.astype(np.int64))
    return Dataset("fashion_mnist", *arrays["train"], *arrays["test"], list(CLASS_NAMES),
                   Source(str(folder), real=manifest is None and real))


def load(data_dir=None, download=True):
    explicit, places = data_dir_candidates(data_dir, SYSTEM_DIRS)
    if not explicit:
        places.append(keras_cache_dir() / "fashion-mnist")
    for folder in places:
        present = [n for n in SHA256 if (folder / n).exists()]
        if len(present) == len(SHA256):
            return _read(folder, real=True)
        if present:
            raise DataLayoutError(
                f"{folder} has {present} but not {sorted(set(SHA256) - set(present))}: all four "
                "Fashion-MNIST files must be together."
            )
    if explicit or not download:
        raise not_found("Fashion-MNIST", places, HOW_TO_GET)
    folder = fetch("Fashion-MNIST", {n: (BASE_URL + n, d) for n, d in SHA256.items()}, "fashion-mnist",
                      places, HOW_TO_GET)
    return _read(folder, real=True)

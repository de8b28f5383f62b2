"""Fashion-MNIST: the four IDX ``.gz`` files Keras downloads (Debian's ``dataset-fashion-mnist``
package installs the same files in ``/usr/share/datasets/fashion-mnist``)."""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from camri_utils.data._common import (CorruptDataError, Dataset, DataLayoutError, Source, find_or_fetch,
                                      fixture_manifest, verify_files)

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


def _read_idx(path, magic, dims):
    """The uint8 array of an IDX file, shaped as its header says (``dims`` numbers after the
    magic number); a header that disagrees with the data that follows is an error."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDataError(f"{path} is truncated or not gzip ({exc}); download it again.") from exc
    offset = 4 + 4 * dims
    if len(raw) < offset or int.from_bytes(raw[:4], "big") != magic:
        raise CorruptDataError(f"{path} is not an IDX file (magic number {magic} expected); download it again.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if len(raw) - offset != int(np.prod(shape)):
        raise CorruptDataError(f"{path}: its header announces {' x '.join(map(str, shape))} values but it holds "
                               f"{len(raw) - offset}; the file is damaged: download it again.")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)


def _read(folder):
    """The dataset from ``folder``, None when none of its files are there."""
    present = [n for n in SHA256 if (folder / n).exists()]
    if not present:
        return None
    if len(present) < len(SHA256):
        raise DataLayoutError(
            f"{folder} has {present} but not {sorted(set(SHA256) - set(present))}: all four "
            "Fashion-MNIST files must be together."
        )
    verify_files(folder, "sha256", SHA256)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 2049, 1)
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 2051, 3)
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise CorruptDataError(f"{folder}: {prefix} has {len(labels)} labels for {len(images)} images of "
                                   f"{images.shape[1]}x{images.shape[2]} pixels (28x28 expected, one label each); "
                                   "download the four files again.")
        arrays[split] = (images.reshape(-1, 28, 28, 1), labels.astype(np.int64))
    return Dataset("fashion_mnist", *arrays["train"], *arrays["test"], list(CLASS_NAMES),
                   Source(str(folder), real=fixture_manifest(folder) is None))


def load(data_dir=None, download=True):
    return find_or_fetch("Fashion-MNIST", _read, data_dir, download,
                         {n: (BASE_URL + n, d) for n, d in SHA256.items()}, "fashion-mnist", HOW_TO_GET,
                         system_dirs=SYSTEM_DIRS)

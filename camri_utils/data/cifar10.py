"""CIFAR-10: the official python tarball (``cifar-10-python.tar.gz``) or its extracted folder
``cifar-10-batches-py`` (where ``keras.datasets.cifar10.load_data()`` leaves it), or the images
as PNG files in class folders (``train/<class>/*.png``, ``test/<class>/*.png``: the layout of
common image-folder exports, and of a ``.tar.xz`` of them given as ``data_dir``). Batches read
from the tarball, and decoded PNG folders, are cached as arrays.

A PNG folder has no official checksum: it is taken for the real CIFAR-10 only when it holds
the release's 5,000 training and 1,000 test images per class and its per-channel pixel means
and standard deviations equal the published ones (to the four decimals they are published
with), and its source says so. Its images are ordered by class, then file name (the official
batches' order is not kept by such exports)."""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib

import numpy as np

from camri_utils.data._common import (FIXTURE_MARKER, CorruptDataError, Dataset, DataLayoutError, Source, cache_key,
                                      cached, decoded_cache_dir, find_or_fetch, fixture_manifest, verify_files)
from camri_utils.data._images import read_png_folders

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TARBALL = "cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
KERAS_SUBDIR = "cifar-10-batches-py-target"  # where Keras' own loader extracts the tarball
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
META = "batches.meta"
# The extracted release's files (as torchvision checks them): an extracted folder is checked
# against these, so that a fixture that lost its marker, or any other data, never passes as real.
BATCH_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e"}
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HOW_TO_GET = ("Get it with `keras.datasets.cifar10.load_data()` (online), or put the official "
              f"{TARBALL} (or its extracted {FOLDER}/ folder, or the images as train/<class>/*.png and "
              "test/<class>/*.png) in a folder and pass it as data_dir or CAMRI_DATA_DIR; a .tar.xz of "
              "such a folder can be passed as data_dir itself.")
ARRAYS = ("x_train", "y_train", "x_test", "y_test", "class_names")
# The PNG class-folder layout: what a real copy must hold, per class and split, and the pixel
# statistics published for CIFAR-10 (per channel, on [0, 1]; means of both splits, standard
# deviation of the training split), with half a unit of their last published decimal as tolerance.
PNG_SPLITS = {"train": 5_000, "test": 1_000}
PUBLISHED_STATS = {("train", "mean"): (0.4914, 0.4822, 0.4465), ("train", "std"): (0.2470, 0.2435, 0.2616),
                   ("test", "mean"): (0.4942, 0.4851, 0.4504)}
STATS_TOLERANCE = 0.5e-4
PNG_VERIFIED = ("not a checksummed official file: a copy of the official images as PNGs, taken as real because it "
                "holds 5,000 training and 1,000 test images per class and its per-channel pixel means (train and "
                "test) and standard deviations (train) equal the published CIFAR-10 statistics to four decimals")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the batches' dicts of bytes, lists and numpy arrays, and refuses anything
    else: a pickle can run arbitrary code, and a downloaded file is not trusted."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}  # _codecs: bytes in protocol 2

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(raw, where):
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # unpickling garbage can raise almost anything
        raise _corrupt(where, exc) from exc


def _corrupt(where, exc):
    return CorruptDataError(f"{where} is not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc}). The "
                            f"file is damaged: delete it (or {TARBALL}) and download CIFAR-10 again.")


def _parse_batch(raw, where):
    """(images (n, 32, 32, 3) uint8, labels int64) from one pickled batch."""
    batch = _unpickle(raw, where)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _corrupt(where, exc) from exc
    if labels.shape != (len(images),):
        raise _corrupt(where, ValueError(f"{len(images)} images but labels of shape {labels.shape}"))
    return images, labels


def _parse_class_names(raw, where):
    try:
        names = [n.decode() for n in _unpickle(raw, where)[b"label_names"]]
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise _corrupt(where, exc) from exc
    if not names:
        raise _corrupt(where, ValueError("no label_names"))
    return names


def _arrays(files, where):
    """The decoded arrays from ``files`` ({member name: bytes}); ``where`` names them in errors."""
    parts = [_parse_batch(files[b], f"{where}/{b}") for b in BATCHES]
    names = _parse_class_names(files[META], f"{where}/{META}") if META in files else list(CLASS_NAMES)
    return dict(x_train=np.concatenate([p[0] for p in parts[:5]]), y_train=np.concatenate([p[1] for p in parts[:5]]),
                x_test=parts[5][0], y_test=parts[5][1], class_names=np.asarray(names))


def _folder_files(folder):
    missing = [b for b in BATCHES if not (folder / b).is_file()]
    if missing:
        raise DataLayoutError(f"{folder} lacks {missing}: not an extracted CIFAR-10 python release.")
    names = BATCHES + ([META] if (folder / META).is_file() else [])
    try:
        return {n: (folder / n).read_bytes() for n in names}
    except OSError as exc:
        raise CorruptDataError(f"could not read {folder} ({exc}); download CIFAR-10 again.") from exc


def _check_official(folder, files):
    """An extracted folder without a fixture's marker must hold the official batches."""
    import hashlib

    for name, digest in BATCH_MD5.items():
        actual = hashlib.md5(files[name]).hexdigest()
        if actual != digest:
            raise CorruptDataError(
                f"{folder / name} has md5 {actual}, not the official release's {digest}: the folder is damaged or "
                "not CIFAR-10. Delete it and download CIFAR-10 again; if it is a synthetic fixture, keep its "
                f"marker file ({FIXTURE_MARKER}) in {folder.parent}, as camri_utils.data.fixtures writes it.")


def _tarball_files(tarball):
    """{member name: bytes} of the batches and meta, read from the tarball without extracting it."""
    wanted = {f"{FOLDER}/{n}": n for n in BATCHES + [META]}
    files = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    files[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise CorruptDataError(f"{tarball} is truncated or corrupt ({exc}); download it again.") from exc
    missing = [b for b in BATCHES if b not in files]
    if missing:
        raise DataLayoutError(f"{tarball} lacks {FOLDER}/{missing[0]}: not the CIFAR-10 python release.")
    return files


def _from_tarball(tarball):
    verify_files(tarball.parent, "sha256", {TARBALL: SHA256})
    stat = tarball.stat()
    key = cache_key(path=str(tarball.resolve()), size=stat.st_size, mtime=stat.st_mtime)
    return cached(decoded_cache_dir() / f"cifar10-{key}.npz", ARRAYS, lambda: _arrays(_tarball_files(tarball), tarball))


def pixel_stats(x):
    """Per-channel mean and standard deviation of uint8 images ``x`` on [0, 1], in float64."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255.0
    return flat.mean(axis=0), flat.std(axis=0)


def _check_png_release(place, arrays):
    """A PNG copy without a fixture's marker must hold the release's counts and statistics."""
    for split, per_class in PNG_SPLITS.items():
        counts = np.bincount(arrays[f"y_{split}"], minlength=len(CLASS_NAMES))
        short = {CLASS_NAMES[c]: int(n) for c, n in enumerate(counts) if n != per_class}
        if short:
            raise CorruptDataError(
                f"{place / split} holds {', '.join(f'{n:,} {c}' for c, n in short.items())} images, not the official "
                f"release's {per_class:,} per class: it is partial, damaged or not CIFAR-10, and is not taken for the "
                "real data. Get CIFAR-10 again; if it is a synthetic fixture, keep its marker file "
                f"({FIXTURE_MARKER}) in {place}, as camri_utils.data.fixtures writes it.")
    for split in PNG_SPLITS:
        mean, std = pixel_stats(arrays[f"x_{split}"])
        for stat, found in (("mean", mean), ("std", std)):
            published = PUBLISHED_STATS.get((split, stat))
            if published is not None and np.max(np.abs(found - published)) > STATS_TOLERANCE:
                raise CorruptDataError(
                    f"the {split} images in {place / split} have per-channel pixel {stat} "
                    f"{', '.join(f'{v:.4f}' for v in found)}, not the published CIFAR-10 "
                    f"{', '.join(f'{v:.4f}' for v in published)}: they are not the official images (altered, "
                    "re-encoded with loss, or another data set) and are not taken for the real data.")


def _png_arrays(place):
    x_train, y_train = read_png_folders(place / "train", CLASS_NAMES, (32, 32, 3), "CIFAR-10 train")
    x_test, y_test = read_png_folders(place / "test", CLASS_NAMES, (32, 32, 3), "CIFAR-10 test")
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=np.asarray(CLASS_NAMES))


def _png_stamp(place):
    """What identifies a PNG copy for the cache: every file's name, size and modification time."""
    entries = sorted((str(p.relative_to(place)), p.stat().st_size, p.stat().st_mtime_ns)
                     for split in PNG_SPLITS for p in (place / split).rglob("*") if p.is_file())
    return cache_key(place=str(place.resolve()), files=entries)


def _from_png_folders(place):
    missing = [split for split in PNG_SPLITS if not (place / split).is_dir()]
    if missing:
        raise DataLayoutError(f"{place} has {'/'.join(s for s in PNG_SPLITS if s not in missing)}/ but no "
                              f"{missing[0]}/: CIFAR-10 as PNG class folders needs both train/<class>/*.png and "
                              "test/<class>/*.png.")
    arrays = cached(decoded_cache_dir() / f"cifar10-png-{_png_stamp(place)}.npz", ARRAYS, lambda: _png_arrays(place))
    real = fixture_manifest(place) is None
    if real:
        _check_png_release(place, arrays)
    return arrays, real


def _read(place):
    """The dataset from ``place`` (its extracted folder first, then the tarball, then PNG class
    folders), or None."""
    if (place / FOLDER).is_dir():
        files = _folder_files(place / FOLDER)
        if fixture_manifest(place) is None:
            _check_official(place / FOLDER, files)
        arrays = _arrays(files, place / FOLDER)
    elif (place / TARBALL).is_file():
        arrays = _from_tarball(place / TARBALL)
    elif any((place / split).is_dir() for split in PNG_SPLITS):
        arrays, real = _from_png_folders(place)
        return Dataset("cifar10", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       list(CLASS_NAMES), Source(str(place), real=real, verified=PNG_VERIFIED if real else ""))
    else:
        return None
    return Dataset("cifar10", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   [str(n) for n in arrays["class_names"]], Source(str(place), real=fixture_manifest(place) is None))


def load(data_dir=None, download=True):
    return find_or_fetch("CIFAR-10", _read, data_dir, download, {TARBALL: (URL, SHA256)}, KERAS_SUBDIR, HOW_TO_GET)

"""What every loader shares: where to look, checksums, atomic writes, clear errors."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camri_utils.io import atomic_path

FIXTURE_MARKER = "CAMRI_SYNTHETIC_FIXTURE.json"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the places looked at, and could not be downloaded."""


class CorruptDataError(ValueError):
    """A file of the dataset is there but damaged: wrong checksum, truncated or unreadable."""


class DataLayoutError(ValueError):
    """A folder is there but not laid out as the dataset's official release."""


@dataclass(frozen=True)
class Source:
    """Where a dataset came from: ``location`` (a directory, archive or URL) and whether it is
    the real dataset or a synthetic fixture written by :mod:`camri_utils.data.fixtures`."""

    location: str
    real: bool

    @property
    def kind(self):
        return "real" if self.real else "synthetic fixture"

    def __str__(self):
        return f"{self.kind}: {self.location}"


@dataclass
class Dataset:
    """Train and test images (uint8, channels last), integer labels, class names and source."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    source: Source
    notes: dict = field(default_factory=dict)

    @property
    def n_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={self.n_classes}, source={self.source})")


def data_dir_candidates(data_dir, system_dirs=()):
    """(explicit, [places to look]) in the documented order: the argument, then
    ``CAMRI_DATA_DIR``, then system locations. An explicit ``data_dir`` is the only place."""
    if data_dir is not None:
        return True, [Path(data_dir).expanduser()]
    places = []
    if os.environ.get("CAMRI_DATA_DIR"):
        places.append(Path(os.environ["CAMRI_DATA_DIR"]).expanduser())
    places += [Path(p) for p in system_dirs]
    return False, places


def keras_cache_dir():
    """Keras' dataset cache (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``)."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets"


def decoded_cache_dir():
    """Where decoded arrays are cached: ``CAMRI_CACHE_DIR`` or the Keras cache."""
    env = os.environ.get("CAMRI_CACHE_DIR")
    return Path(env).expanduser() if env else keras_cache_dir() / "camri-decoded"


def fixture_manifest(root):
    """The manifest a fixture writer leaves in ``root``, or None for real data."""
    path = Path(root) / FIXTURE_MARKER
    if not path.exists():
        return None
    return json.loads(path.read_text())


def file_hash(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path, expected, algorithm):
    """Raise :class:`CorruptDataError` when ``path``'s checksum is not ``expected``."""
    actual = file_hash(path, algorithm)
    if actual != expected:
        raise CorruptDataError(
            f"{path} has {algorithm} {actual}, expected {expected}: the file is incomplete or "
            "not the official release. Delete it and download it again."
        )


def save_arrays(path, **arrays):
    """Write arrays to ``path`` (.npz) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_arrays(path):
    """Arrays from a cache written by :func:`save_arrays`; None (and the file removed) when
    it is unreadable, so that it is rebuilt."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception:
        Path(path).unlink(missing_ok=True)
        return None


def cache_key(**parts):
    """A short, stable key from the options that change the decoded arrays."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fetch(dataset, files, subdir, places, how_to_get):
    """Download ``files`` ({file name: (url, checksum or None)}) into the Keras cache's
    ``subdir`` with Keras' ``get_file`` (progress bar, checksum, no partial file left on
    failure) and return that folder. A failure (no network) becomes a
    :class:`DatasetNotFoundError` that says where the data was looked for."""
    import keras

    try:
        for fname, (url, digest) in files.items():
            keras.utils.get_file(fname, origin=url, file_hash=digest, cache_subdir=os.path.join("datasets", subdir))
    except Exception as exc:  # no network, or the server refused
        raise not_found(dataset, list(places) + [f"download failed: {str(exc)[:120]}"], how_to_get) from exc
    return keras_cache_dir() / subdir


def not_found(name, places, how_to_get):
    where = "\n".join(f"  - {p}" for p in places) or "  (nowhere: no directory given)"
    return DatasetNotFoundError(f"{name} was not found. Looked in:\n{where}\n{how_to_get}")

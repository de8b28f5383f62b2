"""What every loader shares: the dataset record, where to look, downloads, checksums, the
decoded-array cache, and clear errors."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
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
    the real dataset or a synthetic fixture written by :mod:`camri_utils.data.fixtures`.
    ``verified``: what was checked to call it real, where it is not a checksummed official
    file (e.g. a third-party copy whose counts and pixel statistics were compared with the
    published ones); empty where the official checksums were checked."""

    location: str
    real: bool
    verified: str = ""

    @property
    def kind(self):
        return "real" if self.real else "synthetic fixture"

    def __str__(self):
        return f"{self.kind}: {self.location}"

    @property
    def origin(self):
        """Where the data came from, in words that hold on any machine (for reports and
        stored outputs, which must not carry one machine's paths)."""
        return describe_location(self.location)


def describe_location(location):
    """A machine-independent description of a data ``location``: a URL as it is, Debian's
    system folder as its package, the Keras cache as a Keras download, anything else as a
    local folder."""
    text = str(location)
    if "://" in text:
        return text
    if "/" not in text and text.lower().endswith((".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")):
        return f"the archive {text}"  # a dataset read from an archive is named by its file name alone
    if text.startswith("/usr/share/datasets/"):
        return f"Debian package dataset-{Path(text).name}"
    if "/.keras/" in text or text.startswith(str(keras_cache_dir())):
        return "a Keras download (cache)"
    return "a local folder"


@dataclass
class Dataset:
    """Train and test images (uint8, channels last), integer labels, class names and source.

    ``x_val``/``y_val``: a validation split carved from the training images by
    :func:`camri_utils.data.split_validation` (None until then). ``groups_train``: a group id
    per training image where images are not independent (GTSRB: one id per physical sign's
    track), so that a split never puts one group on both sides; None when they are independent.

    Labels are checked here, where data enters: 1-D integers (integer-valued floats are
    converted), one per image, each in ``[0, n_classes)``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    source: Source
    notes: dict = field(default_factory=dict)
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    groups_train: np.ndarray | None = None

    def __post_init__(self):
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(f"{self.name}: give both x_val and y_val, or neither.")
        for split in ("train", "test") + (("val",) if self.x_val is not None else ()):
            labels = checked_labels(getattr(self, f"y_{split}"), getattr(self, f"x_{split}"), self.n_classes,
                                    f"{self.name} {split}")
            setattr(self, f"y_{split}", labels)
        # groups_train is checked where it is used (split_validation), not here: code that
        # replaces x_train with a subset through dataclasses.replace would otherwise fail.

    @property
    def n_classes(self):
        return len(self.class_names)

    @functools.cached_property
    def fingerprint(self):
        """The SHA-256 of the name, class names, images and labels (the validation split too,
        where carved): which data a result was computed on, wherever it was read from. Two
        copies of one dataset give one fingerprint, one changed pixel another. Computed once
        per object (a replaced array makes a new Dataset: ``dataclasses.replace``)."""
        digest = hashlib.sha256(json.dumps([self.name, [str(c) for c in self.class_names]]).encode())
        for part in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            if part is None:
                digest.update(b"none")
                continue
            a = np.ascontiguousarray(part)
            digest.update(f"{a.dtype.str}{a.shape}".encode())
            digest.update(memoryview(a).cast("B"))
        return digest.hexdigest()

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        val = f", val={self.x_val.shape}" if self.x_val is not None else ""
        return (f"Dataset({self.name!r}, train={self.x_train.shape}{val}, test={self.x_test.shape}, "
                f"classes={self.n_classes}, source={self.source})")


def checked_labels(y, x, n_classes, where):
    """``y`` as a 1-D int64 array, after checking it labels each image of ``x`` with a class
    in ``[0, n_classes)``; ``where`` (dataset and split) names it in the errors."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{where} labels have shape {y.shape}; expected one label per image, a 1-D "
                         "array (flatten an (n, 1) array with y.ravel()).")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(f"{where} labels must be class indices (integers); got {float(y[bad][0])} at index "
                             f"{int(np.argmax(bad))}.")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"{where} labels must be integer class indices; got dtype {y.dtype}.")
    if len(y) != len(x):
        raise ValueError(f"{where} has {len(x)} images but {len(y)} labels: give one label per image.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise ValueError(f"{where} label {bad} is outside [0, {n_classes}): labels must index class_names "
                         f"({n_classes} classes).")
    return y.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------------
# Where to look, and the download
# ---------------------------------------------------------------------------------------------
DATA_DIR_ENV = "CAMRI_DATA_DIR"


def data_dir_candidates(data_dir, system_dirs=()):
    """(explicit, [places to look]) in the documented order: the argument, then
    ``CAMRI_DATA_DIR``, then system locations (a tar archive in either place is extracted by
    :func:`camri_utils.data.load` before the loader looks). An explicit ``data_dir`` is the only place; so
    is ``CAMRI_DATA_DIR`` when it is set (a variable naming nothing, or a file, is a
    :class:`DatasetNotFoundError` naming it: a typo must not fall back to another copy)."""
    if data_dir is not None:
        return True, [Path(data_dir).expanduser()]
    from camri_utils import checks

    try:
        env = checks.check_env_dir(DATA_DIR_ENV)
    except ValueError as exc:
        raise DatasetNotFoundError(str(exc)) from None
    if env is not None:
        return True, [env]
    return False, [Path(p) for p in system_dirs]


def keras_cache_dir():
    """Keras' dataset cache (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``)."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets"


def keras_cache_places(subdir):
    """Where a Keras download of ``subdir`` can be: the Keras cache and, when that is not
    writable, the ``/tmp/.keras`` that ``keras.utils.get_file`` falls back to."""
    places = [keras_cache_dir() / subdir]
    if not os.access(keras_cache_dir().parent, os.W_OK):
        tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()  # as get_file chooses it
        places.append(Path(tmp) / ".keras" / "datasets" / subdir)
    return places


def find_or_fetch(dataset, read, data_dir, download, files, subdir, how_to_get, system_dirs=(), free_bytes=None):
    """What ``read(folder)`` returns for the first folder holding the dataset, looked for in
    the documented order: ``data_dir`` (then the only place), ``CAMRI_DATA_DIR`` (when set, the
    only place too), ``system_dirs``, the Keras cache's ``subdir``; else downloaded there (when
    ``download``).

    ``read(folder)`` returns None when the dataset is not in ``folder`` (and raises
    :class:`DataLayoutError` when it is there but incomplete); ``files`` is the download,
    ``{file name: (url, checksum or None)}``; ``dataset`` and ``how_to_get`` word the errors;
    ``free_bytes``: the disk space the download needs (checked before it starts).
    """
    explicit, places = data_dir_candidates(data_dir, system_dirs)
    if not explicit:
        places += keras_cache_places(subdir)
    for place in places:
        found = read(place)
        if found is not None:
            return found
    if explicit or not download:
        error = not_found(dataset, places, how_to_get)
        if data_dir is None and explicit:  # CAMRI_DATA_DIR chose the place
            error = DatasetNotFoundError(f"{error} {DATA_DIR_ENV} is set, so it is the only place looked at: "
                                         f"put the files there, or unset {DATA_DIR_ENV} to use the system copies, "
                                         "the Keras cache or a download.")
        raise error
    folder = fetch(dataset, files, subdir, places, how_to_get, free_bytes)
    found = read(folder)
    if found is None:
        raise DataLayoutError(f"{dataset} was downloaded to {folder} but is not laid out there as expected. "
                              f"Delete {folder} and try again.")
    return found


MIRROR_ENV = "CAMRI_MIRROR"


def download_url(url, fname):
    """Where ``fname`` is downloaded from: ``url``, or ``$CAMRI_MIRROR/fname`` when the
    ``CAMRI_MIRROR`` environment variable names a base URL (a mirror, an institute's copy, a
    local server): every dataset's files are then fetched from that one folder, under their
    official file names, and checked against the official checksums all the same."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{fname}" if mirror else url


def check_free_space(dataset, folder, needed):
    """Raise :class:`DatasetNotFoundError` when the disk holding ``folder`` (or its nearest
    existing parent) has less than ``needed`` bytes free."""
    place = Path(folder)
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free
    if free < needed:
        raise DatasetNotFoundError(
            f"{dataset} needs about {needed / 1e9:.0f} GB of free disk to download into {folder}, but only "
            f"{free / 1e9:.1f} GB are free there. Free some space, or set KERAS_HOME (the download) and "
            "CAMRI_CACHE_DIR (the decoded arrays) to a larger disk, or download the files yourself and pass "
            "their folder as data_dir.")


def fetch(dataset, files, subdir, places, how_to_get, free_bytes=None):
    """Download ``files`` ({file name: (url, checksum or None)}) into the Keras cache's
    ``subdir`` with Keras' ``get_file`` (progress bar, checksum) and return the folder it put
    them in. The URLs can be redirected with ``CAMRI_MIRROR`` (:func:`download_url`);
    ``free_bytes`` is checked before anything is downloaded. A failure (no network) becomes a
    :class:`DatasetNotFoundError` that says where the data was looked for; a file whose checksum
    is wrong is deleted and raises :class:`CorruptDataError`."""
    import keras

    if free_bytes:
        check_free_space(dataset, keras_cache_dir() / subdir, free_bytes)
    folders = set()
    for fname, (url, digest) in files.items():
        origin = download_url(url, fname)
        try:
            # cache_dir given: Keras reads KERAS_HOME once, at import; we read it now, as the search does.
            path = keras.utils.get_file(fname, origin=origin, file_hash=digest, cache_dir=str(keras_cache_dir().parent),
                                        cache_subdir=os.path.join("datasets", subdir))
        except ValueError as exc:
            if "hash does not match" not in str(exc):
                raise not_found(dataset, list(places) + [f"download failed: {str(exc)[:120]}"], how_to_get) from exc
            # Keras leaves a file that fails its checksum in place: remove it, so that nothing
            # half-right stays in the cache.
            for place in keras_cache_places(subdir):
                (place / fname).unlink(missing_ok=True)
            raise CorruptDataError(f"{fname} downloaded from {origin} does not have the expected checksum {digest}: "
                                   "the download is incomplete or not the official file, and was deleted. Try "
                                   f"again, or another mirror ({MIRROR_ENV}).") from exc
        except Exception as exc:  # no network, or the server refused
            raise not_found(dataset, list(places) + [f"download failed: {str(exc)[:120]}"], how_to_get) from exc
        # get_file picks its own cache (it falls back to /tmp/.keras when ~/.keras is not
        # writable): use the folder it answers, not the one we expect.
        folders.add(Path(path).parent)
    if len(folders) != 1:
        raise DataLayoutError(f"Keras put the {dataset} files in several folders {sorted(map(str, folders))}; "
                              "move them into one folder and pass it as data_dir.")
    return folders.pop()


def not_found(name, places, how_to_get):
    where = "\n".join(f"  - {p}" for p in places) or "  (nowhere: no directory given)"
    return DatasetNotFoundError(f"{name} was not found. Looked in:\n{where}\n{how_to_get}")


# ---------------------------------------------------------------------------------------------
# Fixture manifests and checksums
# ---------------------------------------------------------------------------------------------
def fixture_manifest(root):
    """The manifest a fixture writer leaves in ``root`` (a dict), or None for real data."""
    path = Path(root) / FIXTURE_MARKER
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _bad_manifest(path, f"is not readable JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise _bad_manifest(path, "is not a JSON object")
    return manifest


def check_release_counts(dataset, place, found, official):
    """A copy that nothing proves real (no fixture marker, no checksum to check: an extracted
    folder, an AwA2 zip without ``sha256``) must at least hold as many images as the official
    release, ``official`` ({what: count}); ``found`` says how many it holds. Else it is not
    taken for the real data: a fixture that lost its marker, a partial or a foreign copy."""
    wrong = {what: n for what, n in official.items() if found[what] != n}
    if wrong:
        held = ", ".join(f"{found[what]:,} {what}" for what in wrong)
        release = ", ".join(f"{n:,} {what}" for what, n in wrong.items())
        raise CorruptDataError(
            f"{place} holds {held}, not the official release's {release}: it is partial, damaged or not {dataset}, "
            f"and is not taken for the real data. Get {dataset} again; if it is a synthetic fixture, keep its "
            f"marker file ({FIXTURE_MARKER}) in {place}, as camri_utils.data.fixtures writes it.")


def _bad_manifest(path, problem):
    return CorruptDataError(
        f"{path} {problem}. It marks a synthetic fixture: write the fixture again with "
        "camri_utils.data.fixtures.write(name, folder), or, if the folder holds the real dataset, "
        "delete this file."
    )


def expected_checksums(root, algorithm, official):
    """{file name: checksum} to check the files in ``root`` against: a fixture's own (from its
    manifest) or, for real data, ``official``."""
    manifest = fixture_manifest(root)
    if manifest is None:
        return dict(official)
    listed = manifest.get(algorithm)
    if not isinstance(listed, dict) or not set(official) <= set(listed):
        raise _bad_manifest(Path(root) / FIXTURE_MARKER, f"does not list the {algorithm} checksums of "
                                                         f"{sorted(official)}")
    return listed


def verify_files(root, algorithm, official):
    """Check each file of ``official`` ({file name: checksum}) in ``root`` with
    :func:`verify`, against a fixture's manifest where there is one."""
    for name, digest in expected_checksums(root, algorithm, official).items():
        verify(Path(root) / name, digest, algorithm)


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


# ---------------------------------------------------------------------------------------------
# The decoded-array cache
# ---------------------------------------------------------------------------------------------
def decoded_cache_dir():
    """Where decoded arrays are cached: ``CAMRI_CACHE_DIR`` or the Keras cache."""
    env = os.environ.get("CAMRI_CACHE_DIR")
    return Path(env).expanduser() if env else keras_cache_dir() / "camri-decoded"


def cache_key(**parts):
    """A short, stable key from the options that change the decoded arrays."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Stored beside the arrays of a decoded cache: the cache file's own name (which holds the key of
# its source and options) and a digest of the arrays, so that a cache copied over from other
# options or sources, or overwritten with other arrays, is detected and rebuilt.
_CACHE_NAME, _CACHE_DIGEST = "_camri_cache_name", "_camri_cache_sha256"


def arrays_digest(arrays):
    """SHA-256 over the names, dtypes, shapes and bytes of ``arrays`` ({name: array})."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes() if a.dtype.kind in "OUS" else memoryview(a).cast("B"))
    return h.hexdigest()


def cached(path, keys, build):
    """The arrays ``keys`` from the cache at ``path``, or ``build()`` them and write the cache
    atomically. A cache that is unreadable, lacks an array, was made for another file name
    (copied over) or whose arrays no longer match their stored digest (overwritten) is rebuilt
    (with a warning for the last two). When the cache cannot be written, warn (before the slow
    ``build``) and return the arrays uncached: the data is readable, only later loads are slower."""
    arrays = load_arrays(path, tuple(keys) + (_CACHE_NAME, _CACHE_DIGEST)) if path.exists() else None
    if arrays is not None:
        name, digest = str(arrays.pop(_CACHE_NAME)), str(arrays.pop(_CACHE_DIGEST))
        if name == path.name and digest == arrays_digest(arrays):
            return arrays
        warnings.warn(f"the decoded-data cache {path} does not hold what was cached there (copied over or "
                      "overwritten); decoding the dataset again.", UserWarning, stacklevel=3)
    problem = _unwritable(path.parent)
    if problem:
        _warn_uncached(path.parent, problem)
        return build()
    arrays = build()
    try:
        save_arrays(path, **arrays, **{_CACHE_NAME: np.asarray(path.name), _CACHE_DIGEST: np.asarray(arrays_digest(arrays))})
    except OSError as exc:  # e.g. the disk filled up while writing
        _warn_uncached(path.parent, exc)
    return arrays


def _unwritable(folder):
    """Why nothing can be written in ``folder`` (created if needed), or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc


def _warn_uncached(folder, problem):
    warnings.warn(f"cannot write the decoded-data cache in {folder} ({problem}): the images are decoded "
                  "again at every load. Set CAMRI_CACHE_DIR to a writable folder to cache them.",
                  UserWarning, stacklevel=3)


def save_arrays(path, **arrays):
    """Write arrays to ``path`` (.npz) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_arrays(path, keys):
    """The arrays ``keys`` from a cache written by :func:`save_arrays`; None (and the file
    removed, where it can be) when it is unreadable or lacks one of them, so that it is rebuilt."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in keys}
    except Exception:  # unreadable (truncated, not npz) or written by an older version without a key
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:  # a read-only cache: it is rebuilt in memory at each load
            pass
        return None

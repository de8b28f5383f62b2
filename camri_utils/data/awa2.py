"""Animals with Attributes 2 (AwA2): the official ``AwA2-data.zip`` (13 GB; JPEG folders per
class under ``Animals_with_Attributes2/JPEGImages/``, 50 classes listed in ``classes.txt``), or
the folder it extracts to.

AwA2 has no official train/test split for classification. This loader makes a seeded,
stratified split (``test_fraction`` of each class, default 0.3, ``split_seed`` 0) and says so in
``Dataset.notes``. Images are resized to ``size`` x ``size`` (default 64); the decoded arrays are
cached, keyed by size, split and source. The release has no published checksum: integrity is
checked by reading every image (zip members carry CRCs); pass ``sha256`` to check the zip. A
copy nothing checks (an extracted folder, a zip without ``sha256``) and no fixture's marker
marks must hold the release's 37,322 images of 50 classes, or it is refused: a fixture that
lost its marker is never taken for the real data."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from camri_utils import checks
from camri_utils.data._archive import Members
from camri_utils.data._common import (Dataset, DataLayoutError, Source, cache_key, cached, check_release_counts,
                                      decoded_cache_dir, expected_checksums, find_or_fetch, fixture_manifest, verify)
from camri_utils.data._images import decode_all

URL = "https://cvml.ista.ac.at/AwA2/AwA2-data.zip"
ZIP = "AwA2-data.zip"
ROOT = "Animals_with_Attributes2"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
OFFICIAL_COUNTS = {"images": 37_322, "classes": 50}  # the release (Xian et al., 2018)
DOWNLOAD_BYTES = 13_600_000_000  # the zip is 13.5 GB: checked against the free disk before downloading
HOW_TO_GET = (f"Download {URL} (13 GB) and put it, or the {ROOT}/ folder it extracts to, in a "
              "folder passed as data_dir or CAMRI_DATA_DIR.")


def _class_names(members):
    found = members.find("classes.txt")
    if not found:
        raise DataLayoutError(f"{members.root} has no {ROOT}/classes.txt: not an AwA2 release.")
    names = []
    for line in members.read(found[0]).decode().splitlines():
        parts = line.split()
        if len(parts) == 2:
            names.append(parts[1])
    if not names:
        raise DataLayoutError(f"{found[0]} in {members.root} lists no classes.")
    return names


def _build(members, class_names, size, test_fraction, split_seed):
    index = {name: i for i, name in enumerate(class_names)}
    files, labels = [], []
    for n in sorted(members.names()):
        parts = n.split("/")
        if len(parts) >= 3 and parts[-3] == "JPEGImages" and n.lower().endswith((".jpg", ".jpeg")):
            if parts[-2] not in index:
                raise DataLayoutError(f"{n}: folder {parts[-2]!r} is not a class of classes.txt.")
            files.append(n)
            labels.append(index[parts[-2]])
    labels = np.asarray(labels, np.int64)
    empty = [c for c in class_names if index[c] not in set(labels.tolist())]
    if empty:
        raise DataLayoutError(f"{members.root}: no images for classes {empty[:5]} under {ROOT}/JPEGImages/.")
    try:
        train_idx, test_idx = train_test_split(np.arange(len(files)), test_size=test_fraction,
                                               stratify=labels, random_state=split_seed)
    except ValueError as exc:
        raise ValueError(f"too few images per class for a stratified split with test_fraction="
                         f"{test_fraction}: {exc}") from exc
    images = decode_all(members, files, size, desc="AwA2")
    return dict(x_train=images[train_idx], y_train=labels[train_idx],
                x_test=images[test_idx], y_test=labels[test_idx])


def _archive(place, sha256):
    """The zip or extracted folder in ``place`` (the zip checked against ``sha256`` or a
    fixture's manifest), or None."""
    if (place / ZIP).is_file():
        digest = sha256 or expected_checksums(place, "sha256", {ZIP: None})[ZIP]
        if digest:
            verify(place / ZIP, digest, "sha256")
        return place / ZIP
    if (place / ROOT).is_dir():
        return place / ROOT
    return None


def _read(place, size, test_fraction, split_seed, sha256):
    found = _archive(place, sha256)
    if found is None:
        return None
    with Members(found) as members:
        class_names = _class_names(members)
        stat = found.stat()
        key = cache_key(dataset="awa2", size=size, test_fraction=test_fraction, split_seed=split_seed,
                        source=(str(found.resolve()), stat.st_size, stat.st_mtime))
        arrays = cached(decoded_cache_dir() / f"awa2-{size}px-split{split_seed}-{key}.npz", ARRAYS,
                        lambda: _build(members, class_names, size, test_fraction, split_seed))
    real = fixture_manifest(place) is None
    if real and not (found.is_file() and sha256):  # nothing checked the images: their count is
        check_release_counts("AwA2", place, {"images": len(arrays["y_train"]) + len(arrays["y_test"]),
                                             "classes": len(class_names)}, OFFICIAL_COUNTS)
    return Dataset("awa2", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], class_names,
                   Source(str(place), real=real),
                   notes={"size": size, "split": f"seeded stratified split, test_fraction={test_fraction}, "
                                                 f"split_seed={split_seed} (AwA2 has no official split)"})


def load(data_dir=None, download=True, size=64, test_fraction=0.3, split_seed=0, sha256=None):
    size = checks.check_int(size, "size (pixels)", minimum=4)
    test_fraction = checks.check_fraction(test_fraction, "test_fraction")
    split_seed = checks.check_int(split_seed, "split_seed", minimum=0)
    return find_or_fetch("AwA2", lambda place: _read(place, size, test_fraction, split_seed, sha256), data_dir,
                         download, {ZIP: (URL, sha256)}, "awa2", HOW_TO_GET, free_bytes=DOWNLOAD_BYTES)

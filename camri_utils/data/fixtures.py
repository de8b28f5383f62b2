"""Tiny synthetic datasets written in each dataset's real on-disk format, so that
``camri_utils.data.load(name, data_dir=root)`` runs the real parsing code on them.

Each fixture leaves a manifest (``CAMRI_SYNTHETIC_FIXTURE.json``) with its own checksums: the
loaders verify the files against it (instead of the official checksums) and report the data as
a synthetic fixture. Nothing computed on a fixture is a result.

Example:
    >>> from camri_utils.data import fixtures, load
    >>> fixtures.write("gtsrb", "/tmp/gtsrb-fixture", per_class=2)
    >>> load("gtsrb", data_dir="/tmp/gtsrb-fixture").source.kind
    'synthetic fixture'
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from camri_utils.data import cifar10 as cifar10_mod
from camri_utils.data import gtsrb as gtsrb_mod
from camri_utils.data._common import FIXTURE_MARKER, file_hash
from camri_utils.io import atomic_path, write_json

__all__ = ["write", "copy_marker", "NAMES"]


def _labels(n_classes, per_class, rng):
    labels = np.repeat(np.arange(n_classes), per_class)
    return labels[rng.permutation(len(labels))]


def _manifest(root, name, **hashes):
    """Written last: a fixture whose writing failed has no manifest, so it cannot pass as one."""
    write_json(root / FIXTURE_MARKER, {"dataset": name, "synthetic": True, **hashes}, indent=1)


def _fashion_mnist(root, per_class, rng):
    hashes = {}
    for prefix, n in (("train", per_class), ("t10k", max(1, per_class // 2))):
        labels = _labels(10, n, rng).astype(np.uint8)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        files = {f"{prefix}-labels-idx1-ubyte.gz": (2049, [len(labels)], labels),
                 f"{prefix}-images-idx3-ubyte.gz": (2051, [len(labels), 28, 28], images)}
        for fname, (magic, dims, data) in files.items():
            header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
            with atomic_path(root / fname) as tmp, gzip.open(tmp, "wb") as f:
                f.write(header + data.tobytes())
            hashes[fname] = file_hash(root / fname, "sha256")
    _manifest(root, "fashion_mnist", sha256=hashes)


def _cifar10(root, per_class, rng):
    def batch(n_per_class, label):
        labels = _labels(10, n_per_class, rng)
        return pickle.dumps({b"batch_label": label.encode(), b"labels": labels.tolist(),
                             b"data": rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8),
                             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]})

    members = {f"data_batch_{i}": batch(max(1, per_class // 5), f"training batch {i} of 5") for i in range(1, 6)}
    members["test_batch"] = batch(max(1, per_class // 2), "testing batch 1 of 1")
    members[cifar10_mod.META] = pickle.dumps({b"label_names": [n.encode() for n in cifar10_mod.CLASS_NAMES],
                                            b"num_cases_per_batch": 10000, b"num_vis": 3072})
    with atomic_path(root / cifar10_mod.TARBALL) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{cifar10_mod.FOLDER}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    _manifest(root, "cifar10", sha256={cifar10_mod.TARBALL: file_hash(root / cifar10_mod.TARBALL, "sha256")})


def _cifar10_png(root, per_class, rng):
    """CIFAR-10 as PNG class folders (train/<class>/*.png, test/<class>/*.png)."""
    for split, n in (("train", per_class), ("test", max(1, per_class // 2))):
        for name in cifar10_mod.CLASS_NAMES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                with atomic_path(folder / f"{name}_s_{i:06d}.png") as tmp:
                    Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(tmp, format="PNG")
    _manifest(root, "cifar10", layout="png")


def _image_bytes(rng, w, h, fmt):
    img = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


GTSRB_FRAMES_PER_TRACK = 2  # the real release has 30; 2 gives a fixture several tracks per class


def _gtsrb(root, per_class, rng, n_classes=43):
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"

    def row(fname, w, h, label):
        return f"{fname};{w};{h};{5};{5};{w - 6};{h - 6};{label}\n"

    with atomic_path(root / gtsrb_mod.TRAIN_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for c in range(n_classes):
            folder = f"GTSRB/Final_Training/Images/{c:05d}"
            csv_text = header
            for i in range(per_class):
                w, h = (int(v) for v in rng.integers(25, 60, size=2))
                track, frame = divmod(i, GTSRB_FRAMES_PER_TRACK)
                fname = f"{track:05d}_{frame:05d}.ppm"
                z.writestr(f"{folder}/{fname}", _image_bytes(rng, w, h, "PPM"))
                csv_text += row(fname, w, h, c)
            z.writestr(f"{folder}/GT-{c:05d}.csv", csv_text)
    labels = _labels(n_classes, max(1, per_class // 2), rng)
    gt_text, test_text = header, header.replace(";ClassId", "")
    with atomic_path(root / gtsrb_mod.TEST_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for i, label in enumerate(labels):
            w, h = (int(v) for v in rng.integers(25, 60, size=2))
            fname = f"{i:05d}.ppm"
            z.writestr(f"GTSRB/Final_Test/Images/{fname}", _image_bytes(rng, w, h, "PPM"))
            gt_text += row(fname, w, h, label)
            test_text += row(fname, w, h, label).rsplit(";", 1)[0] + "\n"
        z.writestr("GTSRB/Final_Test/Images/GT-final_test.test.csv", test_text)
    with atomic_path(root / gtsrb_mod.TEST_GT_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as z:
        z.writestr(gtsrb_mod.TEST_GT_CSV, gt_text)
    _manifest(root, "gtsrb", md5={n: file_hash(root / n, "md5") for n in gtsrb_mod.MD5})


AWA2_FIXTURE_CLASSES = ["antelope", "grizzly+bear", "killer+whale", "beaver", "dalmatian"]


def _awa2(root, per_class, rng, classes=AWA2_FIXTURE_CLASSES):
    from camri_utils.data import awa2 as _awa2_mod

    with atomic_path(root / _awa2_mod.ZIP) as tmp, zipfile.ZipFile(tmp, "w") as z:
        z.writestr(f"{_awa2_mod.ROOT}/classes.txt", "".join(f"{i + 1}\t{c}\n" for i, c in enumerate(classes)))
        for c in classes:
            for i in range(per_class):
                w, h = (int(v) for v in rng.integers(40, 90, size=2))
                z.writestr(f"{_awa2_mod.ROOT}/JPEGImages/{c}/{c}_{10001 + i}.jpg", _image_bytes(rng, w, h, "JPEG"))
    _manifest(root, "awa2", sha256={_awa2_mod.ZIP: file_hash(root / _awa2_mod.ZIP, "sha256")})


_WRITERS = {"fashion_mnist": _fashion_mnist, "cifar10": _cifar10, "gtsrb": _gtsrb, "awa2": _awa2}
NAMES = tuple(_WRITERS)
# Other on-disk layouts a loader reads: {(dataset, layout): writer}; None is the official release's.
_LAYOUTS = {("cifar10", "png"): _cifar10_png}


def write(name, root, per_class=4, seed=0, layout=None):
    """Write a synthetic ``name`` dataset with ``per_class`` training images per class into
    ``root`` (created if needed) and return ``root``. Test sets get about half as many.
    ``layout``: None for the official release's format; ``"png"`` for CIFAR-10 as PNG class
    folders (``train/<class>/*.png``, ``test/<class>/*.png``)."""
    if layout is not None and (name, layout) not in _LAYOUTS:
        raise ValueError(f"no fixture layout {layout!r} for {name!r}; layouts: "
                         f"{sorted(f'{n}:{l}' for n, l in _LAYOUTS)} (or None, the official format).")
    if name == "digits":
        raise ValueError("digits ships with scikit-learn and is always real: it needs no fixture.")
    if name not in _WRITERS:
        raise ValueError(f"no fixture for {name!r}; choose one of {list(NAMES)}.")
    if per_class < 2:
        raise ValueError(f"per_class must be >= 2 (stratified splits need two per class); got {per_class}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / FIXTURE_MARKER).unlink(missing_ok=True)  # an older fixture's checksums no longer hold
    writer = _LAYOUTS[(name, layout)] if layout is not None else _WRITERS[name]
    writer(root, per_class, np.random.default_rng(seed))
    return root


def copy_marker(fixture, folder):
    """Copy the manifest of the fixture in ``fixture`` into ``folder`` (where its archives were
    extracted, say), so that the copy is read as the synthetic fixture it is."""
    import shutil

    Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(fixture) / FIXTURE_MARKER, Path(folder) / FIXTURE_MARKER)
    return Path(folder)

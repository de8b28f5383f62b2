"""Decode many images from an archive into one uint8 array, with a progress bar."""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from camri_utils.data._common import CorruptDataError


def decode(members, name, size, box=None, frame=None):
    """(One image from an archive member as uint8 (size, size, 3), its file's (width, height)).
    ``box`` = (x1, y1, x2, y2), inclusive pixel coordinates, crops it first; they are given in
    an image of ``frame`` = (width, height) (None: the file's own size), and scaled to the
    file's size where that differs (a copy whose images were resized after annotation)."""
    try:
        with Image.open(members.open(name)) as img:
            img = img.convert("RGB")
            found = img.size
            if box is not None and (frame is None or tuple(frame) == found):
                x1, y1, x2, y2 = box
                img = img.crop((x1, y1, x2 + 1, y2 + 1))
            elif box is not None:  # the box's pixel edges, scaled: resize reads the sub-pixel region
                sx, sy = found[0] / frame[0], found[1] / frame[1]
                x1, y1, x2, y2 = box
                return (np.asarray(img.resize((size, size), Image.BILINEAR,
                                              box=(x1 * sx, y1 * sy, (x2 + 1) * sx, (y2 + 1) * sy)), dtype=np.uint8),
                        found)
            return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8), found
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptDataError(f"{name} in {members.root} is not a readable image ({exc}): the archive "
                               "is damaged; delete it and download it again.") from exc


def decode_all(members, names, size, boxes=None, desc="decoding", frames=None):
    """The images ``names`` as one uint8 array (N, size, size, 3), each cropped to its box of
    ``boxes`` (see :func:`decode`; ``frames``: the (width, height) each box is given in).
    With ``frames``, returns (images, how many files were not of their frame's size)."""
    out = np.empty((len(names), size, size, 3), np.uint8)
    other_size = 0
    for i, name in enumerate(tqdm(names, desc=desc, unit="img", mininterval=2, disable=len(names) < 2000)):
        frame = None if frames is None else frames[i]
        out[i], found = decode(members, name, size, None if boxes is None else boxes[i], frame)
        other_size += frame is not None and tuple(frame) != found
    return out if frames is None else (out, other_size)


def read_png_folders(folder, class_names, shape, desc):
    """(images uint8 of ``shape``, labels int64) from ``folder/<class name>/*.png``, ordered by
    class (the order of ``class_names``), then file name. The class folders must be exactly
    ``class_names``; every image must decode to ``shape`` (no resizing: a wrong size means other data)."""
    from pathlib import Path

    from camri_utils.data._common import DataLayoutError

    folder = Path(folder)
    present = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unexpected, absent = sorted(set(present) - set(class_names)), [c for c in class_names if c not in present]
    if unexpected or absent:
        raise DataLayoutError(f"{folder} holds the class folders {present}, expected exactly {list(class_names)}"
                              + (f"; unexpected: {unexpected}" if unexpected else "")
                              + (f"; missing: {absent}" if absent else "") + ".")
    files, labels = [], []
    for label, name in enumerate(class_names):
        pngs = sorted((folder / name).glob("*.png"))
        if not pngs:
            raise DataLayoutError(f"{folder / name} holds no .png image.")
        files += pngs
        labels += [label] * len(pngs)
    out = np.empty((len(files),) + tuple(shape), np.uint8)
    mode = {1: "L", 3: "RGB"}[shape[-1]]
    for i, path in enumerate(tqdm(files, desc=desc, unit="img", mininterval=2, disable=len(files) < 2000)):
        try:
            with Image.open(path) as img:
                img.load()
                if img.mode != mode:
                    raise ValueError(f"mode {img.mode}, expected {mode}")
                pixels = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise CorruptDataError(f"{path} is not a readable {mode} PNG ({exc}): the copy is damaged; get it "
                                   "again.") from exc
        if pixels.shape != tuple(shape):
            raise CorruptDataError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels with shape {pixels.shape}, "
                                   f"expected {tuple(shape)}: not a CIFAR-10 image (no resizing is done).")
        out[i] = pixels
    return out, np.asarray(labels, np.int64)

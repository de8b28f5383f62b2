"""Decode many images from an archive into one uint8 array, with a progress bar."""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from camri_utils.data._common import CorruptDataError


def decode(members, name, size, box=None):
    """One image from an archive member as uint8 (size, size, 3), optionally cropped to
    ``box`` = (x1, y1, x2, y2), inclusive pixel coordinates."""
    try:
        with Image.open(members.open(name)) as img:
            img = img.convert("RGB")
            if box is not None:
                x1, y1, x2, y2 = box
                img = img.crop((x1, y1, x2 + 1, y2 + 1))
            return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptDataError(f"{name} in {members.root} is not a readable image ({exc}): the archive "
                               "is damaged; delete it and download it again.") from exc


def decode_all(members, names, size, boxes=None, desc="decoding"):
    out = np.empty((len(names), size, size, 3), np.uint8)
    for i, name in enumerate(tqdm(names, desc=desc, unit="img", mininterval=2, disable=len(names) < 2000)):
        out[i] = decode(members, name, size, None if boxes is None else boxes[i])
    return out

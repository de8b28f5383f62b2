"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship with scikit-learn.

There is no official train/test split: a seeded, stratified one is made here. Pixel values
(0-16 in scikit-learn) are scaled by 255/16 to uint8 so that every dataset is uint8 0-255."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from camri_utils import checks
from camri_utils.data._common import Dataset, Source


def load(data_dir=None, download=True, test_fraction=0.25, split_seed=0):
    """``download`` is ignored: there is nothing to download."""
    if data_dir is not None:
        raise ValueError(f"digits ships inside scikit-learn and is never read from a folder; got data_dir="
                         f"{str(data_dir)!r}. Call load('digits') without data_dir.")
    test_fraction = checks.check_fraction(test_fraction, "test_fraction")  # a string '0.3' is refused
    split_seed = checks.check_int(split_seed, "split_seed", minimum=0)
    x, y = load_digits(return_X_y=True)
    images = np.clip(np.round(x * 255 / 16), 0, 255).astype(np.uint8).reshape(-1, 8, 8, 1)
    x_train, x_test, y_train, y_test = train_test_split(
        images, y.astype(np.int64), test_size=test_fraction, stratify=y, random_state=split_seed)
    return Dataset("digits", x_train, y_train, x_test, y_test, [str(d) for d in range(10)],
                   Source("scikit-learn (sklearn.datasets.load_digits)", real=True),
                   notes={"split": f"stratified, test_fraction={test_fraction}, split_seed={split_seed}"})

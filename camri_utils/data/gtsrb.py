"""GTSRB (German Traffic Sign Recognition Benchmark), the official final training and test
releases: PPM images with ``;``-separated CSVs giving each image's size, region of interest
(ROI) and class, 43 classes.

Reads the three official zips (``GTSRB_Final_Training_Images.zip``,
``GTSRB_Final_Test_Images.zip``, ``GTSRB_Final_Test_GT.zip``) without extracting them, or the
folder they extract to. Images are cropped to their ROI (``crop_roi=True``) and resized to
``size`` x ``size`` (default 32); the decoded arrays are cached, keyed by these options."""

from __future__ import annotations

import csv
import io

import numpy as np

from camri_utils.data._archive import Members
from camri_utils.data._common import (Dataset, DataLayoutError, Source, cache_key, data_dir_candidates,
                                      decoded_cache_dir, fetch, fixture_manifest, keras_cache_dir, not_found, verify)
from camri_utils.data._images import cached, decode_all

BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
TRAIN_ZIP, TEST_ZIP, TEST_GT_ZIP = ("GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip",
                                    "GTSRB_Final_Test_GT.zip")
MD5 = {TRAIN_ZIP: "f33fd80ac59bff73c82d25ab499e03a3", TEST_ZIP: "c7e4e6327067d32654124b0fe9e82185",
       TEST_GT_ZIP: "fe31e9c9270bbcd7b84b7f21a9d9d9e5"}
TEST_GT_CSV = "GT-final_test.csv"
CLASS_NAMES = [
    "Speed limit (20km/h)", "Speed limit (30km/h)", "Speed limit (50km/h)", "Speed limit (60km/h)",
    "Speed limit (70km/h)", "Speed limit (80km/h)", "End of speed limit (80km/h)", "Speed limit (100km/h)",
    "Speed limit (120km/h)", "No passing", "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection", "Priority road", "Yield", "Stop", "No vehicles",
    "Vehicles over 3.5 metric tons prohibited", "No entry", "General caution", "Dangerous curve to the left",
    "Dangerous curve to the right", "Double curve", "Bumpy road", "Slippery road", "Road narrows on the right",
    "Road work", "Traffic signals", "Pedestrians", "Children crossing", "Bicycles crossing",
    "Beware of ice/snow", "Wild animals crossing", "End of all speed and passing limits", "Turn right ahead",
    "Turn left ahead", "Ahead only", "Go straight or right", "Go straight or left", "Keep right", "Keep left",
    "Roundabout mandatory", "End of no passing", "End of no passing by vehicles over 3.5 metric tons",
]
HOW_TO_GET = (f"Download the three official archives {sorted(MD5)} from {BASE_URL} (about 350 MB) "
              "and put them, or the GTSRB/ folder they extract to, in a folder passed as data_dir or "
              "CAMRI_DATA_DIR.")


def _rows(members, name):
    text = members.read(name).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    needed = {"Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"}
    if not rows or not needed <= set(rows[0]):
        raise DataLayoutError(f"{name} in {members.root} is not a GTSRB annotation CSV (columns {sorted(needed)}).")
    return rows


def _box(row):
    return tuple(int(row[k]) for k in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))


def _split(members_list, test_gt, size, crop_roi):
    """(train images, labels, test images, labels) from the training and test members."""
    train_members, test_members = members_list
    train_csvs = sorted(n for n in train_members.names() if n.rsplit("/", 1)[-1].startswith("GT-")
                        and "Final_Training/Images/" in n and n.endswith(".csv"))
    if not train_csvs:
        raise DataLayoutError(f"{train_members.root} has no GTSRB/Final_Training/Images/*/GT-*.csv.")
    names, boxes, labels = [], [], []
    for csv_name in train_csvs:
        folder = csv_name.rsplit("/", 1)[0]
        for row in _rows(train_members, csv_name):
            names.append(f"{folder}/{row['Filename']}")
            boxes.append(_box(row))
            labels.append(int(row["ClassId"]))
    x_train = decode_all(train_members, names, size, boxes if crop_roi else None, "GTSRB train")

    gt_members, gt_name = test_gt
    test_images = {n.rsplit("/", 1)[-1]: n for n in test_members.names() if n.endswith(".ppm")}
    rows = _rows(gt_members, gt_name)
    missing = [r["Filename"] for r in rows if r["Filename"] not in test_images]
    if missing:
        raise DataLayoutError(f"{test_members.root} lacks test images listed in {gt_name}, e.g. {missing[:3]}.")
    x_test = decode_all(test_members, [test_images[r["Filename"]] for r in rows], size,
                        [_box(r) for r in rows] if crop_roi else None, "GTSRB test")
    return dict(x_train=x_train, y_train=np.asarray(labels, np.int64), x_test=x_test,
                y_test=np.asarray([int(r["ClassId"]) for r in rows], np.int64))


def _locate(place):
    """The training members, test members and test ground truth in ``place``, or None."""
    zips = {name: place / name for name in MD5}
    if all(p.is_file() for p in zips.values()):
        manifest = fixture_manifest(place)
        for name, path in zips.items():
            verify(path, manifest["md5"][name] if manifest else MD5[name], "md5")
        gt = Members(zips[TEST_GT_ZIP])
        found = gt.find(TEST_GT_CSV)
        if not found:
            raise DataLayoutError(f"{zips[TEST_GT_ZIP]} does not contain {TEST_GT_CSV}.")
        return (Members(zips[TRAIN_ZIP]), Members(zips[TEST_ZIP])), (gt, found[0]), zips
    folder = place / "GTSRB"
    if folder.is_dir():
        members = Members(folder)
        found = members.find(TEST_GT_CSV)
        gt = (members, found[0]) if found else None
        if gt is None and (place / TEST_GT_CSV).is_file():  # extracted beside GTSRB/
            gt = (Members(place, names=[TEST_GT_CSV]), TEST_GT_CSV)
        if not (folder / "Final_Training" / "Images").is_dir() or not (folder / "Final_Test" / "Images").is_dir() or gt is None:
            raise DataLayoutError(
                f"{folder} is not an extracted GTSRB release: it needs Final_Training/Images/, "
                f"Final_Test/Images/ and {TEST_GT_CSV} (from {TEST_GT_ZIP})."
            )
        return (members, members), gt, {"folder": folder}
    present = [name for name, p in zips.items() if p.is_file()]
    if present:
        raise DataLayoutError(f"{place} has {present} but not all of {sorted(MD5)}.")
    return None


def load(data_dir=None, download=True, size=32, crop_roi=True):
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an integer >= 4 (pixels); got {size!r}.")
    explicit, places = data_dir_candidates(data_dir)
    if not explicit:
        places.append(keras_cache_dir() / "gtsrb")
    for place in places:
        located = _locate(place)
        if located is not None:
            break
    else:
        if explicit or not download:
            raise not_found("GTSRB", places, HOW_TO_GET)
        place = fetch("GTSRB", {n: (BASE_URL + n, d) for n, d in MD5.items()}, "gtsrb", places, HOW_TO_GET)
        located = _locate(place)
    members, test_gt, files = located
    stamp = {k: (str(p.resolve()), p.stat().st_size, p.stat().st_mtime) for k, p in files.items()}
    key = cache_key(dataset="gtsrb", size=size, crop_roi=crop_roi, files=stamp)
    arrays = cached(decoded_cache_dir() / f"gtsrb-{size}px-{'roi' if crop_roi else 'full'}-{key}.npz",
                    lambda: _split(members, test_gt, size, crop_roi))
    for m in {id(m): m for m in (*members, test_gt[0])}.values():
        m.close()
    return Dataset("gtsrb", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   list(CLASS_NAMES), Source(str(place), real=fixture_manifest(place) is None),
                   notes={"size": size, "crop_roi": crop_roi})

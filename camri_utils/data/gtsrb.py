"""GTSRB (German Traffic Sign Recognition Benchmark), the official final training and test
releases: PPM images with ``;``-separated CSVs giving each image's size, region of interest
(ROI) and class, 43 classes.

Reads the three official zips (``GTSRB_Final_Training_Images.zip``,
``GTSRB_Final_Test_Images.zip``, ``GTSRB_Final_Test_GT.zip``) without extracting them, or the
folder they extract to (the zips are checked against their official MD5s; an extracted folder,
which has none, must hold the releases' 39,209 training and 12,630 test images, so that a
fixture that lost its marker is never taken for the real data). Images are cropped to their
ROI (``crop_roi=True``) and resized to ``size`` x ``size`` (default 32); the decoded arrays are
cached, keyed by these options. The CSVs give each image's size as released with its ROI; a
copy whose images were resized since (the project's shared copy holds 32x32 images) gets its
ROI scaled to the file's size, and its source says how many images were not of their CSV size.

Training images come in tracks: about 30 frames of one physical sign, named ``TRACK_FRAME.ppm``
in their class folder. ``Dataset.groups_train`` gives each (class, track) its own id, so that a
validation split keeps each track on one side (frames of one sign are near duplicates)."""

from __future__ import annotations

import csv
import io
import re

import numpy as np

from camri_utils import checks
from camri_utils.data._archive import Members
from camri_utils.data._common import (Dataset, DataLayoutError, Source, cache_key, cached, check_release_counts,
                                      decoded_cache_dir, find_or_fetch, fixture_manifest, verify_files)
from camri_utils.data._images import decode_all

BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
OFFICIAL_COUNTS = {"training images": 39_209, "test images": 12_630}  # the final releases
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
ARRAYS = ("x_train", "y_train", "groups_train", "x_test", "y_test", "other_size")
# A training image's file name: the track (one physical sign, 30 frames of it), then the frame.
TRACK_FRAME = re.compile(r"(\d+)_(\d+)\.ppm")
# What makes extracted folders the real data, where no official checksum can be checked (Source.verified).
FOLDERS_VERIFIED = ("not a checksummed official file: the release's extracted folders, taken as real because they hold "
                    "its {:,} training and {:,} test images").format(*OFFICIAL_COUNTS.values())


def _rows(raw, where):
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    needed = {"Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"}
    if not rows or not needed <= set(rows[0]):
        raise DataLayoutError(f"{where} is not a GTSRB annotation CSV (columns {sorted(needed)}).")
    return rows


def _box(row):
    return tuple(int(row[k]) for k in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))


def _frame(row):
    """The (width, height) the row's ROI is given in (the image's size as released), or None
    in a CSV without them."""
    try:
        return int(row["Width"]), int(row["Height"])
    except (KeyError, TypeError, ValueError):
        return None


def _track(folder, filename):
    """The track (physical sign) a training image shows, unique across classes."""
    match = TRACK_FRAME.fullmatch(filename)
    if match is None:
        raise DataLayoutError(f"{folder}/{filename}: GTSRB training images are named TRACK_FRAME.ppm "
                              "(e.g. 00012_00029.ppm); this one is not, so its track is unknown.")
    return f"{folder}/{int(match.group(1))}"


def _training_part(members, size, crop_roi):
    """(images, labels, group id per image: one per class folder and track)."""
    csvs = sorted(n for n in members.names() if n.rsplit("/", 1)[-1].startswith("GT-")
                  and "Final_Training/Images/" in n and n.endswith(".csv"))
    if not csvs:
        raise DataLayoutError(f"{members.root} has no GTSRB/Final_Training/Images/*/GT-*.csv.")
    names, boxes, frames, labels, tracks = [], [], [], [], []
    for csv_name in csvs:
        folder = csv_name.rsplit("/", 1)[0]
        for row in _rows(members.read(csv_name), f"{csv_name} in {members.root}"):
            names.append(f"{folder}/{row['Filename']}")
            boxes.append(_box(row))
            frames.append(_frame(row))
            labels.append(int(row["ClassId"]))
            tracks.append(_track(folder, row["Filename"]))
    images, other_size = decode_all(members, names, size, boxes if crop_roi else None, "GTSRB train", frames=frames)
    groups = np.unique(np.asarray(tracks), return_inverse=True)[1].astype(np.int64)
    return images, np.asarray(labels, np.int64), groups, other_size


def _ground_truth(path):
    """The test annotation rows from the ground-truth zip or the extracted CSV."""
    if path.suffix != ".zip":
        return _rows(path.read_bytes(), path)
    with Members(path) as members:
        found = members.find(TEST_GT_CSV)
        if not found:
            raise DataLayoutError(f"{path} does not contain {TEST_GT_CSV}.")
        return _rows(members.read(found[0]), f"{found[0]} in {path}")


def _test_part(members, rows, size, crop_roi):
    images = {n.rsplit("/", 1)[-1]: n for n in members.names() if n.endswith(".ppm")}
    missing = [r["Filename"] for r in rows if r["Filename"] not in images]
    if missing:
        raise DataLayoutError(f"{members.root} lacks test images listed in {TEST_GT_CSV}, e.g. {missing[:3]}.")
    x, other_size = decode_all(members, [images[r["Filename"]] for r in rows], size,
                               [_box(r) for r in rows] if crop_roi else None, "GTSRB test",
                               frames=[_frame(r) for r in rows])
    return x, np.asarray([int(r["ClassId"]) for r in rows], np.int64), other_size


def _decode(sources, size, crop_roi):
    rows = _ground_truth(sources["ground_truth"])
    with Members(sources["train"]) as train, Members(sources["test"]) as test:
        x_train, y_train, groups, train_other = _training_part(train, size, crop_roi)
        x_test, y_test, test_other = _test_part(test, rows, size, crop_roi)
    return dict(x_train=x_train, y_train=y_train, groups_train=groups, x_test=x_test, y_test=y_test,
                other_size=np.array([train_other, test_other], np.int64))


def _sources(place):
    """{"train", "test", "ground_truth": zip or folder or CSV path} in ``place``, or None."""
    zips = {name: place / name for name in MD5}
    if all(p.is_file() for p in zips.values()):
        verify_files(place, "md5", MD5)
        return {"train": zips[TRAIN_ZIP], "test": zips[TEST_ZIP], "ground_truth": zips[TEST_GT_ZIP]}
    folder = place / "GTSRB"
    if folder.is_dir():
        beside = place / TEST_GT_CSV  # where the ground-truth zip extracts to
        gt = beside if beside.is_file() else next(folder.rglob(TEST_GT_CSV), None)
        if gt is None or not (folder / "Final_Training" / "Images").is_dir() or not (folder / "Final_Test" / "Images").is_dir():
            raise DataLayoutError(
                f"{folder} is not an extracted GTSRB release: it needs Final_Training/Images/, "
                f"Final_Test/Images/ and {TEST_GT_CSV} (from {TEST_GT_ZIP})."
            )
        return {"train": folder, "test": folder, "ground_truth": gt}
    present = [name for name, p in zips.items() if p.is_file()]
    if present:
        raise DataLayoutError(f"{place} has {present} but not all of {sorted(MD5)}.")
    return None


def _read(place, size, crop_roi):
    sources = _sources(place)
    if sources is None:
        return None
    stamp = {k: (str(p.resolve()), p.stat().st_size, p.stat().st_mtime) for k, p in sources.items()}
    # roi_in: ROIs scaled from each CSV's image size to the file's (arrays cached before that differ).
    key = cache_key(dataset="gtsrb", size=size, crop_roi=crop_roi, files=stamp, roi_in="csv size")
    arrays = cached(decoded_cache_dir() / f"gtsrb-{size}px-{'roi' if crop_roi else 'full'}-{key}.npz", ARRAYS,
                    lambda: _decode(sources, size, crop_roi))
    real = fixture_manifest(place) is None
    verified = ""  # the zips: their official MD5s were checked
    if real and sources["train"].is_dir():  # extracted images have no checksum: their counts are checked
        check_release_counts("GTSRB", place, {"training images": len(arrays["y_train"]),
                                              "test images": len(arrays["y_test"])}, OFFICIAL_COUNTS)
        verified = FOLDERS_VERIFIED
    train_other, test_other = (int(n) for n in arrays["other_size"])
    if real and train_other + test_other:
        verified = (verified + "; " if verified else "") + (
            f"{train_other:,} of its {len(arrays['y_train']):,} training and {test_other:,} of its "
            f"{len(arrays['y_test']):,} test images are not of the size their CSV gives (resized since the release, "
            + ("so each ROI was scaled to the file's size before the crop" if crop_roi else "not cropped") + ")")
    return Dataset("gtsrb", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   list(CLASS_NAMES), Source(str(place), real=real, verified=verified),
                   notes={"size": size, "crop_roi": crop_roi,
                          "not_of_csv_size": {"train": train_other, "test": test_other}},
                   groups_train=arrays["groups_train"])


def load(data_dir=None, download=True, size=32, crop_roi=True):
    size = checks.check_int(size, "size (pixels)", minimum=4)
    crop_roi = checks.check_bool(crop_roi, "crop_roi")  # a string 'False' would crop
    return find_or_fetch("GTSRB", lambda place: _read(place, size, crop_roi), data_dir, download,
                         {n: (BASE_URL + n, d) for n, d in MD5.items()}, "gtsrb", HOW_TO_GET)

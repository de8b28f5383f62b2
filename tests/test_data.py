"""Every loader on a fixture in its real on-disk format, the real Fashion-MNIST files when
present, and each failure a user can meet: missing, corrupt, truncated, wrong layout."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from camri_utils import data
from camri_utils.data import fixtures

EXPECTED = {  # name: (image shape, n_classes, first class name)
    "fashion_mnist": ((28, 28, 1), 10, "T-shirt/top"),
    "cifar10": ((32, 32, 3), 10, "airplane"),
    "gtsrb": ((32, 32, 3), 43, "Speed limit (20km/h)"),
    "awa2": ((64, 64, 3), 5, "antelope"),
}
REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """No test reads or writes the user's caches or data folders."""
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(tmp_path / "decoded-cache"))
    # Made, so writable: an unwritable Keras home would add Keras' fallback /tmp/.keras to the search.
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("CAMRI_DATA_DIR", raising=False)


def leftovers(folder):
    """Temporary or partial files a failed load might leave behind."""
    folder = Path(folder)
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part"] if folder.exists() else []


@pytest.mark.parametrize("name", list(EXPECTED))
def test_loader_reads_its_fixture(name, tmp_path):
    root = fixtures.write(name, tmp_path / name, per_class=4)
    ds = data.load(name, data_dir=root)
    shape, n_classes, first = EXPECTED[name]
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.x_train.shape[1:] == shape and ds.x_test.shape[1:] == shape
    assert ds.y_train.dtype == np.int64 and len(ds.y_train) == len(ds.x_train)
    assert set(np.unique(ds.y_train)) == set(range(n_classes)), "every class present in training"
    assert ds.n_classes == n_classes and ds.class_names[0] == first
    assert not ds.source.real and ds.source.kind == "synthetic fixture" and str(root) in ds.source.location
    # A second load gives the same arrays (from the cache where there is one).
    again = data.load(name, data_dir=root)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    np.testing.assert_array_equal(again.y_test, ds.y_test)


def test_fixture_pixels_survive_the_parsers(tmp_path):
    # Fashion-MNIST and CIFAR-10 store raw pixels: what the fixture wrote must come back exactly.
    root = fixtures.write("fashion_mnist", tmp_path / "f", per_class=2)
    with gzip.open(root / "train-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    np.testing.assert_array_equal(data.load("fashion_mnist", data_dir=root).x_train, raw)


def test_gtsrb_options_change_the_arrays_and_the_cache(tmp_path):
    root = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    small = data.load("gtsrb", data_dir=root, size=16)
    full = data.load("gtsrb", data_dir=root, size=16, crop_roi=False)
    assert small.x_train.shape[1:] == (16, 16, 3)
    assert not np.array_equal(small.x_train, full.x_train)
    assert len(list((tmp_path / "decoded-cache").glob("gtsrb-16px-*.npz"))) == 2
    with pytest.raises(ValueError, match="'size' must be an integer >= 4"):
        data.load("gtsrb", data_dir=root, size=2)


def test_awa2_split_is_seeded_and_stratified(tmp_path):
    root = fixtures.write("awa2", tmp_path / "a", per_class=10)
    a = data.load("awa2", data_dir=root, size=16, split_seed=1)
    b = data.load("awa2", data_dir=root, size=16, split_seed=1)
    c = data.load("awa2", data_dir=root, size=16, split_seed=2)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_test, c.x_test)
    assert np.all(np.bincount(a.y_test) == 3)  # 30% of 10 images of each class
    assert "no official split" in a.notes["split"]


def test_extracted_folders_load_like_archives(tmp_path):
    import tarfile
    import zipfile

    for name, archives in [("gtsrb", ["GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip",
                                      "GTSRB_Final_Test_GT.zip"]), ("cifar10", ["cifar-10-python.tar.gz"]),
                           ("awa2", ["AwA2-data.zip"])]:
        packed = fixtures.write(name, tmp_path / f"{name}-packed", per_class=4)
        unpacked = tmp_path / f"{name}-unpacked"
        unpacked.mkdir()
        for archive in archives:
            if archive.endswith(".zip"):
                zipfile.ZipFile(packed / archive).extractall(unpacked)
            else:
                with tarfile.open(packed / archive) as tar:
                    tar.extractall(unpacked, filter="data")
        # A fixture extracted without its marker is refused: CIFAR-10's batches have official
        # checksums; GTSRB's and AwA2's images have none, but not the release's image counts.
        expected = {"cifar10": "has md5", "gtsrb": "39,209 training images", "awa2": "37,322 images"}[name]
        with pytest.raises(data.CorruptDataError, match="not the official release") as err:
            data.load(name, data_dir=unpacked)
        assert expected in str(err.value) and "marker" in str(err.value) and str(unpacked) in str(err.value)
        fixtures.copy_marker(packed, unpacked)  # with it, the copy is the fixture its archives are
        a, b = data.load(name, data_dir=packed), data.load(name, data_dir=unpacked)
        np.testing.assert_array_equal(a.x_train, b.x_train)
        np.testing.assert_array_equal(a.y_test, b.y_test)
        assert not a.source.real and not b.source.real


def test_an_awa2_zip_nothing_checks_must_hold_the_release_and_a_checked_one_is_taken(tmp_path):
    from camri_utils.data import awa2
    from camri_utils.data._common import file_hash

    root = fixtures.write("awa2", tmp_path / "a", per_class=4)
    (root / "CAMRI_SYNTHETIC_FIXTURE.json").unlink()  # as the release comes: no checksum published
    with pytest.raises(data.CorruptDataError, match=r"holds 20 images, 5 classes, not the official release's "
                                                    r"37,322 images, 50 classes"):
        data.load("awa2", data_dir=root, size=16)
    # A zip checked against the SHA-256 its user passes is what they say it is.
    ds = data.load("awa2", data_dir=root, size=16, sha256=file_hash(root / awa2.ZIP, "sha256"))
    assert ds.source.real


@pytest.mark.skipif(not REAL_FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_system_location():
    ds = data.load("fashion_mnist", download=False)
    assert ds.source.real and ds.source.location == str(REAL_FASHION)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.all(np.bincount(ds.y_train) == 6000) and np.all(np.bincount(ds.y_test) == 1000)
    assert ds.class_names[6] == "Shirt"


def test_digits_are_real_and_split(tmp_path):
    ds = data.load("digits")
    assert ds.source.real and ds.x_train.shape[1:] == (8, 8, 1) and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.max() == 255
    with pytest.raises(ValueError, match="needs no fixture"):
        fixtures.write("digits", tmp_path)


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "gtsrb", "awa2"])
def test_missing_data_says_where_it_looked_and_how_to_get_it(name, tmp_path, monkeypatch):
    monkeypatch.setattr(data.fashion_mnist, "SYSTEM_DIRS", [str(tmp_path / "no-system-copy")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DatasetNotFoundError, match=r"(?s)was not found\. Looked in:.*empty.*data_dir"):
        data.load(name, data_dir=empty)
    with pytest.raises(data.DatasetNotFoundError, match="keras-home"):  # the Keras cache was searched too
        data.load(name, download=False)


def test_failed_download_is_reported_as_missing_data(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(data.DatasetNotFoundError, match="download failed: URL fetch failure"):
        data.load("gtsrb")
    assert leftovers(tmp_path / "keras-home") == []


@pytest.mark.parametrize("name,archive", [("cifar10", "cifar-10-python.tar.gz"), ("gtsrb", "GTSRB_Final_Test_Images.zip"),
                                          ("awa2", "AwA2-data.zip"), ("fashion_mnist", "train-images-idx3-ubyte.gz")])
def test_checksum_mismatch_and_truncation_are_clear_and_leave_no_cache(name, archive, tmp_path):
    root = fixtures.write(name, tmp_path / name, per_class=2)
    path = root / archive
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])  # truncated: the manifest's checksum no longer matches
    with pytest.raises(data.CorruptDataError, match=r"(?s)expected.*download it again"):
        data.load(name, data_dir=root)
    cache = tmp_path / "decoded-cache"
    assert not cache.exists() or not any(cache.iterdir()), "nothing cached from a corrupt source"


def test_truncated_archive_without_checksum_is_reported_as_corrupt(tmp_path):
    root = fixtures.write("awa2", tmp_path / "a", per_class=2)
    (root / "CAMRI_SYNTHETIC_FIXTURE.json").unlink()  # like the real release: no checksum to check
    path = root / "AwA2-data.zip"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(data.CorruptDataError, match="truncated or corrupt"):
        data.load("awa2", data_dir=root)
    assert leftovers(tmp_path / "decoded-cache") == []


def test_wrong_layouts_are_named(tmp_path):
    partial = fixtures.write("fashion_mnist", tmp_path / "f", per_class=2)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DataLayoutError, match="all four Fashion-MNIST files"):
        data.load("fashion_mnist", data_dir=partial)

    g = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    (g / "GTSRB_Final_Test_GT.zip").unlink()
    with pytest.raises(data.DataLayoutError, match="not all of"):
        data.load("gtsrb", data_dir=g)

    (tmp_path / "c" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(data.DataLayoutError, match=r"lacks \['data_batch_1'"):
        data.load("cifar10", data_dir=tmp_path / "c")

    (tmp_path / "w" / "GTSRB" / "Final_Training").mkdir(parents=True)
    with pytest.raises(data.DataLayoutError, match="not an extracted GTSRB release"):
        data.load("gtsrb", data_dir=tmp_path / "w")


def test_corrupt_decoded_cache_is_rebuilt(tmp_path):
    root = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    first = data.load("gtsrb", data_dir=root, size=8)
    (cached,) = (tmp_path / "decoded-cache").glob("gtsrb-*.npz")
    cached.write_bytes(b"garbage")
    again = data.load("gtsrb", data_dir=root, size=8)
    np.testing.assert_array_equal(first.x_train, again.x_train)


def test_environment_variable_is_searched(tmp_path, monkeypatch):
    root = fixtures.write("cifar10", tmp_path / "env", per_class=2)
    monkeypatch.setenv("CAMRI_DATA_DIR", str(root))
    assert data.load("cifar10", download=False).source.location == str(root)


def test_unknown_dataset_and_bad_options():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.load("mnist")
    with pytest.raises(ValueError, match="no fixture for 'mnist'"):
        fixtures.write("mnist", "/nonexistent")
    with pytest.raises(ValueError, match="cifar10 has no option 'size'; it accepts none"):
        data.load("cifar10", size=32)
    with pytest.raises(ValueError, match="gtsrb has no option 'sise'; it accepts 'size', 'crop_roi'"):
        data.load("gtsrb", sise=32)


def test_pipelines_scale_shuffle_and_batch(tmp_path):
    ds = data.load("fashion_mnist", data_dir=fixtures.write("fashion_mnist", tmp_path / "f", per_class=3))
    train, test = data.pipelines(ds, batch_size=8, seed=0)
    xb, yb = next(iter(train))
    assert xb.shape == (8, 28, 28, 1) and xb.dtype.name == "float32"
    assert 0.0 <= float(np.min(xb)) and float(np.max(xb)) <= 1.0
    labels_in_order = np.concatenate([y.numpy() for _, y in test])
    np.testing.assert_array_equal(labels_in_order, ds.y_test)  # test pipeline is not shuffled
    epoch1 = np.concatenate([y.numpy() for _, y in train])
    epoch2 = np.concatenate([y.numpy() for _, y in train])
    assert sorted(epoch1) == sorted(ds.y_train) and not np.array_equal(epoch1, epoch2)


# ---------------------------------------------------------------------------------------------
# One find-or-fetch path, the cache, archives, and the clear failures added with it
# ---------------------------------------------------------------------------------------------
DOWNLOADS = {"fashion_mnist": "fashion-mnist", "cifar10": "cifar-10-batches-py-target", "gtsrb": "gtsrb",
             "awa2": "awa2"}


@pytest.mark.parametrize("name", list(DOWNLOADS))
def test_download_is_read_from_the_folder_get_file_returns(name, tmp_path, monkeypatch):
    """Keras may put a download elsewhere than $KERAS_HOME (/tmp/.keras when it is not
    writable): the loader must read where get_file says it put the files."""
    import keras

    fixture = fixtures.write(name, tmp_path / "fixture", per_class=4)
    elsewhere = tmp_path / "fallback-keras" / "datasets" / DOWNLOADS[name]
    asked = []

    def fake_get_file(fname, origin, file_hash=None, cache_subdir="datasets", cache_dir=None):
        asked.append((fname, cache_subdir))
        elsewhere.mkdir(parents=True, exist_ok=True)
        for f in (fname, "CAMRI_SYNTHETIC_FIXTURE.json"):  # the manifest: checked against the fixture's sums
            (elsewhere / f).write_bytes((fixture / f).read_bytes())
        return str(elsewhere / fname)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    monkeypatch.setattr(data.fashion_mnist, "SYSTEM_DIRS", [])
    ds = data.load(name)
    assert ds.source.location == str(elsewhere)
    assert {s for _, s in asked} == {f"datasets/{DOWNLOADS[name]}"}
    np.testing.assert_array_equal(ds.y_test, data.load(name, data_dir=fixture).y_test)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_corrupt_fixture_manifest_is_named(name, tmp_path):
    root = fixtures.write(name, tmp_path / name, per_class=2)
    (root / "CAMRI_SYNTHETIC_FIXTURE.json").write_text('{"dataset": "trunc')
    with pytest.raises(data.CorruptDataError, match=r"(?s)CAMRI_SYNTHETIC_FIXTURE\.json is not readable JSON"
                                                    r".*fixtures\.write"):
        data.load(name, data_dir=root)
    (root / "CAMRI_SYNTHETIC_FIXTURE.json").write_text('{"dataset": "x"}')  # JSON, but no checksums
    with pytest.raises(data.CorruptDataError, match="does not list the (sha256|md5) checksums"):
        data.load(name, data_dir=root)


def unpacked_cifar10(tmp_path):
    import tarfile

    packed = fixtures.write("cifar10", tmp_path / "packed", per_class=5)
    with tarfile.open(packed / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    fixtures.copy_marker(packed, tmp_path / "unpacked")  # still a fixture: not checked as the real release
    return tmp_path / "unpacked"


def test_cifar10_batches_are_read_channels_last_without_keras(tmp_path):
    root = unpacked_cifar10(tmp_path)
    with open(root / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    first = len(batch[b"labels"])
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        offset = len(pickle.load(f, encoding="bytes")[b"labels"])
    ds = data.load("cifar10", data_dir=root)
    # Row i of b"data" is 1024 red, then 1024 green, then 1024 blue values, row-major.
    image = ds.x_train[offset]
    assert first and image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image[:, :, 0].ravel(), batch[b"data"][0][:1024])
    np.testing.assert_array_equal(image[:, :, 2].ravel(), batch[b"data"][0][2048:])
    np.testing.assert_array_equal(ds.y_train[offset:offset + first], batch[b"labels"])
    assert ds.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                              "truck"]


@pytest.mark.parametrize("member,content", [
    ("batches.meta", b"\x80\x04garbage"),
    ("data_batch_3", b"not a pickle"),
    ("test_batch", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})),  # no labels
    ("data_batch_1", pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})),
    ("data_batch_5", b"cos\nsystem\n(S'echo unsafe'\ntR."),  # a pickle that would run a command
])
def test_corrupt_cifar10_files_are_named(member, content, tmp_path):
    root = unpacked_cifar10(tmp_path)
    (root / "cifar-10-batches-py" / member).write_bytes(content)
    with pytest.raises(data.CorruptDataError, match=rf"(?s){member} is not a readable CIFAR-10 pickle.*download"):
        data.load("cifar10", data_dir=root)


def test_decoded_cache_lacking_an_array_is_rebuilt(tmp_path):
    root = fixtures.write("gtsrb", tmp_path / "g", per_class=4)
    first = data.load("gtsrb", data_dir=root, size=8)
    (cached,) = (tmp_path / "decoded-cache").glob("gtsrb-*.npz")
    np.savez(cached, x_train=first.x_train)  # as an older version might have left it: no groups_train
    for _ in range(2):  # rebuilt once, then read from the rebuilt cache
        again = data.load("gtsrb", data_dir=root, size=8)
        np.testing.assert_array_equal(first.groups_train, again.groups_train)
        np.testing.assert_array_equal(first.y_test, again.y_test)
    with np.load(cached) as arrays:
        assert {"x_train", "y_train", "groups_train", "x_test", "y_test"} <= set(arrays.files)


@pytest.mark.parametrize("name", ["gtsrb", "awa2", "cifar10"])
def test_unwritable_cache_warns_before_decoding_and_still_loads(name, tmp_path, monkeypatch):
    import warnings

    root = fixtures.write(name, tmp_path / name, per_class=4)
    expected = data.load(name, data_dir=root)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CAMRI_CACHE_DIR", str(blocker / "cache"))  # under a file: not writable, even by root
    module = getattr(data, name)
    decode = "_arrays" if name == "cifar10" else "decode_all" if name == "gtsrb" else "_build"
    original = getattr(module, decode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def checked(*args, **kwargs):
            assert any("CAMRI_CACHE_DIR" in str(w.message) for w in caught), "warned before decoding"
            return original(*args, **kwargs)

        monkeypatch.setattr(module, decode, checked)
        ds = data.load(name, data_dir=root)
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    (message,) = {str(w.message) for w in caught if "CAMRI_CACHE_DIR" in str(w.message)}
    assert "a-file" in message and "writable folder" in message


def replace_in_zip(path, member, content):
    """Rewrite the zip at ``path`` with ``member``'s bytes replaced."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[member] = content
    with zipfile.ZipFile(path, "w") as z:
        for n, payload in members.items():
            z.writestr(n, payload)


def refresh_manifest(root, algorithm, names):
    """The fixture's manifest with the current checksums of ``names`` (after editing them)."""
    import json

    from camri_utils.data._common import file_hash

    path = root / "CAMRI_SYNTHETIC_FIXTURE.json"
    manifest = json.loads(path.read_text())
    manifest[algorithm] = {n: file_hash(root / n, algorithm) for n in names}
    path.write_text(json.dumps(manifest))


def test_archives_are_closed_when_decoding_fails(tmp_path, monkeypatch):
    from camri_utils.data import _archive

    root = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    replace_in_zip(root / "GTSRB_Final_Training_Images.zip", "GTSRB/Final_Training/Images/00003/00000_00001.ppm",
                   b"P6 not an image")
    refresh_manifest(root, "md5", data.gtsrb.MD5)
    opened = []
    original_init = _archive.Members.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(_archive.Members, "__init__", recording_init)
    with pytest.raises(data.CorruptDataError, match=r"00003/00000_00001\.ppm .* not a readable image"):
        data.load("gtsrb", data_dir=root)
    assert len(opened) == 3 and all(m._zip.fp is None for m in opened), "every zip opened is closed"


def test_gtsrb_groups_are_the_tracks(tmp_path):
    import zipfile

    root = fixtures.write("gtsrb", tmp_path / "g", per_class=5)
    ds = data.load("gtsrb", data_dir=root, size=8)
    with zipfile.ZipFile(root / "GTSRB_Final_Training_Images.zip") as z:
        names = sorted(n for n in z.namelist() if n.endswith(".ppm"))  # the loader's order: by class, CSV order
    tracks = [(n.split("/")[-2], n.split("/")[-1].split("_")[0]) for n in names]
    assert len(set(tracks)) == 43 * 3  # 5 frames per class, 2 per track: tracks of 2, 2 and 1
    same_track = np.array([[a == b for b in tracks] for a in tracks])
    np.testing.assert_array_equal(ds.groups_train[:, None] == ds.groups_train[None, :], same_track)


def test_gtsrb_training_image_without_a_track_is_named(tmp_path):
    import zipfile

    packed = fixtures.write("gtsrb", tmp_path / "g", per_class=2)
    folder = tmp_path / "unpacked"
    for archive in data.gtsrb.MD5:
        zipfile.ZipFile(packed / archive).extractall(folder)
    images = folder / "GTSRB" / "Final_Training" / "Images" / "00007"
    (images / "00000_00001.ppm").rename(images / "frame.ppm")
    csv = images / "GT-00007.csv"
    csv.write_text(csv.read_text().replace("00000_00001.ppm", "frame.ppm"))
    with pytest.raises(data.DataLayoutError, match=r"00007/frame\.ppm: GTSRB training images are named TRACK_FRAME"):
        data.load("gtsrb", data_dir=folder)


def test_digits_refuse_a_data_dir(tmp_path):
    with pytest.raises(ValueError, match="digits ships inside scikit-learn.*without data_dir"):
        data.load("digits", data_dir=tmp_path)


def test_cache_write_failure_warns_and_still_loads(tmp_path, monkeypatch):
    from camri_utils.data import _common

    root = fixtures.write("awa2", tmp_path / "a", per_class=4)

    def disk_full(path, **arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_common, "save_arrays", disk_full)
    with pytest.warns(UserWarning, match=r"(?s)No space left on device.*Set CAMRI_CACHE_DIR to a writable folder"):
        ds = data.load("awa2", data_dir=root, size=8)
    assert len(ds.x_train) == 14 and leftovers(tmp_path / "decoded-cache") == []


def _roi_pattern(w, h, box):
    """An image of w x h: white inside the inclusive box, black outside."""
    from PIL import Image

    x1, y1, x2, y2 = box
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[y1:y2 + 1, x1:x2 + 1] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize("resized", [False, True])
def test_gtsrb_roi_is_taken_in_the_csvs_size_even_where_the_files_were_resized(tmp_path, resized, monkeypatch):
    """The shared GTSRB copy holds 32x32 files with the release's CSVs (original sizes and ROIs):
    the ROI must be scaled to the file's size, or the crop cuts a black band off the picture.
    Every image here is white inside its ROI and black outside: a crop of the ROI is white."""
    import csv
    import zipfile

    from camri_utils.data import gtsrb

    packed = fixtures.write("gtsrb", tmp_path / "packed", per_class=2)
    unpacked = tmp_path / "unpacked"
    for archive in ("GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip"):
        zipfile.ZipFile(packed / archive).extractall(unpacked)
    fixtures.copy_marker(packed, unpacked)
    rows = {}
    for table in unpacked.rglob("*.csv"):
        with open(table) as f:
            for row in csv.DictReader(f, delimiter=";"):
                rows[row["Filename"] if "Final_Test" in str(table) or "GT-final" in table.name
                     else f"{table.parent.name}/{row['Filename']}"] = row
    images = list(unpacked.rglob("*.ppm"))
    for path in images:
        key = path.name if "Final_Test" in str(path) else f"{path.parent.name}/{path.name}"
        row = rows[key]
        w, h = int(row["Width"]), int(row["Height"])
        img = _roi_pattern(w, h, tuple(int(row[k]) for k in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2")))
        (img.resize((32, 32), resample=0) if resized else img).save(path)  # nearest: the ROI stays sharp
    ds = data.load("gtsrb", data_dir=unpacked, size=16)
    counts = ds.notes["not_of_csv_size"]
    assert (counts["train"] + counts["test"] > 0) == resized
    assert counts["train"] + counts["test"] <= len(images)
    # The crop is the ROI: white but for the bilinear blend of its edge rows and columns (nearest
    # resizing moves an edge by up to one file pixel: at most 2 of 16 output rows per side).
    for x in (ds.x_train, ds.x_test):
        assert np.all(x[:, 2:-2, 2:-2] >= 250)
        assert x.mean() > 0.85 * 255
    # (Unscaled, as before the fix, the ROI of an original larger than 32x32 cuts past the file: black.)
    if resized:  # the source says the files were resized, where the data is taken as real
        monkeypatch.setattr(gtsrb, "fixture_manifest", lambda place: None)
        monkeypatch.setattr(gtsrb, "OFFICIAL_COUNTS", {"training images": len(ds.y_train),
                                                       "test images": len(ds.y_test)})
        real = data.load("gtsrb", data_dir=unpacked, size=16)
        assert real.source.real
        assert (f"{counts['train']:,} of its {len(ds.y_train):,} training and {counts['test']:,} of its "
                f"{len(ds.y_test):,} test images are not of the size their CSV gives") in real.source.verified
        assert "each ROI was scaled to the file's size" in real.source.verified

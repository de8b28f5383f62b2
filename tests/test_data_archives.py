"""CIFAR-10 as PNG class folders, any dataset from a tar archive given as data_dir, and, where the
project's shared copies exist (``../shared/data`` beside the checkout: on this project's
machines and in CI), the real CIFAR-10 and GTSRB read from them."""

import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camri_utils import data
from camri_utils.data import cifar10, fixtures
from camri_utils.data import gtsrb as gtsrb_loader
from camri_utils.data._extract import extracted
from tests.test_data import isolated_caches  # noqa: F401  (autouse: no test reads the user's caches)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def png_fixture(tmp_path, per_class=4):
    return fixtures.write("cifar10", tmp_path / "png", per_class=per_class, layout="png")


def unmarked(root):
    (root / "CAMRI_SYNTHETIC_FIXTURE.json").unlink()
    return root


def test_png_folders_are_read_by_class_then_file_name(tmp_path):
    root = png_fixture(tmp_path)
    ds = data.load("cifar10", data_dir=root)
    assert ds.source.kind == "synthetic fixture" and ds.source.verified == ""
    assert ds.x_train.shape == (40, 32, 32, 3) and ds.x_test.shape == (20, 32, 32, 3)
    assert ds.class_names == cifar10.CLASS_NAMES
    np.testing.assert_array_equal(ds.y_train, np.repeat(np.arange(10), 4))
    # A file written as a later name in a class comes later, whatever the order on disk.
    for label in (0, 9):
        files = sorted((root / "train" / cifar10.CLASS_NAMES[label]).glob("*.png"))
        for k, path in enumerate(files):
            np.testing.assert_array_equal(ds.x_train[4 * label + k], np.asarray(Image.open(path)))


def test_short_folder_is_refused_as_real_naming_counts(tmp_path):
    root = unmarked(png_fixture(tmp_path))
    with pytest.raises(data.CorruptDataError, match=r"(?s)holds 4 airplane, 4 automobile.*not the official "
                                                    r"release's 5,000 per class"):
        data.load("cifar10", data_dir=root)


def test_wrong_class_folder_is_named(tmp_path):
    root = png_fixture(tmp_path)
    (root / "test" / "cat").rename(root / "test" / "kitten")
    with pytest.raises(data.DataLayoutError, match=r"unexpected: \['kitten'\]; missing: \['cat'\]"):
        data.load("cifar10", data_dir=root)


def test_missing_split_is_named(tmp_path):
    root = png_fixture(tmp_path)
    shutil.rmtree(root / "test")
    with pytest.raises(data.DataLayoutError, match="has train/ but no test/"):
        data.load("cifar10", data_dir=root)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong size", "gray"])
def test_corrupt_png_is_named(damage, tmp_path):
    root = png_fixture(tmp_path)
    victim = sorted((root / "train" / "dog").glob("*.png"))[1]
    if damage == "garbage":
        victim.write_bytes(b"not a png at all")
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:60])
    elif damage == "wrong size":
        Image.fromarray(np.zeros((30, 32, 3), np.uint8)).save(victim, format="PNG")
    else:
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(victim, format="PNG")
    with pytest.raises(data.CorruptDataError, match=rf"{victim.name}"):
        data.load("cifar10", data_dir=root)
    assert not list((tmp_path / "decoded-cache").glob("cifar10-*.npz")), "nothing cached from a failed read"


def test_release_check_compares_statistics_with_the_published_ones(tmp_path):
    """Counts right, pixels not CIFAR-10's: refused, naming the statistic (built as arrays:
    60,000 PNGs would make the test slow; the real copy's pass is checked below)."""
    rng = np.random.default_rng(0)
    arrays = {"y_train": np.repeat(np.arange(10), 5000), "y_test": np.repeat(np.arange(10), 1000),
              "x_train": rng.integers(0, 256, (50_000, 2, 2, 3), dtype=np.uint8),
              "x_test": rng.integers(0, 256, (10_000, 2, 2, 3), dtype=np.uint8)}
    with pytest.raises(data.CorruptDataError, match=r"train images .* pixel mean 0\.\d{4}.*not the published "
                                                    r"CIFAR-10 0\.4914, 0\.4822, 0\.4465"):
        cifar10._check_png_release(tmp_path, arrays)
    # Images with exactly the published means and stds pass (a closed form: two values per channel
    # at mean -+ std give that mean and that std).
    for split, n in (("train", 50_000), ("test", 10_000)):
        mean = np.asarray(cifar10.PUBLISHED_STATS[(split, "mean")])
        std = np.asarray(cifar10.PUBLISHED_STATS.get((split, "std"), (0.25, 0.25, 0.25)))
        signs = np.where(np.arange(n * 4) % 2 == 0, -1.0, 1.0)[:, None]
        values = (mean + signs * std) * 255.0  # not integers: pass float-valued stats through the check itself
        x = values.reshape(n, 2, 2, 3)
        found_mean, found_std = cifar10.pixel_stats(x)
        np.testing.assert_allclose(found_mean, mean, atol=1e-12)
        np.testing.assert_allclose(found_std, std, atol=1e-12)


def tar_of(folder, archive, mode="w:xz"):
    with tarfile.open(archive, mode) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def test_tar_archive_as_data_dir_is_extracted_once_and_named_by_its_file(tmp_path, monkeypatch):
    root = png_fixture(tmp_path)
    archive = tar_of(root, tmp_path / "cifar10-png.tar.xz")
    expected = data.load("cifar10", data_dir=root)
    ds = data.load("cifar10", data_dir=archive)
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    assert ds.source.location == "cifar10-png.tar.xz" and ds.source.kind == "synthetic fixture"
    assert ds.source.origin == "the archive cifar10-png.tar.xz"
    (folder,) = (tmp_path / "decoded-cache" / "extracted").iterdir()
    assert not folder.name.startswith(".")
    # Read again: not extracted again.
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("extracted a second time"))
    np.testing.assert_array_equal(data.load("cifar10", data_dir=archive).y_test, expected.y_test)
    # CAMRI_DATA_DIR may name the archive too.
    monkeypatch.setenv("CAMRI_DATA_DIR", str(archive))
    assert data.load("cifar10").source.location == "cifar10-png.tar.xz"


def test_the_same_archive_again_is_neither_extracted_nor_decoded_again(tmp_path, monkeypatch):
    """Keyed by the archive's bytes: a copy elsewhere with a new modification time (a download
    again, this project's shared data provisioned afresh) reuses the extraction and the decoded
    arrays; an archive with other bytes at the same path is extracted again."""
    import os
    import shutil

    from camri_utils.data import _common

    root = png_fixture(tmp_path)
    archive = tar_of(root, tmp_path / "cifar10-png.tar.xz")
    first = data.load("cifar10", data_dir=archive)
    cache = tmp_path / "decoded-cache"
    before = sorted(p.name for p in cache.rglob("*"))
    (tmp_path / "again").mkdir()
    copy = shutil.copy(archive, tmp_path / "again" / "cifar10-png.tar.xz")
    os.utime(copy, (1e9, 1e9))
    with monkeypatch.context() as mp:
        mp.setattr(tarfile, "open", lambda *a, **k: pytest.fail("extracted a second time"))
        mp.setattr(_common, "save_arrays", lambda *a, **k: pytest.fail("decoded a second time"))
        np.testing.assert_array_equal(data.load("cifar10", data_dir=copy).x_train, first.x_train)
    assert sorted(p.name for p in cache.rglob("*")) == before
    # Other images under the same name: extracted again, into a folder of their own.
    other = png_fixture(tmp_path / "other", per_class=5)
    tar_of(other, archive)
    assert len(data.load("cifar10", data_dir=archive).x_train) == 50
    assert len(list((cache / "extracted").iterdir())) == 2


def test_truncated_archive_is_refused_and_leaves_nothing(tmp_path):
    archive = tar_of(png_fixture(tmp_path), tmp_path / "cifar10-png.tar.xz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(data.CorruptDataError, match=r"cifar10-png\.tar\.xz could not be extracted.*nothing was left"):
        data.load("cifar10", data_dir=archive)
    assert list((tmp_path / "decoded-cache" / "extracted").iterdir()) == []


def test_interrupted_extraction_leaves_nothing(tmp_path, monkeypatch):
    from camri_utils.data import _extract

    archive = tar_of(png_fixture(tmp_path), tmp_path / "c.tar.gz", mode="w:gz")
    calls = []

    def interrupt(tar, member, folder):
        calls.append(member.name)
        if len(calls) == 5:
            raise KeyboardInterrupt
        tarfile.TarFile.extract(tar, member, folder, filter="data")

    monkeypatch.setattr(_extract, "_extract_member", interrupt)
    with pytest.raises(KeyboardInterrupt):
        data.load("cifar10", data_dir=archive)
    assert list((tmp_path / "decoded-cache" / "extracted").iterdir()) == []


def test_archive_member_escaping_its_folder_is_refused(tmp_path):
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="../outside.txt")
    with pytest.raises(data.CorruptDataError, match="evil.tar could not be extracted"):
        data.load("cifar10", data_dir=evil)
    assert not (tmp_path / "decoded-cache" / "outside.txt").exists()


def test_extraction_into_a_git_checkout_is_refused(tmp_path):
    archive = tar_of(png_fixture(tmp_path), tmp_path / "c.tar")
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"inside the git checkout .*repo.*CAMRI_CACHE_DIR"):
        extracted(archive, cache_dir=tmp_path / "repo" / "cache")
    assert not (tmp_path / "repo" / "cache").exists()


@pytest.mark.skipif(not (SHARED / "cifar10-png.tar.xz").is_file() or not (SHARED / "gtsrb-final.tar.xz").is_file(),
                    reason="the project's shared copies of CIFAR-10 and GTSRB (../shared/data beside the checkout) "
                           "are not on this machine")
def test_real_copies_load_with_the_official_counts_and_statistics(monkeypatch):
    """The real data, extracted into the user's cache (kept between runs: the first extraction and
    decoding take about two minutes on 2 cores)."""
    monkeypatch.delenv("CAMRI_CACHE_DIR")
    monkeypatch.delenv("KERAS_HOME")
    ds = data.load("cifar10", data_dir=SHARED / "cifar10-png.tar.xz")
    assert ds.source.real and "published CIFAR-10 statistics" in ds.source.verified
    assert ds.x_train.shape == (50_000, 32, 32, 3) and ds.x_test.shape == (10_000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    mean, std = cifar10.pixel_stats(ds.x_train)
    # Published to four decimals: the copy is within half a unit of the last one.
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=0.5e-4)
    np.testing.assert_allclose(std, [0.2470, 0.2435, 0.2616], atol=0.5e-4)

    gtsrb = data.load("gtsrb", data_dir=SHARED / "gtsrb-final.tar.xz")
    assert gtsrb.source.real and gtsrb.source.location == "gtsrb-final.tar.xz"
    # Extracted folders have no official checksum: the source says what made them the real data.
    assert gtsrb.source.verified.startswith(gtsrb_loader.FOLDERS_VERIFIED) and "39,209 training" in gtsrb.source.verified
    # The shared copy's files were resized to 32x32 after the release (its CSVs give the original
    # sizes): the source says how many, and its ROIs were scaled to the files.
    resized = gtsrb.notes["not_of_csv_size"]
    assert resized["train"] > 0 and resized["test"] > 0
    assert f"{resized['train']:,} of its 39,209 training" in gtsrb.source.verified
    assert "each ROI was scaled to the file's size" in gtsrb.source.verified
    assert gtsrb.x_train.shape == (39_209, 32, 32, 3) and gtsrb.x_test.shape == (12_630, 32, 32, 3)
    counts = np.bincount(gtsrb.y_train, minlength=43)
    assert counts[0] == 210 and counts[1] == 2220 and counts[2] == 2250 and counts[42] == 240  # the official counts
    assert len(np.bincount(gtsrb.y_test)) == 43
    assert os.path.basename(str(gtsrb.source.location)) == gtsrb.source.location

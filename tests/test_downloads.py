"""Downloads end to end: each dataset's fixture archives served over HTTP from 127.0.0.1, the
loader pointed at that server with ``CAMRI_MIRROR``; checksums, caching, no second download,
no partial file after a bad checksum, and AwA2's free-space check."""

import functools
import http.server
import threading
from pathlib import Path

import pytest

from camri_utils import data
from camri_utils.data import _common, awa2, cifar10, fixtures, gtsrb
from camri_utils.data._common import file_hash

# dataset: (subfolder of the Keras cache, archives)
ARCHIVES = {"cifar10": (cifar10.KERAS_SUBDIR, [cifar10.TARBALL]), "gtsrb": ("gtsrb", sorted(gtsrb.MD5)),
            "awa2": ("awa2", [awa2.ZIP])}


pytestmark = pytest.mark.usefixtures("isolated_caches")  # tests/conftest.py: caches of each test's own


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/served``; yields (base URL, folder,
    list of requested paths)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests = []

    class Handler(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _serve_fixture(name, folder, monkeypatch, wrong=False):
    """Write ``name``'s fixture into the served folder (archives only, no manifest: what a
    mirror serves) and make the loader expect the archives' checksums (or wrong ones).
    Returns the load options."""
    fixtures.write(name, folder, per_class=4)
    (folder / _common.FIXTURE_MARKER).unlink()
    if name == "cifar10":
        digest = file_hash(folder / cifar10.TARBALL, "sha256")
        monkeypatch.setattr(cifar10, "SHA256", "0" * 64 if wrong else digest)
        return {}
    if name == "gtsrb":
        md5 = {n: file_hash(folder / n, "md5") for n in gtsrb.MD5}
        if wrong:
            md5[gtsrb.TRAIN_ZIP] = "0" * 32
        monkeypatch.setattr(gtsrb, "MD5", md5)
        return {"size": 16}
    return {"size": 16, "sha256": "0" * 64 if wrong else file_hash(folder / awa2.ZIP, "sha256")}


def _cache_files(tmp_path, name):
    folder = tmp_path / "keras-home" / "datasets" / ARCHIVES[name][0]
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("name", list(ARCHIVES))
def test_download_from_mirror_is_checked_cached_and_not_repeated(name, server, tmp_path, monkeypatch):
    url, folder, requests = server
    options = _serve_fixture(name, folder, monkeypatch)
    monkeypatch.setenv("CAMRI_MIRROR", url)

    ds = data.load(name, **options)
    archives = ARCHIVES[name][1]
    assert sorted(requests) == sorted(f"/{a}" for a in archives)
    assert _cache_files(tmp_path, name) == archives  # kept in the Keras cache, nothing else beside them
    assert len(ds.x_train) and len(ds.x_test)

    again = data.load(name, **options)
    assert len(requests) == len(archives), "the second load downloaded again"
    assert (again.x_train == ds.x_train).all() and (again.y_test == ds.y_test).all()


@pytest.mark.parametrize("name", list(ARCHIVES))
def test_wrong_checksum_is_a_clear_error_and_leaves_no_file(name, server, tmp_path, monkeypatch):
    url, folder, requests = server
    options = _serve_fixture(name, folder, monkeypatch, wrong=True)
    monkeypatch.setenv("CAMRI_MIRROR", url)

    with pytest.raises(data.CorruptDataError, match="expected checksum.*deleted"):
        data.load(name, **options)
    assert requests, "nothing was downloaded"
    bad = {"cifar10": cifar10.TARBALL, "gtsrb": gtsrb.TRAIN_ZIP, "awa2": awa2.ZIP}[name]
    assert bad not in _cache_files(tmp_path, name)
    assert not [f for f in _cache_files(tmp_path, name) if f.startswith(".") or f.endswith(".part")]


def test_mirror_that_lacks_the_file_is_not_found(server, monkeypatch):
    url, _, requests = server
    monkeypatch.setenv("CAMRI_MIRROR", url)
    with pytest.raises(data.DatasetNotFoundError, match="download failed"):
        data.load("cifar10")
    assert requests == [f"/{cifar10.TARBALL}"]


def test_download_url_uses_the_mirror(monkeypatch):
    assert _common.download_url("https://example.org/a/b.zip", "b.zip") == "https://example.org/a/b.zip"
    monkeypatch.setenv("CAMRI_MIRROR", "http://127.0.0.1:8000/mirror/")
    assert _common.download_url("https://example.org/a/b.zip", "b.zip") == "http://127.0.0.1:8000/mirror/b.zip"


def test_awa2_checks_free_disk_before_downloading(server, monkeypatch):
    url, folder, requests = server
    options = _serve_fixture("awa2", folder, monkeypatch)
    monkeypatch.setenv("CAMRI_MIRROR", url)
    monkeypatch.setattr(_common.shutil, "disk_usage", lambda path: type("U", (), {"free": 2_000_000_000})())
    with pytest.raises(data.DatasetNotFoundError, match=r"needs about 14 GB of free disk.*only 2\.0 GB"):
        data.load("awa2", **options)
    assert requests == [], "downloaded although the disk is too small"


def test_no_free_space_check_when_the_data_is_there(tmp_path, monkeypatch):
    root = fixtures.write("awa2", tmp_path / "awa2", per_class=4)
    monkeypatch.setattr(_common.shutil, "disk_usage", lambda path: pytest.fail("checked the disk for a local load"))
    assert data.load("awa2", data_dir=root, size=16).n_classes == len(fixtures.AWA2_FIXTURE_CLASSES)


def test_fixture_archives_are_served_byte_for_byte(server, tmp_path):
    import urllib.request

    url, folder, _ = server
    (folder / "x.bin").write_bytes(b"\x00\x01" * 1000)
    with urllib.request.urlopen(url + "x.bin") as r:
        assert r.read() == (folder / "x.bin").read_bytes()
    assert Path(folder / "x.bin").stat().st_size == 2000

"""A chapter opened from its launch button: its first cell installs camri_utils where it is
missing (Colab) from this repository at the book's version, the version the launch buttons open
(one place: ``book/_config.yml``, ``repository: branch``), and a chapter that reads committed
records finds them with no manual step (:mod:`camri_utils.records`). Tested with the network
replaced by a local git repository (``git+file://``, the same VCS install as the cell's
``git+https://``)."""

import json
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

import camri_utils
from camri_utils import records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))  # not a runner's temporary file
CONDITION = 'import importlib.util; print(importlib.util.find_spec("camri_utils") is None)'
CELL = re.compile(
    r"""(?:#[^\n]*\n)*import importlib\.util\n\n"""
    r"""BOOK = "git\+(?P<url>https://github\.com/[\w.-]+/[\w.-]+)@(?P<ref>[\w./-]+)"\n"""
    r"""if importlib\.util\.find_spec\("camri_utils"\) is None:\n"""
    r"""    %pip install --quiet "camri-utils @ \{BOOK\}"\n?""")


def book_version():
    """The one place that names the book's version: the repository and branch (or release tag)
    that Jupyter Book's launch buttons open."""
    repository = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["repository"]
    return repository["url"], repository["branch"]


def _first_code_cell(path):
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_the_book_version_is_a_branch_or_this_librarys_release_tag():
    url, ref = book_version()
    assert url == records.REPOSITORY  # the launch buttons and the records' fetcher: one repository
    # Unreleased: main (the library from main too). Released: the tag of this library's version.
    assert ref == "main" or ref == f"v{camri_utils.__version__}", ref


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_installs_the_version_its_launch_button_opens(path):
    """The Colab badge, the launch button (book/_config.yml) and the install cell name one
    version. Chapters 01-08 fail here until their install cell and badge name book/_config.yml's
    branch (the lead applies the cell given in the report of issue 19's Part III work)."""
    url, ref = book_version()
    match = CELL.fullmatch(_first_code_cell(path))
    assert match, f"{path.name}: the first code cell is not the install cell"
    assert (match["url"], match["ref"]) == (url, ref), (
        f"{path.name}: installs {match['url']}@{match['ref']}, the launch button opens {url} at {ref}")
    intro = json.loads(path.read_text())["cells"][0]
    badge = f"colab.research.google.com/github/{url.split('github.com/')[1]}/blob/{ref}/notebooks/{path.name}"
    assert badge in "".join(intro["source"]), f"{path.name}: the Colab badge does not open {ref}"


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def _needs_git_checkout():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")


def test_install_cell_installs_every_module_from_a_checkout(tmp_path):
    _needs_git_checkout()
    commit = _git("rev-parse", "HEAD").strip()
    modules = sorted(p for p in _git("ls-tree", "-r", "--name-only", commit, "camri_utils").split()
                     if p.endswith(".py"))
    assert modules, "no module of camri_utils is committed"
    # The committed modules are the working tree's (a module left uncommitted would not reach Colab).
    assert modules == sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "camri_utils").rglob("*.py"))

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")

    def run(*args):  # from tmp_path, so that the checkout's camri_utils is not on sys.path
        return subprocess.run([python, *args], cwd=tmp_path, check=True, capture_output=True, text=True,
                              timeout=240).stdout.strip()

    assert run("-c", "import importlib.util; print(importlib.util.find_spec('tensorflow') is None)") == "True"
    assert run("-c", CONDITION) == "True"  # missing: the cell installs
    run("-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
        f"camri-utils @ git+file://localhost{ROOT.as_posix()}@{commit}")  # pip 23 needs the host
    assert run("-c", CONDITION) == "False"  # installed: the cell does nothing
    listing = json.loads(run("-c", (
        "import importlib.metadata as m, importlib.util as u, json; d = m.distribution('camri-utils'); "
        "print(json.dumps({'version': d.version, 'origin': u.find_spec('camri_utils').origin, "
        "'files': [f.as_posix() for f in d.files]}))")))
    assert listing["version"] == camri_utils.__version__
    assert Path(listing["origin"]).is_relative_to(env_dir)
    installed = sorted(f for f in listing["files"] if f.startswith("camri_utils/") and f.endswith(".py"))
    assert installed == modules


def test_launch_button_install_then_finds_its_records_with_no_manual_step(tmp_path):
    """What a Colab reader does: run a chapter's install cell (its ref, the network replaced by a
    local repository holding this commit under that ref), then ask for the committed records:
    they are fetched from that repository at the installed commit, into the cache folder."""
    _needs_git_checkout()
    commit = _git("rev-parse", "HEAD").strip()
    url, ref = book_version()
    # "GitHub": a bare repository whose branch `ref` is this commit.
    remote = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", str(remote), cwd=tmp_path)
    _git("config", "receive.shallowUpdate", "true", cwd=remote)  # CI's checkout is shallow
    _git("push", "--quiet", str(remote), f"{commit}:refs/heads/{ref}")
    local_url = f"file://localhost{remote.as_posix()}"

    # A chapter's install cell (they are all the same once each names the book's version).
    cells = [CELL.fullmatch(_first_code_cell(path)) for path in NOTEBOOKS]
    match = next((m for m in cells if m and (m["url"], m["ref"]) == (url, ref)), None)
    assert match, "no chapter's install cell names the book's version"
    requirement = f"camri-utils @ git+{local_url}@{match['ref']}"  # the cell's, host replaced
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--target", str(site), requirement], check=True, capture_output=True, text=True, timeout=300)

    probe = (
        "import json, sys; from camri_utils import records; "
        "where = records.find('results/fashion_mnist', cache_dir=sys.argv[1]); "
        "from camri_utils import stored_runs; store = stored_runs.RunStore.find('results/digits_2d', sys.argv[1]); "
        "runs = [store.read(store.folder / f'{i}.json') for i in store.ids()]; "
        "print(json.dumps({'source': {k: str(v) for k, v in records.installed_from().items()}, "
        "'folder': str(where), 'library': records.__file__, 'runs': len(runs), 'store': str(store.folder)}))")
    # The installed library first on the path; Keras and the rest from this environment.
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "cache")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(site),
                                                                          "PATH": "/usr/bin:/bin",
                                                                          "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(found["library"]).is_relative_to(site)
    assert found["source"] == {"kind": "git", "url": local_url, "commit": commit}
    folder = Path(found["folder"])
    assert folder == tmp_path / "cache" / commit / "results" / "fashion_mnist"
    # Chapter 6's stored runs come with the same copy, each checked as it is read.
    assert Path(found["store"]) == tmp_path / "cache" / commit / "results" / "digits_2d"
    assert found["runs"] == len(_git("ls-tree", "--name-only", commit, "results/digits_2d/").split()) // 2
    assert (folder / "protocol.json").read_text() == _git("show", f"{commit}:results/fashion_mnist/protocol.json")
    committed = set(_git("ls-tree", "-r", "--name-only", commit, "results/fashion_mnist").split())
    fetched = {p.relative_to(tmp_path / "cache" / commit).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert fetched == committed
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [commit]  # nothing half-written beside it
    # Only the folders the chapter read were downloaded, not every record of the book.
    assert sorted(p.name for p in (tmp_path / "cache" / commit / "results").iterdir()) == ["digits_2d", "fashion_mnist"]


# Hostile input: what the installation record, the cache and the network can do wrong.

@pytest.fixture
def installed(monkeypatch):
    """Pretend the library was installed by pip with the given direct_url.json text."""
    monkeypatch.setattr(records, "_checkout_of_this_library", lambda: None)

    def install(text):
        monkeypatch.setattr(records, "_direct_url_text", lambda: text)
    return install


def test_this_checkout_is_its_own_copy_of_the_records():
    assert records.installed_from() == {"kind": "checkout", "path": ROOT}
    assert records.repository_copy() == ROOT
    assert records.repository_file("benchmarks/RESULTS.md") == ROOT / "benchmarks" / "RESULTS.md"


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', "has no 'url'"),
    ('{"url": "https://x/y", "vcs_info": {"vcs": "git", "commit_id": "main"}}', "40-digit commit"),
    ('{"url": "https://x/y", "vcs_info": {"vcs": "hg", "commit_id": "' + "a" * 40 + '"}}', "expected git"),
])
def test_a_broken_installation_record_is_refused_by_name(installed, text, message):
    installed(text)
    with pytest.raises(records.RecordsUnavailableError, match=message) as err:
        records.installed_from()
    assert "direct_url.json" in str(err.value) or "reinstall" in str(err.value)


def test_a_library_from_an_index_has_no_records_to_fetch(installed):
    installed(None)
    assert records.installed_from() == {"kind": "unknown"}
    with pytest.raises(records.RecordsUnavailableError, match="clone the repository"):
        records.repository_copy()


def test_offline_fetch_says_so_and_leaves_nothing_behind(installed, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    installed(json.dumps({"url": f"file://{tmp_path}/no-such-repo.git",
                          "vcs_info": {"vcs": "git", "commit_id": commit}}))
    cache = tmp_path / "cache"
    with pytest.raises(records.RecordsUnavailableError, match=r"could not fetch .* \(offline\?\)"):
        records.find("results/fashion_mnist-nowhere", cache_dir=cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_an_unfinished_copy_is_fetched_again(installed, tmp_path):
    _needs_git_checkout()
    commit = _git("rev-parse", "HEAD").strip()
    installed(json.dumps({"url": f"file://{ROOT.as_posix()}", "vcs_info": {"vcs": "git", "commit_id": commit}}))
    cache = tmp_path / "cache"
    (cache / commit / "results").mkdir(parents=True)  # an interrupted fetch: no completion marker
    copy = records.repository_copy(cache)
    assert copy == cache / commit
    assert (copy / "benchmarks" / "RESULTS.md").read_text() == _git("show", f"{commit}:benchmarks/RESULTS.md")
    assert not (copy / "camri_utils").exists()  # only results/ and benchmarks/ are checked out
    with pytest.raises(FileNotFoundError, match="no run of it is committed"):
        records.find("results/not-a-dataset", cache_dir=cache)


def test_without_git_it_says_what_to_install(installed, tmp_path, monkeypatch):
    installed(json.dumps({"url": "https://example.invalid/r", "vcs_info": {"vcs": "git", "commit_id": "a" * 40}}))
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    with pytest.raises(records.RecordsUnavailableError, match="git is not installed"):
        records.repository_copy(tmp_path / "cache")


@pytest.mark.parametrize("path", ["../secrets", "/etc/passwd", "camri_utils/records.py", "results/../../x"])
def test_only_the_repositorys_record_folders_can_be_read(path):
    with pytest.raises(ValueError, match="must lie inside"):
        records.repository_file(path)


def test_a_missing_folder_outside_results_is_reported_as_given(tmp_path):
    with pytest.raises(FileNotFoundError, match="no protocol results folder"):
        records.find(str(tmp_path / "mine"))

"""The book's committed files (``results/``, ``benchmarks/``) wherever the library runs.

A chapter that reads committed records calls :func:`find` instead of naming a folder by hand::

    from camri_utils import records
    folder = records.find("results/fashion_mnist")   # a folder holding protocol.json

It looks where :func:`results_folder` looks (the path as given, ``$CAMRI_RESULTS_DIR``, the
checkout of an editable install; also :func:`camri_utils.protocol.results_folder`), and then in the book's
repository *at the commit the library was installed from*: on Colab, where the chapter's first
cell installed the library with pip from the repository, pip recorded that repository and
commit (``direct_url.json``), and the records are fetched from there once, as a shallow,
sparse git checkout of the folder asked for (a chapter's ``results/<name>``, not every record of
the book) in a cache folder (``~/.cache/camri-book/<commit>``), so the records always match the
library and the chapter.
Without a network it says so and what to do instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["REPOSITORY", "FETCHED", "RecordsUnavailableError", "installed_from", "repository_copy", "find",
           "repository_file", "results_folder"]

REPOSITORY = "https://github.com/camri-book/camri-book"
FETCHED = ("results", "benchmarks")  # what a fetched copy of the repository holds
_COMMIT = re.compile(r"[0-9a-f]{40}")
_COMPLETE = ".camri-complete"  # an earlier version's whole-copy marker: such a copy holds every path
_FETCHED_DIR = ".camri-fetched"  # one marker per fetched path, written once the path is in place
# The folder that holds the camri_utils package: a checkout's root, or site-packages.
_LIBRARY_PARENT = Path(__file__).resolve().parents[1]


class RecordsUnavailableError(FileNotFoundError):
    """The committed records cannot be had here (not in a checkout, and not fetchable)."""


def _direct_url_text():
    """The text of the ``direct_url.json`` pip wrote when it installed camri-utils, or None."""
    try:
        return metadata.distribution("camri-utils").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None


def _distribution_url():
    """pip's record of where camri-utils was installed from, or None."""
    text = _direct_url_text()
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordsUnavailableError(
            f"camri-utils's installation record direct_url.json is not valid JSON ({exc}); reinstall the "
            "library (the chapter's first cell) and run again.") from None
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise RecordsUnavailableError(
            "camri-utils's installation record direct_url.json has no 'url'; reinstall the library (the "
            "chapter's first cell) and run again.")
    return value


def _checkout_of_this_library():
    """The repository this library is imported from, when it is a checkout (an editable install,
    or the source tree on ``sys.path``): it holds the committed files itself."""
    root = _LIBRARY_PARENT
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "camri-utils"' in pyproject.read_text(errors="replace"):
        return root
    return None


def installed_from():
    """Where this library came from: ``{"kind": "checkout", "path": Path}`` (a folder holding
    the repository: an editable or local install), ``{"kind": "git", "url": str, "commit": str}``
    (pip installed it from a git repository at that commit: the chapter's install cell), or
    ``{"kind": "unknown"}`` (a wheel or an index: no repository to read)."""
    root = _checkout_of_this_library()
    if root is not None:
        return {"kind": "checkout", "path": root}
    record = _distribution_url()
    if record is None:
        return {"kind": "unknown"}
    url = record["url"]
    vcs = record.get("vcs_info")
    if isinstance(vcs, dict):
        commit = vcs.get("commit_id")
        if vcs.get("vcs") != "git" or not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
            raise RecordsUnavailableError(
                f"camri-utils was installed from {url!r} with vcs_info {vcs!r}: expected git and a 40-digit "
                "commit id; reinstall it with the chapter's first cell.")
        return {"kind": "git", "url": url, "commit": commit}
    if url.startswith("file:"):  # pip install /path/to/clone (not editable): the clone is there
        path = Path(unquote(urlsplit(url).path))
        if (path / "pyproject.toml").is_file():
            return {"kind": "checkout", "path": path}
    return {"kind": "unknown"}


def _default_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "camri-book"


def _git(*args, cwd=None, timeout=600):
    try:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        raise RecordsUnavailableError(
            "git is not installed: install it (apt-get install git), or clone the book's repository by hand "
            f"({REPOSITORY}) and pass the path of its results folder.") from None


def _slug(path):
    return path.replace("/", "__")


def _fetched(target, path):
    """Is ``path`` in the copy at ``target``? A whole copy fetched by an earlier version (its
    completion marker) holds every path; otherwise each fetched path has its own marker."""
    return (target / _COMPLETE).is_file() or (target / _FETCHED_DIR / _slug(path)).is_file()


def _fetch(url, commit, target, paths=FETCHED):
    """A shallow, sparse checkout of ``paths`` (folders or files of the repository) from ``url``
    at ``commit``, each moved into ``target`` only when complete: a chapter downloads the folder
    it reads, not every record of the book."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _git("init", "--quiet", str(tmp))
        _git("sparse-checkout", "set", "--no-cone", *(f"/{p.strip('/')}" for p in paths), cwd=tmp)
        # --filter: only the files checked out are downloaded (servers without it send all).
        _git("fetch", "--quiet", "--depth", "1", "--filter=blob:none", url, commit, cwd=tmp)
        _git("-c", "advice.detachedHead=false", "checkout", "--quiet", "FETCH_HEAD", cwd=tmp)
        for path in paths:
            got, place = tmp / path, target / path
            if got.exists():  # absent: the repository has nothing there at this commit
                place.parent.mkdir(parents=True, exist_ok=True)
                if place.is_dir():
                    shutil.rmtree(place)  # left by a fetch interrupted before its marker
                os.replace(got, place)
            marker = target / _FETCHED_DIR / _slug(path)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"url": url, "commit": commit, "path": path}) + "\n")
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or "").strip().splitlines()
        raise RecordsUnavailableError(
            f"could not fetch the book's records from {url} at commit {commit[:12]} (offline?): git said "
            f"{said[-1] if said else exc}. Connect and run again, or clone the repository by hand and pass "
            "the path of its results folder.") from None
    except subprocess.TimeoutExpired:
        raise RecordsUnavailableError(
            f"fetching the book's records from {url} took too long; run again, or clone the repository by hand "
            "and pass the path of its results folder.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def repository_copy(cache_dir=None, paths=FETCHED):
    """A folder holding the book's repository at this library's version: the checkout itself,
    or a copy of ``paths`` (default: all of ``results/`` and ``benchmarks/``) fetched once into
    ``cache_dir`` (default ``~/.cache/camri-book``) at the commit the library was installed
    from; paths fetched before are not fetched again."""
    source = installed_from()
    if source["kind"] == "checkout":
        return source["path"]
    if source["kind"] == "unknown":
        raise RecordsUnavailableError(
            "camri-utils was not installed from the book's repository (no git commit recorded), so there is no "
            "version of its records to fetch: install it with the chapter's first cell, or clone the repository "
            f"({REPOSITORY}) and pass the path of its results folder.")
    target = Path(cache_dir or _default_cache()) / source["commit"]
    missing = [p for p in paths if not _fetched(target, p)]
    if missing:
        _fetch(source["url"], source["commit"], target, missing)
    return target


def repository_file(path, cache_dir=None):
    """The committed file or folder ``path`` (relative to the repository: e.g.
    ``"benchmarks/RESULTS.md"``) at this library's version, fetched alone where it must be
    fetched; FileNotFoundError if the repository has none there."""
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts or relative.parts[:1] not in [(p,) for p in FETCHED]:
        raise ValueError(f"path must lie inside one of the repository's folders {FETCHED}; got {str(path)!r}.")
    copy = repository_copy(cache_dir, [relative.as_posix()])
    found = copy / relative
    if not found.exists():
        raise FileNotFoundError(f"the book's repository has no {relative.as_posix()} at this version.")
    return found


def _check_results_dir(path):
    """``$CAMRI_RESULTS_DIR``, when set, must be a folder: a typo is an error naming it, never
    a silent fall-back to the checkout's or the repository's results."""
    chosen = os.environ.get("CAMRI_RESULTS_DIR")
    if chosen and not Path(chosen).expanduser().is_dir():
        what = f"{chosen!r}, which is {'a file' if Path(chosen).exists() else 'missing'}"
        raise FileNotFoundError(f"CAMRI_RESULTS_DIR is {what}: set it to the folder that holds your results "
                                f"folders (such as {Path(path).name}), or unset it to read the book's committed ones.")


def results_folder(path="results/fashion_mnist", marker="protocol.json"):
    """Find a results folder: ``path`` as given (absolute, or relative to the working
    directory), then its last part inside ``$CAMRI_RESULTS_DIR``, then ``path`` inside the
    repository this library was installed from (an editable install, as ``make`` does). A folder
    without ``marker`` (``protocol.json``; a sensitivity sweep's is ``sweep.json``) is not one."""
    path = Path(path)
    _check_results_dir(path)
    candidates = [path]
    if os.environ.get("CAMRI_RESULTS_DIR"):
        candidates.append(Path(os.environ["CAMRI_RESULTS_DIR"]) / path.name)
    if not path.is_absolute():
        candidates.append(_LIBRARY_PARENT / path)
    for folder in candidates:
        if (folder / marker).is_file():
            return folder
    raise FileNotFoundError(
        f"no protocol results folder {str(path)!r} (looked in: {', '.join(str(c) for c in candidates)}). "
        "The committed results are in the book's repository: clone it (git clone --depth 1 "
        "https://github.com/camri-book/camri-book) and pass the path of its results folder, set "
        "CAMRI_RESULTS_DIR to the folder that holds it, or produce your own with `camri protocol`.")


def find(path="results/fashion_mnist", marker="protocol.json", cache_dir=None):
    """The results folder ``path`` (one holding ``marker``: ``protocol.json``, or a sweep's
    ``sweep.json``): where :func:`results_folder` finds it, else in the
    book's repository at this library's version (fetched once on Colab, see the module's
    docstring). FileNotFoundError naming every place looked in when there is none."""
    _check_results_dir(path)  # before the repository is tried: a typo is never fallen back from
    try:
        return results_folder(path, marker=marker)
    except FileNotFoundError as exc:
        first = exc
    relative = Path(path)
    if relative.is_absolute() or relative.parts[:1] != ("results",):
        raise first
    try:
        folder = repository_file(relative, cache_dir)
    except RecordsUnavailableError:
        raise
    except FileNotFoundError:  # the repository has no such folder at this version
        folder = None
    if folder is not None and (folder / marker).is_file():
        return folder
    raise FileNotFoundError(f"{first} Nor does the book's repository hold {relative.as_posix()}/{marker} at this "
                            "version: no run of it is committed.")

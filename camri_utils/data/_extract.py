"""A tar archive given as a dataset's place (``data_dir`` or ``CAMRI_DATA_DIR``): extracted once
into the decoded-data cache, atomically, and read from there like an extracted folder.

The extraction goes into a hidden temporary folder beside its target and is renamed into place
only when complete, so an interrupted extraction never passes for a complete one; members that
would land outside the folder (absolute paths, ``..``, links) are refused by tarfile's ``data``
filter. The cache must not lie inside a git checkout (extracted images must never be committed)."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from tqdm import tqdm

from camri_utils.data._common import CorruptDataError, cache_key, decoded_cache_dir

__all__ = ["TAR_SUFFIXES", "is_tar_archive", "extracted", "archive_label"]

TAR_SUFFIXES = (".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")
EXTRACTED = "extracted"


def is_tar_archive(path):
    """Whether ``path`` is a file named like a tar archive (``.tar``, ``.tar.xz``, ``.tgz``...)."""
    path = Path(path)
    return path.is_file() and path.name.lower().endswith(TAR_SUFFIXES)


def _stem(path):
    name = path.name
    for suffix in TAR_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def archive_label(path):
    """How a dataset read from the archive ``path`` names its place in records and reports:
    the archive's file name, never this machine's folders."""
    return Path(path).name


def _checkout_holding(folder):
    """The git checkout (a folder with ``.git``) that holds ``folder``, or None."""
    for parent in [folder, *folder.parents]:
        if (parent / ".git").exists():
            return parent
    return None


def _extract_member(tar, member, folder):
    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12
        tar.extract(member, folder, filter="data")
        return
    name = Path(member.name)
    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
        raise tarfile.TarError(f"member {member.name!r} is not a plain file or folder inside the archive")
    tar.extract(member, folder)


def _digest(path, chunk=1 << 20):
    """SHA-256 of a file's bytes (about a quarter of a second for CIFAR-10's 133 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def extracted(archive, cache_dir=None):
    """The folder that the tar ``archive`` extracts to, in ``cache_dir`` (default: the
    decoded-data cache's ``extracted/``), extracting it first when it is not there yet. Keyed
    by the archive's bytes: a changed archive is extracted again, while the same archive copied,
    moved or downloaded again (a new modification time) is not, and neither are the arrays
    decoded from its folder (an extraction and a decoding per copy would fill the disk)."""
    archive = Path(archive)
    key = cache_key(sha256=_digest(archive))
    parent = Path(cache_dir) if cache_dir is not None else decoded_cache_dir() / EXTRACTED
    target = parent / f"{_stem(archive)}-{key}"
    if target.is_dir():
        return target
    checkout = _checkout_holding(parent.resolve()) if parent.exists() else _checkout_holding(parent.absolute())
    if checkout is not None:
        raise ValueError(f"{archive} would be extracted into {parent}, inside the git checkout {checkout}: extracted "
                         "images must never be committed. Set CAMRI_CACHE_DIR to a folder outside the repository.")
    parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}-partial-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tqdm(tar, desc=f"extracting {archive.name}", unit="file", mininterval=2):
                _extract_member(tar, member, partial)
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise CorruptDataError(f"{archive} could not be extracted ({type(exc).__name__}: {exc}): it is truncated, "
                               "corrupt or not a tar archive. Get a complete copy; nothing was left in the cache.") from exc
    except BaseException:  # interrupted: nothing half-extracted stays
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        os.rename(partial, target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():  # not another process that finished first
            raise
    return target

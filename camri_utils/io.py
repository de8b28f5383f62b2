"""Atomic writes (a file or folder appears complete or not at all) and the SHA-256 digest.

Every writer of the library (results records, reports, notebooks, data caches) goes through
these helpers, so an error or a kill never leaves a half-written file, and what is written gets
the permissions of an ordinary file (``0666 & ~umask``), not ``mkstemp``'s owner-only ``0600``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_dir", "write_text", "write_json", "sha256"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target):
    """Yield a temporary path beside ``target``; move it into place only if the block
    succeeds, so an error or interruption never leaves a half-written ``target``. The file gets
    the permissions an ordinary ``open(target, "w")`` would give it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and ending in the target's own suffix, so tools that check it (papermill) accept it.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(target):
    """Yield a temporary folder beside ``target``; it replaces ``target`` only if the block
    succeeds (an existing ``target`` is removed first). Permissions as ``mkdir`` would give."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, value, indent=None):
    """Write ``value`` as JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(value, indent=indent))


def sha256(data):
    """The SHA-256 (64 hex digits) of ``data``: bytes, or the file at a path (read in chunks).
    The digest every stored record binds its arrays with (``scores_sha256``, ``arrays_sha256``)."""
    h = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        h.update(data)
        return h.hexdigest()
    with open(data, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

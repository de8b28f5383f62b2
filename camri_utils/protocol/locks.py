"""Locks on a results folder, so that several processes can share it without training a run
twice or replacing each other's records: one lock per run (held while it trains), and one on
the folder's description (held while ``protocol.json`` or ``sweep.json`` is read or written).

The locks are the `filelock <https://py-filelock.readthedocs.io>`_ package's: an OS lock on a
file under ``<output>/.locks/``, which the system releases when its holder dies, so that a
lock left by a killed process is simply taken by the next one (where the file system has no
OS locks, filelock falls back to a lock file that it breaks once its holder is gone). Beside
each lock, a small JSON file names its holder (process id, machine, command, start time), so
that a process that finds a lock taken can say by whom.

The results folder itself is made here too (:func:`make_runs_folder`): taking a lock is the first
thing a process does with a folder. This module needs only :mod:`.spec`; the store sits above it
(it locks a run to remove or rewrite its record).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path

from camri_utils.io import write_json, write_text
from camri_utils.protocol.spec import ProtocolError

__all__ = ["LOCKS", "COMMAND", "Lock", "folder_lock", "describe", "make_runs_folder"]

LOCKS = ".locks"  # under the results folder; hidden, so load_records and git ignore it
# What a holder says it is running: this program's command line (a worker adds its number).
COMMAND = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"])[:200]


def make_runs_folder(output):
    """Create ``<output>/runs`` (a protocol's or a sweep's); an unwritable place is a
    :class:`ProtocolError` that says what to do. Returns ``output`` as a Path."""
    output = Path(output)
    try:
        (output / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProtocolError(f"cannot create the results folder {output} ({exc.strerror}); pass a writable "
                            "--output.") from exc
    if not os.access(output / "runs", os.W_OK):
        raise ProtocolError(f"the results folder {output} is not writable; pass a writable --output.")
    return output


def _locks_dir(output):
    folder = Path(output) / LOCKS
    if not folder.is_dir():
        make_runs_folder(output)  # an unwritable place is a clear error there
        folder.mkdir(exist_ok=True)
        # Lock files belong to a running process, never to the committed results.
        write_text(folder / ".gitignore", "*\n")
    return folder


def describe(holder):
    """A holder record in words: ``process 123 on host 'x' (camri protocol ..., since 12:00:00 UTC)``."""
    if not holder:
        return "another process (it has not said which yet)"
    return (f"process {holder.get('pid')} on host {holder.get('host')!r} ({holder.get('command')}, since "
            f"{holder.get('since')})")


class Lock:
    """A non-blocking lock named ``name`` on the results folder ``output``. :meth:`acquire`
    returns True when this process now holds it, False when another does (then :attr:`holder`
    says who); :meth:`release` gives it back. ``session`` tells this program's worker
    processes apart from another program's."""

    def __init__(self, output, name, session=None):
        import filelock

        folder = _locks_dir(output)
        self.name = name
        self.session = session
        self._lock = filelock.FileLock(str(folder / f"{name}.lock"), timeout=0)
        self._holder = folder / f"{name}.holder.json"

    def acquire(self):
        import filelock

        try:
            self._lock.acquire()
        except filelock.Timeout:
            return False
        except OSError as exc:  # a read-only results folder (its .locks too): not a traceback
            raise ProtocolError(f"cannot lock {self._holder.parent} ({exc.strerror or exc}): the results folder is "
                                "read-only. Pass a writable --output (a copy of the folder, to resume it).") from exc
        write_json(self._holder, {"pid": os.getpid(), "host": socket.gethostname(), "session": self.session,
                                  "command": COMMAND,
                                  "since": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")})
        return True

    def release(self):
        self._holder.unlink(missing_ok=True)
        self._lock.release()

    @property
    def holder(self):
        """The holder's record (a dict; empty when it has not written it yet)."""
        try:
            return json.loads(self._holder.read_text())
        except (OSError, ValueError):
            return {}

    def __enter__(self):
        if not self.acquire():
            raise ProtocolError(f"{self.name} is held by {describe(self.holder)}.")
        return self

    def __exit__(self, *exc):
        self.release()


class folder_lock:
    """Hold the lock on ``output``'s description (``protocol.json``, ``sweep.json``) while a
    process opens or changes it; waits up to ``timeout`` seconds for another process to be
    done, then stops with an error naming the holder."""

    def __init__(self, output, timeout=60.0):
        self.lock = Lock(output, "folder")
        self.output, self.timeout = output, timeout

    def __enter__(self):
        import time

        deadline = time.monotonic() + self.timeout
        while not self.lock.acquire():
            if time.monotonic() > deadline:
                raise ProtocolError(f"{self.output} is being set up by {describe(self.lock.holder)}; wait for it, or "
                                    "stop that process.")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.lock.release()

"""Read members of a zip archive or of an extracted folder through one interface, so that a
loader never has to extract anything (and so never leaves anything half-extracted)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from camri_utils.data._common import CorruptDataError


class Members:
    """Files under a root that is either a ``.zip`` or a directory, named by posix paths."""

    def __init__(self, root, names=None):
        """``names``: for a directory, the members to expose (default: every file below)."""
        self.root = Path(root)
        self._zip = None
        if self.root.is_file():
            try:
                self._zip = zipfile.ZipFile(self.root)
            except (zipfile.BadZipFile, OSError) as exc:
                raise CorruptDataError(
                    f"{self.root} is not a readable zip archive ({exc}): it is truncated or "
                    "corrupt. Delete it and download it again."
                ) from exc
            self._names = [n for n in self._zip.namelist() if not n.endswith("/")]
        elif names is not None:
            self._names = list(names)
        else:
            self._names = [p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()]

    def names(self):
        return list(self._names)

    def find(self, suffix):
        """Members whose path ends with ``suffix`` (e.g. ``"GT-final_test.csv"``)."""
        return [n for n in self._names if n == suffix or n.endswith("/" + suffix)]

    def read(self, name):
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.root / PurePosixPath(name)).read_bytes()
        except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
            raise CorruptDataError(
                f"could not read {name} from {self.root} ({exc}): the archive is truncated or "
                "corrupt. Delete it and download it again."
            ) from exc

    def open(self, name):
        return io.BytesIO(self.read(name))

    def close(self):
        if self._zip is not None:
            self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

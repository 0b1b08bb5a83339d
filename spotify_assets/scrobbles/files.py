"""The files of an input path, whatever holds them: one file, a folder, or a ZIP archive.

Readers take an ``InputFile`` and open it themselves, so a member of a 10-year archive is
streamed from the archive and never extracted or read whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO


@dataclass(frozen=True)
class InputFile:
    """One file to read: ``name`` as the report shows it, ``open`` a binary stream of its bytes."""

    name: str
    open: Callable[[], IO[bytes]]


def _ignored(name: str) -> bool:
    """macOS and editor litter that travels inside archives and folders (never a user's file)."""
    parts = PurePosixPath(name).parts
    return "__MACOSX" in parts or any(p.startswith(".") for p in parts)


def input_files(path: Path) -> Iterator[InputFile]:
    """Every file at ``path`` in a stable (sorted) order: the file itself, a folder's files
    (recursively) or a ZIP archive's members."""
    if path.is_dir():
        for f in sorted(x for x in path.rglob("*") if x.is_file()):
            rel = f.relative_to(path).as_posix()
            if not _ignored(rel):
                yield InputFile(rel, _file_opener(f))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(i.filename for i in zf.infolist() if not i.is_dir())
        for name in names:
            if not _ignored(name):
                yield InputFile(name, _member_opener(path, name))
    elif path.is_file():
        yield InputFile(path.name, _file_opener(path))
    else:
        raise FileNotFoundError(f"nothing at {path}")


def _file_opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _member_opener(archive: Path, name: str) -> Callable[[], IO[bytes]]:
    def open_member() -> IO[bytes]:
        zf = zipfile.ZipFile(archive)
        try:
            member = zf.open(name)
        except BaseException:
            zf.close()
            raise
        # The member keeps a reference to the archive's file; closing the member is enough
        # once the ZipFile object itself is closed (its file stays open until the member closes).
        zf.close()
        return member

    return open_member

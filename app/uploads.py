"""The Import page's decisions, apart from Streamlit: whose plays an upload goes into, and where
its bytes wait while the import reads them.

Whose (``upload_target``): a signed-in account imports only into its own listener
(``listeners.own_id``, the listener ``[accounts]`` maps it to), never into the one the picker
shows; the owner's dashboard on loopback without a login imports into the listener the picker
chose, or, with one listener, into whoever ``spotify-assets import`` without ``--user`` would
choose (``users.adoption.import_owner``). Served beyond loopback without a login nothing is
imported: ``auth.gate`` shows nothing there already, and the page refuses on its own as well,
since an upload writes where every other page only reads.

Where (``private_folder``, ``save_uploads``): a temporary folder only this user may open
(``mkdtemp``: mode 0700), each upload under its own base name, removed when the import ends,
whatever happens. The bytes are written there and nowhere else (never to a log).

How (``start_import``): on a thread of its own, so that a rerun of the page (any click while it
runs, a closed tab) never stops an import halfway; the page follows its progress and shows its
report. The import is the command's (``import_run.run_import``), imported only when one
starts: a dashboard-only install has no Dagster.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from app.auth import Viewer, is_loopback
from app.listeners import Listener, own_id

if TYPE_CHECKING:
    from spotify_assets.imports.runner import ImportReport, ProgressEvent

#: What the uploader takes: an export's .zip (Spotify's or ListenBrainz's), or its files: Spotify's
#: JSON, a Last.fm exporter's CSV or JSON pages, ListenBrainz's JSON array or JSON lines. Which
#: source they are is told by their content (``scrobbles.detect``), as the command tells it.
UPLOAD_TYPES = ("zip", "json", "jsonl", "csv")
#: The same, as the file-name endings ``save_uploads`` accepts.
_FILE_ENDINGS = tuple(f".{kind}" for kind in UPLOAD_TYPES if kind != "zip")


class Refused(Exception):
    """Why this upload is not imported, in words for the page."""


def upload_target(
    viewer: Viewer | None,
    chosen: str | None,
    several: bool,
    known: Mapping[str, Listener],
    address: str | None,
) -> str | None:
    """The Spotify id whose plays an upload becomes (``None``: the command's default owner, on a
    one-listener dashboard); raises ``Refused`` for anyone else.

    ``chosen`` is the picker's listener (``None``: everyone, or no picker), ``several`` whether the
    warehouse has several listeners, ``address`` the server's (``None``: no server, as in AppTest,
    which ``auth.gate`` also treats as loopback).
    """
    if viewer is None:
        if address is not None and not is_loopback(address):
            raise Refused(
                "This dashboard is served beyond this machine without a sign-in, so it imports nothing."
            )
        if chosen is None and several:
            raise Refused(
                "An import goes into one listener's plays: choose whose export this is in the "
                "Listener menu first."
            )
        return chosen
    mine = own_id(viewer, known)
    if chosen is not None and chosen != mine:
        label = known.get(mine, Listener(mine)).label
        raise Refused(
            f"You can import only your own listening history ({label}): choose yourself in the Listener menu."
        )
    return mine


def _base_name(name: str) -> str:
    """The file's own name, without any folder a browser might send (``..`` included)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if base in ("", ".", ".."):
        raise Refused(f"{name!r} is not a file name")
    return base


def save_uploads(files: Iterable[tuple[str, bytes | memoryview]], folder: Path) -> Path:
    """Write the uploads into ``folder``; returns the export for the import: the one .zip, or a
    folder of the export's files. Refused: nothing, several .zip files, a .zip with other files, a
    name twice, or any other kind of file."""
    named = [(_base_name(name), body) for name, body in files]
    if not named:
        raise Refused("Choose the export to import first.")
    zips = [(n, b) for n, b in named if n.lower().endswith(".zip")]
    others = [n for n, _ in named if not n.lower().endswith((".zip", *_FILE_ENDINGS))]
    if others:
        raise Refused(
            f"Not an export file: {', '.join(others)} (upload the .zip, or its .json, .jsonl or .csv files)."
        )
    if zips and len(named) > 1:
        raise Refused("Upload one .zip, or the export's files, not both (and one .zip at a time).")
    if zips:
        path = folder / zips[0][0]
        path.write_bytes(zips[0][1])
        if not zipfile.is_zipfile(path):
            raise Refused(f"{zips[0][0]} is not a .zip archive.")
        return path
    names = [n for n, _ in named]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise Refused(f"The same file name twice: {', '.join(twice)}.")
    export = folder / "export"
    export.mkdir()
    for name, body in named:
        (export / name).write_bytes(body)
    return export


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh folder only this user may open (0700), removed with everything in it on exit."""
    folder = Path(tempfile.mkdtemp(prefix="spotify-upload-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def described(names: Iterable[str]) -> str:
    """The upload as the report names it (its file names, not the temporary folder's path)."""
    return ", ".join(_base_name(n) for n in names)


@dataclass
class ImportJob:
    """One import of uploaded files, running beside the page (``start_import``)."""

    user_id: str | None
    source: str
    #: The runner's latest progress (bytes done, bytes in all, rows read).
    done_bytes: int = 0
    total_bytes: int = 0
    rows_read: int = 0
    report: ImportReport | None = None
    #: Why nothing (or not everything) was imported, in words; ``None`` while running or after a report.
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def share(self) -> float:
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 0.0

    def wait(self, seconds: float) -> None:
        """Until the import ends, or ``seconds`` have passed."""
        if self.thread is not None:
            self.thread.join(timeout=seconds)


def start_import(files: list[tuple[str, bytes]], user_id: str | None) -> ImportJob:
    """Import ``files`` (name, bytes) as ``user_id``'s plays on a thread of its own; see the module
    docstring. An export whose ``username`` names another Spotify user is refused
    (``imports.owner.mismatch``, the command's check without its ``--force``)."""
    job = ImportJob(user_id, described(name for name, _ in files))

    def on_progress(event: ProgressEvent) -> None:
        job.done_bytes, job.total_bytes, job.rows_read = event.done_bytes, event.total_bytes, event.rows_read

    def work() -> None:
        from spotify_assets.deployments import deployment_settings
        from spotify_assets.import_run import run_import
        from spotify_assets.imports.owner import mismatch
        from spotify_assets.imports.parsers import FileFormatError
        from spotify_assets.settings import MissingSettings
        from spotify_assets.users.adoption import ImportOwnerUnknown

        with private_folder() as folder:
            try:
                export = save_uploads(files, folder)
                refused = mismatch(export, user_id) if user_id is not None else None
                if refused:
                    raise Refused(f"Not imported: {refused}.")
                job.report = run_import(
                    export, deployment_settings(), on_progress, user_id=user_id, source=job.source
                )
            except (Refused, FileNotFoundError, FileFormatError, ImportOwnerUnknown, MissingSettings) as exc:
                job.error = str(exc)
            except Exception as exc:  # any other failure: said on the page, never a silent success
                job.error = f"The import stopped ({type(exc).__name__}: {exc}); plays merged before it stay."
                raise

    job.thread = threading.Thread(target=work, name="dashboard-import")
    job.thread.start()
    return job

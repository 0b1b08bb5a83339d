"""Land a Last.fm or ListenBrainz export in the lake, for ``bq_plays`` to merge: the scrobbles'
half of ``history_import`` (the Spotify half is ``imports/runner.land_export``).

Every listen read is landed as the row it would be on its own (``rows.listen_row``: no Spotify
id, keyed by its start and names) in the lake's ``plays/`` month files (``imports/landing``),
whatever the warehouse holds: whether it is new, already there or another source's play is the
merge's decision (``merge.py``), made on the warehouse's rows in one place, so a re-import or an
import repeated after kill -9 lands the same files (same keys, same batch ids) and the merge
finds them all present. Rejected rows are quarantined in the lake with their reasons (as the
Spotify import's are); "now playing" entries are counted as skipped. Each row's ``batch_id``
names its file (``scrobbles-<sha256 prefix>``), so the merge's counts come back per file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa

from spotify_assets.imports.landing import LandingPlays, land_plays
from spotify_assets.imports.runner import (
    FileReport,
    ImportReport,
    LandedImport,
    ProgressEvent,
    ProgressFn,
    scrobbles_batch_id,
)
from spotify_assets.lake_layout import EXPORTS_QUARANTINE_PREFIX
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import arrow_schema, conform
from spotify_assets.scrobbles.detect import READERS, Format, Reader, detect_file
from spotify_assets.scrobbles.files import InputFile, input_files
from spotify_assets.scrobbles.listen import SCROBBLE_SERVER, Listen, Rejected, Skipped
from spotify_assets.scrobbles.listenbrainz import read_json_lines
from spotify_assets.scrobbles.rows import listen_row
from spotify_assets.spotify.normalize import batch_id_for
from spotify_assets.users.adoption import import_owner

_PROGRESS_EVERY = 10_000
_LAKE_WRITERS = 4


def _sizes(path: Path) -> dict[str, int]:
    """Each input file's size in bytes, for the progress bar."""
    if path.is_dir():
        return {f.relative_to(path).as_posix(): f.stat().st_size for f in path.rglob("*") if f.is_file()}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return {i.filename: i.file_size for i in zf.infolist()}
    return {path.name: path.stat().st_size}


def _sha256(f: InputFile) -> str:
    digest = hashlib.sha256()
    with f.open() as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Counted(io.RawIOBase):
    """A file's stream that counts the bytes read from it, for the progress bar within a file."""

    def __init__(self, inner: IO[bytes], counter: list[int]) -> None:
        self.inner, self.counter = inner, counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.counter[0] += len(data)
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _counted(f: InputFile, counter: list[int]) -> InputFile:
    return InputFile(f.name, lambda: io.BufferedReader(_Counted(f.open(), counter)))


class _Lander:
    """Rows of listens, chunked and landed by month, one chunk's files in flight at a time."""

    def __init__(self, lake: LakeResource, user_id: str | None, run_at: datetime, chunk_rows: int) -> None:
        self.lake, self.user_id, self.run_at, self.chunk_rows = lake, user_id, run_at, chunk_rows
        self.rows: list[dict[str, Any]] = []
        self.pool = ThreadPoolExecutor(_LAKE_WRITERS, thread_name_prefix="lake-write")
        self.landing: LandingPlays | None = None
        self.paths: list[str] = []
        self.batch_ids: list[str] = []
        self.earlier: set[datetime] = set()
        self.landing_seconds = 0.0

    def add(self, listen: Listen, batch_id: str) -> None:
        self.rows.append(
            {**listen_row(listen, self.user_id), "batch_id": batch_id, "ingested_at": self.run_at}
        )
        if len(self.rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        frame = conform(pd.DataFrame(self.rows), "plays")
        self.rows = []
        table = pa.Table.from_pandas(frame, schema=arrow_schema("plays"), preserve_index=False)
        self.wait()
        t0 = time.monotonic()
        self.landing = land_plays(self.lake, table, self.pool, self.user_id)
        self.landing_seconds += time.monotonic() - t0

    def wait(self) -> None:
        if self.landing is None:
            return
        t0 = time.monotonic()
        landed = self.landing.wait()
        self.landing = None
        self.landing_seconds += time.monotonic() - t0
        self.paths += landed.paths
        self.batch_ids.append(landed.batch_id)
        self.earlier |= landed.earlier_ingested_at

    def close(self) -> None:
        self.pool.shutdown()


def _quarantine(lake: LakeResource, sha: str, body: bytes) -> None:
    """The rejected rows of one file, with reasons; deterministic, so a re-import writes nothing."""
    try:
        lake.write_bytes(f"{EXPORTS_QUARANTINE_PREFIX}{sha}.jsonl", body)
    except LakeConflictError:
        digest = hashlib.sha256(body).hexdigest()[:16]
        # A conflict again: the same rejects, quarantined by an earlier import.
        with contextlib.suppress(LakeConflictError):
            lake.write_bytes(f"{EXPORTS_QUARANTINE_PREFIX}{sha}.{digest}.jsonl", body)


def land_listens(
    path: str | Path,
    fmt: Format,
    warehouse: WarehouseResource,
    lake: LakeResource,
    progress: ProgressFn | None = None,
    *,
    chunk_rows: int,
    now: datetime | None = None,
    user_id: str | None = None,
) -> LandedImport:
    """Land the listens of the export at ``path`` (of format ``fmt``, ``detect.detect``'s answer)
    as ``user_id``'s (no ``user_id``: as ``runner.land_export`` decides); see the module docstring."""
    p = Path(path)
    if user_id is None:
        user_id = import_owner(warehouse, lake)
    files = [(f, f if detect_file(f) is fmt else None) for f in input_files(p)]
    return _land(
        str(path),
        fmt.label,
        fmt.name.lower(),
        files,
        READERS[fmt],
        _sizes(p),
        lake,
        progress,
        chunk_rows=chunk_rows,
        now=now,
        user_id=user_id,
    )


def land_inbox(
    paths: list[str], lake: LakeResource, user_id: str, *, chunk_rows: int, now: datetime | None = None
) -> LandedImport:
    """Land the listens of the door's inbox files at ``paths`` (lake paths, ``inbox.py``) as
    ``user_id``'s, with ``source`` ``scrobble_server``: the door's half of ``history_import``."""

    def opener(path: str) -> Callable[[], IO[bytes]]:
        return lambda: io.BytesIO(lake.read_bytes(path))

    files: list[tuple[InputFile, InputFile | None]] = []
    for p in paths:
        f = InputFile(p, opener(p))
        files.append((f, f))
    return _land(
        f"{len(paths)} inbox file(s) of the scrobble server",
        "listens the scrobble server accepted",
        "scrobble_server",
        files,
        functools.partial(read_json_lines, source=SCROBBLE_SERVER),
        {},
        lake,
        None,
        chunk_rows=chunk_rows,
        now=now,
        user_id=user_id,
    )


def _land(
    path: str,
    found: str,
    kind: str,
    files: list[tuple[InputFile, InputFile | None]],
    reader: Reader,
    sizes: dict[str, int],
    lake: LakeResource,
    progress: ProgressFn | None,
    *,
    chunk_rows: int,
    now: datetime | None,
    user_id: str | None,
) -> LandedImport:
    """Land ``files`` (each with itself, or None when it holds no listens) read by ``reader``."""
    started = time.monotonic()
    run_at = (now or datetime.now(UTC)).astimezone(UTC)
    report = ImportReport(path=path, found=found)
    total_bytes = sum(sizes.get(f.name, 0) for f, _ in files)
    done_bytes = 0
    lander = _Lander(lake, user_id, run_at, chunk_rows)
    try:
        for f, readable in files:
            fr = FileReport(name=f.name, kind=kind)
            report.files.append(fr)
            if readable is None:
                fr.status, fr.error = "skipped", "not a listen file"
                continue
            fr.sha256 = _sha256(f)
            batch_id = scrobbles_batch_id(fr.sha256)
            reasons: Counter[str] = Counter()
            quarantined: list[str] = []
            position = [0]  # bytes of this file read so far
            for item in reader(_counted(f, position), run_at):
                if isinstance(item, Skipped):
                    fr.skipped += 1
                    continue
                fr.rows_read += 1
                if isinstance(item, Rejected):
                    reasons[item.reason] += 1
                    quarantined.append(
                        json.dumps(
                            {"file": f.name, "row": item.position, "reason": item.reason, "data": item.raw},
                            sort_keys=True,
                            default=str,
                        )
                    )
                else:
                    lander.add(item, batch_id)
                    fr.added += 1
                    # Landed as a play of its own, without a Spotify id (``rows.listen_row``); the
                    # merge says which of them matched another source's play (``_settle_by_batch``).
                    fr.unmatched += 1
                if progress is not None and fr.rows_read % _PROGRESS_EVERY == 0:
                    rows = sum(x.rows_read for x in report.files)
                    done = min(done_bytes + position[0], total_bytes)
                    progress(ProgressEvent(done, total_bytes, rows, f.name))
            fr.quarantined = sum(reasons.values())
            fr.quarantine_reasons = dict(reasons)
            fr.status = "imported"
            if quarantined:
                _quarantine(lake, fr.sha256, ("\n".join(quarantined) + "\n").encode())
            done_bytes += sizes.get(f.name, 0)
            if progress is not None:
                progress(
                    ProgressEvent(done_bytes, total_bytes, sum(x.rows_read for x in report.files), f.name)
                )
        lander.flush()
        lander.wait()
    finally:
        lander.close()
    for fr in report.files:
        report.rows_read += fr.rows_read
        report.added += fr.added
        report.unmatched += fr.unmatched
        report.quarantined += fr.quarantined
        report.skipped += fr.skipped
        for reason, n in fr.quarantine_reasons.items():
            report.quarantine_reasons[reason] = report.quarantine_reasons.get(reason, 0) + n
        if fr.status == "imported":
            report.files_imported += 1
        elif fr.error:
            report.files_skipped[fr.error] = report.files_skipped.get(fr.error, 0) + 1
    report.landing_seconds = lander.landing_seconds
    report.wall_seconds = time.monotonic() - started
    report.check()
    return LandedImport(
        report=report,
        paths=lander.paths,
        batch_id="import-" + (batch_id_for(lander.batch_ids) if lander.batch_ids else "empty"),
        user_id=user_id,
        run_at=run_at,
        earlier_ingested_at=sorted(lander.earlier),
    )

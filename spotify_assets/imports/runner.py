"""Land an import: every file of an export into the lake, every row accounted for; the merge is a run's.

Per file: land the raw bytes in the lake (create-only, under the file's sha256, so a re-import
writes nothing new), without their IP addresses unless ``SPOTIFY_KEEP_IP_ADDRESSES=1``
(``redaction``; quarantined rows lose them too). An extended-history file is read by
DuckDB's JSON reader, which takes the rows it can prove clean and hands every other row to
the Python normaliser (``parsers``), so the quarantine reasons are the normaliser's;
account-data files, and any file the engine declines, go row by row through the normaliser. Rejects are quarantined (lake JSONL with a
reason each); good rows queue, as Arrow, into chunks of ``chunk_rows``. Per chunk: match
account-data names to ids, drop rows the warehouse already has or this import already landed
(same key, or the same stream from another source within the tolerance; see ``dedupe``), and
land the new plays in the lake's ``plays/`` by month (``landing``). Nothing here writes the
warehouse: ``land_export`` returns what it landed (``LandedImport``), the ``history_import``
asset hands that to ``bq_plays``, whose merge inserts it in the same Dagster run
(``spotify_assets.import_run`` starts that run), and ``settle_import`` turns the merge's answer
into the final counts. The lake holds every play the warehouse does, and the warehouse can be
rebuilt from it (``spotify_assets.rebuild``).

Memory is bounded by one file's bytes (a real export file is ~10-15 MB) plus one chunk, plus
the few key columns of the plays landed so far (the next chunks' dedupe looks at them).
The report's numbers add up by construction and are checked before it is returned:
``rows_read == added + duplicates + quarantined`` and ``unmatched <= added``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from spotify_assets.imports.landing import LandingPlays, land_plays, land_raw_copy
from spotify_assets.imports.parsers import (
    ROW_COLUMNS,
    SKIP_REASONS,
    EngineRows,
    ExportFile,
    FileFormatError,
    FileKind,
    JsonArray,
    Reject,
    iter_export_files,
    normalizer,
    play_key,
    read_extended_with_engine,
)
from spotify_assets.imports.redaction import KEEP_IP_ENV, RedactionError, keep_ip_addresses, without_ip
from spotify_assets.lake_layout import EXPORTS_QUARANTINE_PREFIX, import_record_path
from spotify_assets.resources.dedupe import NAME_COLUMNS, PlaysIndex, find_duplicates, match_ids, plays_index
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE, arrow_schema, conform
from spotify_assets.spotify.normalize import batch_id_for, for_user
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.tables.merge_result import MergeResult
from spotify_assets.users.adoption import import_owner, legacy_owner

#: Rows deduped and landed at a time: 50k keeps a 1M-row import's peak under 1 GiB (100k: ~70 MB more)
#: at ~6 month files a chunk.
DEFAULT_CHUNK_ROWS = 50_000
_PROGRESS_EVERY = 10_000
#: Extended history first: account-data rows are matched to ids through the plays it adds.
_ORDER = {FileKind.EXTENDED: 0, FileKind.ACCOUNT_MUSIC: 1, FileKind.ACCOUNT_PODCAST: 2}


class ImportCountError(RuntimeError):
    """The report's numbers do not add up: a bug, never a reason to report success."""


@dataclass
class FileReport:
    name: str
    kind: str
    status: str = "pending"  # imported | error | skipped
    sha256: str | None = None
    rows_read: int = 0
    added: int = 0
    duplicates: int = 0
    quarantined: int = 0
    unmatched: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    #: Rows matched to a play another source recorded (a scrobble of a Spotify play, or Spotify's
    #: play of a scrobble imported before), and lines that are not listens ("now playing").
    matched: int = 0
    skipped: int = 0
    #: IP address members cut from the file's raw copy in the lake (0 with ``SPOTIFY_KEEP_IP_ADDRESSES``).
    ip_addresses_removed: int = 0


@dataclass
class ImportReport:
    path: str
    files: list[FileReport] = field(default_factory=list)
    rows_read: int = 0
    added: int = 0
    duplicates: int = 0
    duplicates_same_key: int = 0
    duplicates_window: int = 0
    quarantined: int = 0
    unmatched: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    files_imported: int = 0
    files_failed: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)
    ip_addresses_removed: int = 0
    wall_seconds: float = 0.0
    #: Which source the path was found to be (``scrobbles/detect.Format.label``).
    found: str = ""
    #: Rows counted once with a play of another source (``FileReport.matched``), and lines
    #: that are not listens, outside ``rows_read`` (``FileReport.skipped``).
    matched: int = 0
    skipped: int = 0
    #: Poll gaps (windows the 50-play API window may have missed) that imported history now covers.
    gaps_closed: int = 0
    #: Where the wall time went: lookups (match + dedupe joins), landing the plays' Parquet in the
    #: lake, the merge (in the run); the rest is reading, parsing and landing the raw files.
    lookup_seconds: float = 0.0
    landing_seconds: float = 0.0
    merge_seconds: float = 0.0
    #: Landing the raw copies (redaction included), and waiting for the reader thread (the files'
    #: bytes and DuckDB's JSON reading, one file ahead).
    raw_copy_seconds: float = 0.0
    read_wait_seconds: float = 0.0

    def check(self) -> None:
        """Raise ``ImportCountError`` unless every row is accounted for, in total and per file."""
        problems = []
        if self.rows_read != self.added + self.duplicates + self.matched + self.quarantined:
            problems.append(
                f"rows_read {self.rows_read} != added {self.added} + duplicates {self.duplicates} "
                f"+ matched {self.matched} + quarantined {self.quarantined}"
            )
        if self.duplicates != self.duplicates_same_key + self.duplicates_window:
            problems.append("duplicates != same_key + window")
        if not 0 <= self.unmatched <= self.added:
            problems.append(f"unmatched {self.unmatched} not within added {self.added}")
        if self.quarantined != sum(self.quarantine_reasons.values()):
            problems.append("quarantined != sum of reasons")
        for f in self.files:
            if f.rows_read != f.added + f.duplicates + f.matched + f.quarantined or f.unmatched > f.added:
                problems.append(f"{f.name}: counts do not add up ({f})")
        if problems:
            raise ImportCountError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportReport:
        """The report ``to_dict`` gave (as the run's metadata and handoff carry it)."""
        fields = dict(data)
        files = [FileReport(**f) for f in fields.pop("files")]
        return cls(**fields, files=files)

    def render(self) -> str:
        """The human report the command prints."""
        lines = [f"Imported {self.path}"]
        if self.found:
            lines.append(f"  found                {self.found}")
        lines += [
            f"  rows read            {self.rows_read:>10,}",
            f"  plays added          {self.added:>10,}   (unmatched, kept without a track id: {self.unmatched:,})",
            f"  duplicates skipped   {self.duplicates:>10,}   (same key {self.duplicates_same_key:,}, "
            f"same stream within tolerance {self.duplicates_window:,})",
        ]
        if self.found or self.matched:
            lines.append(f"  matched to another source {self.matched:>5,}   (the play is counted once)")
        lines.append(f"  quarantined          {self.quarantined:>10,}")
        lines += [f"      {reason:<34} {n:>8,}" for reason, n in sorted(self.quarantine_reasons.items())]
        if self.skipped:
            lines.append(f"  not listens (now playing), skipped: {self.skipped:,}")
        lines.append(f"  files imported {self.files_imported}, failed {self.files_failed}")
        if self.ip_addresses_removed:
            lines.append(
                f"  IP addresses removed from the lake's raw copies: {self.ip_addresses_removed:,} "
                f"({KEEP_IP_ENV}=1 keeps them)"
            )
        lines += [f"  files skipped: {reason} x{n}" for reason, n in sorted(self.files_skipped.items())]
        lines += [f"  ERROR {f.name}: {f.error}" for f in self.files if f.status == "error"]
        lines.append(
            f"  wall time {self.wall_seconds:.1f} s (warehouse lookups {self.lookup_seconds:.1f} s, "
            f"landing plays in the lake {self.landing_seconds:.1f} s, merges {self.merge_seconds:.1f} s, "
            f"raw copies {self.raw_copy_seconds:.1f} s, waiting for the reader {self.read_wait_seconds:.1f} s)"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class ProgressEvent:
    done_bytes: int
    total_bytes: int
    rows_read: int
    file: str


ProgressFn = Callable[[ProgressEvent], None]

#: Who watches the landing of an import started in this thread (the command's progress bar, the
#: dashboard's): the landing runs inside a Dagster run (``history_import``), in process, and a
#: progress callback is the caller's screen, not data a run's config could carry.
PROGRESS: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar("import_progress", default=None)

#: The columns of the plays an import has landed that the next chunks' dedupe joins on.
_LANDED_COLUMNS = (
    "play_key",
    "played_at",
    "track_id",
    "source",
    "content_type",
    "user_id",
    "primary_artist_name",
    "track_name",
)


@dataclass
class LandedImport:
    """What an import landed for ``bq_plays`` to merge: its lake files and its report so far.

    Until the merge, ``report.added`` counts the plays landed; ``settle_import`` makes it the
    plays the merge inserted. JSON round-trips (``manifest``/``from_manifest``): the
    ``history_import`` asset hands it to ``bq_plays`` through the IO manager.
    """

    report: ImportReport
    paths: list[str]
    batch_id: str
    user_id: str | None
    run_at: datetime
    #: ``ingested_at`` of rows in files an earlier, interrupted import had already landed.
    earlier_ingested_at: list[datetime] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "plays_parquet": self.paths,
            "batch_id": self.batch_id,
            "user_id": self.user_id,
            "run_at": self.run_at.isoformat(),
            "earlier_ingested_at": [t.isoformat() for t in self.earlier_ingested_at],
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> LandedImport:
        return cls(
            report=ImportReport.from_dict(manifest["report"]),
            paths=list(manifest["plays_parquet"]),
            batch_id=manifest["batch_id"],
            user_id=manifest["user_id"],
            run_at=datetime.fromisoformat(manifest["run_at"]),
            earlier_ingested_at=[datetime.fromisoformat(t) for t in manifest["earlier_ingested_at"]],
        )


#: Good rows of one file: the play's position in its file, its key (null until computed) and
#: the normaliser's columns, typed as the plays table types them.
_ROWS_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64()),
        pa.field("play_key", pa.string()),
        *(f.with_nullable(True) for f in arrow_schema("plays") if f.name in ROW_COLUMNS),
    ]
)
#: A chunk's rows also say which file they came from.
_CHUNK_SCHEMA = pa.schema(
    [*_ROWS_SCHEMA, pa.field("file_idx", pa.int64()), pa.field("batch_id", pa.string())]
)
#: Lake writes in flight at once: each is a temp file, an fsync and a link, so they overlap well.
_LAKE_WRITERS = 8


def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows from the Python normaliser (each with ``row`` set) as a chunk-shaped Arrow table."""
    names = _ROWS_SCHEMA.names
    return pa.Table.from_pylist([{c: r.get(c) for c in names} for r in rows], schema=_ROWS_SCHEMA)


@dataclass
class _ReadFile:
    """One export file as read and copied (``_Importer.read_file``), or why it could not be."""

    data: bytes | None = None
    sha256: str | None = None
    ip_addresses_removed: int = 0
    raw_copy_seconds: float = 0.0
    error: str | None = None
    #: DuckDB's reading of an extended-history file (None: row by row).
    engine: EngineRows | None = None


class _Importer:
    def __init__(
        self,
        warehouse: WarehouseResource,
        lake: LakeResource,
        report: ImportReport,
        run_at: datetime,
        chunk_rows: int,
        scratch: Path,
        user_id: str | None = None,
        record_imports: bool = True,
    ) -> None:
        self.user_id = user_id
        #: Write the import records (``lake_layout.import_record_path``): not for the single-user
        #: layout's owner, whose copies are theirs without one (``users/deletion.py``).
        self.record_imports = record_imports and user_id is not None
        self.wh = warehouse
        self.lake = lake
        self.report = report
        self.run_at = run_at
        self.chunk_rows = chunk_rows
        self.scratch = scratch
        self.index: PlaysIndex = plays_index(warehouse)
        #: Good rows awaiting a merge, in file order; all of one source.
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.source: str | None = None
        #: ``engine`` holds the landed plays' join columns; ``reader`` reads the files (its own
        #: connection: it runs on the reader thread).
        self.engine, self.reader = duckdb.connect(), duckdb.connect()
        for con in (self.engine, self.reader):
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
        self.pool = ThreadPoolExecutor(_LAKE_WRITERS, thread_name_prefix="lake-write")
        #: What was landed: the lake files, each chunk's batch id, and the ``ingested_at`` of
        #: files an interrupted import had landed before; ``landed`` (a table in ``engine``)
        #: holds ``landed_rows`` plays' join columns.
        self.paths: list[str] = []
        self.batch_ids: list[str] = []
        self.landing: LandingPlays | None = None
        self.earlier: set[datetime] = set()
        self.landed_rows = 0
        #: ``SPOTIFY_KEEP_IP_ADDRESSES``: raw copies and quarantine rows keep the IP addresses.
        self.keep_ip = keep_ip_addresses()

    def close(self) -> None:
        self.pool.shutdown()
        self.engine.close()
        self.reader.close()

    # -- files ----------------------------------------------------------------------------
    def read_file(self, f: ExportFile, file_idx: int) -> _ReadFile:
        """Everything of one file that needs no other file: its bytes, its raw copy landed in the
        lake (redacted), its import record and, for extended history, DuckDB's reading of it. On
        the reader thread, one file ahead of ``import_file``: the file reads, the lake's writes and
        fsyncs and DuckDB release the GIL, so they overlap the previous file's dedupe and landing."""
        try:
            data = f.read()
        except (OSError, zipfile.BadZipFile, FileFormatError, RuntimeError) as exc:
            return _ReadFile(error=f"cannot read: {exc}")
        t0 = time.monotonic()
        sha = hashlib.sha256(data).hexdigest()
        try:
            removed = land_raw_copy(self.lake, sha, PurePosixPath(f.name).name, data, self.keep_ip)
        except RedactionError as exc:
            return _ReadFile(
                sha256=sha,
                error=f"cannot remove its IP addresses ({exc}); {KEEP_IP_ENV}=1 imports it byte for byte",
            )
        if self.record_imports and self.user_id is not None:
            # Whose copy it is (create-only, the same bytes on a re-import): see lake_layout.
            with contextlib.suppress(LakeConflictError):
                self.lake.write_bytes(
                    import_record_path(self.user_id, sha),
                    json.dumps({"sha256": sha, "user_id": self.user_id}, sort_keys=True).encode(),
                )
        copied = time.monotonic() - t0
        engine = self._read_with_engine(data, file_idx) if f.kind is FileKind.EXTENDED else None
        return _ReadFile(data, sha, removed, copied, engine=engine)

    def import_file(
        self, f: ExportFile, fr: FileReport, file_idx: int, on_row: Callable[[int], None], read: _ReadFile
    ) -> None:
        fr.sha256 = read.sha256
        if read.data is None or read.sha256 is None:
            fr.status, fr.error = "error", read.error
            return
        data, sha = read.data, read.sha256
        fr.ip_addresses_removed = read.ip_addresses_removed
        self.report.raw_copy_seconds += read.raw_copy_seconds
        batch_id = f"export-{sha[:16]}"
        source = f.kind.source
        if self.source not in (None, source):
            self.flush_all()
        self.source = source
        reasons: Counter[str] = Counter()
        quarantine: list[str] = []

        def judge(i: int, obj: Any, good: list[dict[str, Any]]) -> None:
            try:
                row = normalise(obj, self.run_at)
            except Reject as rej:
                reasons[rej.reason] += 1
                data = obj if self.keep_ip else without_ip(obj)
                quarantine.append(
                    json.dumps({"file": f.name, "row": i, "reason": rej.reason, "data": data}, sort_keys=True)
                )
            else:
                row["row"] = i
                good.append(row)

        normalise = normalizer(f.kind)
        engine = read.engine
        if engine is not None:
            # The engine took the clean rows; the rest are judged one by one, exactly as before.
            good: list[dict[str, Any]] = []
            for i, obj in engine.others:
                judge(i, obj, good)
            table = engine.clean.select(_ROWS_SCHEMA.names).cast(_ROWS_SCHEMA)
            if good:
                table = pa.concat_tables([table, _rows_table(good)]).sort_by("row")
            fr.rows_read = engine.clean.num_rows + len(engine.others)
            self.add(table, file_idx, batch_id)
            fr.status = "imported"
            on_row(len(data))
        else:
            good = []
            try:
                rows = JsonArray(data)
                for i, obj in enumerate(rows):
                    fr.rows_read += 1
                    judge(i, obj, good)
                    if self.pending_rows + len(good) >= self.chunk_rows:
                        self.add(_rows_table(good), file_idx, batch_id)
                        good = []
                    if fr.rows_read % _PROGRESS_EVERY == 0:
                        on_row(rows.position)
                fr.status = "imported"
            except FileFormatError as exc:
                fr.status, fr.error = "error", str(exc)
            if good:
                self.add(_rows_table(good), file_idx, batch_id)
        del data, read
        fr.quarantined = sum(reasons.values())
        fr.quarantine_reasons = dict(reasons)
        if quarantine:
            self._write_quarantine(sha, ("\n".join(quarantine) + "\n").encode())

    def _read_with_engine(self, data: bytes, file_idx: int) -> EngineRows | None:
        """The file through DuckDB's JSON reader (from a scratch copy: a zip member has no path)."""
        path = self.scratch / f"{file_idx}.json"
        path.write_bytes(data)
        try:
            return read_extended_with_engine(self.reader, str(path), data, self.run_at)
        finally:
            path.unlink()

    def _write_quarantine(self, sha: str, body: bytes) -> None:
        """Deterministic content (no timestamps): importing the same file again rewrites nothing.

        The set can still change between imports (a row "in the future" last year is not any
        more); the lake is create-only, so that version goes next to the first, named by its hash.
        """
        try:
            self.lake.write_bytes(f"{EXPORTS_QUARANTINE_PREFIX}{sha}.jsonl", body)
        except LakeConflictError:
            digest = hashlib.sha256(body).hexdigest()[:16]
            self.lake.write_bytes(f"{EXPORTS_QUARANTINE_PREFIX}{sha}.{digest}.jsonl", body)

    # -- chunks ---------------------------------------------------------------------------
    def add(self, rows: pa.Table, file_idx: int, batch_id: str) -> None:
        """Queue good rows of one file; land a chunk every time ``chunk_rows`` are waiting."""
        if not rows.num_rows:
            return
        n = rows.num_rows
        rows = rows.append_column("file_idx", pa.array(np.full(n, file_idx, dtype=np.int64)))
        rows = rows.append_column("batch_id", pa.array([batch_id] * n, pa.string()))
        self.pending.append(rows.select(_CHUNK_SCHEMA.names).cast(_CHUNK_SCHEMA))
        self.pending_rows += n
        while self.pending_rows >= self.chunk_rows:
            queued = pa.concat_tables(self.pending)
            self.pending = [queued.slice(self.chunk_rows)]
            self.pending_rows = queued.num_rows - self.chunk_rows
            self.flush(queued.slice(0, self.chunk_rows))

    def flush_all(self) -> None:
        if self.pending_rows:
            self.flush(pa.concat_tables(self.pending))
        self.pending, self.pending_rows = [], 0

    def flush(self, chunk: pa.Table) -> None:
        """Dedupe one chunk (against the warehouse and what this import landed), land its new plays."""
        source = self.source or "extended_export"
        files = self.report.files
        df = chunk.drop_columns(["row"]).to_pandas()
        unmatched = pd.Series(False, index=df.index)
        if source == "account_export":
            t0 = time.monotonic()
            ids = self._match(df[NAME_COLUMNS].drop_duplicates())
            self.report.lookup_seconds += time.monotonic() - t0
            lookup = {
                (c, a, t): i
                for c, a, t, i in zip(
                    ids["content_type"],
                    ids["primary_artist_name"],
                    ids["track_name"],
                    ids["track_id"],
                    strict=True,
                )
            }
            df["track_id"] = [
                lookup.get(k)
                for k in zip(df["content_type"], df["primary_artist_name"], df["track_name"], strict=True)
            ]
            df["track_uri"] = [
                None if t is None else f"spotify:{c}:{t}"
                for c, t in zip(df["content_type"], df["track_id"], strict=True)
            ]
            unmatched = df["track_id"].isna()
        # Keys the engine could not make (names, or ids matched just now) are made in Python.
        need = df["play_key"].isna().to_numpy()
        if need.any():
            at = chunk["played_at"].filter(pa.array(need)).to_pylist()  # datetimes: 10x faster than pandas'
            df.loc[need, "play_key"] = [
                play_key(p, t, a, n)
                for p, t, a, n in zip(
                    at,
                    df.loc[need, "track_id"].tolist(),
                    df.loc[need, "primary_artist_name"].tolist(),
                    df.loc[need, "track_name"].tolist(),
                    strict=True,
                )
            ]
        # The listener's plays: their id in each row and in front of each key (None: the
        # single-user layout, adopted later as the first listener's, see users/adoption.py).
        df = for_user(df, self.user_id)
        if self.user_id is None:
            df["user_id"] = pd.Series(None, index=df.index, dtype="string")
        # Within the chunk: an identical key is the same row twice (overlapping files, repeated rows).
        in_chunk_dup = df["play_key"].duplicated(keep="first")
        df["idx"] = range(len(df))
        reasons = np.full(len(df), "", dtype=object)
        reasons[in_chunk_dup.to_numpy()] = "key"
        t0 = time.monotonic()
        candidates = df[~in_chunk_dup]
        found = [self.index.duplicates(candidates, source)]
        if self.landed_rows:  # this import's earlier chunks: in the lake, merged only at the end
            found.append(find_duplicates(self.engine, "landed", candidates, source))
        self.report.lookup_seconds += time.monotonic() - t0
        for f in found:  # the same key anywhere wins over "the same stream within tolerance"
            window = f.loc[f["why"] == "window", "idx"].to_numpy(dtype=np.int64)
            reasons[window] = np.where(reasons[window] == "key", "key", "window")
        for f in found:
            reasons[f.loc[f["why"] == "key", "idx"].to_numpy(dtype=np.int64)] = "key"
        why = pd.Series(reasons, index=df.index)
        keep = why == ""
        for reason, col in (("key", "duplicates_same_key"), ("window", "duplicates_window")):
            mask = why == reason
            setattr(self.report, col, getattr(self.report, col) + int(mask.sum()))
            for file_idx, n in _per_file(df.loc[mask, "file_idx"]).items():
                files[file_idx].duplicates += n

        plays = df.loc[keep].drop(columns=["file_idx", "idx"])
        plays["source"] = source
        plays["ingested_at"] = self.run_at
        if plays.empty:  # nothing new: no write
            return
        plays = pa.Table.from_pandas(
            conform(plays, "plays"), schema=arrow_schema("plays"), preserve_index=False
        )
        self.wait_for_landing()  # at most one chunk's files in flight: memory stays one chunk's
        t0 = time.monotonic()
        self.landing = land_plays(self.lake, plays, self.pool, self.user_id)
        self.report.landing_seconds += time.monotonic() - t0
        self._remember(plays)
        # Provisional until the merge (``settle_import``): every landed play counts as added.
        added = df.loc[keep]
        self.report.added += len(added)
        for file_idx, n in _per_file(added["file_idx"]).items():
            files[file_idx].added += n
        lost = added[unmatched.loc[added.index]]
        self.report.unmatched += len(lost)
        for file_idx, n in _per_file(lost["file_idx"]).items():
            files[file_idx].unmatched += n

    def wait_for_landing(self) -> None:
        """Wait for the last chunk's files (written while the next chunk was read and deduped)."""
        if self.landing is None:
            return
        t0 = time.monotonic()
        landed = self.landing.wait()
        self.landing = None
        self.report.landing_seconds += time.monotonic() - t0
        self.paths += landed.paths
        self.batch_ids.append(landed.batch_id)
        self.earlier |= landed.earlier_ingested_at

    def _remember(self, plays: pa.Table) -> None:
        """Keep the landed plays' join columns for the next chunks' dedupe (not in the warehouse yet)."""
        rows = plays.select(list(_LANDED_COLUMNS))
        self.engine.register("new_landed", rows)
        try:
            if self.landed_rows:
                self.engine.execute("INSERT INTO landed SELECT * FROM new_landed")
            else:
                self.engine.execute("CREATE TABLE landed AS SELECT * FROM new_landed")
        finally:
            self.engine.unregister("new_landed")
        self.landed_rows += rows.num_rows

    def _match(self, names: pd.DataFrame) -> pd.DataFrame:
        """The most common id per name among the warehouse's plays and those this import landed."""
        if not self.landed_rows:
            return self.index.match(names)
        catalogue = self.wh.query(
            "SELECT content_type, primary_artist_name, track_name, track_id, count(*) AS n "
            f"FROM {PLAYS_TABLE} WHERE track_id IS NOT NULL GROUP BY 1, 2, 3, 4"
        )
        self.engine.register("warehouse_catalogue", catalogue)
        try:
            self.engine.execute(
                "CREATE OR REPLACE TEMP VIEW catalogue AS "
                "SELECT content_type, primary_artist_name, track_name, track_id, n FROM warehouse_catalogue "
                "UNION ALL SELECT content_type, primary_artist_name, track_name, track_id, count(*) "
                "FROM landed WHERE track_id IS NOT NULL GROUP BY 1, 2, 3, 4"
            )
            return match_ids(self.engine, "catalogue", names, weight="n")
        finally:
            self.engine.execute("DROP VIEW IF EXISTS catalogue")
            self.engine.unregister("warehouse_catalogue")


def _per_file(file_idx: pd.Series) -> Counter[int]:
    return Counter(int(x) for x in file_idx.tolist())


def _close_covered_gaps(warehouse: WarehouseResource) -> int:
    """Close poll gaps lying inside the span of Spotify's exported history now in the warehouse
    (not a scrobbler's: a scrobbled history may miss what Spotify played)."""
    span = warehouse.query(
        f"SELECT min(played_at) AS lo, max(played_at) AS hi FROM {PLAYS_TABLE} "
        "WHERE source IN ('extended_export', 'account_export')"
    )
    lo, hi = span["lo"].iloc[0], span["hi"].iloc[0]
    if pd.isna(lo) or pd.isna(hi):
        return 0
    return gaps_table.close_covered_by(
        warehouse, pd.Timestamp(lo).to_pydatetime(), pd.Timestamp(hi).to_pydatetime()
    )


def land_export(
    path: str | Path,
    warehouse: WarehouseResource,
    lake: LakeResource,
    progress: ProgressFn | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    now: datetime | None = None,
    user_id: str | None = None,
) -> LandedImport:
    """Land the export at ``path`` (.zip or folder) in ``lake`` as ``user_id``'s plays, deduped
    against ``warehouse`` (read only); see the module docstring. ``progress`` defaults to
    ``PROGRESS``'s watcher.

    No ``user_id``: the single-user layout's owner once the pipeline has recorded one, else the
    one listener with plays, else rows without a user, adopted on the pipeline's first run;
    refused (``ImportOwnerUnknown``) among several listeners (``users/adoption.py``).
    """
    progress = progress or PROGRESS.get()
    explicit_user = user_id is not None
    started = time.monotonic()
    run_at = (now or datetime.now(UTC)).astimezone(UTC)
    report = ImportReport(path=str(path))
    files = list(iter_export_files(path))
    report.files = [FileReport(name=f.name, kind=f.kind.value) for f in files]
    importable = sorted(
        (i for i, f in enumerate(files) if f.kind.importable),
        key=lambda i: (_ORDER[files[i].kind], files[i].name),
    )
    total_bytes = sum(files[i].size for i in importable)
    done_bytes = 0
    scratch = tempfile.TemporaryDirectory(prefix="spotify-import-")

    def emit(file: str, position: int) -> None:
        if progress is not None:
            rows = sum(fr.rows_read for fr in report.files)
            progress(ProgressEvent(min(done_bytes + position, total_bytes), total_bytes, rows, file))

    for i, f in enumerate(files):
        if not f.kind.importable:
            fr = report.files[i]
            fr.status, fr.error = "skipped", SKIP_REASONS[f.kind]
    # Whose plays: refused among several listeners.
    if user_id is None:
        user_id = import_owner(warehouse, lake)
    # The one listener's import is recorded like an explicit --user one; the legacy owner's is not.
    record = explicit_user or (user_id is not None and user_id != legacy_owner(lake))
    try:
        importer = _Importer(
            warehouse, lake, report, run_at, chunk_rows, Path(scratch.name), user_id, record_imports=record
        )
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="export-read") as reader:
                # One file ahead: read while the previous one is deduped and landed.
                ahead = [reader.submit(importer.read_file, files[i], i) for i in importable[:1]]
                for k, i in enumerate(importable):
                    t0 = time.monotonic()
                    read = ahead.pop(0).result()
                    report.read_wait_seconds += time.monotonic() - t0
                    if k + 1 < len(importable):
                        nxt = importable[k + 1]
                        ahead.append(reader.submit(importer.read_file, files[nxt], nxt))
                    f = files[i]
                    importer.import_file(f, report.files[i], i, functools.partial(emit, f.name), read)
                    done_bytes += f.size
                    emit(f.name, 0)
            importer.flush_all()
            importer.wait_for_landing()
        finally:
            importer.close()
    finally:
        scratch.cleanup()

    for fr in report.files:
        report.rows_read += fr.rows_read
        report.quarantined += fr.quarantined
        report.ip_addresses_removed += fr.ip_addresses_removed
        for reason, n in fr.quarantine_reasons.items():
            report.quarantine_reasons[reason] = report.quarantine_reasons.get(reason, 0) + n
        if fr.status == "imported":
            report.files_imported += 1
        elif fr.status == "error":
            report.files_failed += 1
        elif fr.status == "skipped" and fr.error:
            report.files_skipped[fr.error] = report.files_skipped.get(fr.error, 0) + 1
    report.duplicates = report.duplicates_same_key + report.duplicates_window
    report.wall_seconds = time.monotonic() - started
    report.check()
    return LandedImport(
        report=report,
        paths=importer.paths,
        batch_id="import-" + (batch_id_for(importer.batch_ids) if importer.batch_ids else "empty"),
        user_id=user_id,
        run_at=run_at,
        earlier_ingested_at=sorted(importer.earlier),
    )


def settle_import(
    landed: LandedImport, merged: MergeResult, warehouse: WarehouseResource, lake: LakeResource
) -> ImportReport:
    """The import's final report once ``bq_plays`` merged its files: ``merged.inserted`` of them.

    When another writer (the poller, a concurrent import) added some of the keys between the
    import's lookups and the merge, the landed files say exactly which rows were not this
    import's (the merge kept the other writer's row) and which export file each came from
    (``batch_id`` is ``export-<sha256 prefix>``), so the counts stay exact per file. Poll gaps the
    imported history now covers are closed.
    """
    report = landed.report
    started = time.monotonic()
    if merged.by_batch:
        _settle_by_batch(report, merged.by_batch)
    elif merged.inserted != report.added:
        rows = _landed_rows(lake, landed.paths)
        index = plays_index(warehouse)
        mine: set[str] = set()
        for stamp in {landed.run_at, *landed.earlier_ingested_at}:
            mine |= index.inserted_keys(rows["play_key"], stamp)
        late = rows[~rows["play_key"].isin(mine)]
        by_batch = {
            f"export-{f.sha256[:16]}": i for i, f in reversed(list(enumerate(report.files))) if f.sha256
        }
        for batch, unmatched in zip(late["batch_id"].tolist(), late["unmatched"].tolist(), strict=True):
            fr = report.files[by_batch[str(batch)]]
            fr.added -= 1
            fr.duplicates += 1
            if unmatched:
                fr.unmatched -= 1
                report.unmatched -= 1
        report.added -= len(late)
        report.duplicates_same_key += len(late)
        report.duplicates += len(late)
    report.merge_seconds += time.monotonic() - started
    report.gaps_closed = _close_covered_gaps(warehouse)
    report.check()
    return report


def scrobbles_batch_id(sha256: str) -> str:
    """The ``batch_id`` of the rows of one Last.fm / ListenBrainz file (``scrobbles/landing.py``),
    as a Spotify export file's is ``export-<sha256 prefix>``: the merge's counts come back under it."""
    return f"scrobbles-{sha256[:16]}"


def _settle_by_batch(report: ImportReport, by_batch: dict[str, dict[str, int]]) -> None:
    """Counts from a merge across sources, which said per file (``batch_id``) what its landed
    rows were: ``added`` until now counts the landed rows, of which some were already present
    and some matched to another source's play."""
    files: dict[str, FileReport] = {}
    for fr in report.files:
        if fr.sha256:
            files.setdefault(f"export-{fr.sha256[:16]}", fr)
            files.setdefault(scrobbles_batch_id(fr.sha256), fr)
    for batch, counts in by_batch.items():
        fr = files[batch]
        landed = counts["added"] + counts["duplicates"] + counts["matched"]
        fr.added -= landed - counts["added"]
        fr.duplicates += counts["duplicates"]
        fr.matched += counts["matched"]
        fr.unmatched = min(fr.unmatched, fr.added)
        report.added -= landed - counts["added"]
        report.duplicates += counts["duplicates"]
        report.duplicates_same_key += counts["duplicates"]
        report.matched += counts["matched"]
    report.unmatched = sum(fr.unmatched for fr in report.files)


def _landed_rows(lake: LakeResource, paths: list[str]) -> pd.DataFrame:
    """Key, export file and whether unmatched, of every row of the landed files (one read of their columns)."""
    import pyarrow.parquet as pq

    columns = ["play_key", "batch_id", "source", "track_id"]
    tables = [pq.read_table(pa.BufferReader(lake.read_bytes(p)), columns=columns) for p in paths]
    frame = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=columns)
    frame["unmatched"] = (frame["source"] == "account_export") & frame["track_id"].isna()
    return frame

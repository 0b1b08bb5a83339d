"""Run an import: stream every file of an export into the plays table and account for every row.

Per file: land the raw bytes in the lake (create-only, under the file's sha256, so a re-import
writes nothing new), stream its rows through the normaliser, quarantine rejects (lake JSONL
with a reason each), and feed good rows into chunks of ``chunk_rows``. Per chunk: match
account-data names to ids, drop rows the warehouse already has (same key, or the same stream
from another source within the tolerance; see ``dedupe``), then one ``merge_plays``.

Memory is bounded by one file's bytes (a real export file is ~10-15 MB) plus one chunk.
The report's numbers add up by construction and are checked before it is returned:
``rows_read == added + duplicates + quarantined`` and ``unmatched <= added``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from spotify_assets.imports.parsers import (
    ROW_COLUMNS,
    SKIP_REASONS,
    ExportFile,
    FileFormatError,
    FileKind,
    JsonArray,
    Reject,
    iter_export_files,
    normalizer,
    play_key,
)
from spotify_assets.resources.dedupe import NAME_COLUMNS, PlaysIndex, plays_index
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE, conform

DEFAULT_CHUNK_ROWS = 100_000
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
    wall_seconds: float = 0.0
    #: Poll gaps (windows the 50-play API window may have missed) that imported history now covers.
    gaps_closed: int = 0
    #: Where the wall time went: lookups (match + dedupe joins) and merges; the rest is reading/parsing.
    lookup_seconds: float = 0.0
    merge_seconds: float = 0.0

    def check(self) -> None:
        """Raise ``ImportCountError`` unless every row is accounted for, in total and per file."""
        problems = []
        if self.rows_read != self.added + self.duplicates + self.quarantined:
            problems.append(
                f"rows_read {self.rows_read} != added {self.added} + duplicates {self.duplicates} "
                f"+ quarantined {self.quarantined}"
            )
        if self.duplicates != self.duplicates_same_key + self.duplicates_window:
            problems.append("duplicates != same_key + window")
        if not 0 <= self.unmatched <= self.added:
            problems.append(f"unmatched {self.unmatched} not within added {self.added}")
        if self.quarantined != sum(self.quarantine_reasons.values()):
            problems.append("quarantined != sum of reasons")
        for f in self.files:
            if f.rows_read != f.added + f.duplicates + f.quarantined or f.unmatched > f.added:
                problems.append(f"{f.name}: counts do not add up ({f})")
        if problems:
            raise ImportCountError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """The human report the command prints."""
        lines = [
            f"Imported {self.path}",
            f"  rows read            {self.rows_read:>10,}",
            f"  plays added          {self.added:>10,}   (unmatched, kept without a track id: {self.unmatched:,})",
            f"  duplicates skipped   {self.duplicates:>10,}   (same key {self.duplicates_same_key:,}, "
            f"same stream within tolerance {self.duplicates_window:,})",
            f"  quarantined          {self.quarantined:>10,}",
        ]
        lines += [f"      {reason:<34} {n:>8,}" for reason, n in sorted(self.quarantine_reasons.items())]
        lines.append(f"  files imported {self.files_imported}, failed {self.files_failed}")
        lines += [f"  files skipped: {reason} x{n}" for reason, n in sorted(self.files_skipped.items())]
        lines += [f"  ERROR {f.name}: {f.error}" for f in self.files if f.status == "error"]
        lines.append(
            f"  wall time {self.wall_seconds:.1f} s (warehouse lookups {self.lookup_seconds:.1f} s, "
            f"merges {self.merge_seconds:.1f} s)"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class ProgressEvent:
    done_bytes: int
    total_bytes: int
    rows_read: int
    file: str


ProgressFn = Callable[[ProgressEvent], None]


class _Chunk:
    """Good rows awaiting a merge, held column-wise (lists of values, not a dict per row)."""

    def __init__(self) -> None:
        self.source: str | None = None
        self.cols: dict[str, list[Any]] = {c: [] for c in (*ROW_COLUMNS, "file_idx", "batch_id")}

    def __len__(self) -> int:
        return len(self.cols["file_idx"])

    def add(self, row: dict[str, Any], file_idx: int, batch_id: str) -> None:
        for c in ROW_COLUMNS:
            self.cols[c].append(row[c])
        self.cols["file_idx"].append(file_idx)
        self.cols["batch_id"].append(batch_id)


class _Importer:
    def __init__(
        self,
        warehouse: WarehouseResource,
        lake: LakeResource,
        report: ImportReport,
        run_at: datetime,
        chunk_rows: int,
    ) -> None:
        self.wh = warehouse
        self.lake = lake
        self.report = report
        self.run_at = run_at
        self.chunk_rows = chunk_rows
        self.index: PlaysIndex = plays_index(warehouse)
        self.chunk = _Chunk()

    # -- files ----------------------------------------------------------------------------
    def import_file(
        self, f: ExportFile, fr: FileReport, file_idx: int, on_row: Callable[[int], None]
    ) -> None:
        try:
            data = f.read()
        except (OSError, zipfile.BadZipFile, FileFormatError, RuntimeError) as exc:
            fr.status, fr.error = "error", f"cannot read: {exc}"
            return
        sha = hashlib.sha256(data).hexdigest()
        fr.sha256 = sha
        self.lake.write_bytes(f"raw/exports/{sha}/{PurePosixPath(f.name).name}", data)
        batch_id = f"export-{sha[:16]}"
        normalise = normalizer(f.kind)
        source = f.kind.source
        if self.chunk.source not in (None, source):
            self.flush()
        self.chunk.source = source
        reasons: Counter[str] = Counter()
        quarantine: list[str] = []
        try:
            rows = JsonArray(data)
            for i, obj in enumerate(rows):
                fr.rows_read += 1
                try:
                    row = normalise(obj, self.run_at)
                except Reject as rej:
                    reasons[rej.reason] += 1
                    quarantine.append(
                        json.dumps(
                            {"file": f.name, "row": i, "reason": rej.reason, "data": obj}, sort_keys=True
                        )
                    )
                else:
                    self.chunk.add(row, file_idx, batch_id)
                    if len(self.chunk) >= self.chunk_rows:
                        self.flush()
                        self.chunk.source = source
                if fr.rows_read % _PROGRESS_EVERY == 0:
                    on_row(rows.position)
            fr.status = "imported"
        except FileFormatError as exc:
            fr.status, fr.error = "error", str(exc)
        del data
        fr.quarantined = sum(reasons.values())
        fr.quarantine_reasons = dict(reasons)
        if quarantine:
            self._write_quarantine(sha, ("\n".join(quarantine) + "\n").encode())

    def _write_quarantine(self, sha: str, body: bytes) -> None:
        """Deterministic content (no timestamps): importing the same file again rewrites nothing.

        The set can still change between imports (a row "in the future" last year is not any
        more); the lake is create-only, so that version goes next to the first, named by its hash.
        """
        try:
            self.lake.write_bytes(f"quarantine/exports/{sha}.jsonl", body)
        except LakeConflictError:
            digest = hashlib.sha256(body).hexdigest()[:16]
            self.lake.write_bytes(f"quarantine/exports/{sha}.{digest}.jsonl", body)

    # -- chunks ---------------------------------------------------------------------------
    def flush(self) -> None:
        chunk, self.chunk = self.chunk, _Chunk()
        if not len(chunk):
            return
        source = chunk.source or "extended_export"
        files = self.report.files
        df = pd.DataFrame(chunk.cols)
        df["played_at"] = pd.to_datetime(df["played_at"], utc=True)
        unmatched = pd.Series(False, index=df.index)
        if source == "account_export":
            t0 = time.monotonic()
            ids = self.index.match(df[NAME_COLUMNS].drop_duplicates())
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
        df["play_key"] = [
            play_key(p, t, a, n)
            for p, t, a, n in zip(
                chunk.cols["played_at"],  # the parsed datetimes: iterating the pandas column is 10x slower
                df["track_id"].tolist(),
                chunk.cols["primary_artist_name"],
                chunk.cols["track_name"],
                strict=True,
            )
        ]
        # Within the chunk: an identical key is the same row twice (overlapping files, repeated rows).
        in_chunk_dup = df["play_key"].duplicated(keep="first")
        df["idx"] = range(len(df))
        t0 = time.monotonic()
        found = self.index.duplicates(df[~in_chunk_dup], source)
        self.report.lookup_seconds += time.monotonic() - t0
        reasons = np.full(len(df), "", dtype=object)
        reasons[in_chunk_dup.to_numpy()] = "key"
        reasons[found["idx"].to_numpy(dtype=np.int64)] = found["why"].to_numpy()
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
        if plays.empty:  # nothing new: no write, no snapshot to publish
            return
        t0 = time.monotonic()
        result = self.wh.merge_plays(conform(plays, "plays"))
        self.report.merge_seconds += time.monotonic() - t0
        inserted = pd.Series(True, index=plays.index)
        if result.duplicates:
            # Another writer (the poller, a concurrent import) added some keys between our
            # lookup and our merge: find out exactly which rows this run inserted.
            mine = self.index.inserted_keys(plays["play_key"], self.run_at)
            inserted = plays["play_key"].isin(mine)
            late = df.loc[plays.index[~inserted], "file_idx"]
            self.report.duplicates_same_key += len(late)
            for file_idx, n in _per_file(late).items():
                files[file_idx].duplicates += n
        added = df.loc[plays.index[inserted]]
        self.report.added += len(added)
        for file_idx, n in _per_file(added["file_idx"]).items():
            files[file_idx].added += n
        lost = added[unmatched.loc[added.index]]
        self.report.unmatched += len(lost)
        for file_idx, n in _per_file(lost["file_idx"]).items():
            files[file_idx].unmatched += n


def _per_file(file_idx: pd.Series) -> Counter[int]:
    return Counter(int(x) for x in file_idx.tolist())


def _close_covered_gaps(warehouse: WarehouseResource) -> int:
    """Close poll gaps lying inside the span of exported history now in the warehouse."""
    span = warehouse.query(
        f"SELECT min(played_at) AS lo, max(played_at) AS hi FROM {PLAYS_TABLE} WHERE source <> 'api'"
    )
    lo, hi = span["lo"].iloc[0], span["hi"].iloc[0]
    if pd.isna(lo) or pd.isna(hi):
        return 0
    return warehouse.close_gaps_covered_by(pd.Timestamp(lo).to_pydatetime(), pd.Timestamp(hi).to_pydatetime())


def import_export(
    path: str | Path,
    warehouse: WarehouseResource,
    lake: LakeResource,
    progress: ProgressFn | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    now: datetime | None = None,
) -> ImportReport:
    """Import the export at ``path`` (.zip or folder) into ``warehouse``; see the module docstring."""
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
    importer = _Importer(warehouse, lake, report, run_at, chunk_rows)

    def emit(file: str, position: int) -> None:
        if progress is not None:
            rows = sum(fr.rows_read for fr in report.files)
            progress(ProgressEvent(min(done_bytes + position, total_bytes), total_bytes, rows, file))

    for i, f in enumerate(files):
        if not f.kind.importable:
            fr = report.files[i]
            fr.status, fr.error = "skipped", SKIP_REASONS[f.kind]
    # One warehouse batch for the whole import: one lock, and the dashboard's snapshot is
    # published once at the end instead of being copied after every chunk.
    with warehouse.batch():
        for i in importable:
            f = files[i]
            importer.import_file(f, report.files[i], i, functools.partial(emit, f.name))
            done_bytes += f.size
            emit(f.name, 0)
    importer.flush()

    for fr in report.files:
        report.rows_read += fr.rows_read
        report.quarantined += fr.quarantined
        for reason, n in fr.quarantine_reasons.items():
            report.quarantine_reasons[reason] = report.quarantine_reasons.get(reason, 0) + n
        if fr.status == "imported":
            report.files_imported += 1
        elif fr.status == "error":
            report.files_failed += 1
        elif fr.status == "skipped" and fr.error:
            report.files_skipped[fr.error] = report.files_skipped.get(fr.error, 0) + 1
    report.duplicates = report.duplicates_same_key + report.duplicates_window
    report.gaps_closed = _close_covered_gaps(warehouse)
    report.wall_seconds = time.monotonic() - started
    report.check()
    return report

"""Compaction of the lake: a listener's day of small batch files folded into one file per kind.

The pipeline lands one Parquet file (``plays``) and one CSV (``plays_csv``) per (listener, day,
batch) (``assets/lake.py``): a run every few minutes leaves dozens of files per listener and
day, thousands after weeks unattended, while the plays they hold grow far slower. Once a day
(the ``compact_lake`` job, or ``spotify-assets compact-lake``) each settled day with more than
one file of a kind becomes one file, ``<kind>/user_id=<id>/<day folder>/compacted-<digest>.<ext>``.

Why it is safe (the lake stays create-only; nothing is rewritten in place):

* **Write, read back, verify, then retire.** The compacted file is created (temp file, fsync,
  atomic publish: ``LakeResource.write_bytes``), read back from the lake and checked against the
  inputs (every play key of the inputs once, no other key, the rows exactly the expected ones)
  before any input is removed. A failed check raises ``CompactionError`` and removes nothing.
* **A crash at any point leaves the lake readable.** Before the retirement the day holds the
  compacted file *and* its inputs: every reader keys plays by ``play_key`` (``rebuild-warehouse``
  merges with ``INSERT OR IGNORE``, the ``bq_plays`` merge inserts only new keys), so a play in
  both is counted once. The next compaction folds what is left into a file named by its content:
  the same plays give the same name, so it is idempotent.
* **Only the files read are retired.** A batch a run lands meanwhile in the same day stays, and
  is folded in next time.
* **The files a run may still read stay.** ``bq_plays`` merges its batch by the paths of
  ``gcs_csv``'s output, also when a step is retried or a later import run loads the partition's
  latest batch: a listener's latest batch (``latest_batches``) is never touched, nor any day
  newer than ``SETTLE_DAYS``, nor a listener with a pipeline run in flight.

What is compacted: the three per-listener kinds that grow by a file per run that finds plays:
``plays`` (what the warehouse loads), ``plays_csv`` (its CSV copy), by the day played, and the raw
API pages (``raw/recently_played``, the audit copy of what Spotify answered), by the day fetched,
as JSON lines (a page as fetched is one line of compact JSON, its key the digest that named its
file). Not the import's month files (``played_month=``): already one per month. Not the quarantine
(rare) nor the shared ``track_features/`` files: the rebuild merges those file by file in the order
they were fetched, and a folded file would change that order's grain.

Deletion (``users remove --delete-data``) lists every file of a listener's folders, so it finds
compacted files as it finds the small ones; redaction (``redact-lake``) concerns the export copies,
which compaction never touches.
"""

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_assets.encoding import arrow_parquet_bytes, content_digest
from spotify_assets.lake_layout import (
    PLAYS_CSV_KIND,
    PLAYS_KIND,
    RAW_RECENTLY_PLAYED_KIND,
    USER_DIR_PREFIX,
)
from spotify_assets.resources.lake import LakeResource
from spotify_assets.schema import arrow_schema

#: The kinds compacted, with their compacted file's extension (see the module docstring for why these).
COMPACTED_KINDS: dict[str, str] = dict(
    zip((PLAYS_KIND, PLAYS_CSV_KIND, RAW_RECENTLY_PLAYED_KIND), ("parquet", "csv", "jsonl"), strict=True)
)
#: A listener's day folder: ``played_date=<day>`` (plays, by the day played) or ``fetched_date=<day>``
#: (raw pages, by the day fetched); not the import's ``played_month=<month>`` (already one file a month).
DAY_FOLDER = re.compile(r"^[a-z_]+=(\d{4}-\d{2}-\d{2})$")
#: A compacted file's name starts so; the rest is the digest of its bytes.
COMPACTED_STEM = "compacted-"
#: Days of plays newer than this many days before today (UTC) are left alone: a poll still adds to them.
SETTLE_DAYS = 2
#: The play's key, in both kinds' files.
PLAY_KEY = "play_key"


class CompactionError(RuntimeError):
    """A compacted file did not verify against its inputs: nothing was retired."""


@dataclass
class CompactionReport:
    """What a compaction did, for the command's output and the job's metadata."""

    days: int = 0
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rows: int = 0
    #: (path of a day folder, why it was left as it is): only the unusual reasons.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> str:
        line = (
            f"Compacted {self.days:,} day(s) of the lake: {self.files_before:,} file(s) into {self.files_after:,}, "
            f"{self.bytes_before / 1024:,.0f} KiB into {self.bytes_after / 1024:,.0f} KiB ({self.rows:,} plays and pages)"
        )
        return "\n".join([line, *(f"  left {where}: {why}" for where, why in self.skipped)])


@dataclass(frozen=True)
class Protected:
    """What a compaction leaves alone: batches a run may still read by path, listeners being polled."""

    batches: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()


def latest_batches(instance: dg.DagsterInstance) -> Protected:
    """Per listener, the batch of ``gcs_csv``'s latest materialization (``bq_plays`` reads its files
    by path when a step is retried or an import run loads the partition's latest batch), and the
    listeners with a pipeline run queued or in flight (its batch is not recorded yet)."""
    from spotify_assets.assets.lake import gcs_csv
    from spotify_assets.jobs import spotify_pipeline_job
    from spotify_assets.partitions import USERS_PARTITIONS_NAME

    batches: set[str] = set()
    for user in instance.get_dynamic_partitions(USERS_PARTITIONS_NAME):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=gcs_csv.key, asset_partitions=[user]), limit=1
        ).records
        for record in records:
            materialization = record.asset_materialization
            batch = materialization.metadata.get("batch_id") if materialization else None
            if batch is not None:
                batches.add(str(batch.value))
    running = instance.get_run_records(
        dg.RunsFilter(
            job_name=spotify_pipeline_job.name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        )
    )
    users = {r.dagster_run.tags.get("dagster/partition") for r in running}
    return Protected(batches=frozenset(batches), users=frozenset(u for u in users if u))


def day_files(lake: LakeResource, kind: str) -> dict[tuple[str, str], list[str]]:
    """Each listener's files of ``kind`` by (listener, day) (``user_id=<id>/<day folder>/``, see
    ``DAY_FOLDER``; one listing of the kind); each day's compacted files first (they hold the
    earlier landings), then the rest in path order."""
    head = f"{kind}/{USER_DIR_PREFIX}"
    days: dict[tuple[str, str], list[str]] = {}
    for path in lake.list(kind):
        if not path.startswith(head):
            continue  # the single-user layout's files: left where they are
        user_id, _, rest = path[len(head) :].partition("/")
        folder, _, name = rest.partition("/")
        day = DAY_FOLDER.match(folder)
        if day and name and "/" not in name:
            days.setdefault((user_id, day.group(1)), []).append(path)
    return {
        where: sorted(paths, key=lambda p: (not _name(p).startswith(COMPACTED_STEM), p))
        for where, paths in days.items()
    }


def _name(path: str) -> str:
    return path.rsplit("/", 1)[1]


def _batch(path: str) -> str:
    return _name(path).rsplit(".", 1)[0]


# -- the two file kinds: fold, keys -----------------------------------------------------------
def _parquet_table(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def fold_parquet(inputs: list[bytes]) -> bytes:
    """The plays of ``inputs`` as one Parquet file of the plays schema: each key once, its first row."""
    schema = arrow_schema("plays")
    tables = []
    for data in inputs:
        table = _parquet_table(data)
        for name in schema.names:  # a file older than a column lacks it: null, as the merge reads it
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(len(table), schema.field(name).type))
        tables.append(table.select(schema.names).cast(schema))
    table = pa.concat_tables(tables)
    first: dict[str, int] = {}
    for i, key in enumerate(table.column(PLAY_KEY).to_pylist()):
        first.setdefault(key, i)
    return arrow_parquet_bytes(table.take(sorted(first.values())))


def _csv_rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    return (rows[0], rows[1:]) if rows else ([], [])


def fold_csv(inputs: list[bytes]) -> bytes:
    """The rows of ``inputs`` (one header, as ``assets/lake.py`` writes them) as one CSV, each key once."""
    header: list[str] | None = None
    seen: set[str] = set()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for data in inputs:
        names, rows = _csv_rows(data)
        if header is None:
            header = names
            writer.writerow(header)
        elif names != header:
            raise ValueError(f"the files' columns differ ({names} vs {header})")
        key = names.index(PLAY_KEY)
        for row in rows:
            if row[key] not in seen:
                seen.add(row[key])
                writer.writerow(row)
    return out.getvalue().encode("utf-8")


def _pages(data: bytes) -> list[bytes]:
    """A raw file's pages: a page as fetched is one line of JSON (``assets/ingest.py`` writes it compact,
    so a newline never occurs inside), a compacted file one page a line."""
    return [line for line in data.split(b"\n") if line]


def fold_pages(inputs: list[bytes]) -> bytes:
    """The raw pages of ``inputs`` as JSON lines, each page once, in the order read."""
    pages = dict.fromkeys(page for data in inputs for page in _pages(data))
    return b"".join(page + b"\n" for page in pages)


def keys_of(kind: str, data: bytes) -> list[str]:
    """The keys of a file of ``kind`` in file order (a key twice is listed twice): the play keys,
    or for raw pages each page's digest (a page as fetched is named by it)."""
    if COMPACTED_KINDS[kind] == "jsonl":
        pages = _pages(data)
        for page in pages:
            json.loads(page)  # a torn line does not verify
        return [content_digest(page) for page in pages]
    if COMPACTED_KINDS[kind] == "parquet":
        return [str(k) for k in _parquet_table(data).column(PLAY_KEY).to_pylist()]
    names, rows = _csv_rows(data)
    key = names.index(PLAY_KEY)
    return [row[key] for row in rows]


_FOLD: dict[str, Callable[[list[bytes]], bytes]] = {
    "parquet": fold_parquet,
    "csv": fold_csv,
    "jsonl": fold_pages,
}


def verify(kind: str, written: bytes, expected: bytes, wanted: set[str]) -> None:
    """The compacted file as read back from the lake: the bytes folded, every key of the inputs
    (``wanted``) exactly once and no other; else ``CompactionError`` (and nothing is retired)."""
    if written != expected:
        raise CompactionError("the compacted file read back differs from the bytes written")
    try:
        keys = keys_of(kind, written)
    except Exception as exc:  # unreadable: a torn or damaged file
        raise CompactionError(f"the compacted file cannot be read back ({exc})") from exc
    if len(keys) != len(set(keys)) or set(keys) != wanted:
        missing, extra = len(wanted - set(keys)), len(set(keys) - wanted)
        raise CompactionError(
            f"the compacted file's keys differ from its inputs' ({missing} missing, {extra} extra, "
            f"{len(keys) - len(set(keys))} repeated)"
        )


def _retire(lake: LakeResource, paths: Iterable[str]) -> None:
    """Remove the inputs of a verified compacted file (never the compacted file itself)."""
    for path in paths:
        lake.remove(path)


def compact_day(lake: LakeResource, kind: str, paths: list[str], report: CompactionReport) -> str:
    """Fold ``paths`` (one listener's day of ``kind``) into one file: write, read back, verify, retire."""
    inputs = [lake.read_bytes(p) for p in paths]
    wanted = {k for data in inputs for k in keys_of(kind, data)}  # an unreadable input stops here
    folded = _FOLD[COMPACTED_KINDS[kind]](inputs)
    folder = paths[0].rsplit("/", 1)[0]
    target = f"{folder}/{COMPACTED_STEM}{content_digest(folded)}.{COMPACTED_KINDS[kind]}"
    lake.write_bytes(target, folded)
    verify(kind, lake.read_bytes(target), folded, wanted)
    _retire(lake, [p for p in paths if p != target])
    report.days += 1
    report.files_before += len(paths)
    report.files_after += 1
    report.bytes_before += sum(len(d) for d in inputs)
    report.bytes_after += len(folded)
    report.rows += len(keys_of(kind, folded))
    return target


def compact_lake(
    lake: LakeResource,
    *,
    protected: Protected | None = None,
    today: date | None = None,
    settle_days: int = SETTLE_DAYS,
    kinds: Iterable[str] = tuple(COMPACTED_KINDS),
    progress: Callable[[str], None] | None = None,
) -> CompactionReport:
    """Compact every listener's settled days of ``kinds`` (see the module docstring)."""
    protected = protected or Protected()
    last = (today or datetime.now(UTC).date()) - timedelta(days=settle_days)
    report = CompactionReport()
    for kind in kinds:
        for (user_id, day), paths in sorted(day_files(lake, kind).items()):
            if day > last.isoformat():
                continue
            paths = [p for p in paths if _batch(p) not in protected.batches]
            if len(paths) < 2:
                continue
            if user_id in protected.users:
                report.skipped.append(
                    (f"{paths[0].rsplit('/', 1)[0]}/", "a run of this listener is in flight")
                )
                continue
            try:
                target = compact_day(lake, kind, paths, report)
            except ValueError as exc:  # an input unreadable, or columns that differ: left, and said so
                report.skipped.append((f"{paths[0].rsplit('/', 1)[0]}/", str(exc)))
                continue
            if progress is not None:
                progress(f"{target}: {len(paths)} file(s) into 1")
    return report


# -- how it runs: the daily job, and the operator command --------------------------------------
@dg.op(description="Fold each listener's settled days of small lake files into one file per kind.")
def compact_lake_op(context: dg.OpExecutionContext, lake: LakeResource) -> dg.Output[int]:
    report = compact_lake(lake, protected=latest_batches(context.instance), progress=context.log.debug)
    context.log.info(report.render())
    return dg.Output(
        report.days,
        metadata={
            "days_compacted": report.days,
            "files_before": report.files_before,
            "files_after": report.files_after,
            "bytes_before": report.bytes_before,
            "bytes_after": report.bytes_after,
            "days_left": len(report.skipped),
        },
    )


@dg.job(
    name="compact_lake",
    description=f"Keep the lake's file count proportional to days, not runs: each listener's days older than "
    f"{SETTLE_DAYS} days become one file per kind (plays, plays_csv), written and verified before the small "
    "files go.",
)
def compact_lake_job() -> None:
    compact_lake_op()


compact_lake_schedule = dg.ScheduleDefinition(
    name="compact_lake_daily",
    job=compact_lake_job,
    cron_schedule="41 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day, compact the lake's settled days (see the compact_lake job).",
)


def compact_lake_command(argv: list[str]) -> int:
    """``spotify-assets compact-lake``: the daily job's compaction, run by an operator."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(
        prog="spotify-assets compact-lake",
        description="Fold each listener's settled days of small lake files (plays, plays_csv) into one "
        "file per day and kind; each compacted file is verified before the small ones are removed.",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where the lake and the Dagster instance live (default: $SPOTIFY_DATA_DIR, else .data/)",
    )
    parser.add_argument(
        "--settle-days",
        type=int,
        default=SETTLE_DAYS,
        help=f"leave the days of plays newer than this many days (default {SETTLE_DAYS})",
    )
    args = parser.parse_args(argv)

    from spotify_assets.deployments import command_settings, command_stores
    from spotify_assets.settings import dagster_home

    settings = command_settings(parser.prog, args.data_dir)
    if settings is None:
        return 2
    home = dagster_home(settings.data.root)
    with contextlib.ExitStack() as stack:
        protected = Protected()
        if (home / "dagster.yaml").exists() or (home / "history").exists():
            instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
            protected = latest_batches(instance)
        lake = stack.enter_context(command_stores(settings, "lake")).lake
        report = compact_lake(lake, protected=protected, settle_days=args.settle_days, progress=print)
    print(report.render())
    return 0

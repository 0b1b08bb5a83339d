"""Compaction of the lake (issue 27, "growth that stays flat"): a real lake, made by real pipeline
runs against the sandbox, folded into one file per (listener, day, kind) with no play lost or
counted twice: the rebuild after it equals the warehouse before it, also after a crash between the
write and the retirement, a second compaction changes nothing, a file that does not verify retires
nothing, a batch landed meanwhile stays, the listener's latest batch (which a rerun of ``bq_plays``
reads by path) stays, and ``users remove --delete-data`` leaves neither name nor byte of it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from spotify_assets import cli, lake_compaction
from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.encoding import arrow_parquet_bytes, content_digest
from spotify_assets.instance_config import prepare_local_home
from spotify_assets.lake_compaction import (
    COMPACTED_STEM,
    CompactionError,
    compact_lake,
    compact_lake_job,
    day_files,
    latest_batches,
)
from spotify_assets.lake_layout import PLAYS_CSV_KIND, PLAYS_KIND, RAW_RECENTLY_PLAYED_KIND
from spotify_assets.rebuild import rebuild_from_lake
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.settings import layout
from spotify_assets.users.deletion import delete_user_data
from spotify_assets_tests.fixtures.gcs import GCSEmulator
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID, materialize_user
from spotify_assets_tests.test_rebuild import UPSTREAM_OF_SPARK, _fingerprint
from spotify_assets_tests.test_users_delete import _texts
from spotify_sandbox.server import SandboxServer

#: Pipeline runs after the first (its latest 50 plays), ``HOURS_APART`` simulated hours apart.
RUNS = 10
HOURS_APART = 3


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory made by ``1 + RUNS`` real pipeline runs (up to the warehouse) on a persistent
    instance: a batch per run, several per day of plays. Each test works on its own copy."""
    from spotify_assets.deployments import local_resources
    from spotify_sandbox.resource import SandboxSpotifyResource

    data = tmp_path_factory.mktemp("compaction") / "data"
    with pytest.MonkeyPatch.context() as mp, SandboxServer() as sandbox:
        mp.setenv("SPOTIFY_DATA_DIR", str(data))
        mp.delenv("SPOTIFY_DEPLOYMENT", raising=False)
        mp.delenv("DAGSTER_HOME", raising=False)
        resources = local_resources(SandboxSpotifyResource(url=sandbox.url), data=data)
        with dg.DagsterInstance.from_config(str(prepare_local_home(layout(data).dagster_home))) as instance:
            for run in range(1 + RUNS):
                if run:
                    sandbox.advance(HOURS_APART * 3600)
                result = materialize_user(
                    PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=resources, instance=instance
                )
                assert result.success
    return data


@pytest.fixture
def data(template: Path, data_dir: Path) -> Path:
    shutil.copytree(template, data_dir)
    return data_dir


@pytest.fixture
def lake(data: Path) -> LocalLakeResource:
    return LocalLakeResource(root=str(layout(data).lake))


def _warehouse(data: Path) -> DuckDBWarehouseResource:
    return DuckDBWarehouseResource(path=str(layout(data).warehouse))


def _rebuilt(lake: LocalLakeResource, where: Path) -> tuple[int, int, dict[str, int]]:
    """The plays table rebuilt from ``lake`` alone into a new warehouse at ``where``."""
    fresh = DuckDBWarehouseResource(path=str(where))
    rebuild_from_lake(fresh, lake)
    return _fingerprint(fresh)


def _files_per_day(lake: LocalLakeResource) -> dict[tuple[str, str, str], int]:
    return {
        (kind, user, day): len(paths)
        for kind in (PLAYS_KIND, PLAYS_CSV_KIND)
        for (user, day), paths in day_files(lake, kind).items()
    }


def test_compaction_folds_each_day_and_the_rebuild_is_unchanged(
    data: Path, lake: LocalLakeResource, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _fingerprint(_warehouse(data))
    assert before[0] > 50
    per_day = _files_per_day(lake)
    assert max(per_day.values()) >= 3, per_day  # several batches landed in one day
    files_before = len(lake.list())

    # The operator command, on the data directory (its instance protects the latest batch).
    assert cli.main(["compact-lake", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "Compacted " in out and " file(s) into " in out

    latest = latest_batches_of(data)
    for kind in (PLAYS_KIND, PLAYS_CSV_KIND):
        for where, paths in day_files(lake, kind).items():
            # At most one compacted file a day, and at most one small file left beside the latest batch's.
            compacted = [p for p in paths if COMPACTED_STEM in p]
            small = [p for p in paths if COMPACTED_STEM not in p and _stem(p) not in latest]
            assert len(compacted) <= 1 and len(small) <= int(not compacted), (kind, where, paths)
    assert len(lake.list()) < files_before
    assert _rebuilt(lake, tmp_path / "fresh.duckdb") == before

    # Again: nothing to do, nothing changed.
    snapshot = {p: lake.read_bytes(p) for p in lake.list()}
    report = compact_lake(lake, protected=latest_batches_of_instance(data))
    assert (report.days, report.files_before) == (0, 0)
    assert {p: lake.read_bytes(p) for p in lake.list()} == snapshot


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[1].rsplit(".", 1)[0]


def latest_batches_of(data: Path) -> frozenset[str]:
    return latest_batches_of_instance(data).batches


def latest_batches_of_instance(data: Path) -> lake_compaction.Protected:
    with dg.DagsterInstance.from_config(str(layout(data).dagster_home)) as instance:
        return latest_batches(instance)


def test_a_crash_between_write_and_retirement_loses_and_doubles_nothing(
    data: Path, lake: LocalLakeResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _fingerprint(_warehouse(data))
    real_retire = lake_compaction._retire

    def crash(lake_: LocalLakeResource, paths: list[str]) -> None:
        real_retire(lake_, list(paths)[:1])  # one input gone, then the process dies
        raise KeyboardInterrupt("killed between the write and the retirement")

    monkeypatch.setattr(lake_compaction, "_retire", crash)
    with pytest.raises(KeyboardInterrupt):
        compact_lake(lake)
    # The day holds the compacted file and what is left of its inputs: read twice, counted once.
    both = [
        paths
        for (user, day), paths in day_files(lake, PLAYS_KIND).items()
        if any(COMPACTED_STEM in p for p in paths) and len(paths) > 1
    ]
    assert both, "the crash left no day holding both granularities"
    assert _rebuilt(lake, tmp_path / "crashed.duckdb") == before

    monkeypatch.setattr(lake_compaction, "_retire", real_retire)
    report = compact_lake(lake)
    assert report.days > 0
    assert set(_files_per_day(lake).values()) == {1}
    assert _rebuilt(lake, tmp_path / "finished.duckdb") == before


class _DroppingLake(LocalLakeResource):
    """A lake whose compacted files lose their last row on the way to disk: the verify must catch it."""

    def _create(self, path: str, data: bytes) -> bool:
        if COMPACTED_STEM in path and path.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(data))
            data = arrow_parquet_bytes(table.slice(0, len(table) - 1))
        return super()._create(path, data)


def test_a_compacted_file_that_does_not_verify_retires_nothing(data: Path, tmp_path: Path) -> None:
    before = _fingerprint(_warehouse(data))
    lake = _DroppingLake(root=str(layout(data).lake))
    small = [p for p in lake.list(PLAYS_KIND) if COMPACTED_STEM not in p]
    with pytest.raises(CompactionError):
        compact_lake(lake, kinds=[PLAYS_KIND])
    assert [p for p in lake.list(PLAYS_KIND) if COMPACTED_STEM not in p] == small
    assert _rebuilt(lake, tmp_path / "fresh.duckdb") == before


class _BusyLake(LocalLakeResource):
    """A lake where a pipeline run lands a batch in the same day while the compacted file is written."""

    landed: list[str] = []

    def _create(self, path: str, data: bytes) -> bool:
        if COMPACTED_STEM in path and not self.landed:
            folder = path.rsplit("/", 1)[0]
            source = next(p for p in self.list(folder.rsplit("/", 1)[0]) if not p.startswith(folder))
            late = f"{folder}/late-batch.{path.rsplit('.', 1)[1]}"
            os.link(Path(self.root) / source, Path(self.root) / late)  # someone else's whole file
            self.landed.append(late)
        return super()._create(path, data)


def test_a_batch_landed_during_compaction_stays(data: Path) -> None:
    lake = _BusyLake(root=str(layout(data).lake), landed=[])
    compact_lake(lake, kinds=[PLAYS_KIND])
    assert lake.landed and all(lake.exists(p) for p in lake.landed)


def test_the_daily_job_leaves_the_latest_batch_which_a_rerun_reads(
    data: Path, lake: LocalLakeResource
) -> None:
    with dg.DagsterInstance.from_config(str(layout(data).dagster_home)) as instance:
        latest = latest_batches(instance).batches
        assert len(latest) == 1
        result = compact_lake_job.execute_in_process(instance=instance, resources={"lake": lake})
        assert result.success
        assert result.output_for_node("compact_lake_op") > 0
    kept = [p for p in lake.list(PLAYS_KIND) if _stem(p) in latest]
    assert kept, "the latest batch's plays file was retired: a rerun of bq_plays would not find it"


def test_deletion_after_compaction_leaves_no_name_and_no_byte(
    data: Path, lake: LocalLakeResource, tmp_path: Path
) -> None:
    later = datetime.now(UTC).date() + timedelta(days=3)  # the raw pages' day settled too
    assert compact_lake(lake, today=later).days > 0
    assert {
        k
        for k in (PLAYS_KIND, PLAYS_CSV_KIND, RAW_RECENTLY_PLAYED_KIND)
        if any(COMPACTED_STEM in p for p in lake.list(k))
    } == {
        PLAYS_KIND,
        PLAYS_CSV_KIND,
        RAW_RECENTLY_PLAYED_KIND,
    }
    delete_user_data(DEFAULT_USER_ID, _warehouse(data), lake)
    root = layout(data).lake
    left = [p for p in root.rglob("*") if DEFAULT_USER_ID in str(p.relative_to(root))]
    assert not left, left
    holding = [
        p for p in root.rglob("*") if p.is_file() and any(DEFAULT_USER_ID.encode() in t for t in _texts(p))
    ]
    assert not holding, holding


def test_a_recent_day_is_left_for_the_polls_still_adding_to_it(lake: LocalLakeResource) -> None:
    busiest = max(day_files(lake, PLAYS_KIND).items(), key=lambda item: len(item[1]))
    (_user, day), paths = busiest
    assert len(paths) >= 2
    # ``day`` is one day too recent to settle; the day before it is not.
    compact_lake(lake, today=date.fromisoformat(day) + timedelta(days=1), settle_days=2)
    assert day_files(lake, PLAYS_KIND)[busiest[0]] == paths


def test_the_growth_bench_reports_each_day_before_and_after(
    template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import lake_growth

    before = {p: p.stat().st_mtime_ns for p in template.rglob("*") if p.is_file()}
    assert lake_growth.main(["--data", str(template)]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) >= 2
    files = [tuple(int(n) for n in row[4].split("→")) for row in rows]
    assert all(after <= was for was, after in files) and any(after < was for was, after in files), files
    # The copy was worked on, the original is as it was.
    assert {p: p.stat().st_mtime_ns for p in template.rglob("*") if p.is_file()} == before


def test_a_listener_being_polled_is_left_alone(data: Path, lake: LocalLakeResource) -> None:
    from spotify_assets.definitions import defs
    from spotify_assets.jobs import spotify_pipeline_job

    snapshot = {p: lake.read_bytes(p) for p in lake.list()}
    with dg.DagsterInstance.from_config(str(layout(data).dagster_home)) as instance:
        instance.create_run_for_job(
            defs.resolve_job_def(spotify_pipeline_job.name),
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": DEFAULT_USER_ID},
        )
        protected = latest_batches(instance)
    assert protected.users == {DEFAULT_USER_ID}
    report = compact_lake(lake, protected=protected)
    assert report.days == 0 and report.skipped
    assert {p: lake.read_bytes(p) for p in lake.list()} == snapshot


def test_raw_pages_fold_into_json_lines_each_page_once(lake: LocalLakeResource) -> None:
    """The raw pages are fetched today (the wall's day): compacted once that day has settled."""
    pages = {_stem(p): lake.read_bytes(p) for p in lake.list(RAW_RECENTLY_PLAYED_KIND)}
    assert len(pages) > 2 and all(content_digest(page) == name for name, page in pages.items())
    later = datetime.now(UTC).date() + timedelta(days=3)
    report = compact_lake(lake, kinds=[RAW_RECENTLY_PLAYED_KIND], today=later)
    assert report.days >= 1
    files = lake.list(RAW_RECENTLY_PLAYED_KIND)
    assert len(files) == report.days and all(p.endswith(".jsonl") and COMPACTED_STEM in p for p in files)
    lines = [line for p in files for line in lake.read_bytes(p).splitlines()]
    assert sorted(lines) == sorted(pages.values())  # every page, byte for byte, once
    assert [json.loads(line) for line in lines]
    again = compact_lake(lake, kinds=[RAW_RECENTLY_PLAYED_KIND], today=later)
    assert again.days == 0 and lake.list(RAW_RECENTLY_PLAYED_KIND) == files


def test_compaction_on_the_cloud_lake_the_same(
    template: Path, gcs_emulator: GCSEmulator, tmp_path: Path
) -> None:
    """The same lake in a bucket (the GCS emulator): listed, written and removed through
    ``GCSLakeResource``, compacted alike, and the rebuild from it unchanged."""
    from dagster_gcp import GCSResource

    from spotify_assets.resources.gcs_lake import GCSLakeResource

    local = LocalLakeResource(root=str(layout(template).lake))
    cloud = GCSLakeResource(bucket=gcs_emulator.bucket, prefix="spotify", gcs=GCSResource(project="test"))
    for path in local.list():
        cloud.write_bytes(path, local.read_bytes(path))
    before = _fingerprint(_warehouse(template))
    later = datetime.now(UTC).date() + timedelta(days=3)
    report = compact_lake(cloud, today=later)
    assert report.days > 0 and report.files_after < report.files_before
    for kind in (PLAYS_KIND, PLAYS_CSV_KIND, RAW_RECENTLY_PLAYED_KIND):
        assert all(len(paths) == 1 for paths in day_files(cloud, kind).values()), kind
    mirror = LocalLakeResource(root=str(tmp_path / "mirror"))
    for path in cloud.list():
        mirror.write_bytes(path, cloud.read_bytes(path))
    assert _rebuilt(mirror, tmp_path / "fresh.duckdb") == before

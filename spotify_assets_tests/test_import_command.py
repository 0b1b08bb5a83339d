"""``spotify-assets import`` as a real subprocess, and the ``history_import`` Dagster asset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from spotify_assets.assets.history import HistoryImportConfig, history_assets, history_import
from spotify_assets.assets.lake import gcs_csv
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.io_managers import LakeIOManager
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_sandbox.exports import generate_export

CORPUS = Path(__file__).parent / "data" / "bad_exports"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(
    args: list[str], cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SPOTIFY_DATA_DIR"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "spotify_assets.cli", "import", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    tmp = tmp_path_factory.mktemp("cmd")
    # Three months of history: every day of plays is a lake file, ten years would be 1,500 of them.
    summary = generate_export(
        tmp / "my_spotify_data.zip",
        1_500,
        seed=21,
        rows_per_file=600,
        start=datetime(2024, 3, 1, tzinfo=UTC),
        end=datetime(2024, 6, 1, tzinfo=UTC),
    )
    return tmp / "my_spotify_data.zip", summary.expected_added, summary.no_content


def test_command_imports_a_zip_and_a_second_run_adds_nothing(tmp_path: Path, small_zip) -> None:
    archive, expected_added, no_content = small_zip
    data = {"SPOTIFY_DATA_DIR": str(tmp_path / ".data")}
    first = _run([str(archive), "--json"], cwd=tmp_path, env_extra=data)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["rows_read"], report["added"], report["duplicates"], report["quarantined"]) == (
        1_500,
        expected_added,
        0,
        no_content,
    )
    assert "import" in first.stderr and "rows=1,500" in first.stderr  # the tqdm progress bar
    wh = DuckDBWarehouseResource(path=str(tmp_path / ".data" / "warehouse.duckdb"))
    assert wh.count("bq_plays") == expected_added
    assert (tmp_path / ".data" / "lake" / "raw" / "exports").is_dir()

    second = _run([str(archive)], cwd=tmp_path, env_extra=data)
    assert second.returncode == 0, second.stderr
    assert "plays added                   0" in second.stdout
    assert f"duplicates skipped   {expected_added:>10,}" in second.stdout
    assert wh.count("bq_plays") == expected_added


def test_default_data_dir_is_the_repo_roots_from_any_working_directory(tmp_path: Path) -> None:
    """Without ``SPOTIFY_DATA_DIR`` the one default (``settings.data_dir()``) is ``.data/`` at the
    repo root, also when resolved from a directory outside the repo (as the import command is)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SPOTIFY_DATA_DIR"}
    probe = "from spotify_assets.settings import data_dir; print(data_dir())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(REPO_ROOT / ".data")


def test_command_without_data_dir_writes_to_the_settings_default_not_the_working_directory(
    tmp_path: Path, small_zip, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's default is ``settings.data_dir()``. The repo root is pointed at a scratch
    "repo" so the test never writes into the real ``.data/``; the command runs from elsewhere."""
    from spotify_assets import settings
    from spotify_assets.import_run import import_command

    fake_repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    fake_repo.mkdir()
    (fake_repo / "pyproject.toml").write_text("")
    elsewhere.mkdir()
    monkeypatch.setattr(settings, "_REPO_ROOT", fake_repo)
    monkeypatch.delenv("SPOTIFY_DATA_DIR", raising=False)
    monkeypatch.chdir(elsewhere)
    assert import_command([str(small_zip[0]), "--no-progress"]) == 0
    assert (
        DuckDBWarehouseResource(path=str(fake_repo / ".data" / "warehouse.duckdb")).count("bq_plays")
        == (small_zip[1])
    )
    assert list(elsewhere.iterdir()) == []


def test_command_honours_data_dir_env(tmp_path: Path, small_zip) -> None:
    archive = small_zip[0]
    by_env = _run(
        [str(archive), "--no-progress"], cwd=tmp_path, env_extra={"SPOTIFY_DATA_DIR": str(tmp_path / "e")}
    )
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stderr == ""
    assert (tmp_path / "e" / "warehouse.duckdb").exists()
    assert not (tmp_path / ".data").exists()


def test_command_reports_broken_files_with_exit_status_1(tmp_path: Path) -> None:
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(CORPUS.iterdir()):
            if f.name not in {"expected.json", "EXPECTED.md"}:
                zf.write(f, f.name)
    run = _run([str(archive), "--no-progress", "--data-dir", str(tmp_path / "flag")], cwd=tmp_path)
    assert run.returncode == 1
    assert (tmp_path / "flag" / "warehouse.duckdb").exists()
    assert "ERROR Streaming_History_Audio_empty.json: empty file" in run.stdout
    assert "ERROR Streaming_History_Audio_truncated.json: invalid JSON after 2 row(s)" in run.stdout
    assert "rows read                    61" in run.stdout
    assert "Traceback" not in run.stderr


def test_command_usage_errors(tmp_path: Path) -> None:
    missing = _run([str(tmp_path / "nope.zip")], cwd=tmp_path)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    not_zip = tmp_path / "history.json"
    not_zip.write_text("[]")
    wrong = _run([str(not_zip)], cwd=tmp_path)
    assert wrong.returncode == 2 and "neither a folder nor a .zip" in wrong.stderr


# -- the asset --------------------------------------------------------------------------------
def _materialize(path: Path, tmp_path: Path, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """``history_import`` and ``bq_plays`` in one run (the single-user layout before its first poll:
    no partition, no pipeline batch), as ``import_run.import_export`` runs them."""
    return dg.materialize(
        [*history_assets, bq_plays, dg.SourceAsset(gcs_csv.key)],
        resources={
            "warehouse": DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb")),
            "lake": LocalLakeResource(root=str(tmp_path / "lake")),
            "io_manager": LakeIOManager(store=LocalLakeResource(root=str(tmp_path / "handoff"))),
        },
        run_config=dg.RunConfig(ops={"history_import": HistoryImportConfig(path=str(path))}),
        raise_on_error=raise_on_error,
    )


def test_asset_materializes_with_counts_as_metadata(tmp_path: Path, small_zip) -> None:
    archive, expected_added, no_content = small_zip
    assert history_import.group_names_by_key[dg.AssetKey("history_import")] == "ingest"
    result = _materialize(archive, tmp_path)
    (mat,) = result.asset_materializations_for_node("history_import")
    meta = mat.metadata
    assert meta["rows_read"].value == 1_500
    assert meta["plays_landed"].value == expected_added
    assert meta["quarantined"].value == no_content
    assert meta["duplicates_skipped"].value == 0
    assert meta["quarantine_reasons"].value == {"no_track_or_episode": no_content}
    assert meta["lake_files"].value == 3  # March to May 2024: one file per month
    # The same run's bq_plays merged exactly those plays and says so.
    (merged,) = result.asset_materializations_for_node("bq_plays")
    assert merged.metadata["plays_inserted"].value == expected_added
    assert merged.metadata["import_lake_files"].value == 3
    settled = merged.metadata["import_report"].value
    assert (settled["added"], settled["duplicates"], settled["quarantined"]) == (
        expected_added,
        0,
        no_content,
    )
    assert DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb")).count("bq_plays") == expected_added

    again = _materialize(archive, tmp_path)
    (mat2,) = again.asset_materializations_for_node("history_import")
    assert mat2.metadata["plays_landed"].value == 0
    assert mat2.metadata["duplicates_skipped"].value == expected_added
    (merged2,) = again.asset_materializations_for_node("bq_plays")
    assert merged2.metadata["plays_inserted"].value == 0


def test_asset_fails_visibly_when_a_file_is_unreadable(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "Streaming_History_Audio_good.json").write_bytes(
        (CORPUS / "Streaming_History_Audio_good.json").read_bytes()
    )
    (export / "Streaming_History_Audio_empty.json").write_bytes(b"")
    result = _materialize(export, tmp_path, raise_on_error=False)
    assert not result.success
    (landed,) = result.asset_materializations_for_node("history_import")
    assert landed.metadata["files_failed"].value == 1
    # The run fails at bq_plays, after merging the readable file and recording that merge.
    failure = result.failure_data_for_node("bq_plays")
    assert failure is not None
    assert "Streaming_History_Audio_empty.json" in str(failure.error)
    (merged,) = result.asset_materializations_for_node("bq_plays")
    assert merged.metadata["plays_inserted"].value == 3
    assert DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb")).count("bq_plays") == 3


def test_kill_9_mid_import_then_reimport_adds_exactly_the_missing_rows(tmp_path: Path) -> None:
    """SIGKILL once several chunks are landed in the lake (the run merges them only once all are):
    the warehouse is untouched, and the next import adds every play exactly once, taking the
    killed import's files as they are."""
    import signal
    import time
    from datetime import timedelta

    end = datetime(2024, 6, 1, tzinfo=UTC)
    summary = generate_export(
        tmp_path / "export.zip", 30_000, seed=8, rows_per_file=5_000, start=end - timedelta(days=60), end=end
    )
    data_dir = tmp_path / ".data"
    env = {k: v for k, v in os.environ.items() if k != "SPOTIFY_DATA_DIR"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spotify_assets.cli",
            "import",
            str(tmp_path / "export.zip"),
            "--no-progress",
            "--chunk-rows",
            "2000",
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    plays = data_dir / "lake" / "plays"
    deadline = time.monotonic() + 240
    # Kill once the lake holds plays of at least three chunks (the landing is under way).
    while time.monotonic() < deadline and proc.poll() is None:
        batches = {p.stem for p in plays.rglob("*.parquet")} if plays.exists() else set()
        if len(batches) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the import finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    killed_files = sorted(str(p) for p in plays.rglob("*.parquet"))
    wh = DuckDBWarehouseResource(path=str(data_dir / "warehouse.duckdb"))
    assert wh.count("bq_plays") == 0  # nothing merged before the landing finished

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotify_assets.cli",
            "import",
            str(tmp_path / "export.zip"),
            "--json",
            "--no-progress",
            "--chunk-rows",
            "2000",
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["added"] == summary.expected_added
    assert report["duplicates"] == report["duplicates_same_key"] == 0
    assert report["quarantined"] == summary.no_content
    assert set(killed_files) <= {str(p) for p in plays.rglob("*.parquet")}
    assert wh.count("bq_plays") == summary.expected_added
    assert (
        wh.query("SELECT count(DISTINCT play_key) AS n FROM bq_plays")["n"].iloc[0] == summary.expected_added
    )


def test_the_graph_shows_the_import_upstream_of_the_plays_and_the_command_reports_both(
    tmp_path: Path, small_zip, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotify_assets.definitions import defs
    from spotify_assets.import_run import import_command

    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("history_import") in graph.get(dg.AssetKey("bq_plays")).parent_keys
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    archive, expected_added, _ = small_zip
    home.mkdir()
    (home / "dagster.yaml").touch()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # type: ignore[arg-type]
        assert before.get_num_requested(dg.AssetKey("top_ten_tracks")) == 0
    assert import_command([str(archive), "--data-dir", str(tmp_path / "d"), "--no-progress"]) == 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in ("history_import", "bq_plays"):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.asset_materialization is not None, key
        plays = instance.get_latest_materialization_event(dg.AssetKey("bq_plays"))
        assert plays is not None and plays.asset_materialization is not None
        assert plays.asset_materialization.metadata["plays_inserted"].value == expected_added
        # The top ten's automation condition asks for one recompute after the import.
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)  # type: ignore[arg-type]
        assert result.get_num_requested(dg.AssetKey("top_ten_tracks")) == 1

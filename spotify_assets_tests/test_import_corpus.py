"""The hostile bad-export corpus: every file gets exactly its expected outcome, none stops the rest."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from spotify_assets.import_run import import_export
from spotify_assets.imports.runner import ImportReport
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource

CORPUS = Path(__file__).parent / "data" / "bad_exports"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
CORPUS_FILES = sorted(p.name for p in CORPUS.iterdir() if p.name not in {"expected.json", "EXPECTED.md"})


def _zip_corpus(dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for name in CORPUS_FILES:
            zf.write(CORPUS / name, f"my_spotify_data/{name}")
    return dest


@pytest.fixture(scope="module", params=["folder", "zip"])
def corpus_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp(f"corpus-{request.param}")
    wh = DuckDBWarehouseResource(path=str(tmp / "warehouse.duckdb"))
    lake = LocalLakeResource(root=str(tmp / "lake"))
    source = CORPUS if request.param == "folder" else _zip_corpus(tmp / "export.zip")
    # Copy the folder so the corpus' metadata files are not part of the import.
    if request.param == "folder":
        source = tmp / "export"
        source.mkdir()
        for name in CORPUS_FILES:
            (source / name).write_bytes((CORPUS / name).read_bytes())
    report = import_export(source, wh, lake)
    return report, wh, lake, source


def test_every_corpus_file_is_listed_in_expected_json() -> None:
    assert sorted(EXPECTED["files"]) == CORPUS_FILES


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_outcome(corpus_run, name: str) -> None:
    report: ImportReport = corpus_run[0]
    (got,) = [f for f in report.files if Path(f.name).name == name]
    want = EXPECTED["files"][name]
    assert got.status == want["status"], got
    assert (got.rows_read, got.added, got.duplicates, got.unmatched) == (
        want["rows_read"],
        want["added"],
        want["duplicates"],
        want["unmatched"],
    ), got
    assert got.quarantine_reasons == want["quarantined"]
    assert got.quarantined == sum(want["quarantined"].values())
    if "error_contains" in want:
        assert want["error_contains"] in (got.error or "")
    else:
        assert got.error is None


def test_corpus_totals_add_up_and_match_the_warehouse(corpus_run) -> None:
    report, wh, lake, _ = corpus_run
    totals = EXPECTED["totals"]
    assert report.rows_read == totals["rows_read"] == report.added + report.duplicates + report.quarantined
    assert (report.added, report.duplicates, report.duplicates_window) == (
        totals["added"],
        totals["duplicates"],
        totals["duplicates_window"],
    )
    assert (report.unmatched, report.quarantined) == (totals["unmatched"], totals["quarantined"])
    assert (report.files_failed, report.files_imported) == (totals["files_failed"], totals["files_imported"])
    assert wh.count("bq_plays") == totals["added"]
    unmatched = wh.query(
        "SELECT count(*) AS n FROM bq_plays WHERE track_id IS NULL AND source = 'account_export'"
    )
    assert int(unmatched["n"].iloc[0]) == totals["unmatched"]
    # Quarantined rows land in the lake as JSONL, one line per row, each with its reason.
    lines = [
        json.loads(line)
        for path in lake.list("quarantine/exports")
        for line in lake.read_bytes(path).decode().splitlines()
    ]
    assert len(lines) == report.quarantined
    assert {q["reason"] for q in lines} == set(report.quarantine_reasons)


def test_corpus_unicode_names_stored_as_given(corpus_run) -> None:
    wh = corpus_run[1]
    names = set(wh.query("SELECT track_name FROM bq_plays")["track_name"])
    assert {"🔥🔥🔥", "مرحبا بالعالم", "Cafe\u0301 zero\u200bwidth", "NUL\u0000inside"} <= names


def test_corpus_reimport_adds_nothing(corpus_run) -> None:
    _, wh, lake, source = corpus_run
    before_lake = lake.list()
    again = import_export(source, wh, lake)
    assert again.added == 0
    assert again.rows_read == EXPECTED["totals"]["rows_read"]
    assert again.duplicates == again.rows_read - again.quarantined
    assert lake.list() == before_lake  # raw files and quarantine are content-addressed: nothing new

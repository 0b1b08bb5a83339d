"""IP addresses stay out of the platform (issue 14, item 3).

A privacy export carries the IP address of every stream. An import lands the raw copy of
each file without them (everything else kept exactly, under the original file's hash, so a
re-import adds 0 and lands nothing), quarantined rows lose them too, and the plays table never
had a column for them. ``spotify-assets redact-lake`` gives lakes made the old way (byte for
byte) the same form, idempotently, resuming a cut-short run, on a folder and on GCS.

The proof is a scan: a distinctive IPv4 and IPv6 value, and the field names, are absent from
every byte of every file under the data directory (raw copies, quarantine, Parquet, the
DuckDB warehouse and its snapshot, the handoff files of a pipeline run over the same data).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster_gcp import GCSResource

from spotify_assets.import_run import import_export
from spotify_assets.imports.redact_lake import redact_lake
from spotify_assets.imports.redaction import IP_FIELDS, KEEP_IP_ENV, RedactionError, redact, without_ip
from spotify_assets.lake_layout import REDACTIONS_PREFIX
from spotify_assets.lake_layout import REDACTIONS_STAGING_PREFIX as STAGING_PREFIX
from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.resources.lake import LakeResource, LakeWrite, LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.schema import PLAYS_TABLE, arrow_schema
from spotify_assets_tests.fixtures.gcs import GCSEmulator
from spotify_assets_tests.fixtures.partitions import materialize_user

IP_V4 = "203.0.113.197"
IP_V6 = "2001:db8:77::1f"
#: The sandbox generator's addresses (every generated row has one).
GENERATED_IP = "198.51.100."
TRACK = "4uLU6hMCjMI75M1A2tKUQC"
T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)


def _ext(i: int, ip_field: str = "ip_addr", ip: str = IP_V4, **extra: Any) -> dict[str, Any]:
    return {
        "ts": (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "username": "listener",
        "platform": "ios",
        "ms_played": 180000,
        "conn_country": "SE",
        ip_field: ip,
        "user_agent_decrypted": "unknown",
        "master_metadata_track_name": f"Song {i}",
        "master_metadata_album_artist_name": "Artist",
        "master_metadata_album_album_name": "Album",
        "spotify_track_uri": f"spotify:track:{TRACK[:-3]}{i:03d}",
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "incognito_mode": False,
        **extra,
    }


def write_ip_export(folder: Path) -> tuple[Path, int]:
    """An export with IP addresses in every shape seen; returns it and how many plays it adds."""
    from spotify_sandbox.exports import generate_export

    folder.mkdir(parents=True)
    rows = [_ext(i, ip=IP_V6 if i % 2 else IP_V4) for i in range(40)]
    rows.append({**_ext(99), "ms_played": "lots"})  # quarantined, with its IP address
    # Pretty-printed, as Spotify writes it, with the IP member last in one object.
    rows[3] = {k: v for k, v in rows[3].items() if k != "ip_addr"} | {"ip_addr": IP_V4}
    (folder / "Streaming_History_Audio_2024.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    # An older export: ``ip_addr_decrypted``, compact.
    old = [_ext(100 + i, ip_field="ip_addr_decrypted") for i in range(10)]
    (folder / "endsong_0.json").write_text(json.dumps(old, ensure_ascii=False))
    summary = generate_export(
        folder / "generated", 300, seed=3, rows_per_file=150, start=T0 - timedelta(days=60), end=T0
    )
    return folder, 40 + 10 + summary.expected_added


def _files_holding(root: Path, needles: list[bytes]) -> dict[str, list[str]]:
    """Every file under ``root`` holding any of ``needles`` (raw bytes, no parsing)."""
    found: dict[str, list[str]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            hits = [n.decode() for n in needles if n in data]
            if hits:
                found[str(p.relative_to(root))] = hits
    return found


NEEDLES = [IP_V4.encode(), IP_V6.encode(), GENERATED_IP.encode(), *(f.encode() for f in IP_FIELDS)]
_VALUES = {IP_V4, IP_V6, GENERATED_IP}


def _ip_traces(root: Path) -> dict[str, list[str]]:
    """Files under ``root`` holding an IP value, or a field name outside the redaction records
    (which name the fields they say were removed)."""
    return {
        path: hits
        for path, hits in _files_holding(root, NEEDLES).items()
        if set(hits) & _VALUES or f"/{REDACTIONS_PREFIX}" not in f"/{path}"
    }


def _assert_copy_is_the_original_without_ip(lake: LakeResource, export: Path) -> None:
    """Each raw copy sits under its original's sha256 and equals it but for the IP members."""
    originals = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in export.rglob("Stream*Audio*.json")}
    originals |= {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in export.rglob("endsong_*.json")}
    copies = lake.list("raw/exports")
    assert len(copies) == len(originals) + len(list(export.rglob("StreamingHistory*.json")))
    for path in copies:
        sha = path.split("/")[2]
        if sha not in originals:
            continue
        original = originals[sha].read_bytes()
        copy = lake.read_bytes(path)
        assert json.loads(copy) == without_ip(json.loads(original))
        assert [list(o) for o in json.loads(copy)] == [list(without_ip(o)) for o in json.loads(original)]
        record = json.loads(lake.read_bytes(f"{REDACTIONS_PREFIX}{path}.json"))
        assert record["original_sha256"] == sha and record["sha256"] == hashlib.sha256(copy).hexdigest()


def test_an_import_keeps_no_ip_address_anywhere_and_a_reimport_adds_nothing(
    tmp_path: Path, data_dir: Path, local_resources: dict[str, Any]
) -> None:
    from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH

    export, expected = write_ip_export(tmp_path / "export")
    wh, lake = local_resources["warehouse"], local_resources["lake"]
    first = import_export(export, wh, lake)
    assert first.added == expected and first.quarantine_reasons == {"bad_ms_played": 1}
    assert first.ip_addresses_removed == 41 + 10 + 300
    assert "IP addresses removed from the lake's raw copies: 351" in first.render()
    # The pipeline over the same data dir: warehouse, snapshot, Spark mart, handoff files.
    result = materialize_user(PIPELINE_GRAPH, selection=PIPELINE_ASSETS, resources=local_resources)
    assert result.success
    assert (data_dir / "handoff").is_dir() and list(data_dir.glob("*.snapshot.duckdb"))

    assert _ip_traces(data_dir) == {}
    # The scan can see them: the export itself holds every needle.
    assert {h for hits in _files_holding(export, NEEDLES).values() for h in hits} == {
        n.decode() for n in NEEDLES
    }
    _assert_copy_is_the_original_without_ip(lake, export)
    (quarantined,) = lake.list("quarantine/exports")
    assert json.loads(lake.read_bytes(quarantined))["data"] == without_ip({**_ext(99), "ms_played": "lots"})
    # No column of the plays table could hold one.
    columns = {f.name for f in arrow_schema("plays")}
    assert columns == set(wh.query(f"DESCRIBE {PLAYS_TABLE}")["column_name"])
    assert not {c for c in columns if "ip" in c.split("_")} | (columns & set(IP_FIELDS))

    plays = wh.count(PLAYS_TABLE)
    before = lake.list()
    again = import_export(export, wh, lake)
    assert (again.added, again.duplicates) == (0, expected)
    assert lake.list() == before and wh.count(PLAYS_TABLE) == plays


def _old_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, int]:
    """A data dir imported the way every import did before: byte-exact copies (KEEP_IP)."""
    export, expected = write_ip_export(tmp_path / "export")
    data = tmp_path / "data"
    monkeypatch.setenv(KEEP_IP_ENV, "1")
    wh = DuckDBWarehouseResource(path=str(data / "warehouse.duckdb"))
    report = import_export(export, wh, LocalLakeResource(root=str(data / "lake")))
    monkeypatch.delenv(KEEP_IP_ENV)
    assert report.added == expected and report.ip_addresses_removed == 0
    return export, data, expected


def test_keep_ip_addresses_keeps_a_byte_exact_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data, _ = _old_way(tmp_path, monkeypatch)
    lake = LocalLakeResource(root=str(data / "lake"))
    for path in lake.list("raw/exports"):
        assert hashlib.sha256(lake.read_bytes(path)).hexdigest() == path.split("/")[2]
    assert not lake.list(REDACTIONS_PREFIX.rstrip("/"))
    assert IP_V4 in _files_holding(data, NEEDLES)["lake/" + lake.list("quarantine/exports")[0]]


def _redact_command(data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    return subprocess.run(
        [sys.executable, "-m", "spotify_assets.cli", "redact-lake", "--data-dir", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_redact_lake_cleans_a_lake_made_the_old_way_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export, data, expected = _old_way(tmp_path, monkeypatch)
    assert _files_holding(data / "lake", NEEDLES)  # the old way: they are there
    wh = DuckDBWarehouseResource(path=str(data / "warehouse.duckdb"))
    plays = wh.count(PLAYS_TABLE)

    done = _redact_command(data)
    assert done.returncode == 0, done.stderr
    # 2 hand-written files + 2 generated ones + the quarantine file; 41 + 10 + 300 rows + 1 quarantined
    assert "redacted 5 (352 rows, 352 IP address fields removed)" in done.stdout, done.stdout
    assert _ip_traces(data) == {}
    lake = LocalLakeResource(root=str(data / "lake"))
    _assert_copy_is_the_original_without_ip(lake, export)
    assert not lake.list(STAGING_PREFIX.rstrip("/"))
    assert wh.count(PLAYS_TABLE) == plays == expected

    before = lake.list()
    again = _redact_command(data)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    reimport = import_export(export, wh, lake)
    assert reimport.added == 0 and lake.list() == before and wh.count(PLAYS_TABLE) == plays


@pytest.mark.parametrize("cut_after", ["the original is removed", "the copy is in place"])
def test_a_cut_short_redaction_loses_nothing_and_the_next_run_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut_after: str
) -> None:
    _, data, _ = _old_way(tmp_path, monkeypatch)
    lake = LocalLakeResource(root=str(data / "lake"))
    real_remove = LocalLakeResource.remove
    real_put = LocalLakeResource.write_bytes
    removed: list[str] = []

    class Crash(Exception):
        pass

    def remove(self: LocalLakeResource, path: str) -> None:
        real_remove(self, path)
        removed.append(path)
        if cut_after == "the original is removed":
            raise Crash

    def write_bytes(self: LocalLakeResource, path: str, payload: bytes) -> LakeWrite:
        written = real_put(self, path, payload)
        if cut_after == "the copy is in place" and removed and not path.startswith(STAGING_PREFIX):
            raise Crash
        return written

    monkeypatch.setattr(LocalLakeResource, "remove", remove)
    monkeypatch.setattr(LocalLakeResource, "write_bytes", write_bytes)
    with pytest.raises(Crash):
        redact_lake(lake)
    monkeypatch.setattr(LocalLakeResource, "remove", real_remove)
    monkeypatch.setattr(LocalLakeResource, "write_bytes", real_put)
    assert lake.list(STAGING_PREFIX.rstrip("/"))  # the verified staged copy is what holds the file now
    report = redact_lake(lake)
    assert report.resumed == 1
    assert _ip_traces(data) == {}
    assert not lake.list(STAGING_PREFIX.rstrip("/"))
    assert "nothing to do" in redact_lake(lake).render()


def test_redact_lake_on_gcs(gcs_emulator: GCSEmulator, tmp_path: Path) -> None:
    lake = GCSLakeResource(bucket=gcs_emulator.bucket, prefix="spotify", gcs=GCSResource(project="test"))
    export, _ = write_ip_export(tmp_path / "export")
    original = (export / "endsong_0.json").read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    path = f"raw/exports/{sha}/endsong_0.json"
    lake.write_bytes(path, original)  # as an old import landed it
    lake.write_bytes("plays/played_date=2024-05-01/b.parquet", b"PAR1 untouched")

    report = redact_lake(lake)
    assert (report.files_redacted, report.rows_changed) == ([path], 10)
    assert lake.read_bytes(path) == redact(original).data
    assert IP_V4.encode() not in lake.read_bytes(path)
    assert lake.list() == [
        "plays/played_date=2024-05-01/b.parquet",
        path,
        f"{REDACTIONS_PREFIX}{path}.json",
    ]
    assert redact_lake(lake).files_redacted == []


def test_redaction_cuts_only_ip_members_and_refuses_what_it_cannot_prove() -> None:
    rows = [
        {"a": 1, "ip_addr": "x"},
        {"ip_addr": None, "b": "ip_addr"},
        {"c": '"ip_addr": "q"', "ip_addr_decrypted": "y"},
    ]
    for text in (json.dumps(rows), json.dumps(rows, indent=2), json.dumps(rows, separators=(",", ":"))):
        out = redact(text.encode())
        assert json.loads(out.data) == without_ip(rows) and (out.fields, out.rows) == (3, 3)
        assert text.encode().replace(b'"ip_addr": "x"', b"").count(b'"a"') == out.data.count(b'"a"')
    assert redact(b'[{"a": 1}]').data == b'[{"a": 1}]'
    with pytest.raises(RedactionError):
        redact(b'[{"a": 1, "ip_addr": {"nested": "1.2.3.4"}}]')  # not a value the cut knows
    with pytest.raises(RedactionError):  # a key that only looks like one: '"ip_addr' with a quote
        redact(json.dumps([{'"ip_addr': "x", "b": 1}]).encode(), verify=False)
    # Unverified (the import's way) the cut is the same bytes.
    text = json.dumps(rows, indent=2).encode()
    assert redact(text, verify=False).data == redact(text).data

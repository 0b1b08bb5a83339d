"""Ids and cover art for imported plays: ``GET /v1/tracks/{id}`` via the sandbox, the
``track_metadata`` asset on a real DuckDB warehouse, and the dashboard's resolved plays.

An export names a track by URI and its artist and album only by name; after the asset runs,
every imported play of a known track has its artist id, album id and cover in the dashboard's
view, the plays table itself is untouched, and a second run asks the API nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from app import queries, ui
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.faults import BuildResources
from spotify_sandbox.server import SandboxServer


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    mat = result.asset_materializations_for_node(node)[0]
    return {k: v.value for k, v in mat.metadata.items()}


# -- the client and the sandbox endpoint ---------------------------------------------------
def test_single_track_lookup_answers_like_spotify(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    import requests

    client = local_resources["spotify"].get_client()
    item = pipeline_sandbox.recently_played_truth()[0]
    track = client.track(item["track"]["id"])
    assert track == item["track"]  # the same Track object recently-played embeds
    assert client.track("0" * 22) is None  # well-formed, unknown: 404
    assert client.track("not an id") is None  # malformed: 400 "invalid id"
    # Development-mode apps lost the several-tracks endpoint in February 2026; so has the sandbox's app.
    token = requests.post(
        f"{pipeline_sandbox.url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=("sandbox-client-id", "sandbox-client-secret"),
        timeout=10,
    ).json()["access_token"]
    several = requests.get(
        f"{pipeline_sandbox.url}/v1/tracks",
        params={"ids": item["track"]["id"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert several.status_code == 403


# -- the asset -------------------------------------------------------------------------------
def _import_sandbox_history(
    sandbox: SandboxServer, resources: dict[str, Any], folder: Path, days: int = 3
) -> list[dict[str, Any]]:
    from spotify_assets.import_run import import_export
    from spotify_sandbox.exports import extended_row_from_api_item

    history = sandbox.plays_between(sandbox.now() - pd.Timedelta(days=days), sandbox.now())
    folder.mkdir()
    (folder / "Streaming_History_Audio_2026.json").write_text(
        json.dumps([extended_row_from_api_item(i) for i in history])
    )
    import_export(folder, resources["warehouse"], resources["lake"])
    return history


def _track_requests(sandbox: SandboxServer) -> int:
    return sum(n for key, n in sandbox.stats()["requests"].items() if key.startswith("GET /v1/tracks/"))


def _plays_checksum(warehouse: Any) -> tuple[int, str]:
    df = warehouse.query(
        "SELECT count(*) AS n, bit_xor(hash(play_key, primary_artist_id, album_id)) AS h FROM bq_plays"
    )
    return int(df["n"].iloc[0]), str(df["h"].iloc[0])


def test_imported_plays_get_ids_and_art_once(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from spotify_assets.assets.catalog import track_metadata

    history = _import_sandbox_history(pipeline_sandbox, local_resources, tmp_path / "export")
    warehouse = local_resources["warehouse"]
    lacking = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT track_id) AS tracks FROM bq_plays WHERE album_id IS NULL"
    )
    assert int(lacking["n"].iloc[0]) == len(history) > 50  # an export has no album or artist ids
    tracks = int(lacking["tracks"].iloc[0])
    before = _plays_checksum(warehouse)
    resources = {k: local_resources[k] for k in ("spotify", "warehouse", "lake")}
    config = {"ops": {"track_metadata": {"config": {"max_tracks": 1000, "requests_per_second": 0}}}}

    pipeline_sandbox.reset_stats()
    first = dg.materialize([track_metadata], resources=resources, run_config=config)
    meta = _meta(first, "track_metadata")
    assert (meta["looked_up"], meta["found"], meta["lookup_errors"]) == (tracks, tracks, 0)
    assert _track_requests(pipeline_sandbox) == tracks  # one request per track, none twice
    assert warehouse.count("track_metadata") == tracks
    assert _plays_checksum(warehouse) == before  # the plays table has one writer; it is untouched
    assert local_resources["lake"].exists(meta["lake_file"])

    # The dashboard's view of the plays: every imported play now has ids and a cover, and they
    # are the ones Spotify (the sandbox) gives for the track.
    resolved = warehouse.query(
        f"SELECT track_id, primary_artist_id, album_id, album_image_url FROM {queries.plays_resolved()} AS plays"
    )
    assert resolved[["primary_artist_id", "album_id", "album_image_url"]].notna().all().all()
    truth = {i["track"]["id"]: i["track"] for i in history}
    for row in resolved.drop_duplicates("track_id").itertuples():
        assert row.album_id == truth[row.track_id]["album"]["id"]
        assert row.primary_artist_id == truth[row.track_id]["artists"][0]["id"]

    # Nothing left to resolve: the second run asks the API nothing.
    pipeline_sandbox.reset_stats()
    second = dg.materialize([track_metadata], resources=resources, run_config=config)
    assert _meta(second, "track_metadata")["looked_up"] == 0
    assert _track_requests(pipeline_sandbox) == 0


def test_lookups_are_capped_most_played_first_and_unknown_ids_are_kept_as_not_found(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from spotify_assets.assets.catalog import track_metadata

    history = _import_sandbox_history(pipeline_sandbox, local_resources, tmp_path / "export")
    warehouse = local_resources["warehouse"]
    # A play of a track Spotify no longer has (a well-formed id the catalogue does not know).
    ghost = dict(warehouse.query("SELECT * FROM bq_plays ORDER BY played_at LIMIT 1").iloc[0])
    ghost.update(play_key="ghost-play", track_id="0" * 22, played_at=pd.Timestamp("2020-01-01", tz="UTC"))
    plays_table.merge_plays(warehouse, pd.DataFrame([ghost]))
    resources = {k: local_resources[k] for k in ("spotify", "warehouse", "lake")}
    played = pd.Series([i["track"]["id"] for i in history]).value_counts()

    capped = dg.materialize(
        [track_metadata],
        resources=resources,
        run_config={"ops": {"track_metadata": {"config": {"max_tracks": 3, "requests_per_second": 0}}}},
    )
    assert _meta(capped, "track_metadata")["looked_up"] == 3
    most_played = {t for t, _ in sorted(played.items(), key=lambda kv: (-kv[1], kv[0]))[:3]}
    assert set(warehouse.query("SELECT track_id FROM track_metadata")["track_id"]) == most_played

    rest = dg.materialize(
        [track_metadata],
        resources=resources,
        run_config={"ops": {"track_metadata": {"config": {"max_tracks": 1000, "requests_per_second": 0}}}},
    )
    meta = _meta(rest, "track_metadata")
    assert meta["not_found"] == 1
    stored = warehouse.query("SELECT status FROM track_metadata WHERE track_id = '" + "0" * 22 + "'")
    assert stored["status"].tolist() == ["not_found"]
    again = dg.materialize(
        [track_metadata],
        resources=resources,
        run_config={"ops": {"track_metadata": {"config": {"requests_per_second": 0}}}},
    )
    assert _meta(again, "track_metadata")["looked_up"] == 0  # a vanished track is not asked again


def test_api_errors_leave_tracks_pending_and_are_reported(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from spotify_assets.assets.catalog import track_metadata

    # The fault tests' short retry budget (fixtures/faults.py): each failing lookup still goes
    # through the client's retries, with 1.5 s of backoff instead of the default's 7.5 s.
    resources = {k: v for k, v in fault_resources().items() if k in ("spotify", "warehouse", "lake")}
    _import_sandbox_history(pipeline_sandbox, resources, tmp_path / "export")
    # Every lookup answers 503 (after the client's own retries): nothing stored, the run fails
    # loudly, and the next run finds every track still pending.
    pipeline_sandbox.fail_next(503, count=1000, path="/v1/tracks/*")
    failed = dg.materialize(
        [track_metadata],
        resources=resources,
        raise_on_error=False,
        run_config={"ops": {"track_metadata": {"config": {"requests_per_second": 0}}}},
    )
    assert not failed.success
    assert resources["warehouse"].count("track_metadata") == 0
    pipeline_sandbox.clear_faults()
    ok = dg.materialize(
        [track_metadata],
        resources=resources,
        run_config={"ops": {"track_metadata": {"config": {"requests_per_second": 0}}}},
    )
    assert _meta(ok, "track_metadata")["lookup_errors"] == 0
    assert _meta(ok, "track_metadata")["found"] > 0


def test_pacing_spaces_requests() -> None:
    from spotify_assets.assets.catalog import paced

    now = [0.0]
    slept: list[float] = []

    def clock() -> float:
        return now[0]

    import spotify_assets.assets.catalog as catalog

    original = catalog.time.sleep
    try:
        catalog.time.sleep = lambda s: (slept.append(s), now.__setitem__(0, now[0] + s))  # type: ignore[assignment]
        wait = paced(4.0, clock)
        for _ in range(5):
            wait()
    finally:
        catalog.time.sleep = original
    assert slept == pytest.approx([0.25] * 4)


# -- the cards -------------------------------------------------------------------------------
def test_cards_always_layer_a_placeholder_and_refuse_odd_urls() -> None:
    html = ui.card_grid_html(
        [
            {
                "rank": 1,
                "name": "A <b>song</b>",
                "sub": "x",
                "image": "https://i.scdn.co/image/abc",
                "id": "t1",
            },
            {"rank": 2, "name": "No cover", "sub": "y", "image": None, "id": None},
            {"rank": 3, "name": "Evil", "sub": "z", "image": "javascript:alert(1)')", "id": "t3"},
            {
                "rank": 4,
                "name": "Inline",
                "sub": "w",
                "image": "data:image/png;base64,iVBORw0K+/=",
                "id": "t4",
            },
            {
                "rank": 5,
                "name": "Odd",
                "sub": "v",
                "image": "data:image/svg+xml;utf8,<svg onload=x>')",
                "id": None,
            },
        ],
        "track",
    )
    arts = re.findall(r'class="sp-art"[^>]*style="([^"]*)"', html)
    assert "data:image/png;base64,iVBORw0K+/=" in arts[3]  # a base64 cover (no quote can occur in it)
    assert "onload" not in html  # anything else: the placeholder alone
    assert len(arts) == 5 and all(
        "data:image/svg+xml" in a for a in arts
    )  # the placeholder under every cover
    assert "https://i.scdn.co/image/abc" in arts[0]
    assert "javascript" not in html
    assert "A &lt;b&gt;song&lt;/b&gt;" in html and "<b>song" not in html
    assert 'href="./track?id=t1"' in html and 'href="./track?id=t3"' in html
    assert html.count("<a ") == 3  # no id, no link

"""Covers that reach no network: the sandbox's album and show art is inline, and nothing the
sandbox serves or the pipeline stores from it points a browser or the Wrapped card off loopback.

Tests and demos never reach the internet. A cover is the one address something fetches on its
own: the dashboard puts it into the page (each browser test's Chromium would ask Spotify's CDN)
and the Wrapped card downloads the top one on the server. So the sandbox draws its covers as
``data:`` PNGs, and this module guards every URL it serves and every URL the pipeline stores
from it. The browser side has its own guard: ``fixtures/dashboard.py``'s ``chromium()`` fails
the tests that used it when a page asked for any host off loopback.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import requests
from PIL import Image

from app import card, ui
from spotify_assets.assets import PIPELINE_GRAPH, audio_features, bq_plays, gcs_csv, raw_recent_tracks
from spotify_assets.schema import PLAYS_TABLE, TRACK_METADATA_TABLE
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN
from spotify_sandbox.catalogue import COVER_SIZES, N_ALBUMS, N_EPISODES, N_SHOWS, N_TRACKS, Catalogue
from spotify_sandbox.constants import DEFAULT_SEED
from spotify_sandbox.reccobeats import RECCOBEATS_AUDIO_FEATURES_PATH
from spotify_sandbox.server import SandboxServer

#: Keys whose values name a Spotify object as the real API does (``https://api.spotify.com/v1/...``
#: hrefs, ``open.spotify.com`` links): identifiers and links that nothing here fetches.
LINK_KEYS = frozenset({"href", "track_href", "analysis_url", "external_urls"})
URL_RE = re.compile(r"https?://[^\s\"'<>(),]+")
#: A cover stays small: it is in every track object of every page and in every stored play.
MAX_COVER_URL = 1024
INLINE_PNG = "data:image/png;base64,"


def off_loopback(url: str) -> bool:
    """Whether ``url`` names a host other than this machine's loopback."""
    host = urlsplit(url).hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def fetchable_urls_off_loopback(value: Any, path: str = "") -> Iterator[str]:
    """Every http(s) URL in a JSON value, outside ``LINK_KEYS``, whose host is off loopback
    (with where it sits, for the failure message)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in LINK_KEYS:
                yield from fetchable_urls_off_loopback(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from fetchable_urls_off_loopback(item, f"{path}[{n}]")
    elif isinstance(value, str):
        yield from (f"{path}: {url}" for url in URL_RE.findall(value) if off_loopback(url))


def covers(value: Any) -> Iterator[dict[str, Any]]:
    """Every entry of every ``images`` list in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "images" and isinstance(item, list):
                yield from item
            else:
                yield from covers(item)
    elif isinstance(value, list):
        for item in value:
            yield from covers(item)


def decoded(url: str) -> Image.Image:
    assert url.startswith(INLINE_PNG), url[:60]
    with Image.open(io.BytesIO(base64.b64decode(url.removeprefix(INLINE_PNG), validate=True))) as img:
        img.load()
        assert img.format == "PNG"
        return img.copy()


def test_every_cover_is_a_small_inline_png_of_the_size_it_declares() -> None:
    catalogue = Catalogue(DEFAULT_SEED)
    objects = [catalogue.track_json(i) for i in range(N_TRACKS)]
    objects += [catalogue.episode_json(i) for i in range(N_EPISODES)]
    images = list(covers(objects))
    # Each track's album has its three renditions; each episode its show's, twice (its own and the show's).
    assert len(images) == len(COVER_SIZES) * (N_TRACKS + 2 * N_EPISODES)
    for album in (o["album"] for o in objects if "album" in o):
        assert [(i["width"], i["height"]) for i in album["images"]] == [(s, s) for s in COVER_SIZES]
    for image in {i["url"]: i for i in images}.values():
        assert len(image["url"]) <= MAX_COVER_URL
        assert decoded(image["url"]).size == (image["width"], image["height"])
    # One cover per album and per show: a cover tells albums apart, as on Spotify.
    largest = {i["url"] for i in images if i["width"] == COVER_SIZES[0]}
    assert len(largest) == N_ALBUMS + N_SHOWS


def test_the_dashboard_and_the_card_show_a_sandbox_cover() -> None:
    """The page's cards put it into their CSS (not only the placeholder), and the Wrapped card
    draws it (not its drawn placeholder)."""
    url = Catalogue(DEFAULT_SEED).album_json(0)["images"][0]["url"]
    assert ui.cover_layers(url).startswith(f"url('{url}'), ")
    cover = card.cover_bytes(url)
    assert cover is not None
    drawn = Image.open(io.BytesIO(card.summary_png(card.WrappedSummary(2026, 1.0, 1, cover=cover))))
    expected = decoded(url).convert("RGB").resize((card.COVER, card.COVER))
    assert drawn.convert("RGB").crop(card.COVER_BOX).tobytes() == expected.tobytes()


def _bodies(sandbox: SandboxServer) -> list[Any]:
    """What the sandbox answers on every data endpoint, over HTTP as any client sees it."""
    session = requests.Session()

    def token(**form: str) -> str:
        answer = session.post(
            f"{sandbox.url}/api/token", data=form, auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), timeout=10
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    listener = token(grant_type="refresh_token", refresh_token=SANDBOX_REFRESH_TOKEN)
    user = {"Authorization": f"Bearer {listener}"}
    app = {"Authorization": f"Bearer {token(grant_type='client_credentials')}"}

    def get(url: str, headers: dict[str, str], **params: str) -> Any:
        answer = session.get(url, headers=headers, params=params, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.status_code != 204 else None

    pages: list[Any] = []
    url: str | None = f"{sandbox.url}/v1/me/player/recently-played?limit=50"
    while url and len(pages) < 5:  # its next links, as the client follows them
        pages.append(get(url, user))
        url = pages[-1]["next"]
    tracks = [i["track"] for page in pages for i in page["items"] if i["track"].get("type") == "track"]
    ids = sorted({t["id"] for t in tracks if t["id"]})  # a local file has none
    return [
        *pages,
        get(f"{sandbox.url}/v1/me", user),
        get(f"{sandbox.url}/v1/me/player/currently-playing", user),
        *(get(f"{sandbox.url}/v1/tracks/{track_id}", app) for track_id in ids[:20]),
        get(f"{sandbox.url}/v1/audio-features", app, ids=",".join(ids[:50])),
        get(f"{sandbox.url}{RECCOBEATS_AUDIO_FEATURES_PATH}", {}, ids=",".join(ids[:40])),
    ]


def _stored_urls_off_loopback(warehouse: Any) -> list[str]:
    """Every http(s) URL in any text column of any warehouse table whose host is off loopback."""
    columns = warehouse.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
    )
    found: list[str] = []
    for table, column in columns.itertuples(index=False):
        values = warehouse.query(
            f'SELECT DISTINCT "{column}" AS v FROM "{table}" WHERE regexp_matches("{column}", \'https?://\')'
        )
        found += [f"{table}.{column}: {u}" for v in values["v"] for u in URL_RE.findall(v) if off_loopback(u)]
    return found


def test_nothing_the_sandbox_serves_or_the_pipeline_stores_points_off_loopback(
    pipeline_sandbox: SandboxServer, data_dir: Path, tmp_path: Path
) -> None:
    """A real sandbox and the real pipeline on a temp data dir: polled plays (with episodes and
    local files), an imported export and the ``track_metadata`` lookups that give it covers."""
    from spotify_assets.assets.catalog import track_metadata
    from spotify_assets.deployments import local_resources
    from spotify_assets.import_run import import_export
    from spotify_sandbox.exports import extended_row_from_api_item
    from spotify_sandbox.resource import SandboxSpotifyResource

    pipeline_sandbox.configure(episode_ratio=0.1, local_file_ratio=0.05)
    bodies = _bodies(pipeline_sandbox)
    assert [u for b in bodies for u in fetchable_urls_off_loopback(b)] == []
    served = [i["url"] for i in covers(bodies)]
    assert served and all(u.startswith(INLINE_PNG) for u in served)

    # A restarted sandbox (another port) serves the same covers: the warehouse keeps them.
    with SandboxServer() as again:
        again.configure(episode_ratio=0.1, local_file_ratio=0.05)
        assert [i["url"] for i in covers(_bodies(again))] == served

    resources = local_resources(SandboxSpotifyResource(url=pipeline_sandbox.url))
    polled = materialize_user(
        PIPELINE_GRAPH,
        selection=[raw_recent_tracks, audio_features, gcs_csv, bq_plays],
        resources=resources,
    )
    assert polled.success
    history = pipeline_sandbox.plays_between(
        pipeline_sandbox.now() - pd.Timedelta(days=3), pipeline_sandbox.now()
    )
    export = tmp_path / "export"
    export.mkdir()
    (export / "Streaming_History_Audio_2026.json").write_text(
        json.dumps([extended_row_from_api_item(i) for i in history if i["track"]["type"] == "track"])
    )
    import_export(export, resources["warehouse"], resources["lake"])
    config = {"ops": {"track_metadata": {"config": {"max_tracks": 1000, "requests_per_second": 0}}}}
    looked_up = dg.materialize(
        [track_metadata],
        resources={k: resources[k] for k in ("spotify", "warehouse", "lake")},
        run_config=config,
    )
    assert looked_up.success

    warehouse = resources["warehouse"]
    assert _stored_urls_off_loopback(warehouse) == []
    for table in (PLAYS_TABLE, TRACK_METADATA_TABLE):  # not vacuous: both hold the sandbox's covers
        inline = warehouse.query(
            f"SELECT count(*) AS n FROM {table} WHERE starts_with(album_image_url, '{INLINE_PNG}')"
        )
        assert int(inline["n"].iloc[0]) > 0, table

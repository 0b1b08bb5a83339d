"""The Dagster resources: the sandbox resource runs the real HTTP client in an asset; secrets stay hidden."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from spotify_assets.resources.spotify import LiveSpotifyResource, SpotifyResource
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_sandbox import SandboxServer
from spotify_sandbox.resource import SandboxSpotifyResource


def test_embedded_sandbox_resource_serves_an_asset() -> None:
    @dg.asset
    def plays(spotify: SpotifyResource) -> int:
        client = spotify.get_client()
        assert spotify.get_client() is client  # one client per run
        items = client.recently_played()
        features = client.audio_features([i["track"]["id"] for i in items])
        return len(items) * 1000 + sum(v is not None for v in features.values())

    result = dg.materialize([plays], resources={"spotify": SandboxSpotifyResource()})
    assert result.success
    count = result.output_for_node("plays")
    assert count // 1000 == 50 and count % 1000 > 0


def test_sandbox_resource_with_url_uses_that_server(sandbox: SandboxServer) -> None:
    resource = SandboxSpotifyResource(url=sandbox.url)
    client = resource.get_client()
    assert isinstance(client, HttpSpotifyClient) and client.api_base_url == sandbox.url
    assert client.recently_played() == sandbox.recently_played_truth()
    assert sandbox.stats()["grant_types"] == {"refresh_token": 1}


def test_live_resource_uses_file_token_store_and_hides_secrets(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.json"
    resource = LiveSpotifyResource(
        client_id="sandbox-client-id",
        client_secret="sandbox-client-secret",
        refresh_token="sandbox-refresh-token",
        api_base_url=sandbox.url,
        accounts_base_url=sandbox.url,
        token_store_path=str(token_file),
    )
    assert "sandbox-client-secret" not in repr(resource) + str(resource)
    assert "sandbox-refresh-token" not in repr(resource) + str(resource)
    assert len(resource.get_client().recently_played()) == 50
    assert token_file.exists()  # the env token seeded the store

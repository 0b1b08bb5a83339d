"""The sandbox API as a Dagster resource: the live client, pointed at the sandbox.

Registered under the ``spotify_assets.spotify_fallback`` entry point (see ``pyproject.toml``),
so the runtime package picks it when no Spotify credentials are set without importing this
package: the dependency runs one way, from the test double to the code it stands in for.
"""

from __future__ import annotations

from pydantic import Field

from spotify_assets.resources.spotify import LiveSpotifyResource
from spotify_assets.spotify.token_store import FileTokenStore, MemoryTokenStore, TokenStore
from spotify_sandbox.constants import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN

_EMBEDDED_STORE = MemoryTokenStore()


class SandboxSpotifyResource(LiveSpotifyResource):
    """The sandbox API: ``url`` of a running ``spotify-assets sandbox``, or empty for an embedded one.

    Rotated refresh tokens persist across runs as they do against Spotify: in a 0600 file per
    sandbox URL under the data dir (``settings.DataLayout.sandbox_tokens``), never the user's real
    token file. Only the embedded sandbox, which dies with the process, keeps them in memory.
    """

    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = SANDBOX_CLIENT_SECRET
    refresh_token: str | None = SANDBOX_REFRESH_TOKEN
    url: str = Field(
        default="", description="Sandbox base URL; empty starts one embedded sandbox per process."
    )

    def _token_store(self) -> TokenStore:
        if self.token_store_path:
            return FileTokenStore(self.token_store_path)
        if self.url:
            return FileTokenStore(self.data_layout().sandbox_tokens(self.url))
        # The embedded sandbox lives as long as this process: one in-memory store for all its runs.
        return _EMBEDDED_STORE

    def _base_urls(self) -> tuple[str, str]:
        if self.url:
            return self.url.rstrip("/"), self.url.rstrip("/")
        from spotify_sandbox.server import embedded_sandbox

        sandbox = embedded_sandbox()
        return sandbox.api_url, sandbox.accounts_url


def sandbox_fallback(url: str = "", data_dir: str | None = None) -> SandboxSpotifyResource:
    """Entry point ``spotify_assets.spotify_fallback``: the sandbox when no credentials are set."""
    return SandboxSpotifyResource(url=url, data_dir=data_dir)

"""Dagster resources that hand the assets a ``SpotifyClient``.

``LiveSpotifyResource`` talks to Spotify; ``SandboxSpotifyResource`` runs the *same* HTTP client
against the sandbox API (an embedded one per process unless ``url`` names a running one), so
local mode exercises OAuth, retries and paging for real without an account.

Secrets: set ``client_secret`` and ``refresh_token`` from ``dg.EnvVar`` in the definitions, so
the Dagster UI shows the variable name, never the value. The sandbox defaults are public.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from spotify_assets.sandbox.constants import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN
from spotify_assets.settings import DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL, sandbox_token_path
from spotify_assets.spotify.client import HttpSpotifyClient, SpotifyClient
from spotify_assets.spotify.token_store import FileTokenStore, MemoryTokenStore, TokenStore

_SECRET_FIELDS = frozenset({"client_secret", "refresh_token"})
_EMBEDDED_STORE = MemoryTokenStore()


class SpotifyResource(dg.ConfigurableResource):
    """Gives assets a Spotify client; one client per resource instance (so per run)."""

    @abstractmethod
    def get_client(self) -> SpotifyClient: ...


class LiveSpotifyResource(SpotifyResource):
    """The Spotify Web API. Client Credentials for audio features, a refresh token for recently-played."""

    client_id: str = Field(description="Spotify app client id (dg.EnvVar('SPOTIFY_CLIENT_ID')).")
    client_secret: str = Field(description="Spotify app client secret; always from dg.EnvVar.")
    refresh_token: str | None = Field(
        default=None,
        description="Refresh token from `spotify-assets auth` (dg.EnvVar); the token store's rotated copy wins "
        "while this value is unchanged.",
    )
    api_base_url: str = Field(default=DEFAULT_API_URL, description="Web API base URL ($SPOTIFY_API_URL).")
    accounts_base_url: str = Field(
        default=DEFAULT_ACCOUNTS_URL, description="Accounts service base URL ($SPOTIFY_ACCOUNTS_URL)."
    )
    token_store_path: str | None = Field(
        default=None,
        description="Token store file; default $SPOTIFY_TOKEN_FILE or ~/.config/spotify-assets/token.json.",
    )
    timeout_s: float = 10.0
    max_retries: int = 4
    max_retry_wait_s: float = 60.0

    _client: HttpSpotifyClient | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Any:
        """Keep the secret and the refresh token out of repr()/str() (pydantic shows every field)."""
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name in _SECRET_FIELDS and value else value)

    def _token_store(self) -> TokenStore:
        return FileTokenStore(self.token_store_path)

    def _base_urls(self) -> tuple[str, str]:
        return self.api_base_url, self.accounts_base_url

    def get_client(self) -> SpotifyClient:
        if self._client is None:
            api_url, accounts_url = self._base_urls()
            self._client = HttpSpotifyClient(
                self.client_id,
                self.client_secret,
                self.refresh_token,
                api_base_url=api_url,
                accounts_base_url=accounts_url,
                token_store=self._token_store(),
                timeout_s=self.timeout_s,
                max_retries=self.max_retries,
                max_retry_wait_s=self.max_retry_wait_s,
            )
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class SandboxSpotifyResource(LiveSpotifyResource):
    """The sandbox API: ``url`` of a running ``spotify-assets sandbox``, or empty for an embedded one.

    Rotated refresh tokens persist across runs as they do against Spotify: in a 0600 file per
    sandbox URL under the data dir (``settings.sandbox_token_path``), never the user's real
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
            return FileTokenStore(sandbox_token_path(self.url))
        # The embedded sandbox lives as long as this process: one in-memory store for all its runs.
        return _EMBEDDED_STORE

    def _base_urls(self) -> tuple[str, str]:
        if self.url:
            return self.url.rstrip("/"), self.url.rstrip("/")
        from spotify_assets.sandbox.server import embedded_sandbox

        sandbox = embedded_sandbox()
        return sandbox.api_url, sandbox.accounts_url

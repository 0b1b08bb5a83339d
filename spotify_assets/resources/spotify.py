"""Dagster resources that hand the assets a ``SpotifyClient``.

``LiveSpotifyResource`` talks to Spotify, or to any server with Spotify's endpoints at the base
URLs it is given. The sandbox API's resource (``spotify_sandbox.resource``) subclasses it, so
local mode runs the *same* HTTP client (OAuth, retries, paging) without an account; this
package never imports the sandbox (``deployments.py`` finds it through an entry point).

Secrets: set ``client_secret`` and ``refresh_token`` from ``dg.EnvVar`` in the definitions, so
the Dagster UI shows the variable name, never the value. The sandbox defaults are public.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from spotify_assets.settings import DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL, DataLayout, layout
from spotify_assets.spotify.client import HttpSpotifyClient, SpotifyClient
from spotify_assets.spotify.rate_gate import RateGate, app_slug
from spotify_assets.spotify.token_store import FileTokenStore, TokenStore

_SECRET_FIELDS = frozenset({"client_secret", "refresh_token"})


class SpotifyResource(dg.ConfigurableResource):
    """Gives assets a Spotify client; one client per resource instance (so per run)."""

    data_dir: str | None = Field(
        default=None,
        description="The data directory (the household registry, the shared rate-limit state); set by "
        "deployments.py from $SPOTIFY_DATA_DIR, so a run never reads the environment for it.",
    )

    def data_layout(self) -> DataLayout:
        """The paths under this resource's data directory (``settings.layout``'s default when unset)."""
        return layout(self.data_dir)

    @abstractmethod
    def get_client(self) -> SpotifyClient: ...

    @abstractmethod
    def get_user_client(self, user_id: str, token_store: TokenStore) -> SpotifyClient:
        """A client for one listener of the household, refreshing with the token in ``token_store``
        (the user's own 0600 file), so a revoked or rotated token never touches another user."""


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
    share_rate_limits: bool = Field(
        default=True,
        description="Keep a 429's Retry-After in the data directory for every run and listener of this app "
        "(Spotify's limits are per app); off only for a client that must not read or write the data directory.",
    )

    _client: HttpSpotifyClient | None = PrivateAttr(default=None)
    _user_clients: dict[str, HttpSpotifyClient] = PrivateAttr(default_factory=dict)

    def __repr_args__(self) -> Any:
        """Keep the secret and the refresh token out of repr()/str() (pydantic shows every field)."""
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name in _SECRET_FIELDS and value else value)

    def _token_store(self) -> TokenStore:
        return FileTokenStore(self.token_store_path)

    def _base_urls(self) -> tuple[str, str]:
        return self.api_base_url, self.accounts_base_url

    def _http_client(self, refresh_token: str | None, token_store: TokenStore) -> HttpSpotifyClient:
        api_url, accounts_url = self._base_urls()
        return HttpSpotifyClient(
            self.client_id,
            self.client_secret,
            refresh_token,
            api_base_url=api_url,
            accounts_base_url=accounts_url,
            token_store=token_store,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            max_retry_wait_s=self.max_retry_wait_s,
            rate_gate=RateGate(self.data_layout().rate_limit(app_slug(api_url, self.client_id)))
            if self.share_rate_limits
            else None,
        )

    def get_client(self) -> SpotifyClient:
        if self._client is None:
            self._client = self._http_client(self.refresh_token, self._token_store())
        return self._client

    def get_user_client(self, user_id: str, token_store: TokenStore) -> SpotifyClient:
        # No env token: the user's store is the only source of their refresh token.
        if user_id not in self._user_clients:
            self._user_clients[user_id] = self._http_client(None, token_store)
        return self._user_clients[user_id]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for client in [self._client, *self._user_clients.values()]:
            if client is not None:
                client.close()
        self._client = None
        self._user_clients.clear()

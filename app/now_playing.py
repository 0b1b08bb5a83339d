"""Overview's "Now playing": what the listener is playing at this moment, refreshed in place.

Asked of Spotify (``GET /v1/me/player/currently-playing``, scope ``user-read-currently-playing``)
every ``REFRESH_S`` seconds by a Streamlit fragment, which reruns only itself, not the page and
its queries. The client is the pipeline's own (``deployments.spotify_resource``: the
real API with credentials, else the sandbox at ``SPOTIFY_SANDBOX_URL``), reading the listener's
refresh token from their token store (the registry's file for a household member, the
single-user store otherwise) and kept per listener for the session's life, so a refresh costs
one API call, not a token exchange. A token given before the scope was asked for answers 403:
the widget says, in one line, to run ``spotify-assets auth`` again. Tokens never reach the page
or the log; an error shows its kind, not its text.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

import streamlit as st

from spotify_assets.spotify.client import SpotifyClient
from spotify_assets.spotify.errors import SpotifyAPIError, SpotifyError

REFRESH_S = 30
#: What the widget says to a listener whose token lacks the scope.
RERUN_AUTH = (
    "Now playing needs one more permission: run `spotify-assets auth` again "
    "(`spotify-assets users add NAME` for a household member)."
)


def configured() -> bool:
    """Whether there is an API to ask: Spotify credentials, or a running sandbox's URL (the
    dashboard never starts a sandbox of its own)."""
    return bool(os.environ.get("SPOTIFY_CLIENT_ID") or os.environ.get("SPOTIFY_SANDBOX_URL"))


@st.cache_resource(show_spinner=False)
def _client(user_id: str | None) -> SpotifyClient:
    """The listener's client (``None``: the single-user token store's), kept for the session."""
    import dagster as dg

    from spotify_assets.deployments import spotify_resource
    from spotify_assets.users.registry import UserRegistry

    stack = ExitStack()  # lives as long as the cached client: closing it would close the client
    spotify = stack.enter_context(dg.build_resources({"spotify": spotify_resource()})).spotify
    registry = UserRegistry()
    user = registry.by_user_id(user_id) if user_id else None
    if user is not None:
        return spotify.get_user_client(user.user_id, registry.token_store(user.name))  # type: ignore[no-any-return]
    return spotify.get_client()  # type: ignore[no-any-return]


def _line(playing: dict[str, Any]) -> tuple[str, float | None]:
    """``**Track** - Artist, Artist`` and the progress (0-1, None when unknown)."""
    raw = playing.get("item")
    item: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = str(item.get("name") or "an unknown track")
    artists = ", ".join(
        str(a.get("name")) for a in item.get("artists") or [] if isinstance(a, dict) and a.get("name")
    )
    duration, progress = item.get("duration_ms"), playing.get("progress_ms")
    share = (
        min(1.0, max(0.0, progress / duration))
        if isinstance(duration, int) and duration > 0 and isinstance(progress, int)
        else None
    )
    return (f"**{name}**" + (f" - {artists}" if artists else "")), share


def render(user_id: str | None) -> None:
    """The widget's content, once (the fragment below calls it every ``REFRESH_S`` seconds)."""
    try:
        playing = _client(user_id).currently_playing()
    except SpotifyAPIError as exc:
        if exc.status == 403:
            st.caption(RERUN_AUTH)
        else:
            st.caption(f"Now playing: Spotify did not answer ({type(exc).__name__}).")
        return
    except SpotifyError as exc:
        st.caption(f"Now playing: Spotify did not answer ({type(exc).__name__}).")
        return
    if not playing or not playing.get("is_playing", True):
        st.caption("Now playing: nothing right now.")
        return
    line, share = _line(playing)
    st.markdown(f"Now playing: {line}")
    if share is not None:
        st.progress(share)


@st.fragment(run_every=REFRESH_S)
def now_playing(user_id: str | None) -> None:
    """Overview's widget: what ``user_id`` (None: the single listener) plays now, every 30 s."""
    if configured():
        render(user_id)

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

A listener's scrobbler can say it too: a ``playing_now`` sent to the door (``spotify-assets
scrobble-server``) is kept in a small file (``scrobbles/now_playing.py``), shown while the track
should still be playing. Spotify's answer wins when it has one; the scrobbler's is shown when
Spotify plays nothing (another player: vinyl, local files) or is not configured at all.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import UTC, datetime
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


def door_line(user_id: str | None, now: datetime | None = None) -> str | None:
    """``**Track** - Artist`` of what ``user_id``'s scrobbler said is playing, if it still is."""
    if not user_id:
        return None  # the door knows listeners by name: a household member, not "everyone"
    from spotify_assets.scrobbles.now_playing import current
    from spotify_assets.settings import layout

    try:
        path = layout().now_playing(user_id)
    except ValueError:
        return None
    listen = current(path, now or datetime.now(UTC))
    raw = listen.get("track_metadata") if listen else None
    if not isinstance(raw, dict):
        return None
    from app.ui import md_escape

    # The names are what a scrobbler sent: shown as text, never as Markdown.
    name = md_escape(str(raw.get("track_name") or "an unknown track"))
    artist = md_escape(str(raw.get("artist_name") or ""))
    return f"**{name}**" + (f" - {artist}" if artist else "")


def render(user_id: str | None) -> None:
    """The widget's content, once (the fragment below calls it every ``REFRESH_S`` seconds)."""
    note = None
    if configured():
        playing = None
        try:
            playing = _client(user_id).currently_playing()
        except SpotifyAPIError as exc:
            note = (
                RERUN_AUTH
                if exc.status == 403
                else f"Now playing: Spotify did not answer ({type(exc).__name__})."
            )
        except SpotifyError as exc:
            note = f"Now playing: Spotify did not answer ({type(exc).__name__})."
        if playing and playing.get("is_playing", True):
            line, share = _line(playing)
            st.markdown(f"Now playing: {line}")
            if share is not None:
                st.progress(share)
            return
    door = door_line(user_id)
    if door:
        st.markdown(f"Now playing: {door} (sent by your scrobbler)")
    elif note:
        st.caption(note)
    elif configured():
        st.caption("Now playing: nothing right now.")


@st.fragment(run_every=REFRESH_S)
def now_playing(user_id: str | None) -> None:
    """Overview's widget: what ``user_id`` (None: the single listener) plays now, every 30 s."""
    if configured() or user_id:
        render(user_id)

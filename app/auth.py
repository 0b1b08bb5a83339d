"""Who may see the dashboard: a login (OpenID Connect, ``st.login``) once it is shared.

On loopback with no login configured the dashboard is the owner's own and opens directly.
Served beyond loopback it needs one: ``app/serve.py`` refuses to start without it, and the
app itself refuses to show a page (for a bare ``streamlit run --server.address 0.0.0.0``).

The login is configured in one TOML file, ``SPOTIFY_DASHBOARD_SECRETS`` (mode 0600, never
committed: it holds the client secret and the cookie secret), which Streamlit reads as its
secrets file::

    [auth]                  # Streamlit's own section for st.login
    redirect_uri = "https://listening.example.org/oauth2callback"
    cookie_secret = "a long random string"
    client_id = "..."
    client_secret = "..."
    server_metadata_url = "https://accounts.google.com/.well-known/openid-configuration"

    [accounts]              # the signed-in e-mail = the listener whose plays it sees
    "alice@example.org" = "me"

    [household]             # listeners who opted in to household-wide views
    listeners = ["me"]

Every account not listed is refused, with a message saying so. In a household (several
listeners with plays) an allowed account sees only its listener's plays, and
``may_see_household(current_viewer())`` is what a household-wide view (*Everyone* in the
listener picker, the Compare page) asks before it shows anything; ``app/listeners.py`` and
``ui.listener_picker`` apply the rule, with one listener in the warehouse as with several: an
account whose listener has no plays there sees none (not the one listener's).
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The TOML file with the login's settings (``[auth]``, ``[accounts]``, ``[household]``).
SECRETS_ENV = "SPOTIFY_DASHBOARD_SECRETS"
#: Where ``gate`` keeps the signed-in viewer for the pages (``current_viewer``).
VIEWER_KEY = "_viewer"
#: What Streamlit's ``st.login`` needs in ``[auth]`` for one OpenID Connect provider.
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
HELP = (
    f"set {SECRETS_ENV} to a TOML file readable only by you (chmod 600) with an [auth] section "
    f"({', '.join(AUTH_KEYS)}) and an [accounts] section mapping each allowed e-mail to a "
    'listener (see README "Sharing the dashboard")'
)


@dataclass(frozen=True)
class Viewer:
    """A signed-in, allowed account: whose plays it sees, and whether household-wide views too."""

    email: str
    listener: str
    household: bool


def may_see_household(viewer: Viewer | None) -> bool:
    """Whether household-wide views (the Compare page, the all-users top ten) may be shown:
    to the owner on an unshared dashboard (``None``) and to listeners who opted in."""
    return viewer is None or viewer.household


def current_viewer() -> Viewer | None:
    """The viewer ``gate`` let in on this session (``None``: the owner, no login), for pages."""
    import streamlit as st

    viewer = st.session_state.get(VIEWER_KEY)
    return viewer if isinstance(viewer, Viewer) else None


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; unset (every interface) or a name is beyond."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def accounts(settings: Mapping[str, Any]) -> dict[str, Viewer]:
    """The allowed accounts of ``settings`` (the parsed TOML), by lower-cased e-mail."""
    household = {str(name) for name in settings.get("household", {}).get("listeners", [])}
    return {
        str(email).strip().lower(): Viewer(
            str(email).strip().lower(), str(listener), str(listener) in household
        )
        for email, listener in settings.get("accounts", {}).items()
    }


def problems(settings: Mapping[str, Any]) -> list[str]:
    """What is missing for a login, in words; empty when ``settings`` configure one."""
    auth = settings.get("auth", {})
    out = [f"[auth] {key} is not set" for key in AUTH_KEYS if not str(auth.get(key, "")).strip()]
    if not accounts(settings):
        out.append("[accounts] lists no allowed account")
    return out


def read_settings(path: Path) -> dict[str, Any]:
    """The login's TOML file; refused when others may read it (it holds the client secret)."""
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise PermissionError(f"{path} is readable by others: chmod 600 {path}")
    with path.open("rb") as fh:
        return tomllib.load(fh)


def check_login_configured(address: str) -> tuple[Path | None, list[str]]:
    """For ``app/serve.py``: the secrets file to hand Streamlit, and why it cannot start (if so).

    Beyond loopback a complete login is required; on loopback one is used when configured.
    """
    configured = os.environ.get(SECRETS_ENV, "").strip()
    if not configured:
        return None, [] if is_loopback(address) else [f"{SECRETS_ENV} is not set"]
    path = Path(configured).expanduser()
    try:
        missing = problems(read_settings(path))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        missing = [str(exc)]
    return path, missing


def gate() -> Viewer | None:
    """Run at the top of every page: ``None`` on an owner's loopback dashboard with no login,
    the signed-in ``Viewer`` otherwise; anything else ends the page (``st.stop``)."""
    import streamlit as st

    try:
        settings: Mapping[str, Any] = st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except Exception:  # a broken secrets file: treated as no login, refused below when shared
        settings = {}
    if problems(settings):
        # ``app/serve.py`` always passes the address and app/.streamlit/config.toml pins
        # 127.0.0.1 for a bare ``streamlit run``, so unset means no server (``AppTest``).
        address = st.get_option("server.address")
        if address is None or is_loopback(address):
            return None
        st.error(
            f"This dashboard is served beyond this machine without a login, so it shows nothing: {HELP}."
        )
        st.stop()
    if not st.user.is_logged_in:
        st.title("Listening insights")
        st.write("This listening history is private. Sign in to see it.")
        st.button("Sign in", type="primary", on_click=st.login)
        st.stop()
    email = str(st.user.get("email") or "").strip().lower()
    viewer = accounts(settings).get(email)
    if viewer is None:
        st.title("Not shared with this account")
        st.error(
            f"This dashboard is not shared with {email or 'an account without an e-mail address'}. "
            "Ask its owner to add you, or sign in with another account."
        )
        st.button("Sign out", on_click=st.logout)
        st.stop()
    st.session_state[VIEWER_KEY] = viewer
    with st.sidebar:
        st.caption(f"Signed in as **{viewer.email}**")
        st.button("Sign out", on_click=st.logout)
    return viewer

"""Who the listeners are, for the picker: labels from the household registry, and who may see whom.

The pipeline's registry (``spotify-assets users``) is ``$SPOTIFY_DATA_DIR/users/users.json``
(format: ``spotify_assets.users.registry_file``);
it names each listener (``alice``), their Spotify user id (the key of their plays) and a
display name. The dashboard only reads that file's labels (no Dagster, no token is ever
opened); a listener missing from it is labelled by their Spotify id. The warehouse decides
who is listed: the listeners with plays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.auth import Viewer, may_see_household
from spotify_assets.settings import layout
from spotify_assets.users.registry_file import read_users, registry_path


@dataclass(frozen=True)
class Listener:
    """A listener as the registry knows them (``name`` and ``display_name`` may be empty)."""

    user_id: str
    name: str = ""
    display_name: str = ""

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.user_id


def registry(path: Path | None = None) -> dict[str, Listener]:
    """The registry's listeners by Spotify id; empty when there is no (readable) registry file.

    The file's format is read by ``spotify_assets.users.registry_file``, as the pipeline reads it."""
    try:
        users = read_users(path or registry_path(layout().users))
    except (OSError, ValueError):
        return {}
    return {u.user_id: Listener(u.user_id, u.name, u.display_name) for u in users}


def resolve(raw: str | None, known: Mapping[str, Listener]) -> str | None:
    """A Spotify id for ``raw`` (an id, or a registry name such as ``alice``); ``None`` if unknown."""
    if not raw:
        return None
    if raw in known:
        return raw
    return next((uid for uid, who in known.items() if who.name == raw), None)


def own_id(viewer: Viewer, known: Mapping[str, Listener]) -> str:
    """The Spotify id of a signed-in viewer's listener (``[accounts]`` names a listener by name or id)."""
    return resolve(viewer.listener, known) or viewer.listener


def visible(viewer: Viewer | None, ids: Sequence[str], known: Mapping[str, Listener]) -> list[str]:
    """Whose plays ``viewer`` may see: everyone's for the owner and household members, else only their own."""
    if may_see_household(viewer):
        return list(ids)
    assert viewer is not None
    mine = own_id(viewer, known)
    return [uid for uid in ids if uid == mine]

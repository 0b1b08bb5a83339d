"""The household: who this installation polls, each with their own refresh token.

Spotify's development mode lets one app serve five users, so one installation serves a
household. Each listener has a local *name* (what the commands take, ``alice``) and a Spotify
user id (from ``GET /v1/me``): the id is the key their plays are kept under and the Dagster
partition they run in; the name and the display name are labels.

The registry is one JSON file under the data directory (``settings.users_root()``), written
atomically under a lock file; each user's refresh token lives in its own 0600 token store
beside it (``tokens/<name>.json``, the same ``FileTokenStore`` the single-user token uses),
so a revoked or rotated token of one person never touches another's. The registry holds
no secret; it is 0600 anyway, since it names the people in the household.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from spotify_assets.file_lock import exclusive_lock
from spotify_assets.settings import users_root
from spotify_assets.spotify.client import SpotifyUser
from spotify_assets.spotify.token_store import FileTokenStore, write_private_json
from spotify_assets.users.registry_file import (
    REGISTRY_FILE,
    RegistryUnreadable,
    User,
    read_users,
    registry_path,
    registry_payload,
)

__all__ = ["REGISTRY_FILE", "TOKENS_DIR", "User", "UserError", "UserRegistry", "check_name", "token_path"]

TOKENS_DIR = "tokens"
#: A name is a handle on the command line and in file names: short, lowercase, no path characters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class UserError(ValueError):
    """A registry request that cannot be met; the message says why and what to do."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"{name!r} is not a usable user name: use 1-32 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def token_path(name: str, root: Path | None = None) -> Path:
    return (root or users_root()) / TOKENS_DIR / f"{check_name(name)}.json"


class UserRegistry:
    """The registry file under ``root`` (default ``settings.users_root()``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or users_root()
        self.path = registry_path(self.root)

    def __repr__(self) -> str:
        return f"UserRegistry(path={str(self.path)!r})"

    # -- questions ----------------------------------------------------------------------------------

    def users(self) -> list[User]:
        """Every registered user, in the order they were added (``registry_file`` reads the format)."""
        try:
            return read_users(self.path)
        except RegistryUnreadable as exc:
            raise UserError(str(exc)) from None

    def get(self, name: str) -> User:
        for user in self.users():
            if user.name == name:
                return user
        known = ", ".join(u.name for u in self.users()) or "none yet"
        raise UserError(
            f"no user named {name!r} (known: {known}); add one with `spotify-assets users add NAME`"
        )

    def by_user_id(self, user_id: str) -> User | None:
        return next((u for u in self.users() if u.user_id == user_id), None)

    def token_store(self, name: str) -> FileTokenStore:
        return FileTokenStore(token_path(name, self.root))

    # -- changes ------------------------------------------------------------------------------------

    def add(self, name: str, who: SpotifyUser, refresh_token: str, scope: str | None = None) -> User:
        """Register ``name`` as Spotify user ``who`` and store their refresh token (0600).

        Refuses a name already taken and a Spotify account already registered under another
        name: one person's plays must have one key, or the household's counts double.
        """
        check_name(name)
        with self._locked():
            users = self.users()
            if any(u.name == name for u in users):
                raise UserError(f"a user named {name!r} exists already; remove it first or pick another name")
            same = next((u for u in users if u.user_id == who.id), None)
            if same is not None:
                raise UserError(
                    f"Spotify user {who.id!r} is registered already, as {same.name!r}; one person is one user"
                )
            self.token_store(name).save(refresh_token, env_sha256=None, scope=scope)
            user = User(name, who.id, who.display_name, datetime.now(UTC).isoformat(timespec="seconds"))
            self._write([*users, user])
        return user

    def remove(self, name: str) -> User:
        """Forget ``name`` and delete their token file and its lock file (polling them stops);
        their plays stay. The lock file (``FileTokenStore.locked``) is empty, but its name is
        theirs: left behind, it would say who lived here after ``--delete-data``."""
        with self._locked():
            user = self.get(name)
            self._write([u for u in self.users() if u.name != name])
            token = token_path(name, self.root)
            for path in (token, token.with_name(token.name + ".lock")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return user

    # -- storage ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: two `users add` at once must not lose one of them."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with exclusive_lock(self.root / (REGISTRY_FILE + ".lock")):
            yield

    def _write(self, users: list[User]) -> None:
        write_private_json(self.path, registry_payload(users), prefix=".users-", indent=2)

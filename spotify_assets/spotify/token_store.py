"""Where the refresh token lives between runs: a 0600 JSON file (or memory, for the sandbox).

Spotify may hand back a *new* refresh token on refresh (rotation), after which the old one
stops working; so the token that works tomorrow is the last one we were given, not the one
in the environment. Precedence:

* a token in the environment (``SPOTIFY_REFRESH_TOKEN``, passed in as ``env_token``) seeds
  the store; the record keeps the sha256 of that env value (its *lineage*);
* while the env value is unchanged, the stored (possibly rotated) descendant wins;
* when the user puts a different token in the environment, its hash no longer matches and
  the new env token wins over the stale stored one.

The file is written atomically (temp file + ``os.replace``) with mode 0600 set before any
data is written, and cross-process refreshes are serialised with a lock file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from spotify_assets.file_lock import exclusive_lock

log = logging.getLogger(__name__)

APP_DIR = "spotify-assets"
TOKEN_FILE_ENV = "SPOTIFY_TOKEN_FILE"  # noqa: S105 - the name of an env var, not a token


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_token_path() -> Path:
    """``$SPOTIFY_TOKEN_FILE``, else ``$XDG_CONFIG_HOME/spotify-assets/token.json`` (~/.config by default)."""
    explicit = os.environ.get(TOKEN_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home).expanduser() / APP_DIR / "token.json"


@dataclass(frozen=True)
class StoredToken:
    refresh_token: str = field(repr=False)
    env_sha256: str | None = None
    scope: str | None = None
    updated_at: str = ""

    def __repr__(self) -> str:
        return f"StoredToken(refresh_token=<redacted>, env_sha256={self.env_sha256!r}, updated_at={self.updated_at!r})"


@dataclass(frozen=True)
class ResolvedToken:
    """The refresh token to use now and the env lineage to record if it gets rotated."""

    refresh_token: str = field(repr=False)
    env_sha256: str | None

    def __repr__(self) -> str:
        return f"ResolvedToken(refresh_token=<redacted>, env_sha256={self.env_sha256!r})"


class TokenStore:
    """Base: resolution and rotation logic over abstract load/save."""

    def load(self) -> StoredToken | None:
        raise NotImplementedError

    def save(self, refresh_token: str, *, env_sha256: str | None, scope: str | None = None) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock for a read-refresh-write cycle."""
        yield

    @property
    def location(self) -> str:
        return "memory"

    def resolve(self, env_token: str | None) -> ResolvedToken | None:
        """The refresh token to use now, following the precedence in the module docstring."""
        stored = self.load()
        if env_token:
            lineage = token_sha256(env_token)
            if stored is not None and stored.env_sha256 == lineage:
                return ResolvedToken(stored.refresh_token, lineage)
            try:
                self.save(env_token, env_sha256=lineage)
            except OSError as exc:
                log.warning(
                    "Could not seed the token store at %s (%s); using the env token", self.location, exc
                )
            return ResolvedToken(env_token, lineage)
        if stored is not None:
            return ResolvedToken(stored.refresh_token, stored.env_sha256)
        return None


class MemoryTokenStore(TokenStore):
    """Keeps the token for the life of the process (sandbox runs must not touch the user's file)."""

    def __init__(self) -> None:
        self._token: StoredToken | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryTokenStore()"

    def load(self) -> StoredToken | None:
        return self._token

    def save(self, refresh_token: str, *, env_sha256: str | None, scope: str | None = None) -> None:
        self._token = StoredToken(refresh_token, env_sha256, scope, datetime.now(UTC).isoformat())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield


def write_private_json(path: Path, payload: object, *, prefix: str, indent: int | None = None) -> None:
    """Write ``payload`` as JSON to ``path`` readable by its owner only, atomically.

    The temp file is made 0600 before a single byte is written (a token or a household's
    registry must never be readable by others, even for a moment), fsynced, then renamed
    over ``path``, so a crash leaves the old file or the new one, never half of either.
    """
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=indent)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class FileTokenStore(TokenStore):
    """A JSON file, mode 0600, in a 0700 directory."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_token_path()
        self._thread_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileTokenStore(path={str(self.path)!r})"

    @property
    def location(self) -> str:
        return str(self.path)

    def load(self) -> StoredToken | None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable token store %s (%s)", self.path, type(exc).__name__)
            return None
        if not isinstance(raw, dict) or not raw.get("refresh_token"):
            return None
        return StoredToken(
            refresh_token=str(raw["refresh_token"]),
            env_sha256=raw.get("env_sha256"),
            scope=raw.get("scope"),
            updated_at=str(raw.get("updated_at", "")),
        )

    def save(self, refresh_token: str, *, env_sha256: str | None, scope: str | None = None) -> None:
        payload = {
            "refresh_token": refresh_token,
            "env_sha256": env_sha256,
            "scope": scope,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_json(self.path, payload, prefix=".token-")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            lock = exclusive_lock(self.path.with_name(self.path.name + ".lock"))
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                lock.acquire()
            except OSError as exc:
                log.warning("Token store lock unavailable (%s); continuing without it", type(exc).__name__)
                yield
                return
            try:
                yield
            finally:
                lock.release()

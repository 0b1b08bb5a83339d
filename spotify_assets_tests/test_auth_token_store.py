"""The refresh-token store: precedence between env and stored tokens, file mode, atomic writes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from spotify_assets.spotify.token_store import (
    FileTokenStore,
    MemoryTokenStore,
    default_token_path,
    token_sha256,
)


def test_env_token_seeds_the_store_with_mode_0600(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "a" / "b" / "token.json")
    resolved = store.resolve("env-token-1")
    assert resolved is not None and resolved.refresh_token == "env-token-1"
    raw = json.loads(store.path.read_text())
    assert raw["refresh_token"] == "env-token-1" and raw["env_sha256"] == token_sha256("env-token-1")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir()] == ["token.json"]  # no temp files left behind


def test_rotated_descendant_wins_while_env_is_unchanged(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    store.resolve("env-token-1")
    store.save("rotated-2", env_sha256=token_sha256("env-token-1"))
    resolved = store.resolve("env-token-1")
    assert resolved is not None and resolved.refresh_token == "rotated-2"


def test_new_env_token_wins_over_stale_rotated_one(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    store.save("rotated-2", env_sha256=token_sha256("env-token-1"))
    resolved = store.resolve("env-token-NEW")
    assert resolved is not None and resolved.refresh_token == "env-token-NEW"
    assert json.loads(store.path.read_text())["refresh_token"] == "env-token-NEW"


def test_no_env_uses_stored_and_nothing_gives_none(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    assert store.resolve(None) is None
    store.save("from-auth", env_sha256=None)
    resolved = store.resolve(None)
    assert resolved is not None and resolved.refresh_token == "from-auth"


def test_unreadable_store_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    path.write_text("{not json")
    assert FileTokenStore(path).load() is None


def test_reprs_hide_tokens(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    store.save("secret-refresh", env_sha256=None)
    loaded = store.load()
    assert loaded is not None and "secret-refresh" not in repr(loaded)
    resolved = store.resolve(None)
    assert "secret-refresh" not in repr(resolved)
    memory = MemoryTokenStore()
    memory.save("secret-refresh", env_sha256=None)
    assert "secret-refresh" not in repr(memory)


def test_default_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPOTIFY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_token_path() == tmp_path / "xdg" / "spotify-assets" / "token.json"
    monkeypatch.setenv("SPOTIFY_TOKEN_FILE", str(tmp_path / "explicit.json"))
    assert default_token_path() == tmp_path / "explicit.json"
    monkeypatch.delenv("SPOTIFY_TOKEN_FILE")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_token_path() == tmp_path / "home" / ".config" / "spotify-assets" / "token.json"

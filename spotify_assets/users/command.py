"""``spotify-assets users add|list|remove``: the listeners of this installation.

``add NAME`` runs the Authorization Code flow for that person (as ``spotify-assets auth``
does), asks ``GET /v1/me`` whose token it is, stores the refresh token in the user's own
0600 file and adds the user's Dagster partition. ``remove NAME`` deletes the partition and
the token (nobody polls them any more); their plays stay. ``list`` shows who is registered
and whether their token is there. Exit status: 0 done, 1 refused or failed, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spotify_assets.settings import dagster_home, data_dir, spotify_api_url, users_root
from spotify_assets.spotify.auth import (
    AuthorizationFailed,
    add_flow_arguments,
    app_credentials,
    run_authorization_flow,
)
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_assets.spotify.errors import SpotifyError
from spotify_assets.spotify.token_store import MemoryTokenStore
from spotify_assets.users.registry import User, UserError, UserRegistry, check_name


def sync_partitions(data: Path, *, add: list[str] | None = None, delete: list[str] | None = None) -> None:
    """Add/delete ``users`` partitions on the local Dagster instance (``settings.dagster_home``)."""
    import dagster as dg

    from spotify_assets.partitions import USERS_PARTITIONS_NAME

    home = dagster_home(data)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if add:
            instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, add)
        for key in delete or []:
            if instance.has_dynamic_partition(USERS_PARTITIONS_NAME, key):
                instance.delete_dynamic_partition(USERS_PARTITIONS_NAME, key)


def register(
    registry: UserRegistry,
    name: str,
    refresh_token: str,
    *,
    client_id: str,
    client_secret: str,
    api_url: str,
    accounts_url: str,
    scope: str | None = None,
) -> User:
    """Ask ``/v1/me`` whose ``refresh_token`` this is and register them as ``name``.

    The token may rotate on that first refresh, so the one stored is the latest one Spotify gave.
    """
    store = MemoryTokenStore()
    store.save(refresh_token, env_sha256=None, scope=scope)
    with HttpSpotifyClient(
        client_id, client_secret, api_base_url=api_url, accounts_base_url=accounts_url, token_store=store
    ) as client:
        who = client.me()
    latest = store.load()
    return registry.add(name, who, latest.refresh_token if latest else refresh_token, scope)


def _add(args: argparse.Namespace, data: Path) -> int:
    registry = UserRegistry(users_root(data))
    try:
        check_name(args.name)
        if any(u.name == args.name for u in registry.users()):
            raise UserError(
                f"a user named {args.name!r} exists already; remove it first or pick another name"
            )
        client_id, client_secret = app_credentials()
        answer = run_authorization_flow(args, client_id, client_secret)
        user = register(
            registry,
            args.name,
            str(answer["refresh_token"]),
            client_id=client_id,
            client_secret=client_secret,
            api_url=args.api_url,
            accounts_url=args.accounts_url,
            scope=answer.get("scope"),
        )
    except AuthorizationFailed as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except (UserError, SpotifyError) as exc:
        print(f"spotify-assets users add: {exc}", file=sys.stderr)
        return 1
    sync_partitions(data, add=[user.user_id])
    print(
        f"Added {user.name}: Spotify user {user.user_id} ({user.display_name}); refresh token in "
        f"{registry.token_store(user.name).path} (mode 0600); Dagster partition {user.user_id!r}."
    )
    return 0


def _newest_plays(data: Path, users: list[User]) -> dict[str, str]:
    """Each user's newest play in the local warehouse ("-" for none, or no local warehouse)."""
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.settings import warehouse_path

    db = warehouse_path({"SPOTIFY_DATA_DIR": str(data)})
    if not db.exists():
        return {}
    warehouse = DuckDBWarehouseResource(path=str(db))
    newest = {u.user_id: warehouse.max_played_at(u.user_id) for u in users}
    return {k: f"{v:%Y-%m-%d %H:%M}Z" for k, v in newest.items() if v is not None}


def _list(registry: UserRegistry, data: Path) -> int:
    users = registry.users()
    if not users:
        print("No users yet; add one with `spotify-assets users add NAME`.")
        return 0
    newest = _newest_plays(data, users)
    rows = [("NAME", "SPOTIFY ID", "DISPLAY NAME", "TOKEN", "NEWEST PLAY", "ADDED")]
    for user in users:
        stored = registry.token_store(user.name).load()
        rows.append(
            (
                user.name,
                user.user_id,
                user.display_name,
                "stored" if stored else "missing",
                newest.get(user.user_id, "-"),
                user.added_at,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _remove(args: argparse.Namespace, data: Path) -> int:
    registry = UserRegistry(users_root(data))
    try:
        user = registry.remove(args.name)
    except UserError as exc:
        print(f"spotify-assets users remove: {exc}", file=sys.stderr)
        return 1
    sync_partitions(data, delete=[user.user_id])
    print(f"Removed {user.name} (Spotify user {user.user_id}): no longer polled; their plays stay.")
    return 0


def users_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spotify-assets users", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None, help="default: $SPOTIFY_DATA_DIR, else .data/ at the repo root"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="authorise a listener and start polling them")
    add.add_argument("name", help="a short local name (lowercase), e.g. alice")
    add_flow_arguments(add)
    add.add_argument(
        "--api-url",
        default=spotify_api_url(),
        help="Web API base URL (default: $SPOTIFY_API_URL or Spotify's)",
    )
    sub.add_parser("list", help="who is registered, with their Spotify id and token state")
    remove = sub.add_parser("remove", help="stop polling a listener (their plays stay)")
    remove.add_argument("name")
    args = parser.parse_args(argv)
    data = Path(args.data_dir).expanduser().resolve() if args.data_dir else data_dir()
    if args.action == "add":
        return _add(args, data)
    if args.action == "remove":
        return _remove(args, data)
    try:
        return _list(UserRegistry(users_root(data)), data)
    except UserError as exc:
        print(f"spotify-assets users list: {exc}", file=sys.stderr)
        return 1

"""``spotify-assets users add|list|remove|token``: the listeners of this installation.

``add NAME`` runs the Authorization Code flow for that person (as ``spotify-assets auth``
does), asks ``GET /v1/me`` whose token it is, stores the refresh token in the user's own
0600 file and adds the user's Dagster partition. ``remove NAME`` deletes the partition and
the token (nobody polls them any more); their plays stay, unless ``--delete-data`` (confirmed
by typing the name, or ``--yes``) deletes them everywhere first (``users/deletion.py``). ``list`` shows who is registered
and whether their token is there. Exit status: 0 done, 1 refused or failed, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spotify_assets.settings import (
    DataLayout,
    MissingSettings,
    dagster_home,
    layout,
    spotify_api_url,
)
from spotify_assets.spotify.auth import (
    AuthorizationFailed,
    add_flow_arguments,
    app_credentials,
    run_authorization_flow,
)
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_assets.spotify.errors import SpotifyError
from spotify_assets.spotify.token_store import MemoryTokenStore
from spotify_assets.tables import plays as plays_table
from spotify_assets.users.registry import User, UserError, UserRegistry, check_name


def sync_partitions(data: Path, *, add: list[str] | None = None, delete: list[str] | None = None) -> None:
    """Add/delete ``users`` partitions on the local Dagster instance (``settings.dagster_home``)."""
    import dagster as dg

    from spotify_assets.instance_config import prepare_local_home
    from spotify_assets.partitions import USERS_PARTITIONS_NAME

    home = prepare_local_home(dagster_home(data))
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


def _add(args: argparse.Namespace, data: DataLayout) -> int:
    registry = UserRegistry(data.users)
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
    sync_partitions(data.root, add=[user.user_id])
    print(
        f"Added {user.name}: Spotify user {user.user_id} ({user.display_name}); refresh token in "
        f"{registry.token_store(user.name).path} (mode 0600); Dagster partition {user.user_id!r}."
    )
    return 0


def _newest_plays(data: DataLayout, users: list[User]) -> dict[str, str]:
    """Each user's newest play in the deployment's warehouse ("-" for none, or no local warehouse yet:
    listing never creates one; or a cloud warehouse the environment does not name)."""
    from spotify_assets.deployments import command_stores, deployment_settings

    try:
        settings = deployment_settings(data=data.root)
    except MissingSettings as exc:
        print(f"spotify-assets users list: newest plays unknown: {exc}", file=sys.stderr)
        return {}
    if settings.deployment == "local" and not settings.data.warehouse.exists():
        return {}
    with command_stores(settings, "warehouse") as stores:
        newest = {u.user_id: plays_table.max_played_at(stores.warehouse, u.user_id) for u in users}
    return {k: f"{v:%Y-%m-%d %H:%M}Z" for k, v in newest.items() if v is not None}


def _list(registry: UserRegistry, data: DataLayout) -> int:
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


def _confirmed(args: argparse.Namespace, user: User) -> bool:
    """``--yes``, or the operator types the name: deleting a person's history cannot be undone."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(
            "spotify-assets users remove: --delete-data deletes every play of "
            f"{user.name} for good; confirm on a terminal, or pass --yes in a script",
            file=sys.stderr,
        )
        return False
    answer = input(
        f"This deletes every play of {user.name} (Spotify user {user.user_id}) from the warehouse, "
        f"the lake and the snapshot, for good. Type {user.name} to go on: "
    )
    return answer.strip() == user.name


def _remove(args: argparse.Namespace, data: DataLayout) -> int:
    """Stop polling NAME; with ``--delete-data`` delete their data first (``users/deletion.py``).

    The registry entry, the token and the partition go last, so a deletion cut short (or refused
    by a bucket) is finished by running the same command again.
    """
    registry = UserRegistry(data.users)
    try:
        user = registry.get(args.name)
    except UserError as exc:
        if args.delete_data:
            print(f"Nothing to delete: {exc}.")
            return 0
        print(f"spotify-assets users remove: {exc}", file=sys.stderr)
        return 1
    if args.delete_data:
        if not _confirmed(args, user):
            print("spotify-assets users remove: not confirmed; nothing deleted", file=sys.stderr)
            return 1
        from google.api_core.exceptions import Forbidden

        from spotify_assets.deployments import command_settings, command_stores
        from spotify_assets.users.deletion import delete_user_data
        from spotify_assets.users.run_history import InstanceBusyError

        settings = command_settings("spotify-assets users remove", data.root)
        if settings is None:
            return 2
        try:
            # The active deployment's warehouse and lake (as ``rebuild-warehouse`` opens them), and the
            # store of the handoff files (``handoff/`` locally, the bucket's ``dagster/`` prefix in the cloud).
            with command_stores(settings, "warehouse", "lake", "handoff") as stores:
                deletion = delete_user_data(
                    user.user_id,
                    stores.warehouse,
                    stores.lake,
                    stores.handoff,
                    dagster_home(data.root),
                )
        except Forbidden as exc:
            print(
                f"spotify-assets users remove: the bucket refused a deletion ({exc.message}). The "
                "pipeline's service account cannot delete objects, by design (terraform/iam.tf): run "
                "this again with an operator's credentials; it finishes what is left.",
                file=sys.stderr,
            )
            return 1
        except UserError as exc:
            print(f"spotify-assets users remove: {exc}", file=sys.stderr)
            return 2
        except InstanceBusyError as exc:
            print(f"spotify-assets users remove: {exc}", file=sys.stderr)
            return 1
        print(deletion.render())
    try:
        registry.remove(user.name)
    except UserError as exc:
        print(f"spotify-assets users remove: {exc}", file=sys.stderr)
        return 1
    sync_partitions(data.root, delete=[user.user_id])
    stays = "their data is deleted" if args.delete_data else "their plays stay"
    print(f"Removed {user.name} (Spotify user {user.user_id}): no longer polled; {stays}.")
    return 0


def _token(name: str, data: DataLayout) -> int:
    """A new scrobbler token for a registered listener (``users/scrobble_tokens.py``): printed once
    on stdout, for pasting into a scrobbler's ListenBrainz settings; any older one stops working."""
    from spotify_assets.users.scrobble_tokens import ScrobbleTokens

    try:
        user = UserRegistry(data.users).get(name)
    except UserError as exc:
        print(f"spotify-assets users token: {exc}", file=sys.stderr)
        return 1
    print(ScrobbleTokens(data.scrobble_tokens).issue(name, user.user_id))
    print(f"A new scrobbler token for {name}: see `spotify-assets scrobble-server --help`.", file=sys.stderr)
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
    token = sub.add_parser("token", help="print a new scrobbler token for a listener (scrobble-server)")
    token.add_argument("name")
    remove = sub.add_parser("remove", help="stop polling a listener (their plays stay unless --delete-data)")
    remove.add_argument("name")
    remove.add_argument(
        "--delete-data",
        action="store_true",
        help="also delete their plays from the warehouse, the lake and the snapshot (asks first)",
    )
    remove.add_argument("--yes", action="store_true", help="with --delete-data: do not ask (for scripts)")
    args = parser.parse_args(argv)
    # The local tree (registry, tokens, Dagster instance) from the one layout; the warehouse and
    # lake, where an action needs them, from the resource factory (``deployments.command_stores``).
    data = layout(args.data_dir)
    if args.action == "add":
        return _add(args, data)
    if args.action == "remove":
        return _remove(args, data)
    if args.action == "token":
        return _token(args.name, data)
    try:
        return _list(UserRegistry(data.users), data)
    except UserError as exc:
        print(f"spotify-assets users list: {exc}", file=sys.stderr)
        return 1

"""``spotify-assets demo --users alice,bob``: a household of sandbox listeners, end to end.

Each named listener is registered through the code ``spotify-assets users add`` runs
(``users.command.register`` and ``sync_partitions``), signed in through the sandbox's stand-in
for Spotify's consent page (``/authorize?...&sandbox_user=NAME``); a year of their history is
imported as their privacy export (``import --user``'s runner); then the pipeline runs once per
``users`` partition, as the hourly schedule would, and each user's top ten is printed from
the warehouse. The sandbox dies with the process and its tokens with it, so a second demo
signs each registered listener in again and stores the new token in their own 0600 file; its
runs add 0 plays.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import requests

from spotify_assets.schema import ALL_LISTENERS, PLAYS_TABLE, TOP_TEN_TABLE
from spotify_assets.settings import data_dir, users_root
from spotify_assets.spotify.auth import SCOPE
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_assets.spotify.token_store import MemoryTokenStore
from spotify_assets.users.command import register, sync_partitions
from spotify_assets.users.registry import User, UserRegistry
from spotify_sandbox.constants import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from spotify_sandbox.server import SANDBOX_USER_PARAM, SandboxServer

#: Where the consent stand-in sends its code; nothing listens, the code is read from the redirect.
_REDIRECT_URI = "http://127.0.0.1:9/callback"
_SCOPE = SCOPE  # what `users add` asks for


def consent_refresh_token(sandbox: SandboxServer, name: str) -> str:
    """Sign in as sandbox listener ``name`` and exchange the code, as ``users add`` does at Spotify."""
    authorize = requests.get(
        f"{sandbox.url}/authorize",
        params={
            "client_id": SANDBOX_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": _REDIRECT_URI,
            "scope": _SCOPE,
            SANDBOX_USER_PARAM: name,
        },
        allow_redirects=False,
        timeout=10,
    )
    if authorize.status_code != 302:
        raise SystemExit(f"the sandbox has no listener {name!r}: {authorize.text}")
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    with HttpSpotifyClient(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        api_base_url=sandbox.url,
        accounts_base_url=sandbox.url,
        token_store=MemoryTokenStore(),
    ) as client:
        return str(client.exchange_code(code, _REDIRECT_URI)["refresh_token"])


def sign_in(sandbox: SandboxServer, names: list[str], data: Path) -> list[User]:
    """Register each listener (or, if registered, store their new sandbox token) and add their partition."""
    registry = UserRegistry(users_root(data))
    known = {u.name: u for u in registry.users()}
    users = []
    for name in names:
        token = consent_refresh_token(sandbox, name)
        if name in known:
            registry.token_store(name).save(token, env_sha256=None, scope=_SCOPE)
            users.append(known[name])
            continue
        users.append(
            register(
                registry,
                name,
                token,
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
                api_url=sandbox.url,
                accounts_url=sandbox.url,
                scope=_SCOPE,
            )
        )
    sync_partitions(data, add=[u.user_id for u in users])
    return users


def user_top_ten(warehouse: Any, user_id: str) -> Any:
    """A listener's ten most played tracks (``ALL_LISTENERS`` for everyone's), as the Spark job
    wrote them into the mart: the same rows the dashboard's Top page shows."""
    quoted = user_id.replace("'", "''")
    return warehouse.query(
        f"SELECT rank, track_name, artist_names, plays, round(minutes_listened, 1) AS minutes "
        f"FROM {TOP_TEN_TABLE} WHERE user_id = '{quoted}' ORDER BY rank"
    )


def household_demo(
    sandbox: SandboxServer, names: list[str], history_days: int, run_config: dict[str, Any]
) -> int:
    """Register, import, run one partition per user, print each top ten. Exit status 0 or 1."""
    from spotify_assets.definitions import defs
    from spotify_assets.import_run import import_export
    from spotify_sandbox.demo_steps import (
        enrich_imported_history,
        history_export,
        print_table,
        report_failure,
    )

    started = time.monotonic()
    data = data_dir()
    users = sign_in(sandbox, names, data)
    resources = defs.resources or {}
    warehouse, lake = resources["warehouse"], resources["lake"]
    for user in users:
        print(f"{user.name}: Spotify user {user.user_id}, Dagster partition {user.user_id!r}")
        if history_days > 0:
            # The generated export is a download, not data: it is imported from a temporary
            # folder (the lake keeps the raw copy), so nothing under the data directory carries
            # the listener's name after `users remove NAME --delete-data`.
            with tempfile.TemporaryDirectory(prefix="sandbox-export-") as tmp:
                export = history_export(sandbox, history_days, Path(tmp), user=user.name)
                report = import_export(export, warehouse, lake, user_id=user.user_id)
            print(
                f"  imported {history_days} days of {user.name}'s history: {report.rows_read} rows, "
                f"{report.added} added, {report.duplicates} already present"
            )
    job = defs.resolve_job_def("spotify_pipeline")
    failed = []
    added: dict[str, int] = {}
    for user in users:
        before = _count(warehouse, user.user_id)
        result = job.execute_in_process(
            instance=dg.DagsterInstance.get(),
            raise_on_error=False,
            run_config=run_config,
            partition_key=user.user_id,
        )
        added[user.name] = _count(warehouse, user.user_id) - before
        print(
            f"Run {result.run_id} (partition {user.user_id}): {'ok' if result.success else 'FAILED'}, "
            f"{added[user.name]} play(s) added by the poll"
        )
        if not result.success:
            report_failure(result)
            failed.append(user.name)
    if history_days > 0:
        enrich_imported_history(defs)
    for user in users:
        top = user_top_ten(warehouse, user.user_id)
        print(f"\n{user.name} ({user.user_id}): {_count(warehouse, user.user_id)} plays. Top ten tracks:\n")
        print_table(list(top.itertuples(index=False, name=None)), list(top.columns))
    top = user_top_ten(warehouse, ALL_LISTENERS)
    print(f"\nEveryone: {warehouse.count(PLAYS_TABLE)} plays. Top ten tracks:\n")
    print_table(list(top.itertuples(index=False, name=None)), list(top.columns))
    print(
        f"\nDone in {time.monotonic() - started:.1f}s for {len(users)} users"
        f"{'; failed: ' + ', '.join(failed) if failed else ''}."
    )
    return 1 if failed else 0


def _count(warehouse: Any, user_id: str) -> int:
    quoted = user_id.replace("'", "''")
    return int(
        warehouse.query(f"SELECT count(*) AS n FROM {PLAYS_TABLE} WHERE user_id = '{quoted}'")["n"].iloc[0]
    )

"""The door's inbox reaches ``bq_plays`` through the asset graph: a sensor that starts the import run.

A module of its own above ``assets/`` and ``scrobbles/`` (it names assets of the one and the inbox
of the other, and neither may import the other's importers back).

The scrobble server (``server.py``) lands each accepted submission create-only in the lake's
``inbox/scrobbles/user_id=<id>/...`` (``inbox.py``) and writes no table: the plays table has one
writer, the ``bq_plays`` merge. This sensor lists the inbox and, per listener with files it has
not handed over yet, requests a run of ``history_import`` (its ``inbox`` config: those files,
landed as ``scrobble_server`` listens) and ``bq_plays`` (the merge, which counts each listen once
against Spotify's plays and the other scrobblers', ``merge.py``) in that listener's partition.

The cursor is JSON, the inbox paths already handed to a run, per listener. Handing a file over
twice is harmless (the merge finds its listens present), so a run that failed is simply asked
for again by its ``run_key`` after its files leave the cursor (the cursor moves only with a
request, never back): the ``run_key`` (a digest of the files) keeps a tick that repeats the same
request from starting a second run.
"""

from __future__ import annotations

import json
from collections import defaultdict

import dagster as dg

from spotify_assets.assets.history import history_import
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.encoding import content_digest
from spotify_assets.lake_layout import SCROBBLE_INBOX_KIND, USER_DIR_PREFIX
from spotify_assets.resources.lake import LakeResource

#: How often the inbox is listed: a listen sent from a phone shows in the dashboard within it.
INTERVAL_S = 60


def _read_cursor(cursor: str | None) -> dict[str, list[str]]:
    try:
        parsed = json.loads(cursor or "{}")
    except ValueError:
        return {}
    return {str(k): list(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def inbox_files(lake: LakeResource) -> dict[str, list[str]]:
    """The inbox's files per listener (sorted paths)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in lake.list(f"{SCROBBLE_INBOX_KIND}/"):
        folder = path.removeprefix(f"{SCROBBLE_INBOX_KIND}/").split("/", 1)[0]
        if folder.startswith(USER_DIR_PREFIX) and path.endswith(".jsonl"):
            found[folder.removeprefix(USER_DIR_PREFIX)].append(path)
    return dict(found)


def inbox_requests(lake: LakeResource, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    """The runs to request for the inbox's new files, and the cursor after them."""
    done = _read_cursor(cursor)
    requests = []
    for user_id, paths in sorted(inbox_files(lake).items()):
        new = sorted(set(paths) - set(done.get(user_id, [])))
        if not new:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"scrobble-inbox-{user_id}-{content_digest(chr(10).join(new).encode())}",
                partition_key=user_id,
                asset_selection=[history_import.key, bq_plays.key],
                run_config=dg.RunConfig(
                    ops={"history_import": {"config": {"inbox": new, "user_id": user_id}}}
                ),
                tags={"spotify/import": "scrobble-server-inbox"},
            )
        )
        done[user_id] = sorted({*done.get(user_id, []), *new})
    return requests, json.dumps(done, sort_keys=True)


@dg.sensor(
    name="scrobble_inbox_sensor",
    minimum_interval_seconds=INTERVAL_S,
    asset_selection=[history_import, bq_plays],
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def scrobble_inbox_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Start an import run for each listener whose scrobbles wait in the door's inbox."""
    requests, cursor = inbox_requests(lake, context.cursor)
    if not requests:
        return dg.SkipReason("no new listens in the scrobble server's inbox")
    context.log.info(f"{len(requests)} listener(s) with new listens from the scrobble server")
    return dg.SensorResult(run_requests=requests, cursor=cursor)

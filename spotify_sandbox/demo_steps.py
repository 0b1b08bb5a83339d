"""The steps ``spotify-assets demo`` shares with its household variant and ``make cloud-demo``:
a history export from the sandbox, the enrichment of imported plays, tables and failures said
plainly. Their own module so ``demo.py`` and ``household.py`` both import it and not each other.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

if TYPE_CHECKING:
    from spotify_sandbox.server import SandboxServer


def print_table(rows: list[tuple[object, ...]], headers: list[str]) -> None:
    """Rows as an aligned plain-text table (cells cut at 40 characters); ``make cloud-demo`` uses it too."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [min(max(len(r[i]) for r in cells), 40) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(v[: widths[i]].ljust(widths[i]) for i, v in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def history_export(sandbox: SandboxServer, days: int, folder: Path, user: str | None = None) -> Path:
    """Write a sandbox listener's past year (``user``, default the default listener) as an
    extended-streaming-history export.

    It ends at the oldest of the 50 plays the API still shows, so the poll that follows
    overlaps the export by exactly one play (the dedupe keeps it once) and leaves no gap.
    """
    from spotify_sandbox.exports import extended_row_from_api_item

    recent = sandbox.recently_played_truth(user)
    oldest = min(pd.Timestamp(i["played_at"]) for i in recent)
    items = sandbox.plays_between(oldest - pd.Timedelta(days=days), oldest, user=user)
    rows = [
        extended_row_from_api_item(i)
        for i in items
        if i["track"].get("type") == "track" and i["track"].get("id")
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Streaming_History_Audio_sandbox.json"
    path.write_text(json.dumps(rows))
    return folder


def report_failure(result: dg.ExecuteInProcessResult) -> None:
    """Say which step failed, with its error's own message (which says what to do), not a traceback."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            cause = error.cause if error is not None and error.cause is not None else error
            message = cause.message.strip() if cause is not None else "unknown error"
            print(f"Step {event.step_key} failed: {message}", file=sys.stderr)
    print(
        f"Run {result.run_id} failed. Fix the cause above and run `make demo` again: it resumes from "
        "the warehouse's newest play and adds nothing twice. Full logs: `make dev` (Runs tab).",
        file=sys.stderr,
    )


def enrich_imported_history(defs: dg.Definitions) -> None:
    """Features, ids and cover art for imported plays, which the hourly poll never looks up."""
    # The imported year has tracks the hourly poll never asked features for: fetch them
    # and merge them through the table's own asset (its writers sit upstream of it).
    backfill = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.get(),
        asset_selection=[dg.AssetKey("audio_features_backfill"), dg.AssetKey("track_features")],
        raise_on_error=False,
    )
    for mat in backfill.asset_materializations_for_node("audio_features_backfill"):
        print(f"Audio features backfill: {mat.metadata['note'].value}")
    # And the artist and album ids and cover art the export does not carry (the sandbox
    # answers at loopback speed, so no pacing; against Spotify the asset's default applies).
    from spotify_assets.assets.catalog import track_metadata

    pace = {} if os.environ.get("SPOTIFY_CLIENT_ID") else {"requests_per_second": 0}
    bound = defs.resources or {}
    lookups = dg.materialize(
        [track_metadata],
        instance=dg.DagsterInstance.get(),
        resources={k: bound[k] for k in ("spotify", "warehouse", "lake")},
        run_config={"ops": {"track_metadata": {"config": pace}}},
        raise_on_error=False,
    )
    for mat in lookups.asset_materializations_for_node("track_metadata"):
        meta = mat.metadata
        if "found" not in meta:  # nothing to look up (a second demo): the asset says why
            print(f"Track lookups: {meta['note'].value}")
            continue
        print(
            f"Track lookups (ids and cover art for imported plays): {meta['found'].value} found, "
            f"{meta['not_found'].value} unknown to Spotify"
        )

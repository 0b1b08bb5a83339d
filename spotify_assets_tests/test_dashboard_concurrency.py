"""The dashboard never blocks the pipeline and survives it writing: two real processes.

Process A is the pipeline's writer merging batches of plays (each publish replaces the
snapshot); process B is the dashboard's query layer reading in a tight loop meanwhile.
Both must finish without a lock error, B must only ever see whole batches, and the final
counts must be exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from app import queries as q
from app.warehouse import DuckDBSnapshot

ROOT = Path(__file__).resolve().parent.parent
BATCHES = 12
PER_BATCH = 25

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    import pandas as pd
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.schema import conform
    from spotify_assets.tables import plays as plays_table

    folder, batches, per_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    wh = DuckDBWarehouseResource(path=f"{folder}/warehouse.duckdb", snapshot_path=f"{folder}/warehouse.snapshot.duckdb")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    inserted = 0
    for b in range(batches):
        rows = []
        for i in range(per_batch):
            at = start + timedelta(minutes=5 * (b * per_batch + i))
            rows.append({
                "play_key": f"{at.isoformat()}|t{i % 7}", "played_at": at, "track_id": f"t{i % 7}",
                "track_name": f"Song {i % 7}", "primary_artist_name": f"Artist {i % 3}",
                "artist_names": f"Artist {i % 3}", "duration_ms": 200000, "content_type": "track",
                "is_play": True, "source": "api", "batch_id": f"b{b}", "ingested_at": at,
            })
        frame = conform(pd.DataFrame(rows), "plays")
        result = plays_table.merge_plays(wh, frame)
        inserted += result.inserted
        if b % 4 == 0:  # a retried batch: must change nothing
            again = plays_table.merge_plays(wh, frame)
            assert (again.inserted, again.duplicates) == (0, per_batch), again
    print(inserted)
    """
)

READER = textwrap.dedent(
    """
    import json, pathlib, sys, time
    from app import queries as q
    from app.warehouse import DuckDBSnapshot, WarehouseMissing

    snapshot, done, per_batch = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    wh = DuckDBSnapshot(snapshot)
    seen, reads = [], 0
    batch = {**q.version_queries(), **q.overview_queries("Europe/Berlin")}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = done.exists()
        try:
            res = wh.fetch(batch)
        except WarehouseMissing:
            time.sleep(0.01)
            continue
        reads += 1
        n = int(res["plays"]["n"].iloc[0])
        assert n % per_batch == 0, f"saw a partial batch: {n}"
        assert int(res["totals"]["plays"].iloc[0]) == n
        if not seen or seen[-1] != n:
            seen.append(n)
        if finished and reads >= 5:
            break
    print(json.dumps({"reads": reads, "seen": seen}))
    """
)


def test_dashboard_reads_while_the_pipeline_writes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = tmp_path / "writer-done"
    snapshot = tmp_path / "warehouse.snapshot.duckdb"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(snapshot), str(done), str(PER_BATCH)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, str(tmp_path), str(BATCHES), str(PER_BATCH)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        done.touch()
        out, err = reader.communicate(timeout=180)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert writer.returncode == 0, writer.stderr
    assert int(writer.stdout.strip()) == BATCHES * PER_BATCH
    assert reader.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["reads"] >= 5
    assert report["seen"] == sorted(report["seen"]), "counts never go backwards"
    assert report["seen"][-1] == BATCHES * PER_BATCH
    assert "lock" not in err.lower()
    final = DuckDBSnapshot(snapshot).fetch(q.version_queries())
    assert int(final["plays"]["n"].iloc[0]) == BATCHES * PER_BATCH

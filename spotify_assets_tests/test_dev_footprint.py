"""``bench/dev_footprint.py`` reads a whole process tree's memory from ``/proc``: children in their
own sessions included (``spotify-assets dev`` starts each child in its own), none counted twice."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.dev_footprint import measure, tree


def test_the_tree_holds_a_grandchild_in_its_own_session_and_reads_its_memory() -> None:
    # A child that starts a grandchild in a new session, then both wait to be read.
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
        "print('up', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        pids = tree(os.getpid())
        assert child.pid in pids
        grandchildren = [p for p in tree(child.pid) if p != child.pid]
        assert len(grandchildren) == 1, grandchildren
        rows = {r.pid: r for r in measure(child.pid)}
        assert set(rows) == {child.pid, *grandchildren}
        assert all(r.rss_kib > 1024 and 0 < r.pss_kib <= r.rss_kib for r in rows.values()), rows
        assert all(r.name.startswith("python") for r in rows.values()), rows
    finally:
        for pid in tree(child.pid)[::-1]:
            os.kill(pid, 9)
        child.wait()


#: Modules a supervisor has no use for: each holds tens of MiB for as long as ``dev`` runs.
HEAVY = ("dagster", "pandas", "numpy", "pyarrow", "duckdb", "pyspark", "grpc")


def test_the_dev_supervisor_imports_nothing_heavy() -> None:
    """``spotify-assets dev`` supervises for months (issue 28): it imports the command list and its
    own module, nothing of Dagster, pandas or Spark (its registration and warm-up run in children)."""
    code = (
        "import sys; from spotify_assets import cli; cli.all_commands(); "
        "from spotify_sandbox.demo import dev_command; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout

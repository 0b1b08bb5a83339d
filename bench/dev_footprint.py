"""What ``make dev`` holds in memory while it waits for the music: resident set per process, idle.

    python -m bench.dev_footprint [--users alice,bob,carol,dave,erin] [--settle 30]

A household runs ``spotify-assets dev`` around the clock on a laptop or a small VM, so its idle
footprint is a cost paid every hour of every day. This starts a sandbox API (fixed clock, so
nothing new arrives after the first runs) with a household registered as ``spotify-assets users
add`` does, then ``spotify-assets dev`` on a fresh data directory. It waits until the warm Spark
Connect server has reported (warmed up or failed) and every listener's first run has ended, lets
the tree settle for ``--settle`` seconds with no run going, then reads every process of the tree
from ``/proc`` (Linux): RSS (``VmRSS``) and PSS (``smaps_rollup``: shared pages split between the
processes that share them, so the column adds up to what the tree really costs).

Prints one line per process (largest first) and a last line
``dev idle: N processes, RSS X MiB, PSS Y MiB (load average L)``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spotify_sandbox.processes import descendants

HOUSEHOLD = "alice,bob,carol,dave,erin"
WARM_LINE = "Spark Connect server"
READY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    name: str
    rss_kib: int
    pss_kib: int


def tree(root: int) -> list[int]:
    """``root`` and all its live descendants (children in their own sessions included)."""
    return [root, *descendants(root)]


def _kib(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _name(pid: int) -> str:
    """A readable name: the module or main class of a Python or Java process, else argv[0..1]."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    args = [a.decode(errors="replace") for a in argv if a]
    if not args:
        return "?"
    base = Path(args[0]).name
    if base.startswith("python") and len(args) > 1:
        rest = [a for a in args[1:] if not a.startswith("-")][:3]
        return "python " + " ".join(Path(r).name if "/" in r else r for r in rest)
    if base == "java":
        cls = next((a for a in args if a.startswith("org.apache")), "")
        return f"java {cls.rsplit('.', 1)[-1]}".strip()
    return " ".join([base, *[Path(a).name for a in args[1:3]]])


def measure(root: int) -> list[ProcessMemory]:
    rows = []
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            rows.append(ProcessMemory(pid, _name(pid), _kib(status, "VmRSS"), _kib(rollup, "Pss")))
        except OSError:  # ended between the listing and the read
            continue
    return sorted(rows, key=lambda r: r.rss_kib, reverse=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runs_going(data: Path) -> int:
    import dagster as dg

    from spotify_assets.settings import dagster_home

    statuses = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    with dg.DagsterInstance.from_config(str(dagster_home(data))) as instance:
        return len(instance.get_run_records(dg.RunsFilter(statuses=statuses)))


def _finished_runs(data: Path) -> int:
    import dagster as dg

    from spotify_assets.settings import dagster_home

    home = dagster_home(data)
    if not (home / "dagster.yaml").exists():
        return 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return len(instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", default=HOUSEHOLD)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds with no run going before reading")
    args = parser.parse_args(argv)
    names = [n for n in args.users.split(",") if n]
    data = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env["SPOTIFY_DATA_DIR"] = str(data)
    os.environ.update({"SPOTIFY_DATA_DIR": str(data)})
    os.environ.pop("DAGSTER_HOME", None)

    from spotify_assets.users.command import sync_partitions
    from spotify_assets_tests.fixtures.sandbox import register_listeners
    from spotify_sandbox.server import SandboxServer

    log = data / "dev.log"
    with SandboxServer() as sandbox:
        users = register_listeners(sandbox, data / "users", *names)
        sync_partitions(data, add=[u.user_id for u in users])
        env["SPOTIFY_SANDBOX_URL"] = sandbox.url
        with log.open("w") as out:
            dev = subprocess.Popen(
                [str(Path(sys.executable).with_name("spotify-assets")), "dev", "--port", str(_free_port())],
                env=env,
                start_new_session=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while WARM_LINE not in log.read_text(errors="replace"):
                if dev.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise SystemExit("dev_footprint: the Spark Connect server never reported")
                time.sleep(1)
            while _finished_runs(data) < len(names):
                if dev.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"dev_footprint: fewer than {len(names)} first runs ended in time")
                time.sleep(2)
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < args.settle:
                if _runs_going(data):
                    quiet_since = time.monotonic()
                time.sleep(2)
            rows = measure(dev.pid)
            load = os.getloadavg()[0]
        finally:
            os.killpg(dev.pid, signal.SIGINT)
            try:
                dev.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
    for r in rows:
        print(f"{r.rss_kib / 1024:8.0f} MiB RSS {r.pss_kib / 1024:8.0f} MiB PSS  pid {r.pid:<7} {r.name}")
    rss = sum(r.rss_kib for r in rows) / 1024
    pss = sum(r.pss_kib for r in rows) / 1024
    print(f"dev idle: {len(rows)} processes, RSS {rss:.0f} MiB, PSS {pss:.0f} MiB (load average {load:.2f})")
    shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

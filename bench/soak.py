"""A chaos soak: ``spotify-assets dev`` against the sandbox on an accelerated clock (issue 27).

    python -m bench.soak [--hours 168] [--seed 1] [--users alice,...] [--poll-interval-s 60] [--seconds-per-hour 30]
    make soak HOURS=168 SEED=1

The real thing, as a household leaves it running: ``spotify-assets dev`` (the daemon with the
hourly schedule and the new-plays sensor, once a minute or every ``--poll-interval-s``, the
webserver, the code server, the warm Spark server) on a fresh data directory, against a sandbox
API served from this process whose clock runs ``3600 / seconds-per-hour`` times faster than the
wall's (by default ``SIMULATED_HOURS_PER_POLL`` simulated hours per sensor interval), from a start far
enough in the past that no play lies in the future of the runs' real clock. Its listeners are
registered as ``users add`` registers them (by default four of the sandbox's five; the fifth
joins mid-soak). The clock starts once every listener's first run (their latest 50 plays) is in
the dashboard's snapshot. The lake's folder is a small file system of its own (a tmpfs; the soak
runs as root), so that it can fill up.

Faults come on a schedule drawn from ``--seed`` (``fault_schedule``), each logged with its
simulated hour: 429 storms with short and long ``Retry-After``, 5xx bursts, truncated pages,
a listener's token revoked then restored, SIGKILL of the code server, of the daemon and of a
run's worker mid-step (during its lake write, or after it and before the warehouse's merge is
done), a listener removed (``users remove``, plays kept) and another added (``users add``), and
the lake's disk full, then freed. After each kill of a server ``dev`` must restart what died by
itself (``spotify_sandbox.supervisor``: its log says so); a killed run must end failed and a
later run of its listener succeed; while the disk is full runs must fail saying so, and succeed
once it is freed; and the platform go on; ``dev`` itself is restarted only if it is found dead, and
every stop is a SIGTERM that must end the whole tree within 15 s (issue 27 item 4).
The short form (``--every-kind-once``, the test's) injects each kind once, in rounds paced by
the platform rather than by the clock (``SHORT_ROUNDS``), and ends once the last was met.

At the end the clock stops, the platform gets ``--catch-up-s`` to fetch what it was shown,
``dev`` is stopped, and ``soak_verdict`` compares the warehouse with the sandbox's truth per
listener. Prints the verdict line, the growth per simulated day over the first day and the last
(lake files and bytes, instance bytes, warehouse bytes, issue 27 item 3), then the JSON; exit
status 1 unless the plays are exact, every true gap is recorded, none is false, no lake file is
torn, the dashboard's snapshot holds exactly the warehouse's plays, every stop took at most
15 s, ``dev`` restarted whatever each kill took down, every fault was injected and met (its
answers served before the end), and the platform caught up (a platform that stopped polling
would otherwise lose nothing the API showed). A failed soak's JSON carries a ``diagnosis``: every run, the sensors' last
ticks, the sandbox's last requests and the tail of ``dev``'s logs, read before the data
directory goes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench import page_time
from bench.soak_verdict import ListenerVerdict, gap_counts, judge_listener, passed, verdict_line
from spotify_sandbox.processes import command_line, descendants, live_processes
from spotify_sandbox.supervisor import CODE_SERVER_NAME, DAGSTER_DEV_NAME, STOP_SIGNALS, restarted_line

#: The sandbox's household; the soak starts with all but the last (``--users``' default), who
#: joins mid-soak (``swap-listener``: a listener not among ``--users``).
HOUSEHOLD = ("alice", "bob", "carol", "dave", "erin")
STOP_BUDGET_S = 15.0
START_TIMEOUT_S = 300.0
#: The short form (``--every-kind-once``): every fault kind once, in rounds. A round is injected
#: at once, when the one before it was met (every fault answer served, every kill's restart
#: seen): the sensor polls each listener once a wall interval (``SHORT_POLL_INTERVAL_S``), so
#: faults injected faster than that pile up in the sandbox and are met only after the soak's end,
#: one tick an interval (the stall of the first short soaks under pytest). Each round is sized for one sensor tick of three
#: listeners: the first one's poll meets the 429 storm, the second's the 5xx burst, the third's
#: the long Retry-After (which the app's shared wait then holds for everyone until the next
#: tick); the code server is killed meanwhile and must be back by then. The daemon's kill stops
#: ``dagster dev`` (about a minute to restart), and the first tick after it meets the truncated
#: pages and the revoked token. The lake's disk fills in the first round: the runs of a later tick
#: fail for want of space, and the disk is freed once one has (``held``; the rounds do not wait
#: for it). The last round signs the
#: revoked listener in again and arms two faults the next tick's runs meet: the kill of a run's
#: worker in the chosen step, and a listener swapped (two operator commands, about ten seconds,
#: once that listener's latest run succeeded and the API's error answers are served: ``users
#: add`` asks ``/v1/me``, and those answers are meant for the platform). The catch-up (every
#: listener's latest plays in the snapshot) is the later runs that must succeed. A round waits for
#: no run to be on its way, and the clock stands still while a failed run waits for its retry
#: (``MAX_PAUSED_S``).
SHORT_ROUNDS: tuple[tuple[str, ...], ...] = (
    ("429-short", "5xx-burst", "429-long", "kill-code-server", "disk-full"),
    ("malformed", "revoke", "kill-daemon"),
    ("kill-run-worker", "swap-listener"),
)
#: Every kind of fault ``inject`` knows, in the order the short form injects them.
FAULT_KINDS = tuple(kind for kinds in SHORT_ROUNDS for kind in kinds)
#: What ends a fault that lasts: the revoked listener signs in again, the full disk is freed. In
#: the short form each comes in the round after its fault; on the schedule, hours later
#: (``FOLLOW_UP_HOURS``), and a disk is freed only once a run has met it full.
FOLLOW_UP = {"revoke": "restore", "disk-full": "disk-freed"}
#: Simulated hours before each follow-up, drawn from the seed.
FOLLOW_UP_HOURS = {"revoke": (1.0, 6.0), "disk-full": (2.0, 5.0)}
#: Kinds a soak injects at most once: the household has one listener to spare.
ONCE = ("swap-listener",)
#: Where ``kill-run-worker`` strikes: in the lake step (its write), or once the lake's file is
#: written and the warehouse's merge not done (between the two, or in the merge).
RUN_WORKER_STAGES = ("lake", "warehouse")
#: The lake's own file system (a tmpfs at its folder): small, so filling it is quick; far more
#: than a week of a household's lake (about a MiB a day).
LAKE_FS_BYTES = 64 * 1024 * 1024
#: The file that fills the lake's disk (``.tmp-``: the lake's listing skips it, as a cut write).
FILLER = ".tmp-soak-disk-filler"
#: What ``dev``'s log says once it has restarted what each kill took down (``dev``'s supervisor).
RECOVERED_LINE = {
    "kill-code-server": restarted_line(CODE_SERVER_NAME),
    "kill-daemon": restarted_line(DAGSTER_DEV_NAME),
}
#: The longest the clock stands still, in all, while a listener's latest run failed or ``dev``
#: restarts what a kill took down (``main``): a week's soak meets two full disks, each a run's retry
#: waiting up to a few wall minutes after the disk is freed (the sensor's doubling backoff), and
#: ten to twenty kills of a code server, the daemon or a run's worker, each a wall minute or more on
#: a loaded machine (the two s34 soaks spent 900 s, the earlier cap, by mid-week at load 15-27).
MAX_PAUSED_S = 1800.0
#: Wall seconds ``dev`` has to restart what a kill took down.
RECOVERY_BUDGET_S = 240.0
#: The short form's sensor interval (``SPOTIFY_POLL_INTERVAL_S`` in ``dev``'s environment): a
#: quarter of the platform's minute, so its rounds, paced by the sensor's ticks and its retries of
#: failed runs, take a quarter of the wall time. The scheduled form keeps the platform's default.
SHORT_POLL_INTERVAL_S = 15
#: Simulated hours per sensor interval, the default pace (``--seconds-per-hour`` is the interval
#: divided by it). The scheduled form's 2 (30 s an hour at the platform's minute) lets a busy
#: listener's 50-play window (about 3.5 busy hours) nearly pass between two polls. The short form
#: must lose nothing, and what bounds its pace is not the interval but the platform's wall
#: latencies, which the interval does not shorten: ``dagster dev``'s restart after the daemon's
#: kill (a minute, 100 s at load 30) and a run's start and steps (10-20 s). At half an hour an
#: interval (30 s an hour) that restart was 3.3 hours in which a listener's window filled: 50 plays
#: exactly, a gap the platform had to record though nothing was missed (one more play and it would
#: have been lost). So the short form keeps the wall minute a simulated hour it passed at, and its
#: retry of a failed run, an interval later, is a quarter of an hour (at 3 hours an interval a
#: full disk lost 4 plays).
SIMULATED_HOURS_PER_POLL = {"scheduled": 2.0, "short": 0.25}


@dataclass(frozen=True)
class Fault:
    at_hour: float
    kind: str
    user: str = ""
    #: ``kill-run-worker``'s stage (``RUN_WORKER_STAGES``).
    stage: str = ""


@dataclass
class Awaited:
    """What a fault must bring about: ``check`` says what did (None while nothing has yet)."""

    kind: str
    check: Callable[[], dict[str, Any] | None]
    #: Whether the short form's next round waits for it (else only the end does).
    blocks: bool = True
    since: float = field(default_factory=time.monotonic)


@dataclass
class Log:
    faults: list[dict[str, Any]] = field(default_factory=list)
    restarts: list[dict[str, Any]] = field(default_factory=list)
    stops_s: list[float] = field(default_factory=list)
    warm_up_s: float = 0.0
    catch_up_s: float = 0.0
    #: ``measure`` at the clock's start, at each simulated day and at the end.
    growth: list[dict[str, float]] = field(default_factory=list)
    #: How each fault that is not a kill of a server was met (a run failed, a later one succeeded).
    met: list[dict[str, Any]] = field(default_factory=list)


#: What ``growth`` measures, each a count of files or of bytes on disk (issue 27 item 3).
GROWTH_MEASURES = ("lake_files", "lake_bytes", "instance_bytes", "warehouse_bytes")


def _tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (a file: itself; the disk's ``FILLER`` not counted); files
    vanishing meanwhile are skipped."""
    if path.is_file():
        return 1, path.stat().st_size
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            if name == FILLER:
                continue
            with contextlib.suppress(OSError):
                size += (Path(dirpath) / name).stat().st_size
                files += 1
    return files, size


def measure(data: Path, hours: float) -> dict[str, float]:
    """The platform's footprint at simulated hour ``hours``: the lake's Parquet files and bytes,
    the Dagster instance's bytes (run and event storage, logs), the warehouse's bytes (the
    database, its write-ahead log and the dashboard's snapshot)."""
    from spotify_assets.settings import dagster_home, layout

    where = layout(data)
    lake_files, lake_bytes = _tree_size(where.lake) if where.lake.exists() else (0, 0)
    instance = dagster_home(data)
    warehouse = [where.warehouse, where.warehouse.with_name(where.warehouse.name + ".wal"), where.snapshot]
    return {
        "hours": round(hours, 2),
        "lake_files": lake_files,
        "lake_bytes": lake_bytes,
        "instance_bytes": _tree_size(instance)[1] if instance.exists() else 0,
        "warehouse_bytes": sum(_tree_size(f)[1] for f in warehouse if f.exists()),
    }


def growth_per_day(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Growth per simulated day over the first day and over the last (``first``, ``last``):
    each measure's increase between two samples, scaled to 24 hours. ``samples`` are by hour,
    one at the clock's start, one at each simulated day and one at the end; a soak shorter
    than a day has one span, reported as both."""
    if len(samples) < 2:
        return {}

    def rate(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        span = b["hours"] - a["hours"]
        per_day = 24 / span if span > 0 else 0.0
        return {"from_hour": a["hours"], "to_hour": b["hours"]} | {
            m: round((b[m] - a[m]) * per_day) for m in GROWTH_MEASURES
        }

    def with_page(g: dict[str, float], at: dict[str, float]) -> dict[str, float]:
        # the dashboard's cold Overview at the span's end (bench/page_time.py), when measured
        return g | ({"page_cold_s": at["page_cold_s"]} if at.get("page_cold_s") is not None else {})

    return {
        "first": with_page(rate(samples[0], samples[1]), samples[1]),
        "last": with_page(rate(samples[-2], samples[-1]), samples[-1]),
    }


def growth_line(growth: dict[str, dict[str, float]]) -> str:
    """``growth per day: first (h 0-24) lake +F files +B KiB, instance +I KiB, warehouse +W KiB; last (...)``."""

    def span(g: dict[str, float]) -> str:
        kib = {m: round(g[m] / 1024) for m in ("lake_bytes", "instance_bytes", "warehouse_bytes")}
        page = f", dashboard cold {g['page_cold_s']:.2f} s" if "page_cold_s" in g else ""
        return (
            f"(h {g['from_hour']:g}-{g['to_hour']:g}) lake {g['lake_files']:+g} files {kib['lake_bytes']:+d} KiB, "
            f"instance {kib['instance_bytes']:+d} KiB, warehouse {kib['warehouse_bytes']:+d} KiB{page}"
        )

    if not growth:
        return "growth per day: not measured"
    return f"growth per day: first {span(growth['first'])}; last {span(growth['last'])}"


def _targets(rng: random.Random, users: list[str]) -> tuple[str, list[str]]:
    """(the listener ``swap-listener`` removes, the others): a fault meant for a listener (a revoked
    token) is drawn among the others, so none is meant for someone no longer registered."""
    victim = rng.choice(users)
    return victim, [u for u in users if u != victim] or users


def _fault(rng: random.Random, at: float, kind: str, victim: str, others: list[str]) -> Fault:
    user = victim if kind == "swap-listener" else rng.choice(others)
    stage = rng.choice(RUN_WORKER_STAGES) if kind == "kill-run-worker" else ""
    return Fault(at, kind, user, stage)


def short_rounds(seed: int, users: list[str]) -> list[list[Fault]]:
    """The short form's faults, round by round (``SHORT_ROUNDS``; listeners and stages drawn from
    ``seed``), each fault that lasts ended in the round after its own (``FOLLOW_UP``: the revoked
    listener signs in again, the disk is freed), before that round's faults. Their ``at_hour``
    is unset (0): a round's hour is the one it is injected at."""
    rng = random.Random(seed)
    victim, others = _targets(rng, users)
    rounds = [[_fault(rng, 0.0, kind, victim, others) for kind in kinds] for kinds in SHORT_ROUNDS]
    for i in range(len(rounds)):
        ends = [Fault(0.0, FOLLOW_UP[f.kind], f.user) for f in rounds[i] if f.kind in FOLLOW_UP]
        if ends:
            if i + 1 == len(rounds):
                rounds.append([])
            rounds[i + 1] = [*ends, *rounds[i + 1]]
    return rounds


def fault_schedule(hours: float, seed: int, users: list[str]) -> list[Fault]:
    """The faults of a soak, by simulated hour: about one every four simulated hours, kinds and
    listeners drawn from ``seed``, after a first quiet hour; a kind of ``ONCE`` at most once."""
    rng = random.Random(seed)
    victim, others = _targets(rng, users)
    faults: list[Fault] = []
    at = 1.0
    while True:
        at += rng.uniform(2.0, 6.0)
        if at >= hours - 1:
            return faults
        done = {f.kind for f in faults}
        kinds = [k for k in FAULT_KINDS if not (k in ONCE and k in done)]
        faults.append(_fault(rng, round(at, 2), rng.choice(kinds), victim, others))


def _say(line: str) -> None:
    """A line of the soak's progress, with the wall time (to read beside ``dev``'s log)."""
    print(f"{datetime.now(UTC):%H:%M:%S} soak: {line}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every live process below ``root``."""
    return {pid: command_line(pid) for pid in descendants(root)}


class Dev:
    """One ``spotify-assets dev`` at a time on a data directory, restarted when it dies."""

    def __init__(self, env: dict[str, str], data: Path, log: Log) -> None:
        self.env, self.data, self.log = env, data, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.started = 0

    def start(self) -> None:
        self.port = _free_port()
        self.started += 1
        out = (self.data / f"dev-{self.started}.log").open("wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("spotify-assets")), "dev", "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ui_up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"spotify-assets dev did not come up; see {self.data}/dev-{self.started}.log"
                )
            time.sleep(0.5)

    def said(self, line: str) -> int:
        """How often the running ``dev``'s log holds ``line``."""
        with contextlib.suppress(OSError):
            return (self.data / f"dev-{self.started}.log").read_text(errors="replace").count(line)
        return 0

    def _ui_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart_if_dead(self, sim: str) -> None:
        """A supervisor's restart: ``dagster dev`` exits when its daemon or webserver dies, and
        ``spotify-assets dev`` with it (after stopping the rest of its tree)."""
        if self.alive():
            return
        code = self.proc.returncode if self.proc is not None else None
        self.log.restarts.append({"sim": sim, "exit_status": code})
        _say(f"[{sim}] dev exited ({code}): restarting it")
        self.start()

    def kill(self, what: str) -> list[int]:
        """SIGKILL the tree's processes whose command line holds ``what``; their pids."""
        if self.proc is None:
            return []
        pids = [pid for pid, cmd in _descendants(self.proc.pid).items() if what in cmd]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def stop(self) -> float:
        """SIGTERM, as a supervisor stops a service; seconds until the whole tree is gone (the
        processes found at the signal; SIGKILL for any left after a minute, never left behind)."""
        if self.proc is None:
            return 0.0
        tree = set(_descendants(self.proc.pid)) | {self.proc.pid}
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        while (tree & set(live_processes())) and time.monotonic() - started < 60:
            self.proc.poll()  # reaps the command itself, so it does not linger as a zombie
            time.sleep(0.1)
        took = time.monotonic() - started
        for pid in tree & set(live_processes()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None
        self.log.stops_s.append(round(took, 1))
        return took


def inject(fault: Fault, sandbox: Any, dev: Dev, data: Path) -> dict[str, Any]:
    """Apply one fault now; what was done, for the log. (``kill-run-worker`` and ``swap-listener``
    wait for their moment: ``main``.)"""
    from spotify_assets.settings import layout
    from spotify_sandbox.server import RECENTLY_PLAYED_PATH

    done: dict[str, Any] = {"at_hour": fault.at_hour, "kind": fault.kind, "sim": sandbox.now().isoformat()}
    if fault.kind == "429-short":
        sandbox.fail_next(429, count=6, path="/v1/*", retry_after=1)
    elif fault.kind == "429-long":
        # One is enough: longer than a sensor tick may wait, so the tick leaves every listener
        # (the app's shared wait) for the next one; a second would cost the short form a tick.
        sandbox.fail_next(429, count=1, path="/v1/*", retry_after=45)
    elif fault.kind == "5xx-burst":
        for status in (500, 502, 503):
            sandbox.fail_next(status, count=2, path="/v1/*")
    elif fault.kind == "malformed":
        sandbox.malformed_next(count=2, path=RECENTLY_PLAYED_PATH)
    elif fault.kind == "revoke":
        done["user"] = fault.user
        done["revoked_tokens"] = sandbox.revoke(fault.user)
        sandbox.expire_tokens()  # access tokens already handed out would otherwise work for an hour
    elif fault.kind == "restore":
        done["user"] = fault.user
        _sign_in_again(sandbox, data, fault.user)
    elif fault.kind == "kill-code-server":
        done["pids"] = dev.kill(" api grpc") or dev.kill("code-server")
    elif fault.kind == "kill-daemon":
        done["pids"] = dev.kill("dagster._daemon run")
    elif fault.kind == "disk-full":
        done |= fill_disk(layout(data).lake)
    elif fault.kind == "disk-freed":
        done |= free_disk(layout(data).lake)
    else:
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    return done


def _sign_in_again(sandbox: Any, data: Path, name: str) -> None:
    """The listener grants access again (``users add`` for a known listener stores the new token)."""
    from spotify_assets.settings import users_root
    from spotify_assets.spotify.auth import SCOPE
    from spotify_assets.users.registry import UserRegistry
    from spotify_sandbox.household import consent_refresh_token

    UserRegistry(users_root(data)).token_store(name).save(
        consent_refresh_token(sandbox, name), env_sha256=None, scope=SCOPE
    )


def mount_lake(lake: Path) -> str:
    """Mount a ``LAKE_FS_BYTES`` tmpfs at the lake's folder, so that ``disk-full`` can fill it;
    "" once mounted, else why not (only root may mount: the soak then says the kind was not
    injected, rather than fill the machine's own disk)."""
    lake.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "not root: mounting a file system for the lake needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={LAKE_FS_BYTES}", "tmpfs", str(lake)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if done.returncode == 0 else f"mount failed: {(done.stderr or done.stdout).strip()}"


def unmount_lake(lake: Path) -> None:
    """Unmount the lake's tmpfs, its files (not the filler) moved to the folder beneath, so a kept
    data directory holds its lake."""
    out = lake.with_name(lake.name + ".unmounting")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(lake, out, ignore=shutil.ignore_patterns(FILLER))
    subprocess.run(["umount", str(lake)], check=True)
    shutil.rmtree(lake, ignore_errors=True)
    out.rename(lake)


def fill_disk(lake: Path) -> dict[str, int]:
    """Fill the lake's file system (``FILLER``) until a write fails for want of space: what was
    written and what is left free."""
    chunk = 1024 * 1024
    with (lake / FILLER).open("ab", buffering=0) as fh:  # unbuffered: nothing left to flush at close
        while chunk >= 512:
            try:
                fh.write(b"\0" * chunk)
            except OSError:
                chunk //= 8
    stat = os.statvfs(lake)
    return {"filler_bytes": (lake / FILLER).stat().st_size, "free_bytes": stat.f_bavail * stat.f_frsize}


def free_disk(lake: Path) -> dict[str, int]:
    """Delete the filler: the lake's disk has room again."""
    (lake / FILLER).unlink(missing_ok=True)
    stat = os.statvfs(lake)
    return {"free_bytes": stat.f_bavail * stat.f_frsize}


def _users_command(env: dict[str, str], *args: str, browser: Any = None) -> str:
    """``spotify-assets users ARGS`` as an operator types it; ``browser(url)`` opens the consent URL
    it prints (``users add``). Its output; RuntimeError unless it succeeded."""
    from spotify_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    env = env | {
        "SPOTIFY_CLIENT_ID": SANDBOX_CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("spotify-assets")), "users", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if browser is not None and "/authorize?" in line:
            browser(line.strip())
    proc.wait(timeout=120)
    out = "".join(printed).strip()
    if proc.returncode != 0:
        raise RuntimeError(f"spotify-assets users {' '.join(args)} failed ({proc.returncode}): {out}")
    return out


def remove_listener(env: dict[str, str], name: str) -> str:
    """``users remove NAME``: no longer polled, their plays kept. What it said."""
    return _users_command(env, "remove", name).splitlines()[-1]


def add_listener(env: dict[str, str], sandbox: Any, name: str) -> str:
    """``users add NAME``, the consent given in the sandbox as that listener (the browser a person
    would use). What it said."""
    from spotify_sandbox.server import SANDBOX_USER_PARAM

    def consent(url: str) -> None:
        with urllib.request.urlopen(f"{url}&{SANDBOX_USER_PARAM}={name}", timeout=30) as page:
            assert page.status == 200

    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    args = ["--no-browser", "--timeout", "60", "--redirect-uri", redirect]
    args += ["--accounts-url", sandbox.url, "--api-url", sandbox.url]
    return _users_command(env, "add", name, *args, browser=consent).splitlines()[-1]


class Runs:
    """The platform's pipeline runs, read from the instance ``dev`` writes (as the UI reads it)."""

    def __init__(self, data: Path) -> None:
        import dagster as dg

        from spotify_assets.settings import dagster_home

        self.instance = dg.DagsterInstance.from_config(str(dagster_home(data)))

    def close(self) -> None:
        self.instance.dispose()

    def find(
        self,
        statuses: list[Any] | None = None,
        user_id: str = "",
        created_after: datetime | None = None,
        updated_after: datetime | None = None,
    ) -> list[Any]:
        """The pipeline's runs (newest first) with these statuses, of this listener, since then."""
        import dagster as dg

        from spotify_assets.jobs import spotify_pipeline_job
        from spotify_assets.users.run_history import PARTITION_TAG

        return list(
            self.instance.get_runs(
                dg.RunsFilter(
                    job_name=spotify_pipeline_job.name,
                    statuses=statuses or [],
                    tags={PARTITION_TAG: user_id} if user_id else {},
                    created_after=created_after,
                    updated_after=updated_after,
                )
            )
        )

    def going(self, user_id: str = "") -> bool:
        """Whether a run (of the listener) is queued, starting or going."""
        import dagster as dg

        s = dg.DagsterRunStatus
        return bool(self.find([s.QUEUED, s.NOT_STARTED, s.STARTING, s.STARTED], user_id))

    def orphaned(self) -> bool:
        """Whether a run is STARTED with its worker gone (``dev``'s tree killed under it): the
        daemon fails it at its next look, as the instance's launcher tells it (``run_launcher``)."""
        import dagster as dg

        from spotify_assets.users.dagster_internals import WorkerStatus

        launcher = self.instance.run_launcher
        return any(
            launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
            for run in self.find([dg.DagsterRunStatus.STARTED])
        )

    def requeued(self) -> bool:
        """Whether a run waits in the queue for a code server that was away: the daemon put it back
        (``instance_config.RUN_QUEUE_USER_CODE_RETRIES``) and asks again every few wall seconds,
        a minute or two that loses nothing in real time and hours of plays on this clock."""
        import dagster as dg

        return any(
            _enqueued_times(self.instance, run.run_id) > 1
            for run in self.find([dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING])
        )

    def settled(self, user_id: str) -> bool:
        """Whether the listener's latest run succeeded (what it was shown is merged) and none is going."""
        import dagster as dg

        latest = self.find([], user_id)[:1]
        return bool(latest) and latest[0].status == dg.DagsterRunStatus.SUCCESS

    def steps(self, run_id: str) -> tuple[set[str], set[str]]:
        """(steps started, steps succeeded) of a run."""
        import dagster as dg

        t = dg.DagsterEventType
        records = self.instance.get_records_for_run(run_id, of_type={t.STEP_START, t.STEP_SUCCESS}).records
        started: set[str] = set()
        done: set[str] = set()
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.step_key:
                (done if event.event_type == t.STEP_SUCCESS else started).add(event.step_key)
        return started, done

    def failure(self, run_id: str) -> str:
        """What a failed run's steps said (each error with its causes)."""
        import dagster as dg

        records = self.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        texts = []
        for record in records:
            event = record.event_log_entry.dagster_event
            error = event.step_failure_data.error if event is not None else None
            if error is not None:
                texts.append(error.to_string())
        return "\n".join(texts)


def run_worker(root: int, run_id: str) -> int | None:
    """The pid of the process executing run ``run_id`` below ``root``, if its code server (its
    parent) lives: the run's log capture (a ``tail`` of a file named after the run) is its
    child. A worker whose code server died is left alone: nobody could mark its run failed but
    run monitoring, after the job's maximum runtime."""
    tree = descendants(root)
    for pid, parent in tree.items():
        if run_id in command_line(pid) and command_line(pid).startswith("tail"):
            server = command_line(tree.get(parent, 0))
            return parent if ("grpc" in server or "code-server" in server) else None
    return None


def with_restores(faults: list[Fault], hours: float, seed: int) -> list[Fault]:
    """``faults`` and, after each that lasts, its end (``FOLLOW_UP``: the listener's new sign-in
    after a ``revoke``, the disk freed after a ``disk-full``), ``FOLLOW_UP_HOURS`` later (drawn
    from ``seed``; before the end, so the soak ends with every token working and room on disk)."""
    rng = random.Random(seed + 1)
    out = list(faults)
    for fault in faults:
        if fault.kind in FOLLOW_UP:
            back = min(
                fault.at_hour + rng.uniform(*FOLLOW_UP_HOURS[fault.kind]),
                fault.at_hour + (hours - fault.at_hour) / 2,
            )
            out.append(Fault(round(back, 2), FOLLOW_UP[fault.kind], fault.user))
    return sorted(out, key=lambda f: f.at_hour)


def _snapshot_ms(data: Path) -> dict[str, set[int]] | None:
    """user id -> played_at (ms) the dashboard's snapshot holds, or None while it cannot be read."""
    from app.warehouse import from_env
    from spotify_assets.schema import PLAYS_TABLE

    warehouse = from_env({"SPOTIFY_DATA_DIR": str(data)})
    if not warehouse.exists():
        return None
    try:
        frame = warehouse.fetch({"p": f"SELECT user_id, epoch_ms(played_at) AS ms FROM {PLAYS_TABLE}"})["p"]
    except Exception:  # the snapshot being replaced: the next look reads it
        return None
    if frame is None:
        return None
    out: dict[str, set[int]] = {}
    for user_id, ms in frame.itertuples(index=False):
        out.setdefault(str(user_id), set()).add(int(ms))
    return out


def _caught_up(sandbox: Any, data: Path, user_ids: list[str], end_ms: int, revoked: set[str]) -> bool:
    """Every listener with a token was shown a page at the end instant, and the snapshot holds each
    one's latest 50 plays at that instant."""
    shown = sandbox.shown_at()
    held = _snapshot_ms(data)
    if held is None:
        return False
    for user_id in user_ids:
        if user_id in revoked:
            continue
        if end_ms not in shown.get(user_id, []):
            return False
        latest = {p.played_at_ms for p in sandbox.listener_for(user_id).recent(end_ms)}
        if not latest <= held.get(user_id, set()):
            return False
    return True


def _enqueued_times(instance: Any, run_id: str) -> int:
    """How often the run entered the queue: more than once when the daemon put it back."""
    import dagster as dg

    return len(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED))


def _final_state(
    data: Path,
) -> tuple[dict[str, list[int]], list[tuple[int, int]], int, dict[str, int], int]:
    """(played_at ms per user id, recorded gaps in ms, runs, runs by status, runs the daemon put
    back into the queue) once dev has stopped."""
    import dagster as dg
    import duckdb

    from spotify_assets.schema import GAPS_TABLE, PLAYS_TABLE
    from spotify_assets.settings import dagster_home, layout

    plays: dict[str, list[int]] = {}
    gaps: list[tuple[int, int]] = []
    path = layout(data).warehouse
    if path.exists():
        with duckdb.connect(str(path), read_only=True) as con:
            for user_id, ms in con.execute(
                f"SELECT user_id, epoch_ms(played_at) FROM {PLAYS_TABLE}"
            ).fetchall():
                plays.setdefault(str(user_id), []).append(int(ms))
            tables = {
                row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }
            if GAPS_TABLE in tables:
                gaps = [
                    (int(a), int(b))
                    for a, b in con.execute(
                        f"SELECT epoch_ms(gap_start), epoch_ms(gap_end) FROM {GAPS_TABLE}"
                    ).fetchall()
                ]
    with dg.DagsterInstance.from_config(str(dagster_home(data))) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="spotify_pipeline"))
        requeued = sum(_enqueued_times(instance, r.dagster_run.run_id) > 1 for r in records)
    statuses: dict[str, int] = {}
    for record in records:
        key = record.dagster_run.status.value
        statuses[key] = statuses.get(key, 0) + 1
    return plays, gaps, len(records), statuses, requeued


def _sensor_tick_gaps(data: Path) -> list[float]:
    """Wall seconds between consecutive evaluations of the new-plays sensor (what ``dev``'s daemon
    made of ``SPOTIFY_POLL_INTERVAL_S``), oldest first, once dev has stopped."""
    import dagster as dg

    from spotify_assets.settings import dagster_home
    from spotify_assets.users.run_history import SENSOR_NAME

    with dg.DagsterInstance.from_config(str(dagster_home(data))) as instance:
        stamps = sorted(
            tick.timestamp
            for state in instance.all_instigator_state()
            if state.instigator_name == SENSOR_NAME
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)
        )
    return [round(b - a, 1) for a, b in pairwise(stamps)]


def _diagnosis(data: Path, sandbox: Any, start: datetime, lines: int = 80) -> dict[str, Any]:
    """What a failed soak needs read before its data directory goes: each run (status, partition,
    what launched it, when), the sensor's and schedule's last ticks, the sandbox's last requests
    and the tail of each ``dev`` log."""
    import dagster as dg

    from spotify_assets.settings import dagster_home

    def hours(ts: float | None) -> float | None:
        return None if ts is None else round((ts - start.timestamp()) / 3600, 2)

    def wall(ts: float | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")

    runs: list[dict[str, Any]] = []
    ticks: dict[str, list[dict[str, Any]]] = {}
    with dg.DagsterInstance.from_config(str(dagster_home(data))) as instance:
        for record in reversed(instance.get_run_records()):
            run = record.dagster_run
            runs.append(
                {
                    "run": run.run_id[:8],
                    "job": run.job_name,
                    "status": run.status.value,
                    "partition": run.tags.get("dagster/partition", ""),
                    "by": run.tags.get("dagster/sensor_name") or run.tags.get("dagster/schedule_name", ""),
                    "created": wall(record.create_timestamp.timestamp()),
                    "started": wall(record.start_time),
                    "ended": wall(record.end_time),
                }
            )
        for state in instance.all_instigator_state():
            ticks[state.instigator_name] = [
                {
                    "at": wall(tick.timestamp),
                    "status": tick.status.value,
                    "runs": [r[:8] for r in tick.run_ids],
                    "skip": (tick.skip_reason or "")[:300],
                    "error": (tick.error.message.strip().splitlines() or [""])[-1][:300]
                    if tick.error
                    else "",
                }
                for tick in reversed(
                    instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=15)
                )
            ]
    logs = {
        path.name: path.read_text(errors="replace").splitlines()[-lines:]
        for path in sorted(data.glob("dev-*.log"))
    }
    return {
        "runs": runs,
        "ticks": ticks,
        "sandbox_last_requests": sandbox.stats()["log"][-40:],
        "shown_at_hours": {u: [hours(ms / 1000) for ms in v] for u, v in sandbox.shown_at().items()},
        "dev_logs": logs,
    }


def _lake_files(data: Path) -> tuple[list[str], list[str]]:
    """(published Parquet files that do not read whole, temporary files left behind) in the lake."""
    import pyarrow.parquet as pq

    from spotify_assets.settings import layout

    torn, temps = [], []
    lake = layout(data).lake
    for path in sorted(lake.rglob("*")) if lake.exists() else []:
        if not path.is_file():
            continue
        name = str(path.relative_to(lake))
        if path.name.startswith(".tmp-"):
            temps.append(name)
        elif path.suffix == ".parquet":
            try:
                pq.read_table(path)
            except Exception:
                torn.append(name)
    return torn, temps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--hours",
        type=float,
        default=168.0,
        help="simulated hours (the short form: at most; it ends once met)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="draws the fault schedule and the sandbox's histories"
    )
    parser.add_argument(
        "--users", default=",".join(HOUSEHOLD[:-1]), help="the listeners at the start (of HOUSEHOLD)"
    )
    parser.add_argument(
        "--poll-interval-s",
        type=int,
        default=None,
        help="the platform's SPOTIFY_POLL_INTERVAL_S (default: the platform's own, 60; "
        f"the short form's {SHORT_POLL_INTERVAL_S})",
    )
    parser.add_argument(
        "--seconds-per-hour",
        type=float,
        default=None,
        help="wall seconds per simulated hour (default: the sensor's interval over "
        "SIMULATED_HOURS_PER_POLL: 30 at 60 s; the short form's 60 at 15 s; the API shows 50 plays)",
    )
    parser.add_argument("--every-kind-once", action="store_true", help="the short form: each fault kind once")
    parser.add_argument(
        "--warm-up-s", type=float, default=300.0, help="wall seconds allowed for every listener's first run"
    )
    parser.add_argument(
        "--catch-up-s",
        type=float,
        default=300.0,
        help="wall seconds allowed after the end for the last plays shown to reach the snapshot",
    )
    parser.add_argument(
        "--keep", default="", help="data directory to use and keep (default: a temporary one)"
    )
    parser.add_argument("--json", default="", help="also write the JSON here")
    args = parser.parse_args(argv)
    from spotify_assets.settings import POLL_INTERVAL_ENV, poll_interval_s

    if args.poll_interval_s is None and args.every_kind_once:
        args.poll_interval_s = SHORT_POLL_INTERVAL_S
    # dev's environment holds no SPOTIFY_ variable but these: its sensor polls as the soak says.
    polling = {} if args.poll_interval_s is None else {POLL_INTERVAL_ENV: str(args.poll_interval_s)}
    poll_s = poll_interval_s(polling)  # nonsense fails here, as it would in dev's code server
    if args.seconds_per_hour is None:
        pace = SIMULATED_HOURS_PER_POLL["short" if args.every_kind_once else "scheduled"]
        args.seconds_per_hour = poll_s / pace
    names = [n for n in args.users.split(",") if n]
    data = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="soak-"))
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env["SPOTIFY_DATA_DIR"] = str(data)
    env |= polling
    os.environ["SPOTIFY_DATA_DIR"] = str(data)
    os.environ.pop("DAGSTER_HOME", None)

    import dagster as dg

    from spotify_assets.assets import bq_plays, gcs_csv
    from spotify_assets.settings import layout
    from spotify_assets.users.command import sync_partitions
    from spotify_assets.users.run_history import PARTITION_TAG
    from spotify_assets_tests.fixtures.sandbox import register_listeners
    from spotify_sandbox.listener import to_ms
    from spotify_sandbox.server import SandboxServer

    wall0, load0 = time.monotonic(), os.getloadavg()[0]
    # A day of margin: the runs' checks judge played_at against the real clock (no future plays).
    start = (datetime.now(UTC) - timedelta(hours=args.hours + 24)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=args.hours)
    # The short form injects its rounds as the platform meets them, the clock stopping after the
    # last one (``--hours`` at most); the scheduled form injects each fault at its hour.
    rounds = short_rounds(args.seed, names) if args.every_kind_once else []
    faults = (
        [] if rounds else with_restores(fault_schedule(args.hours, args.seed, names), args.hours, args.seed)
    )
    log = Log()
    ok = caught_up = False
    lake = layout(data).lake
    no_disk = mount_lake(lake)  # "" once the lake has a disk of its own to fill
    if no_disk:
        _say(f"the lake's disk cannot be filled ({no_disk}): disk-full is not injected")
    dev: Dev | None = None
    try:
        with SandboxServer(seed=args.seed, now=start, clock="fixed") as sandbox:
            users = register_listeners(sandbox, data / "users", *names)
            sync_partitions(data, add=[u.user_id for u in users])
            env["SPOTIFY_SANDBOX_URL"] = sandbox.url
            user_ids = {u.name: u.user_id for u in users}
            dev = Dev(env, data, log)
            dev.start()
            # The clock stands at the start until every listener's first run is in the snapshot: the
            # faults are meant for a platform that runs, not for one still starting on a busy machine.
            warm_up = time.monotonic()
            while not set(user_ids.values()) <= set(_snapshot_ms(data) or {}):
                if time.monotonic() - warm_up > args.warm_up_s:
                    raise RuntimeError(
                        f"the first runs did not reach the snapshot in {args.warm_up_s:g} s; see {data}"
                    )
                dev.restart_if_dead(sandbox.now().isoformat())
                time.sleep(2)
            log.warm_up_s = round(time.monotonic() - warm_up, 1)
            _say(f"every listener's first run is in the snapshot ({log.warm_up_s:g} s): the clock starts")
            revoked: set[str] = set()
            #: user id -> the simulated instant (ms) the listener was removed (``swap-listener``).
            removed: dict[str, int] = {}
            spare = [n for n in HOUSEHOLD if n not in names]
            log.growth.append(measure(data, 0.0))
            pages = page_time.Samples(data)  # the dashboard's cold page time at each sample
            pages.start(log.growth[-1])
            clock0 = time.monotonic()
            pending = list(faults)
            #: Faults waiting for their moment: a run in the right step, a listener with no run going.
            armed: list[Fault] = []
            #: What injected faults must still bring about (a restart said, a run failed or succeeded).
            awaited: list[Awaited] = []
            #: Faults that could not be injected, and why (a failed command; the disk, when not root).
            missed: list[dict[str, Any]] = []
            runs = Runs(data)
            lake_step, merge_step = gcs_csv.op.name, bq_plays.op.name

            def hour() -> float:
                return round((sandbox.now() - start).total_seconds() / 3600, 2)

            def note_met() -> None:
                for item in list(awaited):
                    seen = item.check()
                    if seen is None:
                        continue
                    awaited.remove(item)
                    took = round(time.monotonic() - item.since, 1)
                    entry = {"sim": sandbox.now().isoformat(), "after": item.kind, "took_s": took}
                    if item.kind in RECOVERED_LINE:
                        log.restarts.append(entry | {"by": "dev"})
                        _say(f"dev restarted what {item.kind} took down in {took:g} s")
                    else:
                        log.met.append(entry | seen)
                        _say(f"{item.kind}: met in {took:g} s {seen}")

            def failed_for_want_of_space(since: datetime) -> dict[str, Any] | None:
                for run in runs.find([dg.DagsterRunStatus.FAILURE], updated_after=since):
                    said = [ln for ln in runs.failure(run.run_id).splitlines() if "No space left" in ln]
                    if said:
                        return {
                            "run": run.run_id[:8],
                            "user_id": run.tags.get(PARTITION_TAG),
                            "error": said[0][:300],
                        }
                return None

            def succeeded_since(since: datetime, user_id: str = "") -> dict[str, Any] | None:
                done = runs.find([dg.DagsterRunStatus.SUCCESS], user_id, created_after=since)
                return (
                    {"succeeded": done[-1].run_id[:8], "user_id": done[-1].tags.get(PARTITION_TAG)}
                    if done
                    else None
                )

            def first_run(user_id: str) -> dict[str, Any] | None:
                return {"first_run_in_snapshot": user_id} if user_id in (_snapshot_ms(data) or {}) else None

            def ended(run_id: str) -> dict[str, Any] | None:
                run = runs.instance.get_run_by_id(run_id)
                over = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
                return {"run": run_id[:8], "status": run.status.value} if run and run.status in over else None

            def inject_now(fault: Fault) -> None:
                if fault.kind in ("disk-full", "disk-freed") and no_disk:
                    missed.append({"kind": fault.kind, "why": no_disk, "allowed": True})
                    _say(f"[{hour():7.2f} h] {fault.kind}: not injected ({no_disk})")
                    return
                if fault.kind in ("kill-run-worker", "swap-listener"):
                    armed.append(fault)
                    _say(f"[{hour():7.2f} h] {fault.kind} {fault.user} {fault.stage}: armed".rstrip())
                    return
                line = RECOVERED_LINE.get(fault.kind, "")
                before = dev.said(line) if line else 0
                at = datetime.now(UTC)
                log.faults.append(inject(fault, sandbox, dev, data))
                _say(f"[{fault.at_hour:7.2f} h] {fault.kind} {fault.user}".rstrip())
                if line:  # dev restarts what the kill took down, and says so
                    awaited.append(Awaited(fault.kind, lambda: {} if dev.said(line) > before else None))
                if fault.kind == "disk-full":  # a run fails, saying why
                    # The rounds go on meanwhile; the disk is freed only once this is met (``held``).
                    awaited.append(Awaited(fault.kind, lambda: failed_for_want_of_space(at), blocks=False))
                elif fault.kind == "disk-freed":  # and once freed, a run succeeds
                    awaited.append(Awaited(fault.kind, lambda: succeeded_since(at), blocks=False))
                elif fault.kind == "revoke":
                    revoked.add(user_ids[fault.user])
                elif fault.kind == "restore":
                    revoked.discard(user_ids[fault.user])

            def strike(fault: Fault) -> dict[str, Any] | None:
                """Kill the worker of the first run in ``fault.stage`` (``RUN_WORKER_STAGES``)."""
                for run in runs.find([dg.DagsterRunStatus.STARTED]):
                    started, done = runs.steps(run.run_id)
                    if fault.stage == "lake":  # in the lake's step, or just after it
                        ready = lake_step in started and merge_step not in started
                    else:  # the lake's file written, the warehouse's merge going
                        ready = lake_step in done and merge_step in started and merge_step not in done
                    pid = run_worker(dev.proc.pid, run.run_id) if ready and dev.proc is not None else None
                    if pid is None:
                        continue
                    os.kill(pid, signal.SIGKILL)
                    return {
                        "run": run.run_id,
                        "user_id": run.tags.get(PARTITION_TAG),
                        "pid": pid,
                        "steps_done": sorted(done),
                    }
                return None

            def fire_armed() -> None:
                """Fire the armed faults whose moment came, in the order they were armed: one not
                ready holds back those after it (the short form's round logs its kill of a run's
                worker, then its swap of a listener, as ``SHORT_ROUNDS`` lists them)."""
                for fault in list(armed):
                    base = {
                        "at_hour": hour(),
                        "kind": fault.kind,
                        "sim": sandbox.now().isoformat(),
                        "user": fault.user,
                    }
                    if fault.kind == "swap-listener":
                        gone = user_ids[fault.user]
                        # Removed once what they were shown is merged (their latest run succeeded:
                        # "exact up to the removal" then means something), between two runs, as an
                        # operator would; and once the API's error answers (meant for the
                        # platform) are served, as ``users add`` asks the API too.
                        if not runs.settled(gone) or sandbox.pending_faults():
                            break
                        armed.remove(fault)
                        if not spare:
                            missed.append(
                                {
                                    "kind": fault.kind,
                                    "why": "no listener to add: the whole household is in --users",
                                }
                            )
                            continue
                        newcomer = spare.pop(0)
                        try:
                            done = {"removed": remove_listener(env, fault.user)}
                            removed[gone] = to_ms(sandbox.now())
                            done["added"] = add_listener(env, sandbox, newcomer)
                        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                            missed.append({"kind": fault.kind, "why": str(exc)[-800:]})
                            _say(f"[{hour():7.2f} h] swap-listener: not injected: {str(exc)[-300:]}")
                            continue
                        new_id = sandbox.listener_for(newcomer).profile.user_id
                        user_ids[newcomer] = new_id
                        log.faults.append(base | {"newcomer": newcomer} | done)
                        _say(f"[{hour():7.2f} h] swap-listener: removed {fault.user}, added {newcomer}")
                        awaited.append(Awaited(fault.kind, partial(first_run, new_id), blocks=False))
                    elif fault.kind == "kill-run-worker":
                        killed = strike(fault)
                        if killed is None:
                            break
                        armed.remove(fault)
                        at, run_id = datetime.now(UTC), killed["run"]
                        log.faults.append(
                            base | {"stage": fault.stage} | killed | {"user": killed["user_id"]}
                        )
                        _say(
                            f"[{hour():7.2f} h] kill-run-worker: run {run_id[:8]} ({fault.stage}, done: {killed['steps_done']})"
                        )
                        awaited.append(Awaited(fault.kind, partial(ended, run_id)))
                        # Its listener's next run succeeds (the catch-up waits for it, not the rounds).
                        later = partial(succeeded_since, at, killed["user_id"])
                        awaited.append(Awaited("kill-run-worker: a later run", later, blocks=False))

            #: Follow-ups of the short form waiting for their fault to be met (a disk freed only once
            #: a run has met it full).
            held: list[Fault] = []

            def waiting_for(fault: Fault) -> bool:
                return fault.kind == "disk-freed" and any(a.kind == "disk-full" for a in awaited)

            def met() -> bool:
                """Every fault injected so far was met: its answers served, its restart seen, its runs
                failed; and no run is on its way (the next round's kill of the daemon would take down
                runs the sensor was shown plays for, and the revoke that comes with it keep them
                from a retry for hours: plays the verdict counts as shown, lost to the harness)."""
                return (
                    not armed
                    and not held
                    and not any(a.blocks for a in awaited)
                    and sandbox.pending_faults() == 0
                    and not runs.going()
                )

            def disk_full_now() -> bool:
                """Whether the lake's disk is full (a ``disk-full`` not yet followed by its
                ``disk-freed``): every run fails until it is freed, hours later on the clock, so
                a clock held for their retries would never get there."""
                kinds = [f["kind"] for f in log.faults]
                return kinds.count("disk-full") > kinds.count("disk-freed")

            def retrying() -> bool:
                """Whether a listener still registered waits for the retry of a failed run while
                plays the API shows now are not merged (a failed run whose plays another run merged,
                the schedule's and the sensor's side by side, leaves nothing at risk: the sensor
                then finds no new play, and a clock held for that retry would wait for nothing)."""
                waiting = [
                    u
                    for u in user_ids.values()
                    if u not in removed
                    and u not in revoked
                    and runs.find([], u)
                    and not runs.settled(u)
                    and not runs.going(u)
                ]
                if not waiting:
                    return False
                held = _snapshot_ms(data)
                if held is None:  # being replaced: the next look reads it
                    return True
                now_ms = to_ms(sandbox.now())
                return any(
                    not {p.played_at_ms for p in sandbox.listener_for(u).recent(now_ms)} <= held.get(u, set())
                    for u in waiting
                )

            def recovering() -> bool:
                """Whether ``dev`` has yet to restart what a kill took down (its line not seen): no
                sensor ticks, no run starts meanwhile, a wall minute at load that is hours of an
                active listener's plays on this clock (seed 1 of the s34 soaks lost 79 of alice's
                in the 81 s a code server took to come back); in real time that minute loses nothing."""
                return any(a.kind in RECOVERED_LINE for a in awaited)

            try:
                checked = 0.0
                # The clock stands still while a failed run waits for its retry: the platform asks
                # again a sensor interval later (``sensors``), doubled after each further failure,
                # simulated hours here in which an active listener's 50-play window would pass; in
                # real time that minute loses nothing. So it does while a run's worker is gone and
                # the daemon has yet to fail the run (half a wall minute at most), and while a run
                # waits in the queue for a code server that was away (``Runs.requeued``), and while
                # ``dev`` restarts what a kill took down (``recovering``). At most
                # ``MAX_PAUSED_S`` in all, so a failure that persists still shows.
                paused, last, waiting = 0.0, time.monotonic(), False
                while True:
                    now = time.monotonic()
                    if waiting and paused < MAX_PAUSED_S:
                        paused += now - last
                    last = now
                    sim = min(
                        end,
                        start + timedelta(hours=(now - clock0 - paused) / args.seconds_per_hour),
                    )
                    sandbox.set_now(sim)
                    while (
                        pending
                        and start + timedelta(hours=pending[0].at_hour) <= sim
                        # a disk is freed only once a run has met it full
                        and not waiting_for(pending[0])
                    ):
                        inject_now(pending.pop(0))
                    fire_armed()
                    if time.monotonic() - checked > 1:
                        pages.collect()
                        note_met()
                        waiting = not disk_full_now() and (
                            retrying() or runs.orphaned() or runs.requeued() or recovering()
                        )
                        checked = time.monotonic()
                    if sim - start >= timedelta(days=len(log.growth)):  # a simulated day went by
                        log.growth.append(measure(data, (sim - start).total_seconds() / 3600))
                        pages.start(log.growth[-1])
                    for fault in [f for f in held if not waiting_for(f)]:
                        held.remove(fault)
                        inject_now(Fault(hour(), fault.kind, fault.user, fault.stage))
                    if rounds and met():
                        at = round((sim - start).total_seconds() / 3600, 2)
                        for fault in rounds.pop(0):
                            fault = Fault(at, fault.kind, fault.user, fault.stage)
                            if waiting_for(fault):
                                held.append(fault)
                            else:
                                inject_now(fault)
                    elif args.every_kind_once and not rounds and met():
                        end = sim  # the short form ends once its last round was met
                    if sim >= end:  # after the faults due by the end
                        break
                    dev.restart_if_dead(sandbox.now().isoformat())
                    time.sleep(0.05 if armed else 0.2)  # a run's step lasts a second or so
                end_ms = to_ms(
                    end
                )  # as the sandbox records the instants it showed (a short form's end has µs)
                _say(f"the clock stops at {end.isoformat()}: catching up")
                catch_up = time.monotonic()
                deadline = catch_up + args.catch_up_s
                active = [u for u in user_ids.values() if u not in removed]
                while not (caught_up := _caught_up(sandbox, data, active, end_ms, revoked)):
                    if time.monotonic() > deadline:
                        _say(
                            f"catch-up: not every listener's latest plays reached the snapshot in {args.catch_up_s:g} s"
                        )
                        break
                    note_met()
                    dev.restart_if_dead(sandbox.now().isoformat())
                    time.sleep(2)
                log.catch_up_s = round(time.monotonic() - catch_up, 1)
                final = measure(data, (end - start).total_seconds() / 3600)
                if final["hours"] - log.growth[-1]["hours"] < 1:  # a day's sample at the very end
                    log.growth.pop()
                log.growth.append(final)
                pages.start(final)
                pages.collect(wait=True)
                note_met()
                while awaited and time.monotonic() - awaited[0].since < RECOVERY_BUDGET_S:
                    note_met()
                    time.sleep(1)
            finally:
                runs.close()
                dev.stop()
            plays, gaps, run_count, statuses, requeued = _final_state(data)
            tick_gaps = _sensor_tick_gaps(data)
            verdicts: list[ListenerVerdict] = []
            shown = sandbox.shown_at()
            for name, user_id in user_ids.items():
                verdicts.append(
                    judge_listener(
                        user_id,
                        sandbox.listener_for(name),
                        shown.get(user_id, []),
                        plays.get(user_id, []),
                        removed_at_ms=removed.get(user_id),
                    )
                )
            torn, temps = _lake_files(data)
            # What the dashboard reads (the published snapshot) holds exactly the warehouse's plays.
            dashboard = _snapshot_ms(data) or {}
            dashboard_exact = all(
                dashboard.get(u, set()) == set(plays.get(u, [])) for u in {*plays, *dashboard}
            )
            counted = gap_counts(verdicts, gaps)
            injected = [f for f in log.faults if f["kind"] not in FOLLOW_UP.values()]
            hours = round((end - start).total_seconds() / 3600, 2)
            # A fault the platform never met (answers still queued at the end) or never injected (a
            # round not reached) tested nothing: the soak fails rather than count it. Only a disk
            # that cannot be mounted (not root) is allowed, and said.
            unmet = sandbox.pending_faults()
            not_injected = (
                [f.kind for r in rounds for f in r]
                + [f.kind for f in pending]
                + [f.kind for f in armed]
                + [m["kind"] for m in missed if not m.get("allowed")]
            )
            line = verdict_line(hours, run_count, len(injected), verdicts, counted, len(torn))
            ok = (
                caught_up  # else the platform stalled: "nothing lost" would only mean nothing was shown
                and not unmet
                and not not_injected
                and passed(verdicts, counted, len(torn))
                and dashboard_exact
                and all(s <= STOP_BUDGET_S for s in log.stops_s)
                and not awaited  # dev restarted what every kill took down, every fault's runs came
            )
            report = {
                "verdict": line,
                "passed": ok,
                "caught_up": caught_up,
                "hours": hours,
                "seed": args.seed,
                "seconds_per_hour": args.seconds_per_hour,
                "poll_interval_s": poll_s,
                "sensor_tick_gaps_s": tick_gaps,
                "simulated": [start.isoformat(), end.isoformat()],
                "runs": run_count,
                "runs_by_status": statuses,
                "runs_requeued": requeued,  # waited in the queue for a code server that was away
                "faults": log.faults,
                "fault_answers_unmet": unmet,
                "not_injected": not_injected,
                "not_injectable": [m for m in missed if m.get("allowed")],
                "missed": missed,
                "restarts": log.restarts,
                "met": log.met,
                "not_restarted": [a.kind for a in awaited if a.kind in RECOVERED_LINE],
                "not_met": [a.kind for a in awaited],
                "stops_s": log.stops_s,
                "warm_up_s": log.warm_up_s,
                "catch_up_s": log.catch_up_s,
                "clock_held_s": round(paused, 1),  # wall seconds the clock stood still (at most MAX_PAUSED_S)
                "growth_per_day": growth_per_day(log.growth),
                "growth_samples": log.growth,
                "gaps": {"recorded": counted[0], "true": counted[1], "false": counted[2], "rows": len(gaps)},
                "torn_files": torn,
                "dashboard_equals_warehouse": dashboard_exact,
                "temp_files_left": temps,
                "listeners": [
                    {
                        **asdict(v),
                        # the first 20 of each (the line counts them all; so do the totals)
                        "lost": v.lost[:20],
                        "duplicated": v.duplicated[:20],
                        "unexpected": v.unexpected[:20],
                        "totals": {
                            "lost": len(v.lost),
                            "duplicated": len(v.duplicated),
                            "unexpected": len(v.unexpected),
                        },
                    }
                    for v in verdicts
                ],
                "wall_s": round(time.monotonic() - wall0, 1),
                "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "data": str(data),
            }
            if not ok:  # read before the data directory goes (pytest's, or a temporary one)
                report["diagnosis"] = _diagnosis(data, sandbox, start)
    finally:
        if dev is not None:
            dev.stop()  # stopped already unless the warm-up failed or a signal came before the run
        if not no_disk:
            unmount_lake(lake)
    print(line if caught_up else f"{line}; STALLED: the last plays shown did not reach the snapshot")
    print(growth_line(report["growth_per_day"]))
    print(json.dumps(report, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return 0 if ok else 1


def _stop_on_signals() -> None:
    """Stop the soak as ``dev`` stops, however it was started: SIGTERM, SIGHUP and SIGINT (which a
    script's background job ignores, ``make soak &``) raise ``KeyboardInterrupt``, so every
    ``finally`` runs: ``dev``'s tree stopped, the lake's file system unmounted. Without it a
    ``kill`` of the soak left a whole ``dev`` tree behind (2026-12-07). Only when run as a
    command: under pytest the test runner's own handlers stay."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


if __name__ == "__main__":
    _stop_on_signals()
    raise SystemExit(main())

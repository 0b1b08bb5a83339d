"""``spotify-assets demo`` and ``spotify-assets dev``: the newcomer's two entry points.

``demo`` runs the real job once, in process, against whatever the environment configures:
the real Spotify API when ``SPOTIFY_CLIENT_ID`` is set, else the sandbox API (started here
on a free loopback port with a fixed clock anchored to the current day, ``demo_now``: the
history ends today, so the dashboard's "Last 4 weeks" is full, and a second demo the same day
finds no new plays). Runs are
recorded in ``$SPOTIFY_DATA_DIR/dagster_home`` so ``make dev`` shows them afterwards.

``dev`` stays up for months, so what it holds is paid every hour (issue 28): it imports only
what supervising needs. Dagster, pandas and Spark's client are imported by ``demo``'s own
functions, and what ``dev`` asks of them (the single listener's partition, the Spark warm-up)
runs in a short-lived child process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from spark.settings import HOUSEHOLD_NATIVE_ENV
from spotify_assets.instance_config import prepare_local_home
from spotify_assets.settings import dagster_home, data_dir
from spotify_sandbox.processes import MakeSignals, stop_groups
from spotify_sandbox.supervisor import (
    DAGSTER_DEV_NAME,
    STOP_SIGNALS,
    Child,
    GaveUp,
    GraphQL,
    Supervisor,
    stop_signals_held,
)

if TYPE_CHECKING:
    import dagster as dg

    from spark.connect_server import SparkConnectServer
    from spotify_sandbox.server import SandboxServer


def demo_now(now: datetime | None = None) -> datetime:
    """Where the demo's sandbox clock stands: the start of the current UTC day.

    The day, not the moment: every demo of one day sees the same history (the sandbox's plays
    are a function of the seed and the clock), so a second ``make demo`` that day adds 0, and
    no play lies in the future of the machine's clock. ``$SPOTIFY_SANDBOX_NOW``
    (``constants.DEMO_NOW_ENV``) pins it, for tests that must not depend on the date.
    """
    from spotify_sandbox.constants import DEMO_NOW_ENV
    from spotify_sandbox.listener import parse_instant

    pinned = os.environ.get(DEMO_NOW_ENV)
    if pinned:
        return parse_instant(pinned)
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def demo_sandbox() -> SandboxServer:
    """The sandbox every demo starts (``make demo``, its household, ``make cloud-demo``): its
    fixed clock at ``demo_now``, so each demo's history ends today and a second one adds 0."""
    from spotify_sandbox.server import SandboxServer

    return SandboxServer(now=demo_now())


def _prepare_home() -> Path:
    home = prepare_local_home(dagster_home())  # default local storage, with tick retention
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def single_user_partition(defs: dg.Definitions, instance: dg.DagsterInstance | None = None) -> str | None:
    """The token store's listener as a ``users`` partition of ``instance`` (default: the one at
    ``$DAGSTER_HOME``), asked of ``/v1/me``; or None after saying why it could not be asked.
    ``make cloud-demo`` uses it too."""
    import dagster as dg

    from spotify_assets.spotify.errors import SpotifyError
    from spotify_assets.users.polling import add_token_store_partition

    with dg.build_resources({"spotify": (defs.resources or {})["spotify"]}) as bound:
        try:
            owner = add_token_store_partition(instance or dg.DagsterInstance.get(), bound.spotify)
        except SpotifyError as exc:
            print(
                f"Could not ask Spotify whose the stored token is (GET /v1/me): {exc}\n"
                "Fix the cause above and run `make demo` again.",
                file=sys.stderr,
            )
            return None
    print(f"Listener: Spotify user {owner} (Dagster partition {owner!r})")
    return owner


def demo_command(argv: list[str]) -> int:
    import dagster as dg

    from spotify_sandbox.demo_steps import (
        enrich_imported_history,
        history_export,
        print_table,
        report_failure,
    )

    parser = argparse.ArgumentParser(prog="spotify-assets demo", description=__doc__)
    parser.add_argument(
        "--history-days",
        type=int,
        default=365,
        help="sandbox only: import this many days of the sandbox listener's history first, as a "
        "privacy export would be imported (0 to skip)",
    )
    parser.add_argument(
        "--users",
        default="",
        help="sandbox only: a household instead of the single listener, e.g. alice,bob: registers each "
        "(as `users add` does), imports their history and runs the pipeline once per user",
    )
    args = parser.parse_args(argv)
    if args.users:
        return _household(args)
    started = time.monotonic()
    history_imported = False
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    _prepare_home()
    with ExitStack() as stack:
        if not os.environ.get("SPOTIFY_CLIENT_ID") and not os.environ.get("SPOTIFY_SANDBOX_URL"):
            sandbox = stack.enter_context(demo_sandbox())
            # The sandbox listener lives on a fixed simulated clock: the time-based checks judge
            # its plays against that "now", not today's date (see checks.ClockConfig).
            from spotify_assets.checks import clock_run_config

            run_config.update(clock_run_config(sandbox.now()))
            os.environ["SPOTIFY_SANDBOX_URL"] = sandbox.url
            print(f"No SPOTIFY_CLIENT_ID set: using the sandbox Spotify API at {sandbox.url}")
            history_imported = args.history_days > 0
            if history_imported:
                from spotify_assets.deployments import local_resources
                from spotify_assets.import_run import import_export

                resources = local_resources()
                export = history_export(sandbox, args.history_days, data_dir() / "sandbox-export")
                report = import_export(export, resources["warehouse"], resources["lake"])
                print(
                    f"Imported {args.history_days} days of sandbox listening history as a privacy export: "
                    f"{report.rows_read} rows, {report.added} added, {report.duplicates} already present."
                )
        from spotify_assets.definitions import defs
        from spotify_assets.schema import ALL_LISTENERS, PLAYS_TABLE, TOP_TEN_TABLE

        print(f"Data directory: {data_dir()}")
        listener = single_user_partition(defs)
        if listener is None:
            return 1
        job = defs.resolve_job_def("spotify_pipeline")
        result = job.execute_in_process(
            instance=dg.DagsterInstance.get(),
            raise_on_error=False,
            run_config=run_config,
            partition_key=listener,
        )
        if not result.success:
            report_failure(result)
            return 1
        if history_imported:
            enrich_imported_history(defs)
        materialized = sorted(
            {
                e.asset_key.to_user_string()
                for e in result.all_events
                if e.is_step_materialization and e.asset_key
            }
        )
        skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
        print(f"Run {result.run_id}: materialized {', '.join(materialized) or 'nothing'}")
        asset_names = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
        skipped_assets = [s for s in skipped if s in asset_names]
        if skipped_assets:
            print(f"No new plays: skipped {', '.join(skipped_assets)} (nothing to add).")
        warehouse = (defs.resources or {})["warehouse"]
        plays = warehouse.count(PLAYS_TABLE)
        top = warehouse.query(
            f"SELECT rank, track_name, artist_names, plays, round(minutes_listened, 1) AS minutes, last_played_at "
            f"FROM {TOP_TEN_TABLE} WHERE user_id = '{ALL_LISTENERS}' ORDER BY rank"
        )
        print(f"\n{PLAYS_TABLE}: {plays} plays in the warehouse. Top ten tracks:\n")
        print_table(list(top.itertuples(index=False, name=None)), list(top.columns))
        print(f"\nDone in {time.monotonic() - started:.1f}s. Next: `make dashboard` or `make dev`.")
    return 0


def _household(args: argparse.Namespace) -> int:
    """``demo --users a,b``: always against a sandbox started here (its listeners are the household)."""
    from spotify_assets.checks import clock_run_config
    from spotify_sandbox.household import household_demo

    names = [n.strip() for n in args.users.split(",") if n.strip()]
    _prepare_home()
    with demo_sandbox() as sandbox:
        os.environ["SPOTIFY_SANDBOX_URL"] = sandbox.url
        print(f"Household demo for {', '.join(names)} on the sandbox Spotify API at {sandbox.url}")
        run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        run_config.update(clock_run_config(sandbox.now()))
        return household_demo(sandbox, names, args.history_days, run_config)


class _StopRequested(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: leave the wait and stop the children.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so no ``except Exception`` on the way
    (a failed warm-up, a listener that cannot be registered) swallows the request to stop.
    """


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequested(signum)


def _catch_stop_signals() -> dict[signal.Signals, _Handler]:
    """Make SIGINT, SIGTERM and SIGHUP raise ``_StopRequested``; return the handlers they had.

    SIGINT too, even when this command was started with it ignored, as a shell starts a
    background job (``make dev &`` in a script). Left ignored, it would stop nothing, twice over:
    Dagster gives SIGTERM whatever SIGINT has each time it builds resources in a process (the
    registration's child, ``dagster dev`` and its servers), so SIGTERM would be ignored in them;
    and a child inherits an ignored signal across ``exec`` (a caught one is reset to its
    default), so the polite SIGINT of ``stop_groups`` would do nothing.
    """
    return {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}


def _say(message: str) -> None:
    """Print to stderr, unless it is a terminal that was closed (the SIGHUP that stops us)."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def _let_go_of_a_closed_terminal() -> None:
    """Point stdout and stderr at /dev/null if they cannot be written any more (a closed
    terminal answers EIO): otherwise the flush at exit fails and turns a clean stop into
    exit status 120."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except OSError:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives until the process exits


def _start_spark_connect() -> SparkConnectServer | None:
    """Start the warm Spark (a Connect server on loopback) unless Spark is configured elsewhere,
    and hand its URL to every run as ``SPOTIFY_SPARK_REMOTE``.

    Not started when ``SPOTIFY_SPARK_REMOTE`` already names a server or ``SPOTIFY_SPARK_MASTER``
    is a cluster. The port is chosen here (``free_port``) so the URL is known at once and
    nothing waits for the JVM: a run that starts before the server is up, or after it failed,
    uses an in-process Spark instead, slower but correct.
    """
    if os.environ.get("SPOTIFY_SPARK_REMOTE"):
        from spotify_assets.resources.spark import redact  # Dagster and pandas: only in this case

        print(
            f"Spark: the Connect server in SPOTIFY_SPARK_REMOTE ({redact(os.environ['SPOTIFY_SPARK_REMOTE'])})"
        )
        return None
    master = os.environ.get("SPOTIFY_SPARK_MASTER", "local[*]")
    if not master.startswith("local"):
        return None
    from spark.connect_server import SparkConnectServer, free_port
    from spark.settings import WARM_SERVER_CONF, household_jvm

    log = data_dir() / "spark-connect" / "server.log"
    jvm = household_jvm()  # sized for a household; SPOTIFY_SPARK_DRIVER_MEMORY for a big library
    server = SparkConnectServer(
        master=master,
        port=free_port(),
        conf=WARM_SERVER_CONF,
        log_path=log,
        driver_memory=jvm.driver_memory,
        java_options=jvm.java_options,
    ).start()
    os.environ["SPOTIFY_SPARK_REMOTE"] = server.url
    return server


#: ``dev``'s short-lived helper processes (the registration, a Spark warm-up): stopped with the
#: servers if ``dev`` stops while one runs.
_HELPERS: list[subprocess.Popen[bytes]] = []


def _helper(code: str, capture: bool = False) -> subprocess.Popen[bytes]:
    """Python ``code`` in a child of its own session, recorded in ``_HELPERS`` until it is reaped."""
    with stop_signals_held():  # a stop signal now finds it recorded
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            start_new_session=True,
        )
        _HELPERS.append(proc)
    return proc


def _report_spark_connect(server: SparkConnectServer) -> None:
    """Say when the server is up and warmed up (or why not); runs use it from then on.

    The warm-up is one small top-ten job (``spark.connect_server.warm_up``), as the compose
    stack's server runs before it reports healthy: a fresh server's first job pays class
    loading and a cold JIT, which otherwise lands on the first hourly run. It runs in a child
    process, since Spark's client (pyspark, pandas, gRPC) would stay in ``dev``'s memory for good;
    the child finds the server's URL, token included, in ``SPOTIFY_SPARK_REMOTE`` (never in argv).
    """
    from spark.connect_server import ConnectServerError

    try:
        server.wait_ready(timeout_s=180)
    except ConnectServerError as exc:
        print(
            f"the Spark Connect server did not start; runs use an in-process Spark.\n{exc}", file=sys.stderr
        )
        return
    proc = _helper(
        "import os; from spark.connect_server import warm_up; "
        "print(f'{warm_up(os.environ[\"SPOTIFY_SPARK_REMOTE\"]):.1f}')",
        capture=True,
    )
    try:
        out = proc.communicate()[0].decode(errors="replace").strip().splitlines()
    finally:
        _HELPERS.remove(proc)
    if proc.returncode == 0 and out:
        warm = f"warmed up in {out[-1]}s"
    else:  # a failed warm-up leaves a usable server; runs still try it
        warm = f"warm-up failed ({out[-1] if out else f'status {proc.returncode}'})"
    where = f"sc://{server.host}:{server.port}"  # the URL without its token
    print(
        f"Spark Connect server (warm Spark for every run) at {where}, {warm}, log {server.log_path}",
        flush=True,
    )


def register_single_user() -> None:
    """Give the token store's listener its ``users`` partition before ``dagster dev`` starts, so the
    UI can materialize it at once (the first hourly tick would add it too). Registered users
    (``users add``) have theirs already; without a usable token this says so and ``dev`` goes on.
    ``dev`` runs it in a child process (``_register_single_user``)."""
    import dagster as dg

    from spotify_assets.definitions import defs
    from spotify_assets.partitions import USERS_PARTITIONS_NAME

    if dg.DagsterInstance.get().get_dynamic_partitions(USERS_PARTITIONS_NAME):
        return
    try:
        single_user_partition(defs)
    except Exception as exc:  # no credentials at all: dev still starts, the UI says the rest
        print(
            f"No listener partition yet ({exc}); `spotify-assets auth` or `users add` adds one.",
            file=sys.stderr,
        )


def _register_single_user() -> None:
    """``register_single_user`` in a child process: it loads the project's definitions (Dagster,
    pandas: some 200 MiB) that ``dev`` would otherwise hold as long as it runs."""
    proc = _helper("from spotify_sandbox.demo import register_single_user; register_single_user()")
    try:
        proc.wait()
    finally:
        _HELPERS.remove(proc)


def _sandbox_process(port: int = 0, port_file: Path | None = None) -> subprocess.Popen[bytes]:
    """The sandbox API (real-time clock, so the schedule finds new plays) in its own session."""
    where = ["--port", str(port)] + (["--port-file", str(port_file)] if port_file is not None else [])
    cmd = [sys.executable, "-m", "spotify_assets.cli", "sandbox", "--clock", "realtime", *where]
    return subprocess.Popen(cmd, start_new_session=True)


def _start_sandbox(supervisor: Supervisor) -> bool:
    """Start the sandbox, watched by ``supervisor`` (restarted on the same port, so the URL the
    runs were given still answers); sets ``SPOTIFY_SANDBOX_URL``. False if it did not start."""
    port_file = Path(tempfile.mkdtemp()) / "port"
    child = Child("the sandbox API", start=lambda: _sandbox_process(port_file=port_file))
    child.launch()
    assert child.proc is not None
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if time.monotonic() > deadline or child.proc.poll() is not None:
            supervisor.children.append(child)  # stopped with the rest
            print("the sandbox API did not start", file=sys.stderr)
            return False
        time.sleep(0.1)
    port = int(port_file.read_text().strip())
    child.start = lambda: _sandbox_process(port=port)
    supervisor.add(child)
    os.environ["SPOTIFY_SANDBOX_URL"] = f"http://127.0.0.1:{port}"
    print(f"Sandbox Spotify API (real-time clock) at {os.environ['SPOTIFY_SANDBOX_URL']}")
    return True


def _watch_spark_connect(supervisor: Supervisor, server: SparkConnectServer) -> None:
    """Watch the Connect server: restarted on its port with its token (the URL the runs have), and
    reported ready in the background each time, so the supervisor goes on watching meanwhile."""

    def restart() -> subprocess.Popen[bytes]:
        server.start()
        assert server.proc is not None
        return server.proc

    def report() -> None:
        threading.Thread(
            target=_report_spark_connect, args=(server,), name="spark-ready", daemon=True
        ).start()

    assert server.proc is not None
    child = Child(
        "the Spark Connect server",
        start=restart,
        proc=server.proc,
        started_at=time.monotonic(),
        after_restart=report,
        essential=False,
        without_it="runs use an in-process Spark",
    )
    supervisor.add(child)
    report()


def dev_command(argv: list[str]) -> int:
    """Start the sandbox (real-time clock, so the schedule finds new plays), a warm Spark Connect
    server for the runs' Spark step, and ``dagster dev``; keep them running.

    Each child leads its own process group, so Ctrl-C, SIGTERM or SIGHUP to this command stops
    the whole tree (``dagster dev``'s webserver, daemon and code servers included) within about
    ten seconds, even on a busy machine: a graceful SIGINT first, SIGKILL for what is left. The
    same however it was started: from a terminal, under a supervisor, in the background of a
    script with SIGINT ignored (see ``_catch_stop_signals``), or by ``make dev`` sent any of the
    three (``processes.MakeSignals``).

    Meanwhile this command supervises them (``supervisor.py``): a server that dies is named in
    the log and restarted with a backoff; one that keeps dying stops everything, exit status 1.
    """
    parser = argparse.ArgumentParser(prog="spotify-assets dev")
    parser.add_argument("--port", default="3000", help="Dagster UI port")
    # The Dagster UI has no login: loopback unless asked otherwise (the sandbox and the Spark
    # Connect server it starts are loopback-only whatever this says).
    parser.add_argument("--host", default="127.0.0.1", help="Dagster UI address (loopback by default)")
    args, rest = parser.parse_known_args(argv)
    # First, before any slow step and before any child starts (children inherit what SIGINT is).
    previous = _catch_stop_signals()
    make = MakeSignals(STOP_SIGNALS)  # `make dev` passes on SIGTERM only: the others are seen here

    def heard_by_make() -> None:
        received = make.received()
        if received is not None:
            raise _StopRequested(received)

    supervisor = Supervisor(say=_say)
    try:
        _prepare_home()
        for key, value in HOUSEHOLD_NATIVE_ENV.items():  # every child's: the JVM and Dagster's
            os.environ.setdefault(key, value)
        spark = _start_spark_connect()
        if spark is not None and spark.proc is not None:
            _watch_spark_connect(supervisor, spark)
        sandbox_wanted = not os.environ.get("SPOTIFY_CLIENT_ID") and not os.environ.get("SPOTIFY_SANDBOX_URL")
        if sandbox_wanted and not _start_sandbox(supervisor):
            return 1
        _register_single_user()  # before `dagster dev` opens the same instance's storage
        root = Path(__file__).resolve().parents[1]
        dagster = Path(sys.executable).with_name("dagster")
        cmd = [
            str(dagster),
            "dev",
            "-w",
            str(root / "workspace.yaml"),
            "-h",
            args.host,
            "-p",
            args.port,
            *rest,
        ]
        # The supervisor's own calls go to loopback when the UI listens on every address.
        local = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104 (a comparison)
        supervisor.add_dagster(
            Child(
                DAGSTER_DEV_NAME,
                start=lambda: subprocess.Popen(cmd, cwd=root, start_new_session=True),
            ),
            GraphQL(f"http://{local}:{args.port}/graphql"),
        )
        where = "this machine only" if args.host == "127.0.0.1" else "served beyond this machine, no login"
        print(f"Dagster UI at http://{args.host}:{args.port} ({where})", flush=True)
        supervisor.watch(also=heard_by_make)
        return 0  # not reached: watch returns by an exception
    except GaveUp as exc:
        _say(f"spotify-assets dev: {exc}. Stopping everything; see the log above for why it died.")
        return 1
    except _StopRequested:
        _say("\nstopping: the Dagster UI, daemon and code server, the Spark Connect server and the sandbox")
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave servers running.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        stop_groups([*supervisor.procs(), *_HELPERS], signal.SIGINT, grace_s=8.0)
        _let_go_of_a_closed_terminal()
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, which cannot put it back
                signal.signal(sig, handler)

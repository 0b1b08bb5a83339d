"""A long-lived Spark Connect server: one warm JVM that every pipeline run talks to.

Starting a JVM and a Spark session costs 8-15 s on a small machine; the top-ten answer over
one person's history takes a fraction of that once Spark is warm. ``spotify-assets dev``
starts this server next to ``dagster dev`` and hands its URL to every run as
``SPOTIFY_SPARK_REMOTE``; the ``SparkResource`` then connects as a thin gRPC client
(``pyspark[connect]``) instead of starting a JVM of its own.

Why our own launcher and not ``sbin/start-connect-server.sh``: that script daemonises the
JVM (so its caller cannot own it, stop it with its process group or read its exit), and it
cannot report a port chosen by the system. Here the server runs as our child in its own
process group, binds port 0 unless told otherwise, and the bound port is read back from its
log, so two servers (a developer's and a test run's) never race for a port.

Local mode is loopback only: gRPC, the driver and its block manager bind 127.0.0.1 and the
web UI is off. A Connect server runs any Spark code it is sent (Spark SQL reads local files
as this user), so a local server also requires a random bearer token, passed to the server in
its environment (never on its command line) and to clients inside the URL
(``sc://localhost:<port>/;token=...``). ``localhost`` is deliberate: pyspark sends a token
without TLS only to ``localhost``.

    python -m spark.connect_server [--port 15002] [--master 'local[*]']   # until Ctrl-C

The module imports only the standard library, like the rest of ``spark/``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from spark.settings import LOCAL_SQL_CONF, LOOPBACK, LOOPBACK_CONF

#: The server class shipped in the pyspark wheel (``jars/spark-connect_*.jar``).
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: The server's application name on a cluster master (what ``scripts/compose_check.py`` looks for).
APP_NAME = "spotify-spark-connect"
#: Where Spark reads the server's bearer token; ``main`` also takes a token from here (the
#: compose test stack sets it from its env file), and never prints it.
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"  # noqa: S105 - the variable's name, not a token

#: A small, private local server: loopback only (gRPC and the driver) and the local SQL
#: settings every local Spark here shares (``settings.py``, their one home).
LOCAL_SERVER_CONF: dict[str, str] = {
    "spark.connect.grpc.binding.address": LOOPBACK,
    **LOOPBACK_CONF,
    **LOCAL_SQL_CONF,
}

#: The server's log is capped: past this size it is moved to ``<log>.1`` (replacing the one
#: before) and begun afresh, so a server that runs for weeks under ``make dev`` keeps at most
#: twice this on disk. Spark logs a few lines per client session and query, hourly runs add up.
LOG_MAX_BYTES = 16 * 1024 * 1024

_STARTED = re.compile(r"Spark Connect server started at: ?/?([\w.:\[\]-]+):(\d+)")
_TAIL_CHARS = 3000


class ConnectServerError(RuntimeError):
    """The server did not start; the message carries the end of its log."""


def copy_capped(
    stream: BinaryIO, path: Path, max_bytes: int = LOG_MAX_BYTES, echo: BinaryIO | None = None
) -> None:
    """Copy ``stream`` (the JVM's output) line by line into ``path``, rotating it to ``path.1``
    once it holds ``max_bytes``, and to ``echo`` too when given (a container's stdout).

    Returns at the end of the stream (the JVM exited). Rotation happens between lines, so no
    line is split across the two files.
    """
    backup = path.with_name(path.name + ".1")
    out = path.open("ab")
    try:
        for line in iter(stream.readline, b""):
            if out.tell() + len(line) > max_bytes and out.tell() > 0:
                out.close()
                os.replace(path, backup)
                out = path.open("ab")
            out.write(line)
            out.flush()
            if echo is not None:
                echo.write(line)
                echo.flush()
    finally:
        out.close()


def spark_home() -> Path:
    """The Spark distribution inside the pyspark wheel (``bin/spark-submit``, ``jars/``)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A loopback port the system picks, free when checked (not reserved: a server that then fails
    to bind it logs so, and clients fall back to an in-process Spark).

    Not Spark's 15002 when free: two ``dev`` trees started at once both found it free, the second's
    server could not bind it, and that tree's runs reached the first's server, which refused their
    token (the s34 soaks); the printed URL carries a random token anyway, so a fixed port bought
    nothing. The system's picks differ from one call to the next.
    """
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def server_command(
    master: str, port: int, conf: Mapping[str, str], driver_memory: str | None = None
) -> list[str]:
    """``spark-submit --class SparkConnectServer`` with ``conf`` (no secrets: argv is public)."""
    cmd = [
        str(spark_home() / "bin" / "spark-submit"),
        "--class",
        SERVER_CLASS,
        "--name",
        APP_NAME,
    ]
    cmd += ["--master", master]
    if driver_memory:
        cmd += ["--driver-memory", driver_memory]
    for key, value in {**conf, "spark.connect.grpc.binding.port": str(port)}.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd


class SparkConnectServer:
    """One server process: ``start()``, ``wait_ready()``, ``url``, ``stop()`` (or ``with``).

    ``token=True`` (the default) generates a bearer token, a string is used as the token;
    ``False`` runs without one, for a server on a private container network that clients reach
    by name (pyspark sends a token to any host but ``localhost`` only over TLS, which the server
    does not speak). Loopback binding is the default; pass ``conf`` to override any setting.
    """

    def __init__(
        self,
        master: str = "local[*]",
        port: int = 0,
        conf: Mapping[str, str] | None = None,
        token: bool | str = True,
        log_path: Path | None = None,
        driver_memory: str | None = None,
        java_options: str | None = None,
        echo: BinaryIO | None = None,
    ) -> None:
        self.master = master
        self.requested_port = port
        self.conf = {**LOCAL_SERVER_CONF, **(conf or {})}
        if java_options:
            self.conf["spark.driver.extraJavaOptions"] = java_options
        if isinstance(token, str) and token:
            self.token: str | None = token
        else:
            self.token = secrets.token_urlsafe(24) if token is True else None
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="spark-connect-")) / "server.log"
        self.driver_memory = driver_memory
        self.echo = echo
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_copier: threading.Thread | None = None
        #: Known up front for a fixed port (so the URL can be handed out before the JVM is
        #: up); read from the log for port 0.
        self.port: int | None = port or None

    @property
    def host(self) -> str:
        """How clients name the server: ``localhost`` for a loopback server (see the module doc)."""
        bound = self.conf["spark.connect.grpc.binding.address"]
        return "localhost" if bound in (LOOPBACK, "localhost") else socket.gethostname()

    @property
    def url(self) -> str:
        """``sc://host:port[/;token=...]``: what ``SPOTIFY_SPARK_REMOTE`` is set to."""
        if self.port is None:
            raise ConnectServerError("the server has not reported its port yet (call wait_ready)")
        suffix = f"/;token={self.token}" if self.token else ""
        return f"sc://{self.host}:{self.port}{suffix}"

    def start(self) -> SparkConnectServer:
        """Launch the JVM in its own process group (so ``stop`` reaches everything it starts)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(spark_home()), "PYSPARK_PYTHON": sys.executable}
        if self.host == "localhost":
            env["SPARK_LOCAL_IP"] = LOOPBACK
        for var in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE"):
            env.pop(var, None)
        if self.token:
            env[TOKEN_ENV] = self.token
        else:
            env.pop(TOKEN_ENV, None)
        cmd = server_command(self.master, self.requested_port, self.conf, self.driver_memory)
        self.log_path.write_bytes(b"")
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        # The log goes through this process (capped, see LOG_MAX_BYTES), not straight to a file.
        assert self.proc.stdout is not None
        self._log_copier = threading.Thread(
            target=copy_capped,
            args=(self.proc.stdout, self.log_path, LOG_MAX_BYTES, self.echo),
            name="spark-connect-log",
            daemon=True,
        )
        self._log_copier.start()
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """Block until the server logs its bound port; return the URL. Raises if it dies or is late."""
        if self.proc is None:
            raise ConnectServerError("start() the server first")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = _STARTED.search(self.log_tail(200_000))
            if match:
                self.port = int(match.group(2))
                return self.url
            if self.proc.poll() is not None:
                raise ConnectServerError(
                    f"the Spark Connect server exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            time.sleep(0.2)
        self.stop()
        raise ConnectServerError(
            f"the Spark Connect server did not start within {timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = _TAIL_CHARS) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace_s``; reaps the child."""
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log_copier is not None:
            self._log_copier.join(timeout=5)

    def warm_up(self) -> float:
        """One small top-ten job through this server (:func:`warm_up`); returns its seconds."""
        return warm_up(self.url)

    def __enter__(self) -> SparkConnectServer:
        self.start()
        self.wait_ready()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def warm_up(url: str) -> float:
    """One small top-ten job through the Connect server at ``url``; returns its seconds.

    A fresh server's first job pays class loading and a cold JIT in the driver and in the
    executors: in the compose test stack the first run's top-ten step took 31.8 s, the
    second 7.6 s. Paying it here, before the server reports ready, gives the first pipeline
    run the warm figure. The data is made up in memory (the job's code paths bar the Parquet
    scan, a few plays without a track id among them), so it needs no file that the executors of
    a cluster could not see.
    """
    from datetime import UTC, datetime, timedelta

    from pyspark.sql import SparkSession

    from spark.top_ten import PLAYS_INPUT_SCHEMA, top_ten_tracks

    t0 = time.monotonic()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (f"u{i % 2}", start + timedelta(minutes=3 * i), f"t{i % 37}" if i % 11 else None, f"track {i % 37}",
         "artist", "artist", "album", None, 180_000, 170_000 + i, "track", i % 19 != 0)
        for i in range(2_000)
    ]  # fmt: skip
    session = SparkSession.builder.remote(url).getOrCreate()
    try:
        top_ten_tracks(session.createDataFrame(rows, PLAYS_INPUT_SCHEMA)).toPandas()
    finally:
        session.stop()
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    """Run a server in the foreground until SIGINT/SIGTERM; print its URL on stdout.

    ``--bind 0.0.0.0 --no-token`` is for a container whose port is reachable only on a private
    network (the compose stack); the default is a loopback server with a token: the one in
    ``SPARK_CONNECT_AUTHENTICATE_TOKEN`` when set (a service whose clients are given the same
    secret, e.g. the compose test stack; the printed URL then leaves it out, since stdout is a
    container log), else a random one, printed in the URL for the developer who started it.
    """
    parser = argparse.ArgumentParser(
        prog="spark.connect_server", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--master", default=os.environ.get("SPOTIFY_SPARK_MASTER", "local[*]"))
    parser.add_argument("--port", type=int, default=15002, help="0 picks a free port (default 15002)")
    parser.add_argument("--bind", default=LOOPBACK, help="gRPC bind address (default 127.0.0.1)")
    parser.add_argument("--no-token", action="store_true", help="no bearer token (private networks only)")
    parser.add_argument("--driver-memory", help="the server JVM's heap (spark-submit --driver-memory)")
    parser.add_argument("--url-file", help="also write the URL here (mode 0600: it holds the token)")
    parser.add_argument(
        "--follow-log", action="store_true", help="copy the server's log to stdout (a container's log)"
    )
    parser.add_argument("--warm-up", action="store_true", help="run one small job before reporting ready")
    parser.add_argument(
        "--ready-file", help="created once the server is ready (and warmed up): a health check's signal"
    )
    args = parser.parse_args(argv)
    conf = {"spark.connect.grpc.binding.address": args.bind}
    if args.bind != LOOPBACK:
        # Executors on other hosts reach this driver by its name, not by loopback.
        conf |= {"spark.driver.host": socket.gethostname(), "spark.driver.bindAddress": args.bind}
    given = os.environ.get(TOKEN_ENV, "")
    token: bool | str = False if args.no_token else (given or True)
    server = SparkConnectServer(
        master=args.master,
        port=args.port,
        conf=conf,
        token=token,
        driver_memory=args.driver_memory,
        echo=sys.stdout.buffer if args.follow_log else None,
    )
    stop = {"now": False}

    def _stop(_signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    ready_file = Path(args.ready_file) if args.ready_file else None
    if ready_file:
        ready_file.unlink(missing_ok=True)  # a restarted container keeps its /tmp
    try:
        server.start()
        url = server.wait_ready()
        if args.warm_up:
            print(f"warmed up in {server.warm_up():.1f}s", flush=True)
        if ready_file:
            ready_file.touch()
        if args.url_file:
            path = Path(args.url_file)
            path.touch(mode=0o600)
            path.write_text(url + "\n")
        shown = f"{url.split('/;', 1)[0]} (token from {TOKEN_ENV})" if given and server.token else url
        print(shown, flush=True)
        assert server.proc is not None
        while not stop["now"] and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0 if server.proc is None or server.proc.returncode in (0, -signal.SIGTERM, 143, None) else 1


if __name__ == "__main__":
    sys.exit(main())

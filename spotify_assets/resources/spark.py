"""Spark for the ``top_ten_tracks`` asset: a warm Spark Connect server when there is one,
otherwise in-process locally, and ``spark-submit`` for a cluster.

Why a thin resource of our own rather than dagster-pyspark's ``PySparkResource``: that
resource only builds an in-process session from a config dict. The top-ten job must also
run as a real Spark application on a cluster (``spark-submit`` of ``spark/top_ten.py``,
the same file Dataproc runs), which needs a subprocess, its log and its exit status, not a
session object. The in-process mode here is a few lines of ``SparkSession.builder``, and it
deliberately reuses a session that is already running (how the tests share one JVM), which
``PySparkResource`` would re-configure on every run.

Why a Spark Connect server for the local default: starting the JVM is most of an hourly
run (13.9 of 14.9 s measured before it), for a ten-row answer. With ``remote`` set
(``SPOTIFY_SPARK_REMOTE``, which ``spotify-assets dev`` sets to the server it starts, see
``spark/connect_server.py``) the run is a thin gRPC client of a JVM that is already warm. When
the server cannot be reached the run falls back to the in-process ``local[*]`` session and
says so in the log: slower, never failed for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
from pydantic import Field

from spark.settings import LOCAL_SQL_CONF, LOOPBACK_CONF
from spotify_assets.schema import conform

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The local Spark's settings (``spark/settings.py``, their one home: the warm Connect server
#: has the same). ``spark_conf`` entries override these.
DEFAULT_SPARK_CONF: dict[str, str] = dict(LOCAL_SQL_CONF)

#: A ``local`` master's driver binds loopback only; not applied to cluster masters.
LOOPBACK_SPARK_CONF: dict[str, str] = dict(LOOPBACK_CONF)

#: How long a run waits to find the Connect server's port open before falling back.
CONNECT_PROBE_SECONDS = 1.0

#: Lines of spark-submit output quoted in the error when the application fails.
_TAIL_LINES = 40


class SparkJobError(RuntimeError):
    """The Spark application failed; the message carries the end of its output."""


def spark_home() -> Path:
    """The Spark distribution inside the pyspark wheel (it has ``bin/spark-submit``)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def top_ten_script() -> Path:
    """``spark/top_ten.py``, the file handed to ``spark-submit``."""
    import spark.top_ten

    return Path(spark.top_ten.__file__).resolve()


class SparkResource(dg.ConfigurableResource):
    """Runs the top-ten Spark job and hands back its result as a conformed pandas frame.

    ``deploy_mode="session"`` runs the job's driver code inside this process: against the
    Spark Connect server at ``remote`` when it answers (the local default under ``make dev``:
    no JVM here at all), else on an in-process session of ``master``. ``deploy_mode="submit"``
    runs ``spark-submit --master <master> spark/top_ten.py`` with the pyspark wheel's own
    ``spark-submit``, the way a standalone or YARN cluster runs it; its output streams into
    the Dagster log.
    """

    master: str = "local[*]"
    app_name: str = "spotify-top-ten"
    spark_conf: dict[str, str] = {}
    deploy_mode: Literal["session", "submit"] = "session"
    submit_timeout_seconds: int = 1800
    remote: str = Field(
        default="",
        description="Spark Connect URL (sc://host:port[/;token=...]); empty = no server. "
        "Used in session mode when it answers, with the in-process session as fallback.",
    )

    def effective_conf(self) -> dict[str, str]:
        """The defaults above (plus loopback binding for a ``local`` master), overridden by ``spark_conf``."""
        loopback = LOOPBACK_SPARK_CONF if self.master.startswith("local") else {}
        return {**DEFAULT_SPARK_CONF, **loopback, **self.spark_conf}

    def get_session(self, log: logging.Logger | None = None) -> SparkSession:
        """The process's running session if there is one, else the Connect server, else a new
        in-process session from this config.

        Reusing is deliberate: a JVM takes seconds to start and a process can only have one
        SparkContext, so a second, differently configured session is not an option anyway
        (and pyspark cannot mix a classic and a Connect session in one process either).
        """
        from pyspark.errors import PySparkRuntimeError
        from pyspark.sql import SparkSession

        logger = log or dg.get_dagster_logger()
        try:
            return SparkSession.active()
        except PySparkRuntimeError:
            pass
        if self.remote:
            session = connect_session(self.remote, logger)
            if session is not None:
                return session
        if self.master.startswith("local"):
            # The JVM this starts reads it: executors and the block manager bind loopback too.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.master(self.master).appName(self.app_name)
        for key, value in self.effective_conf().items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

    def run_top_ten(
        self, input_path: str, output_path: str, n: int = 10, log: logging.Logger | None = None
    ) -> pd.DataFrame:
        """Rank the plays at ``input_path`` (Parquet) and return the ranking in the warehouse's types.

        Submit mode has the application write it to ``output_path`` (a Parquet directory,
        replaced) and reads it back; session mode collects the ten rows straight into this
        process (one Spark job instead of three) and does not use ``output_path``.

        In submit mode against a cluster on other machines, both paths must be on storage the
        driver, the executors and this process all reach (e.g. ``gs://`` with the GCS connector
        on the cluster and ``gcsfs`` here); a local temporary folder only works for ``local``
        masters and clusters on this machine.
        """
        logger = log or dg.get_dagster_logger()
        if self.deploy_mode == "session":
            from spark.top_ten import collect

            session = self.get_session(logger)
            logger.info(f"Running top-ten on {describe_session(session)}")
            frame = collect(session, input_path, n=n, log=lambda msg: logger.info(f"[top_ten] {msg}"))
            return conform(frame, "top_ten_tracks")
        self._submit(input_path, output_path, n, logger)
        return conform(pd.read_parquet(output_path), "top_ten_tracks")

    def submit_command(self, input_path: str, output_path: str, n: int = 10) -> list[str]:
        """The ``spark-submit`` command line (public so it can be shown and tested)."""
        cmd = [
            str(spark_home() / "bin" / "spark-submit"),
            "--master",
            self.master,
            "--name",
            self.app_name,
        ]
        for key, value in self.effective_conf().items():
            cmd += ["--conf", f"{key}={value}"]
        cmd += [str(top_ten_script()), "--input", input_path, "--output", output_path, "--n", str(n)]
        return cmd

    def _submit(self, input_path: str, output_path: str, n: int, logger: logging.Logger) -> None:
        """Run the application and wait for it, within ``submit_timeout_seconds``.

        The job's own ``[top_ten]`` progress lines go to the log at INFO, Spark's chatter at
        DEBUG; on failure the error quotes the last lines. The child gets its own process group
        so a timeout can kill spark-submit together with the Python driver it started.
        """
        cmd = self.submit_command(input_path, output_path, n)
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            # Driver and executors run this interpreter, which has pyspark installed.
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
        logger.info(f"spark-submit --master {self.master} {top_ten_script().name} (n={n})")
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        reader = threading.Thread(target=pump, name="spark-submit-output", daemon=True)
        reader.start()
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        deadline = time.monotonic() + self.submit_timeout_seconds
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SparkJobError(
                        f"spark-submit did not finish within {self.submit_timeout_seconds}s; killed it.\n"
                        + "\n".join(tail)
                    )
                try:
                    line = lines.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    break
                tail.append(line)
                if line.startswith("[top_ten]"):
                    logger.info(line)
                else:
                    logger.debug(line)
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            _kill_group(proc)
            raise
        if code != 0:
            raise SparkJobError(f"spark-submit exited with status {code}. Last output:\n" + "\n".join(tail))


def is_connect_session(session: SparkSession) -> bool:
    """Whether ``session`` is a Spark Connect client (no JVM in this process)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def describe_session(session: SparkSession) -> str:
    """Where a session runs, for the log (never the URL: it may hold the token)."""
    if is_connect_session(session):
        return f"the Spark Connect server (Spark {session.version})"
    return f"an in-process session, master {session.sparkContext.master}"


def redact(url: str) -> str:
    """A Connect URL without its parameters (``;token=...``), safe to log."""
    return url.split("/;", 1)[0].split(";", 1)[0]


def connect_endpoint(url: str) -> tuple[str, int]:
    """(host, port) of ``sc://host:port/...``; port 15002 (Spark's default) when absent."""
    parts = urlsplit(url.split(";", 1)[0])
    if parts.scheme != "sc" or not parts.hostname:
        raise ValueError(f"not a Spark Connect URL: {redact(url)!r} (expected sc://host:port)")
    return parts.hostname, parts.port or 15002


def connect_session(url: str, log: logging.Logger) -> SparkSession | None:
    """A Spark Connect session to ``url``, or None (logged) when nothing answers there.

    A closed port is found in well under a second, so a run without the server pays almost
    nothing to find out. The session is checked with one round trip (its Spark version), and
    a server that refuses us (wrong token, a stale port taken by something else) also means
    the fallback rather than a failed run.
    """
    from pyspark.sql import SparkSession

    host, port = connect_endpoint(url)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_PROBE_SECONDS):
            pass
    except OSError as exc:
        log.warning(f"Spark Connect server {redact(url)} not reachable ({exc}); using an in-process session")
        return None
    session = SparkSession.builder.remote(url).getOrCreate()
    try:
        session.version  # noqa: B018 - one round trip, to fail here rather than mid-job
    except Exception as exc:  # grpc errors surface as several pyspark exception types
        log.warning(f"Spark Connect server {redact(url)} did not answer ({exc}); using an in-process session")
        with contextlib.suppress(Exception):
            session.stop()
        for var in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE"):
            os.environ.pop(var, None)
        return None
    return session


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Stop a child started with ``start_new_session`` and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)

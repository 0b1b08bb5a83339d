"""How a local Spark is configured and sized: the one home of these settings.

Two Sparks run on a household's machine: the warm Spark Connect server ``spotify-assets dev``
keeps around the clock (``connect_server.py``), and the in-process session a run starts when
that server does not answer (``spotify_assets/resources/spark.py``). Both take their SQL
settings from here, and the server its JVM's size, so a setting is changed in one place.

The server's JVM is sized for one household's history, because its idle memory is paid every
hour of every day (issue 28). A big library raises the heap with an environment variable,
nothing else changes::

    SPOTIFY_SPARK_DRIVER_MEMORY=2g make dev

Imports only the standard library, like the rest of ``spark/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"

#: A small local Spark: few shuffle partitions (the data is a household's history; adaptive
#: execution coalesces them further), no web UI (nothing to look at, one port and some memory
#: less), UTC so timestamps never depend on the machine's zone, microsecond Parquet timestamps.
LOCAL_SQL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}

#: A ``local`` master talks to nobody else, so its driver binds loopback only (otherwise Spark
#: binds the machine's network address). Not for cluster masters, whose executors must reach it.
LOOPBACK_CONF: dict[str, str] = {
    "spark.driver.host": LOOPBACK,
    "spark.driver.bindAddress": LOOPBACK,
}

#: The warm server between runs: Spark's own cleaner runs a full GC every 30 minutes by default,
#: which is when the serial collector hands the heap a run grew back to the system; every 5
#: minutes, an hourly run's memory is returned soon after it (a full GC of the idle heap costs a
#: fraction of a second). Spark's network layers use heap buffers, not netty's direct arenas.
WARM_SERVER_CONF: dict[str, str] = {
    "spark.cleaner.periodicGC.interval": "5min",
    "spark.network.io.preferDirectBufs": "false",
    "spark.shuffle.io.preferDirectBufs": "false",
    "spark.rpc.io.preferDirectBufs": "false",
}

#: The heap's ceiling, ``spark-submit --driver-memory``. Spark refuses a driver heap under
#: 450 MiB; with 1 GiB a 1M-play household's top ten ran at a 650 MiB peak, no OutOfMemoryError
#: (``bench/RESULTS.md``). The ceiling costs nothing idle: the JVM holds its live heap, see below.
DRIVER_MEMORY_ENV = "SPOTIFY_SPARK_DRIVER_MEMORY"
HOUSEHOLD_DRIVER_MEMORY = "1g"

#: The JVM's options (``spark.driver.extraJavaOptions``; Spark forbids ``-Xmx`` here):
#: - ``-Xms64m``: without it the heap starts at 1/64 of the machine's memory (377 MiB on 24 GiB),
#:   and the serial collector never shrinks it below where it started.
#: - serial GC: one core's worth of collector, no G1 regions or remembered sets; with
#:   ``Min/MaxHeapFreeRatio`` a full GC shrinks the heap to its live data plus 20 %.
#: - a 64 MiB code cache (the default reserves 240) and 512 KiB thread stacks.
#: - ``TrimNativeHeapInterval``: glibc's malloc keeps freed memory (the JIT's, the zip
#:   readers') until asked; the JVM asks every 5 s (JDK 17.0.9+; ignored by an older JVM, like
#:   any option it does not know, through ``IgnoreUnrecognizedVMOptions``).
#: ``bench/RESULTS.md`` (dev footprint): the warm JVM idle 665 -> 544 MiB RSS with these.
JAVA_OPTIONS_ENV = "SPOTIFY_SPARK_JAVA_OPTIONS"
HOUSEHOLD_JAVA_OPTIONS = (
    "-XX:+IgnoreUnrecognizedVMOptions -XX:+UseSerialGC -Xms64m -XX:MinHeapFreeRatio=10 "
    "-XX:MaxHeapFreeRatio=20 -XX:ReservedCodeCacheSize=64m -Xss512k -XX:TrimNativeHeapInterval=5000"
)

#: The environment of ``make dev``'s long-lived processes (the JVM, Dagster's servers), set by
#: ``spotify-assets dev`` unless already set: glibc's malloc gives each thread an arena of its
#: own (up to 8 per core), each keeping the memory freed in it; two arenas serve a process's
#: threads here at a cost in lock contention no idle server notices.
HOUSEHOLD_NATIVE_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "2"}


@dataclass(frozen=True)
class JvmSize:
    """The warm server's JVM: ``driver_memory`` for ``--driver-memory``, ``java_options`` for
    ``spark.driver.extraJavaOptions``."""

    driver_memory: str
    java_options: str


def household_jvm(environ: Mapping[str, str] | None = None) -> JvmSize:
    """The warm server's JVM for a household, with ``SPOTIFY_SPARK_DRIVER_MEMORY`` and
    ``SPOTIFY_SPARK_JAVA_OPTIONS`` (each replaces its default whole) for a big library."""
    env = os.environ if environ is None else environ
    return JvmSize(
        driver_memory=env.get(DRIVER_MEMORY_ENV, "").strip() or HOUSEHOLD_DRIVER_MEMORY,
        java_options=env.get(JAVA_OPTIONS_ENV, "").strip() or HOUSEHOLD_JAVA_OPTIONS,
    )

"""The dashboard's cold page time over a data directory, as the soak samples it each simulated day.

Issue 27 asks whether the platform stays as quick to look at after weeks of runs as on day 1:
its growth table carries, beside the lake's, the instance's and the warehouse's bytes, the time
the dashboard takes to render its Overview (everyone, all time) cold, caches cleared, over the
snapshot it reads (found from ``SPOTIFY_DATA_DIR`` as the app finds it). Streamlit's AppTest renders the page in a process
of its own: the soak's harness does not import Streamlit, a page that takes long does not hold up
the soak's clock (the soak starts it and collects the figure later), and no cache carries over
from one day's sample to the next.

    .venv/bin/python -m bench.page_time DATA_DIR [--page views/overview.py]

prints the seconds of the cold render (the imports and the app's first run not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The page sampled: what a listener sees first.
PAGE = "views/overview.py"
#: The most a sample may take before it is given up (a sample never holds up the soak).
TIMEOUT_S = 300.0


def cold_page_s(data: Path, page: str = PAGE) -> float:
    """Seconds to render ``page`` cold over ``data``'s snapshot (in this process)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.serve import apply_runner_config

    apply_runner_config()
    os.environ["SPOTIFY_DATA_DIR"] = str(data)  # the app finds the snapshot and the listeners there
    os.environ.pop("SPOTIFY_WAREHOUSE_SNAPSHOT", None)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT_S)
    at.run()  # the imports and the first-run check, not timed
    st.cache_data.clear()
    at.switch_page(page)
    began = time.perf_counter()
    at.run()
    took = time.perf_counter() - began
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].message}")
    return took


def start(data: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start a sample over ``data`` in a process of its own; read it with :func:`result`."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.page_time", str(data)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def result(proc: subprocess.Popen[str]) -> float | None:
    """The sample's seconds once its process ended (``None``: still going, or it failed)."""
    if proc.poll() is None:
        return None
    out = proc.stdout.read() if proc.stdout is not None else ""
    try:
        return float(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


class Samples:
    """The soak's samples: each growth sample gets ``page_cold_s`` once its render ended (``None``
    when it failed or was given up)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.going: list[tuple[dict[str, Any], subprocess.Popen[str], float]] = []

    def start(self, sample: dict[str, Any]) -> None:
        self.going.append((sample, start(self.data), time.monotonic()))

    def collect(self, wait: bool = False) -> None:
        """Record the renders that ended; with ``wait``, wait for each (up to ``TIMEOUT_S``)."""
        for entry in list(self.going):
            sample, proc, began = entry
            if wait:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, began + TIMEOUT_S - time.monotonic()))
            if proc.poll() is None and time.monotonic() - began < TIMEOUT_S:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sample["page_cold_s"] = result(proc)
            self.going.remove(entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", type=Path, help="a data directory (SPOTIFY_DATA_DIR) with a warehouse snapshot"
    )
    parser.add_argument("--page", default=PAGE, help="the page's file under app/")
    args = parser.parse_args(argv)
    print(f"{cold_page_s(args.data, args.page):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

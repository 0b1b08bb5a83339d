"""The deployment for real: ``scripts/compose-test.sh`` (``make compose-test``) as a test.

It starts a private Docker engine, builds the base images from Debian packages and the
project image from the wheelhouse, starts the seven services of docker-compose.yaml (plus the
sandbox API) on loopback, runs the pipeline three times through the stack's webserver with a
restart of the code location and the daemon in between, checks the warehouse exactly, and
tears everything down. Measured on the project's 2-core machine under load from other test
suites: warm (images kept by the engine) about 20 minutes, most of it the three runs and the
restart; cold add ~3 min of base images, 2-4 min of wheelhouse and ~6 min of image build.
About 5 GB of disk under /var/tmp, kept for the next run.

Opt-in for now: set ``SPOTIFY_COMPOSE_TEST=1``. Without it the test is skipped with that
reason; with it, a machine that cannot run dockerd fails loudly (exit 3 of the script), it
never passes silently.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "compose-test.sh"


@pytest.mark.allowed_skip(
    reason="opt-in until its ~20-30 min fit make test's budget (issue 11 stays open); run by hand: make compose-test"
)
@pytest.mark.skipif(
    os.environ.get("SPOTIFY_COMPOSE_TEST") != "1",
    reason="the compose stack test is opt-in: SPOTIFY_COMPOSE_TEST=1 (or run `make compose-test`)",
)
@pytest.mark.timeout(3600)
def test_compose_stack_builds_starts_and_runs_the_pipeline_exactly_once() -> None:
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=3500)
    output = proc.stdout + proc.stderr
    if proc.returncode == 3:
        pytest.fail("this machine cannot run a Docker engine:\n" + output[-4000:])
    assert proc.returncode == 0, output[-8000:]
    assert "compose-test: PASSED" in output
    assert "run 3 (after the restart): added exactly the" in output

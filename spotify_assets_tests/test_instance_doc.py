"""The docs tell an operator with their own ``dagster.yaml`` how to add run monitoring, the
project's run launcher and the run queue's retries (issue 27).

``docs/architecture.md`` gives a command that prints the blocks from their one home
(``instance_config.RUN_MONITORING``, ``LOCAL_RUN_LAUNCHER``, ``RUN_QUEUE_USER_CODE_RETRIES``)
rather than a copy of their numbers: pasted into an edited file that has none, it turns run
monitoring on, with the launcher that tells the daemon whether a run's worker lives, and makes
the queue wait for a code server that is away.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from spotify_assets.instance_config import RUN_QUEUE_USER_CODE_RETRIES, prepare_local_home
from spotify_assets.run_launcher import LocalRunLauncher
from spotify_assets_tests.test_run_queue import queue_retries

_DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_the_documented_block_turns_run_monitoring_on_in_an_operators_own_dagster_yaml(
    tmp_path: Path,
) -> None:
    (command,) = re.findall(r"^\.venv/bin/python -c \"(.+)\"$", _DOC.read_text(), re.MULTILINE)
    block = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True).stdout
    home = tmp_path / "home"
    home.mkdir()
    own = "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    prepare_local_home(home)  # an operator's file is kept as it is: no run monitoring
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.run_monitoring_enabled
        assert not isinstance(instance.run_launcher, LocalRunLauncher)
        assert not queue_retries(instance)["max_user_code_failure_retries"]
    (home / "dagster.yaml").write_text(own + block)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds > 0
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert queue_retries(instance) == RUN_QUEUE_USER_CODE_RETRIES

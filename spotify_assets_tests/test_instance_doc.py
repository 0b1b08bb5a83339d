"""The docs tell an operator with their own ``dagster.yaml`` how to add run monitoring (issue 27).

``docs/architecture.md`` gives a command that prints the block from its one home
(``instance_config.RUN_MONITORING``) rather than a copy of its numbers: pasted into an edited
file that has none, it turns run monitoring on.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from spotify_assets.instance_config import prepare_local_home

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
    (home / "dagster.yaml").write_text(own + block)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds > 0

"""The local Dagster instance's ``dagster.yaml``: default (SQLite) storage, tick retention, the
run queue's patience with the code server, the run launcher and run monitoring.

Its own module, free of the job and the assets, because the commands that prepare an instance
(``users``, ``demo``, ``dev``) sit below the assets in the layering; ``retention.py`` (the run
purge job) explains the retention numbers and uses them.
"""

from pathlib import Path
from typing import Any

import yaml

#: Dagster's tick retention (days; -1 keeps forever). A skipped sensor tick says only "no new
#: plays": a day of them is plenty; ticks that started runs or failed are kept longer.
INSTANCE_RETENTION: dict[str, Any] = {
    "schedule": {"purge_after_days": 90},
    "sensor": {"purge_after_days": {"skipped": 1, "failure": 30, "success": 30}},
}

#: The longest a pipeline run (one listener's poll, lake write, merge, top ten) may take before
#: run monitoring fails it; its job carries it as the ``dagster/max_runtime`` tag. A run takes a
#: minute or two; far more means its worker is gone (see ``RUN_MONITORING``).
PIPELINE_MAX_RUNTIME_S = 1800

#: Dagster's run monitoring, by its daemon. Without it, a run whose worker was killed together
#: with the code server that launched it (``dev`` stopped or killed mid-run, the out-of-memory
#: killer) stays STARTED forever, and the new-plays sensor never asks for that listener again,
#: since it leaves a listener to their own run while that run is going. The local launcher
#: (``LOCAL_RUN_LAUNCHER``) tells the daemon whether a run's worker lives, so such a run fails at
#: the daemon's next look (``poll_interval_seconds``) and the sensor's next tick asks again. What
#: the launcher cannot judge is ended by its time: a run STARTING for longer than
#: ``start_timeout_seconds`` or going for longer than its maximum runtime (any run:
#: ``max_runtime_seconds``, an import of decades included; a pipeline run:
#: ``PIPELINE_MAX_RUNTIME_S``) is marked failed. A run is never resumed: the next one re-asks.
RUN_MONITORING: dict[str, Any] = {
    "enabled": True,
    "start_timeout_seconds": 180,
    "max_runtime_seconds": 7200,
    "max_resume_run_attempts": 0,
    "poll_interval_seconds": 30,
}

#: How the daemon's run queue treats a code server it cannot reach. The daemon takes a queued run
#: and asks the code server to start its worker; when that server is away (restarting after a
#: crash or a kill, still loading, slow on a loaded machine), Dagster fails the run at once
#: unless told to retry: two 168-hour soaks lost 95 and 228 plays to 14 and 8 runs failed so
#: (the run was the listener's poll; the sensor left the listener to it). Here the run goes back
#: to the queue, and the daemon waits ``user_code_failure_retry_delay`` seconds before it asks
#: that code location again, for up to five minutes; a run whose worker did start is never
#: queued again (Dagster checks the run left QUEUED/STARTING first). The deployment's
#: ``deploy/dagster.yaml`` carries the same two numbers (a test holds them equal).
RUN_QUEUE_USER_CODE_RETRIES: dict[str, int] = {
    "max_user_code_failure_retries": 20,
    "user_code_failure_retry_delay": 15,
}

#: Dagster's launcher, with the worker health check above (``run_launcher.py``).
LOCAL_RUN_LAUNCHER: dict[str, Any] = {"module": "spotify_assets.run_launcher", "class": "LocalRunLauncher"}


def local_instance_config() -> dict[str, Any]:
    """The local instance's ``dagster.yaml``: default (SQLite) storage, the settings above."""
    return {
        "retention": INSTANCE_RETENTION,
        "run_queue": RUN_QUEUE_USER_CODE_RETRIES,
        "run_launcher": LOCAL_RUN_LAUNCHER,
        "run_monitoring": RUN_MONITORING,
        "telemetry": {"enabled": False},
    }


#: What earlier versions wrote, unedited: such a file is brought up to date (newest last).
EARLIER_CONFIGS: tuple[dict[str, Any], ...] = (
    {"retention": INSTANCE_RETENTION},
    {"retention": INSTANCE_RETENTION, "telemetry": {"enabled": False}},
    {
        "retention": INSTANCE_RETENTION,
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": 180,
            "max_runtime_seconds": 7200,
            "poll_interval_seconds": 60,
        },
        "telemetry": {"enabled": False},
    },
    {
        "retention": INSTANCE_RETENTION,
        "run_launcher": {"module": "spotify_assets.run_launcher", "class": "LocalRunLauncher"},
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": 180,
            "max_runtime_seconds": 7200,
            "max_resume_run_attempts": 0,
            "poll_interval_seconds": 30,
        },
        "telemetry": {"enabled": False},
    },
)


def _written_by_an_earlier_version(text: str) -> bool:
    """Whether ``text`` is exactly what an earlier version wrote (nothing edited)."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return config in EARLIER_CONFIGS


def prepare_local_home(home: Path) -> Path:
    """Create ``home`` and its ``dagster.yaml`` (the settings above) unless one with content is
    there already: an operator's own file is never overwritten (one an earlier version wrote
    and nobody edited is brought up to date). Returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    text = config.read_text() if config.exists() else ""
    if not text.strip() or _written_by_an_earlier_version(text):
        config.write_text(
            "# Written by spotify-assets (spotify_assets/instance_config.py); edit freely, it is not rewritten.\n"
            + yaml.safe_dump(local_instance_config(), sort_keys=False)
        )
    return home

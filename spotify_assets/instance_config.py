"""The local Dagster instance's ``dagster.yaml``: default (SQLite) storage and tick retention.

Its own module, free of the job and the assets, because the commands that prepare an instance
(``users``, ``demo``, ``dev``) sit below the assets in the layering; ``retention.py`` (the run
purge job) explains the numbers and uses them.
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


def local_instance_config() -> dict[str, Any]:
    """The local instance's ``dagster.yaml``: default (SQLite) storage, the retention above."""
    return {"retention": INSTANCE_RETENTION, "telemetry": {"enabled": False}}


def prepare_local_home(home: Path) -> Path:
    """Create ``home`` and its ``dagster.yaml`` (the settings above) unless one with content is
    there already: an operator's own file is never overwritten. Returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        config.write_text(
            "# Written by spotify-assets (spotify_assets/instance_config.py); edit freely, it is not rewritten.\n"
            + yaml.safe_dump(local_instance_config(), sort_keys=False)
        )
    return home

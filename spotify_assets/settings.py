"""Where local data lives and which deployment is active: the only two environment switches.

Assets never read these; ``definitions.py`` does, once, to pick the resource set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Deployment = Literal["local", "cloud"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


def deployment() -> Deployment:
    """``SPOTIFY_DEPLOYMENT``: ``local`` (default; no account needed) or ``cloud`` (GCS + BigQuery)."""
    value = os.environ.get("SPOTIFY_DEPLOYMENT", "local").strip().lower() or "local"
    if value not in ("local", "cloud"):
        raise ValueError(f"SPOTIFY_DEPLOYMENT must be 'local' or 'cloud', got {value!r}")
    return "cloud" if value == "cloud" else "local"


def data_dir() -> Path:
    """``SPOTIFY_DATA_DIR``, default ``.data/`` at the repo root (or the working directory when installed)."""
    configured = os.environ.get("SPOTIFY_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    root = _REPO_ROOT if (_REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / ".data"


def warehouse_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def lake_root() -> Path:
    return data_dir() / "lake"

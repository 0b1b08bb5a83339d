"""Test-wide fixtures. Each part of the system keeps its fixtures in ``fixtures/<part>.py``;
every module there is loaded as a pytest plugin, so fixtures can be added without editing this file."""

from __future__ import annotations

import pkgutil

import spotify_assets_tests.fixtures as _fixtures

pytest_plugins = [
    f"spotify_assets_tests.fixtures.{m.name}"
    for m in pkgutil.iter_modules(_fixtures.__path__)
    if not m.name.startswith("_")
]

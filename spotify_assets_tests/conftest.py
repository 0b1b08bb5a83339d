"""Test-wide fixtures and the CI rule on skips.

Each part of the system keeps its fixtures in ``fixtures/<part>.py``; every module there is
loaded as a pytest plugin, so fixtures can be added without editing this file.

In CI (``CI`` set to a true value) a skipped test is reported as a failure: every part the
README promises is tested on a clean machine (``scripts/test-services.sh`` installs what the
tests need first), so a skip there means a promised part silently did not run. A test that
may legitimately skip says so with ``@pytest.mark.allowed_skip(reason="...")``.
"""

from __future__ import annotations

import os
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spotify_assets_tests.fixtures as _fixtures

pytest_plugins = [
    f"spotify_assets_tests.fixtures.{m.name}"
    for m in pkgutil.iter_modules(_fixtures.__path__)
    if not m.name.startswith("_")
]


def in_ci() -> bool:
    """``CI`` as CI services set it (``true``/``1``/``yes``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


#: ``make test`` runs on pytest-xdist workers (``--dist loadgroup``). Each test file is a group of
#: its own (one worker runs all of it, its module fixtures built once), except the files a marker
#: puts in a shared group, whose tests run one after another on one worker, never two at once:
#: - ``process_tree``: the file starts whole ``spotify-assets dev`` trees and holds them to time
#:   budgets under load it makes itself (the stop tests burn both cores); two such trees at once
#:   would each eat into the other's budget.
#: - ``browser``: the file drives headless Chromium, or (the compose stack) starts a Docker engine.
#:   The engine adds and removes network interfaces as its containers start and stop, and Chromium
#:   answers any interface change by failing every request in flight with ERR_NETWORK_CHANGED,
#:   loopback ones too: a dashboard page then lacks a module ("Failed to fetch dynamically
#:   imported module"). So no browser loads a page while the stack comes and goes.
#: A file is in a marker's group when its source applies the marker (``pytest.mark.<name>``, to the
#: module or to a test); the first marker of this list that it applies decides.
WORKER_GROUPS = {"process_tree": "process-trees", "browser": "browsers"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allowed_skip(reason): this test may skip even in CI (it guards no promised part)"
    )


def worker_group(path: Path) -> str:
    """The xdist group of the test file at ``path`` (``WORKER_GROUPS``), else the file itself."""
    source = path.read_text() if path.suffix == ".py" else ""
    for marker, group in WORKER_GROUPS.items():
        if f"pytest.mark.{marker}" in source:
            return group
    return str(path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` by file and ``WORKER_GROUPS``.

    The controller schedules by node id and never sees the markers (only the workers collect).
    pytest-xdist's own ``loadgroup`` suffixes each node id with its ``xdist_group`` on the worker,
    which pytest 9 no longer lets a plugin do (the id is derived, not stored; pytest-xdist issue
    1386, open): every test became a unit of its own and two process-tree files could run at once.
    So the group is read from the file here.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    groups: dict[str, str] = {}

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            if file not in groups:
                groups[file] = worker_group(config.rootpath / file)
            return groups[file]

    return FileGroups(config, log)


#: Where each group goes in the workers' queue. The browsers first (the compose stack at their head,
#: its file sorts first): one worker takes them at the start and holds the stack's minutes early.
#: The process trees last: the other worker reaches them after the ordinary files ahead of them, by
#: when the stack is gone, so its engine's load never meets the stop tests' 15 s budgets.
QUEUE_ORDER = {"browsers": 0, "process-trees": 2}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist's workers under ``--dist loadgroup``, the files in ``QUEUE_ORDER`` (a stable sort:
    files and tests keep their order otherwise). One process runs the files as collected."""
    if not getattr(config.option, "loadgroup", False):
        return
    order = {path: QUEUE_ORDER.get(worker_group(path), 1) for path in {item.path for item in items}}
    items.sort(key=lambda item: order[item.path])


@pytest.fixture(autouse=True)
def _keep_the_main_module() -> Iterator[None]:
    """Put ``sys.modules["__main__"]`` back after each test.

    Streamlit's script runner (AppTest runs it in this process) installs the dashboard script as
    ``__main__`` and leaves it there. A later test that starts ``spawn`` processes then has each
    child re-run ``app/streamlit_app.py`` on start-up (multiprocessing re-imports the parent's
    main module), which fails there without a warehouse: test_warehouse's writer processes
    exited 1 that way once the dashboard read the listeners at import time.
    """
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    allowed = item.get_closest_marker("allowed_skip")
    if allowed is not None and allowed.kwargs.get("reason"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true: {reason}\n"
        "In CI every promised part must run: install what it needs in scripts/test-services.sh, "
        "or mark the test @pytest.mark.allowed_skip(reason=...) if it guards no promised part."
    )

"""Test-wide fixtures and the CI rule on skips.

Each part of the system keeps its fixtures in ``fixtures/<part>.py``; every module there is
loaded as a pytest plugin, so fixtures can be added without editing this file.

In CI (``CI`` set to a true value) a skipped test is reported as a failure: every part the
README promises is tested on a clean machine (``scripts/test-services.sh`` installs what the
tests need first), so a skip there means a promised part silently did not run. A test that
may legitimately skip says so with ``@pytest.mark.allowed_skip(reason="...")``.
"""

from __future__ import annotations

import fcntl
import os
import pkgutil
import sys
import tempfile
import uuid
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


#: ``make test`` runs on pytest-xdist workers (``--dist loadgroup``). Each test file is a unit of
#: its own (one worker runs all of it, its module fixtures built once). Markers a file applies
#: (``pytest.mark.<name>`` in its source, on the module or on a test) say what it must not meet:
#: - ``process_tree``: the file starts whole ``spotify-assets dev`` trees and holds them to time
#:   budgets under load it makes itself (the stop tests burn both cores). These files are one group
#:   (``PROCESS_TREES``), run one after another, so two trees never eat into each other's budget.
#: - ``changes_network``: the file (the compose stack) starts a Docker engine, which adds and removes
#:   network interfaces as its containers start and stop. Chromium answers any interface change by
#:   failing every request in flight with ERR_NETWORK_CHANGED, loopback ones too: a dashboard page
#:   then lacks a module ("Failed to fetch dynamically imported module").
#: - ``browser``: the file drives headless Chromium.
#: A ``changes_network`` file holds ``NETWORK_LOCK`` exclusively while it runs, ``browser`` files
#: hold it shared (browsers side by side are fine). ``process_tree`` files do not take it: their
#: budgets hold on a loaded machine (the stop tests burn both cores themselves), and waiting for
#: the stack's first build (~15 min on a cold cache) would run the two longest units one after the
#: other. ``QUEUE_ORDER`` puts the stack first, so a browser rarely waits.
PROCESS_TREES = "process-trees"
NETWORK_LOCK = "network.lock"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allowed_skip(reason): this test may skip even in CI (it guards no promised part)"
    )
    # The xdist controller names the run itself (xdist's own ``--testrunuid``, which it hands each
    # worker as PYTEST_XDIST_TESTRUNUID), so it knows which ``NETWORK_LOCK`` to remove at the end.
    controller = not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None)
    if controller and getattr(config.option, "testrunuid", None) is None:
        config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the run's ``NETWORK_LOCK`` once every worker has ended (a worker
    cannot: another may still wait on the file, and a new file would be a second lock)."""
    uid = getattr(config.option, "testrunuid", None)
    if not hasattr(config, "workerinput") and uid:
        _network_lock_path(uid).unlink(missing_ok=True)


def _markers(path: Path) -> set[str]:
    """The markers of ``process_tree``, ``changes_network`` and ``browser`` the file applies."""
    source = path.read_text() if path.suffix == ".py" else ""
    return {m for m in ("process_tree", "changes_network", "browser") if f"pytest.mark.{m}" in source}


def worker_group(path: Path) -> str:
    """The xdist unit of the test file at ``path``: ``PROCESS_TREES``, else the file itself."""
    return PROCESS_TREES if "process_tree" in _markers(path) else str(path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` by file, the process-tree files one unit.

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

    # Our queue order (``QUEUE_ORDER``), not xdist's: by default it reorders the units by their
    # number of tests, which put the one-test compose file last (CI-s32: it started at the end).
    config.option.loadscopereorder = False
    return FileGroups(config, log)


#: Where a file goes in the workers' queue, by the first of its markers listed: the stack first (one
#: worker starts it at once, and it holds the lock its minutes early), then the process trees (the
#: longest unit, ~25 min: the other worker starts it at once), the ordinary files, the browsers.
QUEUE_ORDER = {"changes_network": 0, "process_tree": 1, "browser": 3}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist's workers under ``--dist loadgroup``, the files in ``QUEUE_ORDER`` (a stable sort:
    files and tests keep their order otherwise). One process runs the files as collected."""
    if not getattr(config.option, "loadgroup", False):
        return
    order = {}
    for path in {item.path for item in items}:
        marks = _markers(path)
        order[path] = next((rank for m, rank in QUEUE_ORDER.items() if m in marks), 2)
    items.sort(key=lambda item: order[item.path])


#: The file this worker runs (``path``) and the ``NETWORK_LOCK`` it holds for it (``file``, if any).
_held_lock: dict[str, Any] = {}


def _network_lock_path(uid: str | None = None) -> Path:
    """``NETWORK_LOCK`` of this ``make test`` run: the workers share xdist's run id, so other runs on
    the machine are not held up."""
    uid = uid or os.environ["PYTEST_XDIST_TESTRUNUID"]
    return Path(tempfile.gettempdir()) / f"spotify-tests-{uid}-{NETWORK_LOCK}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """``NETWORK_LOCK`` on xdist's workers, taken before a marked file's first test and let go after
    its last (one process runs one file at a time).

    Taken here, outside the test's own protocol, so the wait is not a test's time: pytest-timeout's
    600 s start after it. Taken in a fixture, a file that waited for the stack's first image build
    (~15 min on a cold build cache) errored at setup (CI-s34: all 11 stop cases)."""
    path = str(item.path)
    if "PYTEST_XDIST_WORKER" in os.environ and _held_lock.get("path") != path:
        _release_network_lock()
        _held_lock["path"] = path  # read the file's markers once, not before each of its tests
        marks = _markers(Path(path))
        if "changes_network" in marks or "browser" in marks:
            lock = _network_lock_path().open("a")
            fcntl.flock(lock, fcntl.LOCK_EX if "changes_network" in marks else fcntl.LOCK_SH)
            _held_lock["file"] = lock
    try:
        yield
    finally:
        if nextitem is None or str(nextitem.path) != path:
            _release_network_lock()


def _release_network_lock() -> None:
    lock = _held_lock.pop("file", None)
    _held_lock.pop("path", None)
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


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

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allowed_skip(reason): this test may skip even in CI (it guards no promised part)"
    )


#: Test files that start whole process trees (``spotify-assets dev``, the compose stack, the soak,
#: Spark servers) and time them against budgets, some with CPU burners of their own: under
#: ``make test``'s two workers (pytest-xdist, ``--dist loadgroup``) they run one after another on
#: one worker, never two at once; every other file is a group of its own (its module fixtures
#: built once), spread over both workers.
PROCESS_TREE_FILES = frozenset(
    {
        "test_bench_quick",
        "test_compose_stack",
        "test_dev_command_stop",
        "test_dev_supervisor",
        "test_run_monitoring",
        "test_soak",
        "test_spark_connect",
    }
)


# tryfirst: xdist's own hook turns the marker into the group it schedules by, so it must see it.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        stem = item.path.stem
        item.add_marker(pytest.mark.xdist_group("process-trees" if stem in PROCESS_TREE_FILES else stem))


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

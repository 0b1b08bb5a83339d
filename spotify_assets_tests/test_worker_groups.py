"""``make test``'s worker groups (``conftest.WORKER_GROUPS``): files a marker puts in one group never
run at once on two pytest-xdist workers, and every file that needs a shared group carries its marker.

The markers are the one home of the grouping (a hand-kept list of file names drifted from the files
it named). What each file does is read from its source: a file that launches Chromium
(``fixtures/dashboard.chromium()``) or starts a ``spotify-assets dev`` tree or the soak must say so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spotify_assets_tests.test_ci_skips import _standalone_conftest

pytest_plugins = ["pytester"]

#: The test files, but this one (it names the patterns it looks for).
FILES = sorted(p for p in Path(__file__).parent.glob("test_*.py") if p != Path(__file__))


def _launches_chromium(tree: ast.Module) -> bool:
    """A call of ``chromium()`` (``fixtures/dashboard.py``): in code, not in a docstring."""
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "chromium"
        for n in ast.walk(tree)
    )


def _runs_the_soak(tree: ast.Module) -> bool:
    """``main`` imported from ``bench.soak`` (the soak itself, not its helpers)."""
    return any(
        isinstance(n, ast.ImportFrom) and n.module == "bench.soak" and any(a.name == "main" for a in n.names)
        for n in ast.walk(tree)
    )


def _starts_dev(tree: ast.Module) -> bool:
    """A command list ``[<spotify-assets>, "dev", ...]`` (the console script beside the interpreter)."""
    return any(
        isinstance(n, ast.List)
        and len(n.elts) > 1
        and "spotify-assets" in ast.unparse(n.elts[0])
        and isinstance(n.elts[1], ast.Constant)
        and n.elts[1].value == "dev"
        for n in ast.walk(tree)
    )


#: (what the file starts, how its code shows it, the marker it must apply).
STARTERS = [
    ("headless Chromium", _launches_chromium, "browser"),
    ("spotify-assets dev", _starts_dev, "process_tree"),
    ("the soak", _runs_the_soak, "process_tree"),
]


def test_every_file_that_starts_a_browser_or_a_dev_tree_carries_its_marker() -> None:
    missing, found = [], set()
    for path in FILES:
        source = path.read_text()
        tree = ast.parse(source)
        for what, starts, marker in STARTERS:
            if starts(tree):
                found.add(what)
                if f"pytest.mark.{marker}" not in source:
                    missing.append(f"{path.name} starts {what} but does not apply pytest.mark.{marker}")
    assert missing == []
    # Each way of starting is found somewhere (a check that matches nothing guards nothing).
    assert found == {what for what, _, _ in STARTERS}


#: Each test records when it starts and ends, and while it runs waits (up to 5 s) for a test of the
#: other file to be running too: two files of one group never see each other, two groups do.
OVERLAP = """
import os, time
from pathlib import Path
import pytest
{mark}

def test_runs(tmp_path_factory):
    log = Path(os.environ["GROUPS_LOG"])
    me = "{name}"
    with log.open("a") as f:
        f.write(f"start {{me}}\\n")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        others = [l.split()[1] for l in log.read_text().splitlines() if l.startswith("start ") and l.split()[1] != me]
        ended = [l.split()[1] for l in log.read_text().splitlines() if l.startswith("end ")]
        if any(o not in ended for o in others):
            with log.open("a") as f:
                f.write(f"overlap {{me}}\\n")
            break
        time.sleep(0.1)
    with log.open("a") as f:
        f.write(f"end {{me}}\\n")
"""


def _overlaps(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, markers: tuple[str | None, str | None]
) -> list[str]:
    """Run two files (marked ``markers``, None for none) on two xdist workers; which saw the other."""
    log = pytester.path / "groups.log"
    monkeypatch.setenv("GROUPS_LOG", str(log))
    pytester.makeconftest(_standalone_conftest())
    pytester.makeini("[pytest]\nmarkers =\n    process_tree: m\n    browser: m\n    changes_network: m\n")
    one, two = (f"pytestmark = pytest.mark.{m}" if m else "" for m in markers)
    pytester.makepyfile(
        test_one=OVERLAP.format(mark=one, name="one"), test_two=OVERLAP.format(mark=two, name="two")
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=2)
    return sorted(line for line in log.read_text().splitlines() if line.startswith("overlap"))


def test_process_tree_files_run_one_after_another(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _overlaps(pytester, monkeypatch, ("process_tree", "process_tree")) == []


def test_no_browser_runs_beside_the_network_changing_stack(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _overlaps(pytester, monkeypatch, ("changes_network", "browser")) == []


def test_files_of_their_own_groups_run_at_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: unmarked, the same two files run side by side and see each other."""
    assert _overlaps(pytester, monkeypatch, (None, None)) != []


def test_the_stack_goes_first_then_the_process_trees_the_browsers_last(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two longest units start at once, one on each worker; a browser finds the stack gone."""
    log = pytester.path / "order.log"
    monkeypatch.setenv("GROUPS_LOG", str(log))
    pytester.makeconftest(_standalone_conftest())
    pytester.makeini("[pytest]\nmarkers =\n    process_tree: m\n    browser: m\n    changes_network: m\n")
    test = 'import os\nimport pytest\n{mark}\n\ndef test_it():\n    open(os.environ["GROUPS_LOG"], "a").write("{name}\\n")\n'
    pytester.makepyfile(
        test_a_trees=test.format(mark="pytestmark = pytest.mark.process_tree", name="trees"),
        # Three tests: xdist's own order (units by their number of tests) would put it first.
        test_b_plain=test.format(mark="", name="plain")
        + "\n\ndef test_two():\n    test_it()\n\n\ndef test_three():\n    test_it()\n",
        test_c_browser=test.format(mark="pytestmark = pytest.mark.browser", name="browser"),
        test_d_stack=test.format(mark="pytestmark = pytest.mark.changes_network", name="stack"),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1", "--dist", "loadgroup")
    result.assert_outcomes(passed=6)
    assert log.read_text().split() == ["stack", "trees", "plain", "plain", "plain", "browser"]


#: A test that records its start and end (monotonic seconds) and takes ``sleep`` seconds between.
TIMED = """
import os, time
import pytest
pytestmark = pytest.mark.{mark}

def test_it():
    with open(os.environ["GROUPS_LOG"], "a") as f:
        f.write(f"{name} start {{time.monotonic()}}\\n")
    time.sleep({sleep})
    with open(os.environ["GROUPS_LOG"], "a") as f:
        f.write(f"{name} end {{time.monotonic()}}\\n")
"""


def test_the_wait_for_the_stack_is_not_a_tests_time(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that waits for ``NETWORK_LOCK`` longer than pytest-timeout's limit still runs: the
    wait comes before the test's timed protocol (CI-s34: the 11 stop cases errored at setup after
    600 s waiting for the stack's first image build). Here the limit is 3 s and the wait ~2.5 s
    plus the test's own 2.5 s; the two files ran one after the other, so one of them waited."""
    log = pytester.path / "timed.log"
    monkeypatch.setenv("GROUPS_LOG", str(log))
    pytester.makeconftest(_standalone_conftest())
    pytester.makeini(
        "[pytest]\ntimeout = 3\nmarkers =\n    process_tree: m\n    browser: m\n    changes_network: m\n"
    )
    pytester.makepyfile(
        test_a_stack=TIMED.format(mark="changes_network", name="stack", sleep=2.5),
        test_b_browser=TIMED.format(mark="browser", name="browser", sleep=2.5),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=2)
    at = {" ".join(line.split()[:2]): float(line.split()[2]) for line in log.read_text().splitlines()}
    first, second = sorted(("stack", "browser"), key=lambda name: at[f"{name} start"])
    assert at[f"{second} start"] >= at[f"{first} end"]


HOLDS_THE_LOCK = """import glob, os, tempfile
import pytest
pytestmark = pytest.mark.changes_network


def test_it():
    assert glob.glob(os.path.join(tempfile.gettempdir(), "spotify-tests-*-network.lock"))
"""


def test_the_runs_network_lock_is_removed_when_the_run_ends(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock file is the run's own (named by xdist's run id): the controller removes it once the
    workers are done, so runs do not leave one in the temporary folder each (30 were there)."""
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    pytester.makeconftest(_standalone_conftest())
    pytester.makeini("[pytest]\nmarkers =\n    process_tree: m\n    browser: m\n    changes_network: m\n")
    pytester.makepyfile(test_stack=HOLDS_THE_LOCK)  # it sees the lock while it runs
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=1)
    assert list(tmp.glob("spotify-tests-*")) == []

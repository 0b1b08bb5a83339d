"""The CI rule on skips (conftest.py), run on throwaway test files with pytest's own pytester."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
TESTS = """
import pytest

def test_skips():
    pytest.skip("no such tool")

@pytest.mark.skipif(True, reason="no such binary")
def test_skipif():
    pass

@pytest.mark.allowed_skip(reason="a benchmark, not a promised part")
def test_allowed():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(_standalone_conftest())
    pytester.makepyfile(test_sample=TESTS)
    return pytester


def _standalone_conftest() -> str:
    """The real conftest, minus the fixture plugins (they need this repo's package layout)."""
    start = CONFTEST.index("pytest_plugins = [")
    end = CONFTEST.index("]\n", start) + 2
    return (
        CONFTEST[:start].replace("import spotify_assets_tests.fixtures as _fixtures\n", "") + CONFTEST[end:]
    )


def test_outside_ci_skips_stay_skips(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)


def test_under_ci_a_skip_is_a_failure_unless_allowed(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*no such binary*"])  # skipif: at setup
    result.stdout.fnmatch_lines(["*skipped under CI=true*no such tool*"])
    result.stdout.fnmatch_lines(["SKIPPED*not here"])  # the allowed one, still in the -rs summary
    assert "test_allowed" not in "\n".join(
        line for line in result.outlines if "FAILED" in line or "ERROR" in line
    )

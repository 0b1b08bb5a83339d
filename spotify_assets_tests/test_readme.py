"""The README and the pages under ``docs/`` promise only what exists and is tested.

The README is what a newcomer reads first: at most 200 lines, the two commands exact in its
first screen. Every link resolves (file and heading); every ``make`` target and
``spotify-assets`` command a page names exists, and each is run by a named test (which must
name the command) or is listed with the reason no test runs it; every asset a documented
``--select`` names exists, partitioned ones given a partition; every variable of the
configuration table is set by a test (most in ``test_configuration.py``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from spotify_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
#: What a newcomer sees without scrolling.
FIRST_SCREEN_LINES = 40
THE_TWO_COMMANDS = (
    "make demo   # create .venv, install, run the whole pipeline on the local default, print your top ten\n"
    "make test   # create the same .venv, lint + type-check + the whole test suite\n"
)

#: Each command a page names -> the test that runs it (the file must name the command too),
#: or why none does.
COMMAND_RUN_BY: dict[str, str] = {
    "make demo": "test_configuration.py",
    "make test": "CI: .ci/run is exactly `make test`",
    "make lint": "run by `make test` (and CI) before pytest",
    "make typecheck": "run by `make test` (and CI) before pytest",
    "make dev": "test_dev_command_stop.py",
    "make dashboard": "test_dashboard_address.py",
    "make cloud-demo": "test_cloud_demo_dashboard.py",
    "make compose-test": "test_compose_stack.py",
    "make bench": "test_bench_quick.py",
    "make soak": "test_soak.py",
    "make venv": "every target above installs through it",
    "make lock": "re-resolves requirements.lock from the package index: a maintainer's step",
    "spotify-assets demo": "test_demo_household.py",
    "spotify-assets dev": "test_dev_command_stop.py",
    "spotify-assets sandbox": "test_sandbox_boundary.py",
    "spotify-assets auth": "test_auth_command.py",
    "spotify-assets import": "test_import_command.py",
    "spotify-assets export": "test_export.py",
    "spotify-assets redact-lake": "test_ip_redaction.py",
    "spotify-assets users": "test_users.py",
    "spotify-assets rebuild-warehouse": "test_rebuild.py",
    "spotify-assets compact-lake": "test_lake_compaction.py",
    "spotify-assets scrobble-server": "test_scrobble_server.py",
    "dg check": "test_dg_cli.py",
    "dg list": "test_dg_cli.py",
    "dg dev": "the same webserver as `dagster dev`; test_dg_cli.py loads the same project",
}

CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
COMMAND = re.compile(r"(?<![\w-])(make|spotify-assets|dg) ([a-z][a-z-]+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _code(text: str) -> str:
    return "\n".join(m.group(0) for m in CODE.finditer(text))


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_fits_five_minutes_and_opens_with_the_two_commands() -> None:
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; depth belongs in docs/"
    first_screen = "\n".join(lines[:FIRST_SCREEN_LINES]) + "\n"
    assert THE_TWO_COMMANDS in first_screen


def test_every_link_resolves_to_a_file_and_heading() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
                continue
            if anchor and file.suffix == ".md":
                headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)}
                if anchor not in headings:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_images_the_readme_shows_exist_and_are_small() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert len(images) >= 2  # the dashboard and the asset graph
    for image in images:
        path = ROOT / image
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
        assert path.stat().st_size < 400_000, f"{image}: keep screenshots small"


def _documented_commands() -> set[str]:
    found = set()
    for page in PAGES:
        for tool, name in COMMAND.findall(_code(page.read_text())):
            found.add(f"{tool} {name}")
    return found


def test_every_documented_command_is_run_by_a_test_or_says_why_not() -> None:
    documented = _documented_commands()
    assert {"make demo", "make test", "spotify-assets import", "dg check"} <= documented
    assert sorted(documented - COMMAND_RUN_BY.keys()) == [], "add each to COMMAND_RUN_BY"
    for command in documented:
        by = COMMAND_RUN_BY[command]
        if by.endswith(".py"):
            source = (TESTS / by).read_text()
            assert command.split(" ", 1)[1] in source, f"{by} does not name {command!r}"


def test_every_documented_make_target_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    documented = {c.split(" ", 1)[1] for c in _documented_commands() if c.startswith("make ")}
    assert documented <= targets


def test_every_documented_cli_command_exists() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("spotify-assets")), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    offered = set(re.findall(r"^  ([a-z][a-z-]+)\s", proc.stdout, re.M))
    documented = {c.split(" ", 1)[1] for c in _documented_commands() if c.startswith("spotify-assets ")}
    assert documented and documented <= offered


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_documented_selection_names_real_assets_with_the_right_partitioning(page: Path) -> None:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    for line in _code(page.read_text()).splitlines():
        match = re.search(r"dagster asset materialize .*--select ([\w,]+)", line)
        if not match:
            continue
        keys = [dg.AssetKey(name) for name in match.group(1).split(",")]
        assert all(graph.has(key) for key in keys), line
        partitioned = any(graph.get(key).partitions_def is not None for key in keys)
        assert ("--partition " in line) == partitioned, line


def test_every_variable_of_the_configuration_table_is_exercised_by_a_test() -> None:
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    variables = set(re.findall(r"^\| `([A-Z_]+)`", table, re.M))
    variables |= set(re.findall(r"`(SPOTIFY_[A-Z_]+)`", "\n".join(re.findall(r"^\|[^|]+\|", table, re.M))))
    assert "SPOTIFY_DEPLOYMENT" in variables and len(variables) >= 10
    exercised = "\n".join(p.read_text() for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    assert sorted(v for v in variables if v not in exercised) == []

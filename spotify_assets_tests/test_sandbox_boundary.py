"""The runtime package never imports the sandbox (a test double), and still finds it when installed.

Scans every module under ``spotify_assets/`` for ``import``/``from`` statements and
``importlib.import_module``/``__import__`` calls naming ``spotify_sandbox``: the sandbox plugs
in through entry points only (``pyproject.toml``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spotify_assets
from spotify_assets import cli
from spotify_assets.deployments import spotify_fallback

PACKAGE = Path(spotify_assets.__file__).parent


def _sandbox_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "spotify_sandbox"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "spotify_sandbox":
            found.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0].value
            if name in {"import_module", "__import__"} and str(arg).startswith("spotify_sandbox"):
                found.append((node.lineno, str(arg)))
    return found


def test_the_scan_finds_each_kind_of_import() -> None:
    code = "import spotify_sandbox\nfrom spotify_sandbox.server import x\nimportlib.import_module('spotify_sandbox.demo')\n"
    assert [line for line, _ in _sandbox_imports(ast.parse(code))] == [1, 2, 3]


def test_no_module_of_the_runtime_package_imports_the_sandbox() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    offenders = {
        str(path.relative_to(PACKAGE)): hits
        for path in modules
        if (hits := _sandbox_imports(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}


def test_the_sandbox_plugs_in_through_entry_points() -> None:
    resource = spotify_fallback("http://127.0.0.1:9")
    assert type(resource).__module__ == "spotify_sandbox.resource"
    assert {"demo", "dev", "sandbox", "auth", "import"} <= set(cli.all_commands())


def test_without_the_sandbox_the_error_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from spotify_assets import deployments as by_deployment

    monkeypatch.setattr(by_deployment, "entry_points", lambda group: [])
    with pytest.raises(by_deployment.NoSpotifyError, match="SPOTIFY_CLIENT_ID"):
        by_deployment.spotify_fallback()

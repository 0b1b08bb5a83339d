"""``spotify-assets``: the project's console script.

Each sub-command lives next to the code it drives and is imported lazily, so
``spotify-assets auth`` does not pay for importing Dagster or Spark.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

#: sub-command -> ("module:function", one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "spotify_assets.demo:demo_command",
        "run the whole pipeline once on the local default and print the top ten",
    ),
    "dev": ("spotify_assets.demo:dev_command", "start the sandbox API (real-time clock) and the Dagster UI"),
    "auth": (
        "spotify_assets.spotify.auth:auth_command",
        "get a Spotify refresh token (Authorization Code flow)",
    ),
    "sandbox": (
        "spotify_assets.sandbox.server:serve_command",
        "serve the sandbox Spotify Web API on loopback",
    ),
    "import": (
        "spotify_assets.imports.command:import_command",
        "import a Spotify privacy export (.zip or folder)",
    ),
    "rebuild-warehouse": (
        "spotify_assets.rebuild:rebuild_command",
        "rebuild the warehouse's plays and track features from the lake alone",
    ),
}


def _usage() -> str:
    lines = ["usage: spotify-assets <command> [options]", "", "commands:"]
    lines += [f"  {name:<17} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"spotify-assets: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    func: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

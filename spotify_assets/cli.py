"""``spotify-assets``: the project's console script.

Each sub-command lives next to the code it drives and is imported lazily, so
``spotify-assets auth`` does not pay for importing Dagster or Spark.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

#: sub-command -> ("module:function", one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "auth": (
        "spotify_assets.spotify.auth:auth_command",
        "get a Spotify refresh token (Authorization Code flow)",
    ),
    "import": (
        "spotify_assets.import_run:import_command",
        "import a Spotify privacy export (.zip or folder)",
    ),
    "export": (
        "spotify_assets.scrobbles.export:export_command",
        "write a listener's plays as a ListenBrainz export (.zip) or a Last.fm-style CSV",
    ),
    "redact-lake": (
        "spotify_assets.imports.redact_lake:redact_lake_command",
        "remove the IP addresses from export copies an older import landed in the lake",
    ),
    "users": (
        "spotify_assets.users.command:users_command",
        "the household: add, list or remove listeners (one Spotify account each)",
    ),
    "scrobble-server": (
        "spotify_assets.scrobbles.command:scrobble_server_command",
        "a ListenBrainz-compatible door scrobblers submit listens to (loopback by default)",
    ),
    "rebuild-warehouse": (
        "spotify_assets.rebuild:rebuild_command",
        "rebuild the warehouse's plays and track features from the lake alone",
    ),
    "compact-lake": (
        "spotify_assets.lake_compaction:compact_lake_command",
        "fold each listener's settled days of small lake files into one file per kind",
    ),
}

#: Entry-point group for more sub-commands: each entry point names a dict shaped like ``COMMANDS``.
#: The project's sandbox registers ``demo``, ``dev`` and ``sandbox`` there.
COMMANDS_GROUP = "spotify_assets.commands"


def all_commands() -> dict[str, tuple[str, str]]:
    """The built-in commands plus those registered by installed packages (built-ins win a clash)."""
    found: dict[str, tuple[str, str]] = {}
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        found.update(ep.load())
    return {**found, **COMMANDS}


def _usage() -> str:
    lines = ["usage: spotify-assets <command> [options]", "", "commands:"]
    lines += [f"  {name:<17} {help_}" for name, (_, help_) in all_commands().items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    commands = all_commands()
    if name not in commands:
        print(f"spotify-assets: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = commands[name][0].split(":")
    func: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

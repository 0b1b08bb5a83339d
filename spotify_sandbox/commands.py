"""The sandbox's sub-commands of ``spotify-assets``, registered through an entry point.

``spotify_assets.cli`` collects every ``spotify_assets.commands`` entry point, so the runtime
package lists ``demo``, ``dev`` and ``sandbox`` without importing this package. Same shape as
``spotify_assets.cli.COMMANDS``: name -> ("module:function", one-line help).
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "spotify_sandbox.demo:demo_command",
        "run the whole pipeline once on the local default and print the top ten",
    ),
    "dev": ("spotify_sandbox.demo:dev_command", "start the sandbox API (real-time clock) and the Dagster UI"),
    "sandbox": (
        "spotify_sandbox.server:serve_command",
        "serve the sandbox Spotify Web API on loopback",
    ),
}

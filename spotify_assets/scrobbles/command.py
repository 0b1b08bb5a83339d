"""``spotify-assets scrobble-server``: the door scrobblers submit listens to.

``scrobble-server`` serves the ListenBrainz-compatible door on loopback (``--host 0.0.0.0`` to
let phones on the network reach it; put a TLS proxy in front beyond a trusted network, since a
token travels in clear over plain HTTP) and lands accepted listens in the deployment's lake
(``deployments.command_stores``, as every operator command opens it). Each listener's token
comes from ``spotify-assets users token NAME`` (``users/command.py``). Exit status: 0 stopped,
2 usage or settings.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from spotify_assets.scrobbles.server import DEFAULT_HOST, DEFAULT_PORT, SUBMIT_PATH, Door, make_server


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def scrobble_server_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="spotify-assets scrobble-server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir", default=None, help="default: $SPOTIFY_DATA_DIR, else .data/ at the repo root"
    )
    args = parser.parse_args(argv)

    from spotify_assets.deployments import command_settings, command_stores

    settings = command_settings(parser.prog, args.data_dir)
    if settings is None:
        return 2
    with command_stores(settings, "lake") as stores:
        server = make_server(Door(settings.data, stores.lake), args.host, args.port)
        host, port = str(server.server_address[0]), int(server.server_address[1])
        print(f"Scrobble server on http://{host}:{port}/ ({SUBMIT_PATH}); Ctrl-C stops it.", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                "Serving beyond loopback over plain HTTP: tokens travel in clear; put a TLS proxy in front.",
                file=sys.stderr,
            )
        signal.signal(signal.SIGTERM, _stop)  # `docker stop` and a test's terminate(): a clean exit
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0

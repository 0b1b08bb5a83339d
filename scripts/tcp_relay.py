"""A TCP relay: ``python scripts/tcp_relay.py LISTEN_HOST:PORT=TARGET_HOST:PORT ...``.

``scripts/compose-test.sh`` (cloud mode) starts the GCS and BigQuery emulators on host loopback,
where the tests start them; the stack's containers, on compose's bridge network, reach the host
only at the network's gateway. This forwards each ``LISTEN`` address (the gateway) to its
``TARGET`` (127.0.0.1), byte for byte, until it is stopped (SIGTERM). Nothing else listens.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _handler(host: str, port: int):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(pairs: list[str]) -> None:
    servers = []
    for pair in pairs:
        listen, _, target = pair.partition("=")
        lhost, lport = _address(listen)
        thost, tport = _address(target)
        servers.append(await asyncio.start_server(_handler(thost, tport), lhost, lport))
        print(f"tcp_relay: {lhost}:{lport} -> {thost}:{tport}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    if len(sys.argv) < 2 or not all("=" in a for a in sys.argv[1:]):
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(main(sys.argv[1:]))

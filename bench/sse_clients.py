"""Many /events clients in one asyncio process; prints delivery delays as one JSON line.

Every client reads its stream through HTTP chunked framing and notes when each
chunk arrived and the `id:` of its first frame. Each distinct update frame is
decoded once for the `seen` times of the vehicles in it (when the server took
each event in), so a delay is a client's arrival time minus a vehicle's `seen`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit

import msgspec

from bench.common import pin, quantile

SAMPLES_PER_FRAME = 16


class _Seen(msgspec.Struct):
    seen: float


_decode_states = msgspec.json.Decoder(list[_Seen]).decode


class Tally:
    """Frames seen once per id, and every client's (arrival, id) pairs."""

    def __init__(self) -> None:
        self.frames: dict[bytes, list[float]] = {}
        self.arrivals: list[tuple[float, bytes]] = []
        self.bytes = 0
        self.connected = 0
        self.failed = 0

    def chunk(self, arrived: float, body: bytes, stream: str) -> None:
        """Note one SSE chunk; decode its update frame if it is the first copy seen."""
        marker = body.find(b"event: update\nid: ")
        if marker < 0:
            return
        id_start = marker + len(b"event: update\nid: ")
        id_end = body.index(b"\n", id_start)
        frame_id = stream.encode() + b"#" + body[id_start:id_end]
        if frame_id not in self.frames:
            data_start = id_end + len(b"\ndata: ")
            data = body[data_start : body.index(b"\n", data_start)]
            seen = sorted(state.seen for state in _decode_states(data))
            step = max(1, len(seen) // SAMPLES_PER_FRAME)
            self.frames[frame_id] = [*seen[::step], seen[-1]]
        self.arrivals.append((arrived, frame_id))


async def client(host: str, port: int, path: str, tally: Tally, until: float) -> None:
    """Hold one /events stream open until the monotonic time `until`, noting every chunk."""
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    except OSError:
        tally.failed += 1
        return
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            tally.failed += 1
            return
        tally.connected += 1
        # A large SSE frame may span several HTTP chunks: collect until a blank line.
        pending = b""
        while time.monotonic() < until:
            async with asyncio.timeout(max(0.1, until - time.monotonic())):
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                body = await reader.readexactly(size + 2)
            tally.bytes += size
            pending += body[:-2]
            end = pending.rfind(b"\n\n")
            if end >= 0:
                tally.chunk(time.time(), pending[: end + 2], path)
                pending = pending[end + 2 :]
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main_async(
    url: str, clients: int, seconds: float, filters: list[str]
) -> dict[str, float]:
    """Connect `clients` streams (spread over `filters`), measure for `seconds`, summarise."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    until = time.monotonic() + seconds
    tasks = []
    for number in range(clients):
        query = filters[number % len(filters)]
        path = "/events" + (f"?{query}" if query else "")
        tasks.append(asyncio.create_task(client(host, port, path, tally, until)))
        if number % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)

    warm = seconds / 4  # skip the first quarter: snapshots and connection set-up
    started = min((arrived for arrived, _ in tally.arrivals), default=0.0) + warm
    delays = [
        arrived - seen
        for arrived, frame_id in tally.arrivals
        if arrived >= started
        for seen in tally.frames[frame_id]
    ]
    return {
        "connected": tally.connected,
        "failed": tally.failed,
        "update_frames": len(tally.frames),
        "chunks": len(tally.arrivals),
        "mbytes": tally.bytes / 1e6,
        "delay_p50": quantile(delays, 0.5),
        "delay_p99": quantile(delays, 0.99),
        "delay_max": max(delays, default=float("nan")),
        "samples": len(delays),
    }


def main() -> None:
    """Run the clients from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.sse_clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--filter", action="append", default=None)
    args = parser.parse_args()
    pin(args.cpu)
    result = asyncio.run(main_async(args.url, args.clients, args.seconds, args.filter or [""]))
    print(msgspec.json.encode(result).decode(), flush=True)


if __name__ == "__main__":
    main()

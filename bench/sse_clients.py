"""Many /events clients in one asyncio process; prints delivery delays as one JSON line.

The clients must not be the bottleneck: 1,000 streams of the full feed are hundreds
of megabytes a second, so each client is a bare `asyncio.Protocol` that undoes HTTP
chunking and finds SSE frame boundaries with `bytes.find`, keeping references to the
pieces of the frame in flight rather than copying them. When a frame ends, the client
notes its arrival time and its key (stream, `id:`, length). The first client to see a
key decodes that frame once for the `seen` times of the vehicles in it (when the
server took each event in); a delay is a client's arrival time minus a vehicle's `seen`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from urllib.parse import urlsplit

import msgspec

from bench.common import pin, quantile

SAMPLES_PER_FRAME = 16
UPDATE = b"event: update\nid: "
CONNECT_BATCH = 100
CONNECT_SECONDS = 10.0


class _Seen(msgspec.Struct):
    seen: float


_decode_states = msgspec.json.Decoder(list[_Seen]).decode

FrameKey = tuple[str, bytes, int]


class Tally:
    """Frames decoded once per key, and every client's (arrival, key) pairs."""

    def __init__(self) -> None:
        self.frames: dict[FrameKey, list[float]] = {}
        self.arrivals: list[tuple[float, FrameKey]] = []
        self.bytes = 0
        self.connected = 0
        self.failed = 0

    def frame(self, arrived: float, stream: str, pieces: list[memoryview], size: int) -> None:
        """Note one complete SSE frame; decode its update data if its key is new."""
        head = bytes(pieces[0][:64]) if len(pieces[0]) >= 64 else b"".join(pieces)[:64]
        if not head.startswith(UPDATE):
            return
        id_end = head.index(b"\n", len(UPDATE))
        key = (stream, head[len(UPDATE) : id_end], size)
        if key not in self.frames:
            body = b"".join(pieces)
            data_start = body.index(b"\ndata: ") + len(b"\ndata: ")
            data = body[data_start : body.index(b"\n", data_start)]
            seen = sorted(state.seen for state in _decode_states(data))
            step = max(1, len(seen) // SAMPLES_PER_FRAME)
            self.frames[key] = [*seen[::step], seen[-1]]
        self.arrivals.append((arrived, key))


class StreamClient(asyncio.Protocol):
    """One /events stream: HTTP head, then chunked body, then SSE frames."""

    def __init__(self, tally: Tally, stream: str, request: bytes) -> None:
        self.tally = tally
        self.stream = stream
        self.request = request
        self.head = b""  # the HTTP response head until it is complete, then None
        self.in_head = True
        self.line = b""  # a chunk-size line split across reads
        self.remaining = 0  # body bytes left in the current HTTP chunk, +2 for its CRLF
        self.pieces: list[memoryview] = []  # the SSE frame in flight
        self.size = 0
        self.ended_newline = False  # the last body byte seen was "\n" (a frame may end next)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 200 " not in self.head.split(b"\r\n", 1)[0]:
                self.tally.failed += 1
                self.transport.close()
                return
            self.tally.connected += 1
            self.in_head = False
            data = self.head[end + 4 :]
        now = time.time()
        position, length = 0, len(data)
        while position < length:
            if self.remaining > 2:  # chunk content
                take = min(self.remaining - 2, length - position)
                self._body(data, position, position + take, now)
                position += take
                self.remaining -= take
            elif self.remaining:  # the CRLF closing a chunk
                take = min(self.remaining, length - position)
                position += take
                self.remaining -= take
            else:  # a chunk-size line, perhaps split across reads
                if self.line.endswith(b"\r") and data[position : position + 1] == b"\n":
                    size_line, position = self.line[:-1], position + 1
                else:
                    end = data.find(b"\r\n", position)
                    if end < 0:
                        self.line += data[position:]
                        return
                    size_line, position = self.line + data[position:end], end + 2
                self.line = b""
                size = int(size_line, 16)
                if size == 0:
                    self.transport.close()
                    return
                self.remaining = size + 2
                self.tally.bytes += size

    def _body(self, data: bytes, start: int, stop: int, now: float) -> None:
        """Split body bytes into SSE frames (each ends with a blank line)."""
        if self.ended_newline and data[start : start + 1] == b"\n":
            self._add(data, start, start + 1)
            self._end(now)
            start += 1
        while True:
            found = data.find(b"\n\n", start, stop)
            if found < 0:
                break
            self._add(data, start, found + 2)
            self._end(now)
            start = found + 2
        if start < stop:
            self._add(data, start, stop)
        self.ended_newline = start < stop and data[stop - 1] == 0x0A

    def _add(self, data: bytes, start: int, stop: int) -> None:
        self.pieces.append(memoryview(data)[start:stop])
        self.size += stop - start

    def _end(self, now: float) -> None:
        if self.pieces:
            self.tally.frame(now, self.stream, self.pieces, self.size)
        self.pieces, self.size = [], 0


async def main_async(
    url: str, clients: int, seconds: float, filters: list[str]
) -> dict[str, float]:
    """Connect `clients` streams (spread over `filters`), measure for `seconds`, summarise."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    tally = Tally()
    protocols: list[StreamClient] = []

    async def connect(number: int) -> None:
        query = filters[number % len(filters)]
        path = "/events" + (f"?{query}" if query else "")
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                _, protocol = await loop.create_connection(
                    functools.partial(StreamClient, tally, path, request.encode()), host, port
                )
        except (OSError, TimeoutError):
            tally.failed += 1
            return
        protocols.append(protocol)

    # In batches, not one by one: the streams already open keep the loop busy, and
    # connecting a thousand in turn behind them once took minutes.
    for first in range(0, clients, CONNECT_BATCH):
        await asyncio.gather(*map(connect, range(first, min(first + CONNECT_BATCH, clients))))
    cpu_before = time.process_time()
    await asyncio.sleep(seconds)
    cpu_share = (time.process_time() - cpu_before) / seconds
    for protocol in protocols:
        protocol.transport.close()

    warm = seconds / 4  # skip the first quarter: snapshots and connection set-up
    started = min((arrived for arrived, _ in tally.arrivals), default=0.0) + warm
    delays = [
        arrived - seen
        for arrived, key in tally.arrivals
        if arrived >= started
        for seen in tally.frames[key]
    ]
    return {
        "connected": tally.connected,
        "failed": tally.failed,
        "update_frames": len(tally.frames),
        "frames": len(tally.arrivals),
        "mbytes": tally.bytes / 1e6,
        "delay_p50": quantile(delays, 0.5),
        "delay_p99": quantile(delays, 0.99),
        "delay_max": max(delays, default=float("nan")),
        "samples": len(delays),
        "cpu_share": cpu_share,
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

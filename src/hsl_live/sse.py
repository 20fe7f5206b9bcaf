"""Server-sent events: frames, the broadcaster tick and the /events stream.

Each tick the broadcaster encodes one frame per distinct filter and every client with
that filter sends the same bytes. Nothing is queued per client: a client remembers
the last change number it was sent. One that kept up gets the shared frame; one a
tick behind (its socket was slow) gets the latest state of each vehicle it missed,
from the store's change ring; one further behind gets the current snapshot. Clients
at the same point share those chunks too, so slow clients cost a few frames of memory
per filter, never a backlog each. A client whose socket accepts nothing for
`client_timeout_seconds` is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
from prometheus_client.core import Metric
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from hsl_live.clock import Clock
from hsl_live.filters import Filter, FilterError, parse_filter
from hsl_live.metrics import counter, gauge, labelled_counter
from hsl_live.store import VehicleState, VehicleStore

logger = logging.getLogger(__name__)

# The ASGI scope extensions through which the web server lets a stream drop its
# connection, and write bytes already framed as HTTP chunks straight to its socket.
ABORT_EXTENSION = "hsl_live.abort"
WRITE_EXTENSION = "hsl_live.write_chunked"
RETRY_MS = 3000
CLOSE_TIMEOUT_SECONDS = 1.0
# The most a stream hands an ASGI server's send at once, where it cannot write to the
# socket itself: a slow client holds about this much.
SLICE_BYTES = 64 * 1024
SUMMARY_SECONDS = 60.0

PING_BYTES = b": ping\n\n"
RETRY_BYTES = b"retry: %d\n\n" % RETRY_MS
FAREWELL_BYTES = b": server shutting down\nretry: 5000\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]

_encode = msgspec.json.Encoder().encode


def frame(event: str, seq: int, data: bytes) -> bytes:
    """Return one SSE frame; msgspec's JSON has no raw newlines, so one data line suffices."""
    return b"event: %b\nid: %d\ndata: %b\n\n" % (event.encode(), seq, data)


class Chunk:
    """Bytes of an event stream, held as one HTTP/1.1 chunk (`size CRLF body CRLF`).

    A tick's frame for a filter is one Chunk that every client with that filter writes
    to its socket as is; `body` is the same bytes without the chunk framing.
    """

    __slots__ = ("start", "wire")

    def __init__(self, body: bytes) -> None:
        if not body:
            raise ValueError("an empty HTTP chunk would end the stream")
        head = b"%x\r\n" % len(body)
        self.wire = head + body + b"\r\n"
        self.start = len(head)

    @property
    def body(self) -> memoryview:
        """Return the stream bytes, without the chunk framing."""
        return memoryview(self.wire)[self.start : -2]

    def __len__(self) -> int:
        return len(self.wire) - self.start - 2


PING = Chunk(PING_BYTES)
FAREWELL = Chunk(FAREWELL_BYTES)


class SseStats(msgspec.Struct):
    """Counters of the SSE layer since start."""

    connections: int = 0
    refused: int = 0
    bad_requests: int = 0
    slow_disconnects: int = 0
    snapshots: int = 0
    resumes: int = 0
    catch_ups: int = 0
    resnapshots: int = 0
    ticks: int = 0
    tick_seconds: float = 0.0
    chunks_sent: int = 0
    bytes_sent: int = 0
    pings: int = 0
    encoded: Counter[str] = msgspec.field(default_factory=Counter)


class _Group:
    """The clients sharing one filter, and which vehicles they were last shown."""

    __slots__ = ("clients", "filter", "visible")

    def __init__(self, stream_filter: Filter, visible: set[str]) -> None:
        self.filter = stream_filter
        self.visible = visible
        self.clients = 0


class _Tick:
    """The frames of one tick: the changes after `since` up to `seq`, per filter.

    `previous` is where the tick before began: a client there missed one tick, and
    `catch_ups` holds, per filter, what those clients were sent this tick.
    """

    __slots__ = ("catch_ups", "frames", "previous", "seq", "since")

    def __init__(self, previous: int, since: int, seq: int, frames: dict[Filter, Chunk]) -> None:
        self.previous = previous
        self.since = since
        self.seq = seq
        self.frames = frames
        self.catch_ups: dict[Filter, Chunk | None] = {}


class Client:
    """One connected /events stream: its filter and the change number it has been sent."""

    __slots__ = ("cursor", "group", "opening")

    def __init__(self, group: _Group, cursor: int, opening: Chunk | None) -> None:
        self.group = group
        self.cursor = cursor
        self.opening = opening


class Broadcaster:
    """Turn store changes into shared frames on a tick, and hand each client its next chunk."""

    name = "broadcaster"

    def __init__(
        self, store: VehicleStore, clock: Clock, *, tick_seconds: float, ping_seconds: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.ping_seconds = ping_seconds
        self.stats = SseStats()
        self.closing = False
        self.clients = 0
        self._groups: dict[Filter, _Group] = {}
        self._tick = _Tick(store.seq, store.seq, store.seq, {})
        self._wake = asyncio.Event()
        # The opening snapshot per filter at the current tick: a crowd that connects
        # at once (a restart, a reconnect wave) shares one instead of one each.
        self._openings: dict[Filter, Chunk] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick until the pipeline stops, then tell every stream to close."""
        logger.info("broadcasting live view every %.2f s", self.tick_seconds)
        summary_at = time.monotonic() + SUMMARY_SECONDS
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_seconds):
                    await stopping.wait()
            self.tick()
            if time.monotonic() >= summary_at:
                summary_at += SUMMARY_SECONDS
                self._log_summary()
        self.close()
        logger.info("live view closed; %d streams asked to end", self.clients)

    def close(self) -> None:
        """Make every stream say goodbye and refuse new ones."""
        self.closing = True
        self._wake.set()

    def tick(self) -> None:
        """Expire silent vehicles and publish one frame per filter for what changed."""
        started = time.perf_counter()
        self.store.expire(self.clock.now())
        since, seq = self._tick.seq, self.store.seq
        if seq == since:
            return

        changed = self.store.changed_since(since)
        frames = {}
        for key, group in self._groups.items():
            data = self._group_frames(group, changed, seq)
            if data:
                frames[key] = Chunk(data)
        self._tick = _Tick(self._tick.since, since, seq, frames)
        self._openings.clear()
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

        self.stats.ticks += 1
        self.stats.tick_seconds += time.perf_counter() - started

    @property
    def framed_seq(self) -> int:
        """Return the change number up to which the last tick framed changes."""
        return self._tick.seq

    def connect(self, stream_filter: Filter, last_event_id: str | None) -> Client:
        """Register a stream and build its first chunk: a snapshot, or what it missed."""
        group = self._groups.get(stream_filter)
        if group is None:
            visible = {state.id for state in self.store.states() if stream_filter.matches(state)}
            group = self._groups[stream_filter] = _Group(stream_filter, visible)
        group.clients += 1
        self.clients += 1
        self.stats.connections += 1

        seq = self._tick.seq
        resume_from = _parse_event_id(last_event_id)
        if resume_from is not None and resume_from <= seq and self.store.covers(resume_from):
            self.stats.resumes += 1
            missed = self._catch_up(stream_filter, resume_from, seq)
            return Client(group, seq, Chunk(RETRY_BYTES + missed))

        return Client(group, seq, self._opening(stream_filter))

    def disconnect(self, client: Client) -> None:
        """Forget a stream; its filter's group goes when its last client does."""
        self.clients -= 1
        group = client.group
        group.clients -= 1
        if group.clients == 0 and self._groups.get(group.filter) is group:
            del self._groups[group.filter]

    async def next_chunk(self, client: Client, ping_at: float) -> Chunk | None:
        """Wait for the client's next bytes: changes, or a ping at loop time `ping_at`.

        Return None when the server is closing.
        """
        loop = asyncio.get_running_loop()
        while not self.closing:
            tick = self._tick
            if tick.seq == client.cursor:
                wake = self._wake
                try:
                    async with asyncio.timeout_at(ping_at):
                        await wake.wait()
                except TimeoutError:
                    self.stats.pings += 1
                    return PING
                continue

            chunk: Chunk | None
            stream_filter = client.group.filter
            if tick.since == client.cursor:
                chunk = tick.frames.get(stream_filter)
            elif tick.previous == client.cursor:
                # A tick behind (its socket was slow): the latest state of what it
                # missed, shared by every client of the filter that is there too.
                if stream_filter in tick.catch_ups:
                    chunk = tick.catch_ups[stream_filter]
                else:
                    self.stats.catch_ups += 1
                    data = self._catch_up(stream_filter, client.cursor, tick.seq)
                    chunk = tick.catch_ups[stream_filter] = Chunk(data) if data else None
            else:
                # Further behind, nearly every vehicle changed since: the current
                # snapshot, the same chunk new clients of this tick get.
                self.stats.resnapshots += 1
                chunk = self._opening(stream_filter)
            client.cursor = tick.seq
            if chunk is not None:
                return chunk
            if loop.time() >= ping_at:
                self.stats.pings += 1
                return PING
        return None

    def collect(self) -> Iterable[Metric]:
        """Yield the SSE gauges and counters for /metrics."""
        stats = self.stats
        yield gauge("hsl_live_sse_clients", "Connected /events streams", self.clients)
        yield gauge(
            "hsl_live_sse_filters", "Distinct filters of connected streams", len(self._groups)
        )
        yield labelled_counter(
            "hsl_live_sse_connections",
            "Streams opened, by how they started",
            "start",
            [("snapshot", stats.connections - stats.resumes), ("resume", stats.resumes)],
        )
        yield labelled_counter(
            "hsl_live_sse_refused",
            "Stream requests refused, by reason",
            "reason",
            [("limit", stats.refused), ("bad_parameter", stats.bad_requests)],
        )
        yield counter(
            "hsl_live_sse_slow_disconnects",
            "Streams dropped after stalling past the timeout",
            stats.slow_disconnects,
        )
        yield labelled_counter(
            "hsl_live_sse_frames_encoded",
            "Frames encoded, by event",
            "event",
            [(event, stats.encoded[event]) for event in ("snapshot", "update", "remove")],
        )
        yield counter("hsl_live_sse_chunks_sent", "Chunks written to streams", stats.chunks_sent)
        yield counter("hsl_live_sse_sent_bytes", "Bytes written to streams", stats.bytes_sent)
        yield counter(
            "hsl_live_sse_catch_ups",
            "Catch-up chunks built for streams a tick behind (shared by those of a filter)",
            stats.catch_ups,
        )
        yield counter(
            "hsl_live_sse_resnapshots",
            "Snapshots sent to streams more than a tick behind, instead of what they missed",
            stats.resnapshots,
        )
        yield counter("hsl_live_sse_ticks", "Broadcaster ticks that had changes", stats.ticks)
        yield counter(
            "hsl_live_sse_tick_seconds", "Time spent building tick frames", stats.tick_seconds
        )

    def _group_frames(self, group: _Group, changed: list[str] | None, seq: int) -> bytes:
        if changed is None:
            # More changed in one tick than the ring holds: start the group afresh.
            snapshot = self._snapshot(group.filter, seq)
            group.visible = {s.id for s in self.store.states() if group.filter.matches(s)}
            return snapshot

        get, matches, visible = self.store.get, group.filter.matches, group.visible
        updates: list[VehicleState] = []
        removes: list[str] = []
        for vehicle_id in changed:
            state = get(vehicle_id)
            if state is not None and matches(state):
                updates.append(state)
                visible.add(vehicle_id)
            elif vehicle_id in visible:
                removes.append(vehicle_id)
                visible.discard(vehicle_id)

        return self._frames(removes, updates, seq)

    def _catch_up(self, stream_filter: Filter, since: int, seq: int) -> bytes:
        changed = self.store.changed_since(since)
        if changed is None:
            return self._snapshot(stream_filter, seq)
        updates: list[VehicleState] = []
        removes: list[str] = []
        for vehicle_id in changed:
            state = self.store.get(vehicle_id)
            if state is not None and stream_filter.matches(state):
                updates.append(state)
            else:
                removes.append(vehicle_id)

        return self._frames(removes, updates, seq)

    def _frames(self, removes: list[str], updates: list[VehicleState], seq: int) -> bytes:
        chunk = b""
        if removes:
            self.stats.encoded["remove"] += 1
            chunk += frame("remove", seq, _encode(removes))
        if updates:
            self.stats.encoded["update"] += 1
            chunk += frame("update", seq, _encode(updates))
        return chunk

    def _opening(self, stream_filter: Filter) -> Chunk:
        """Return the snapshot chunk of the current tick for a filter, built once."""
        opening = self._openings.get(stream_filter)
        if opening is None:
            opening = Chunk(RETRY_BYTES + self._snapshot(stream_filter, self._tick.seq))
            self._openings[stream_filter] = opening
        return opening

    def _snapshot(self, stream_filter: Filter, seq: int) -> bytes:
        self.stats.snapshots += 1
        self.stats.encoded["snapshot"] += 1
        states = [state for state in self.store.states() if stream_filter.matches(state)]
        return frame("snapshot", seq, _encode(states))

    def _log_summary(self) -> None:
        stats = self.stats
        logger.info(
            "live view: %d vehicles, %d streams, %d filters; %d chunks sent, "
            "%d catch-ups, %d snapshots to streams behind, %d slow disconnects since start",
            len(self.store),
            self.clients,
            len(self._groups),
            stats.chunks_sent,
            stats.catch_ups,
            stats.resnapshots,
            stats.slow_disconnects,
        )


def _parse_event_id(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


class EventStream:
    """The ASGI app of GET /events."""

    def __init__(
        self, broadcaster: Broadcaster, *, max_clients: int, client_timeout: float
    ) -> None:
        self.broadcaster = broadcaster
        self.max_clients = max_clients
        self.client_timeout = client_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        broadcaster = self.broadcaster
        try:
            stream_filter = parse_filter(request.query_params.multi_items())
        except FilterError as exc:
            broadcaster.stats.bad_requests += 1
            await _plain(400, str(exc))(scope, receive, send)
            return
        if broadcaster.closing:
            await _plain(503, "server is shutting down", retry=True)(scope, receive, send)
            return
        if broadcaster.clients >= self.max_clients:
            broadcaster.stats.refused += 1
            message = f"too many streams: the limit is {self.max_clients}"
            await _plain(503, message, retry=True)(scope, receive, send)
            return

        last_event_id = request.headers.get("last-event-id") or request.query_params.get(
            "last_event_id"
        )
        client = broadcaster.connect(stream_filter, last_event_id)
        extensions = scope.get("extensions") or {}
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            async with asyncio.TaskGroup() as group:
                watcher = group.create_task(_until_disconnect(receive))
                pump = group.create_task(
                    self._pump(
                        client,
                        extensions.get(WRITE_EXTENSION) or _sender(send),
                        extensions.get(ABORT_EXTENSION),
                        scope.get("client"),
                    )
                )
                await asyncio.wait((watcher, pump), return_when=asyncio.FIRST_COMPLETED)
                watcher.cancel()
                pump.cancel()
        finally:
            broadcaster.disconnect(client)
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(
        self,
        client: Client,
        write: Callable[[bytes], Awaitable[None]],
        abort: Callable[[], None] | None,
        peer: Any,
    ) -> None:
        broadcaster = self.broadcaster
        stats = broadcaster.stats
        loop = asyncio.get_running_loop()
        chunk, client.opening = client.opening, None
        try:
            while chunk is not None:
                async with asyncio.timeout(self.client_timeout):
                    await write(chunk.wire)
                stats.chunks_sent += 1
                stats.bytes_sent += len(chunk)
                chunk = await broadcaster.next_chunk(client, loop.time() + broadcaster.ping_seconds)

            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await write(FAREWELL.wire)
        except TimeoutError:
            stats.slow_disconnects += 1
            logger.warning("dropping stalled /events client %s: its socket took no data", peer)
            if abort is not None:
                abort()


def _sender(send: Send) -> Callable[[bytes], Awaitable[None]]:
    """Return a writer of HTTP chunks through plain ASGI body messages.

    For servers other than ours (and HTTP/1.0 clients): the chunk framing is taken off
    again, and the body goes in slices of at most SLICE_BYTES, each awaited, so a slow
    client holds about one slice rather than a copy of a whole frame.
    """

    async def write(wire: bytes) -> None:
        body = memoryview(wire)[wire.index(b"\r\n") + 2 : -2]
        for start in range(0, len(body), SLICE_BYTES):
            piece = bytes(body[start : start + SLICE_BYTES])
            await send({"type": "http.response.body", "body": piece, "more_body": True})

    return write


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _plain(status: int, text: str, *, retry: bool = False) -> PlainTextResponse:
    headers = {"Cache-Control": "no-store"}
    if retry:
        headers["Retry-After"] = "5"
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)

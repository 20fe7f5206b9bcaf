"""A real live-view server on a free port, fed by a fake source, and a small SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hsl_live.capture import RawMessage
from hsl_live.clock import Clock
from hsl_live.pipeline import Pipeline, Source
from hsl_live.server import WebServer, attach_web
from hsl_live.settings import Settings
from hsl_live.sse import Broadcaster
from hsl_live.store import VehicleStore

START_TIMEOUT_SECONDS = 5.0


class FakeSource:
    """A source the test feeds by hand; `connected` is whatever the test sets."""

    def __init__(self, *, connected: bool = True) -> None:
        self.connected = connected
        self._queue: asyncio.Queue[list[RawMessage] | None] = asyncio.Queue()

    def feed(self, messages: list[RawMessage]) -> None:
        self._queue.put_nowait(messages)

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        while (batch := await self._queue.get()) is not None:
            yield batch

    def stop(self) -> None:
        self._queue.put_nowait(None)


def vp(
    vehicle: int,
    second: float,
    *,
    lat: float = 60.17,
    lon: float = 24.94,
    mode: str = "bus",
    route: str = "2550",
    headsign: str = "Itäkeskus",
) -> RawMessage:
    """Return a VP of vehicle 22/`vehicle` with tst `second` seconds after a base instant."""
    tst = datetime(2024, 2, 13, 16, 0, tzinfo=UTC) + timedelta(seconds=second)
    stamp = tst.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    topic = (
        f"/hfp/v2/journey/ongoing/vp/{mode}/0022/{vehicle:05d}/{route}/1/{headsign}/16:00/"
        "1234567/5/60;24/19/74/97"
    )
    payload = {
        "VP": {
            "desi": route[1:],
            "dir": "1",
            "oper": 22,
            "veh": vehicle,
            "tst": stamp,
            "tsi": int(tst.timestamp()),
            "spd": 8.5,
            "hdg": 90,
            "lat": lat,
            "long": lon,
            "dl": -30,
            "loc": "GPS",
            "start": "16:00",
            "route": route,
            "occu": 0,
        }
    }
    return RawMessage(datetime.now(UTC), topic, json.dumps(payload).encode())


@dataclass
class LiveServer:
    """A running pipeline with its store and web server."""

    pipeline: Pipeline
    store: VehicleStore
    web: WebServer
    source: Any

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def broadcaster(self) -> Broadcaster:
        return next(part for part in self.pipeline.services if isinstance(part, Broadcaster))

    async def fed(self, messages: list[RawMessage]) -> None:
        """Feed messages; wait until the store has taken them and a tick has framed them.

        Waiting for the tick keeps event ids deterministic: a stream opened afterwards
        gets a snapshot whose id already covers these changes.
        """
        target = self.pipeline.ingest.stats.messages + len(messages)
        self.source.feed(messages)
        broadcaster = self.broadcaster
        for _ in range(1000):
            taken = self.pipeline.ingest.stats.messages >= target
            if taken and broadcaster.framed_seq >= broadcaster.store.seq:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the pipeline did not take and frame the messages within 5 s")


@contextlib.asynccontextmanager
async def live_server(
    *, connected: bool = True, source: Source | None = None, **overrides: Any
) -> AsyncIterator[LiveServer]:
    """Run a pipeline (no lake) with the web server on a free port until the block ends.

    The source is a FakeSource unless one is given.
    """
    values: dict[str, Any] = {"port": 0, "tick_seconds": 0.05, "client_timeout_seconds": 2.0}
    values.update(overrides)
    settings = Settings(**values)
    clock = Clock()
    if source is None:
        source = FakeSource(connected=connected)
    store = VehicleStore(
        clock,
        stale_seconds=settings.stale_seconds,
        trail_points=settings.trail_points,
        ring_size=settings.resume_changes,
    )
    pipeline = Pipeline(settings, source, clock, live=store)
    pipeline.metrics.register(store.collect)
    web = attach_web(pipeline, store)
    running = asyncio.create_task(pipeline.run())
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            await web.started.wait()
        yield LiveServer(pipeline, store, web, source)
    finally:
        pipeline.request_stop()
        async with asyncio.timeout(15):
            await running


@dataclass
class SseEvent:
    """One dispatched SSE event, or a comment (event "comment")."""

    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Read SSE events from a streaming httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5.0, *, comments: bool = False) -> SseEvent:
        """Return the next event (skipping comments unless asked for)."""
        data: list[str] = []
        event, event_id = "message", None
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line.startswith(":"):
                    if comments:
                        return SseEvent("comment", None, line[1:].strip())
                    continue
                if not line:
                    if data:
                        return SseEvent(event, event_id, "\n".join(data))
                    event = "message"
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "id":
                    event_id = value
                elif name == "data":
                    data.append(value)
            raise EOFError("the stream ended")

    async def until(self, predicate: Any, within: float = 5.0) -> SseEvent:
        """Return the first event for which `predicate(event)` is true."""
        async with asyncio.timeout(within):
            while True:
                event = await self.next(within)
                if predicate(event):
                    return event

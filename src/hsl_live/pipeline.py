"""Wire the parts into one event loop and own their lifetimes with a TaskGroup.

Shutdown goes in stages: stop the input (what the source already received is still
handled), flush the lake within a deadline, then stop the web server and timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from hsl_live.capture import RawMessage
from hsl_live.clock import Clock
from hsl_live.ingest import Ingest, LakeWriter, LiveView
from hsl_live.metrics import Metrics
from hsl_live.settings import Settings

logger = logging.getLogger(__name__)

SUMMARY_SECONDS = 60.0
DRAIN_DEADLINE_SECONDS = 20.0


class Source(Protocol):
    """Where messages come from: the MQTT broker or capture files."""

    @property
    def connected(self) -> bool: ...

    def batches(self) -> AsyncIterator[list[RawMessage]]:
        """Yield received messages in batches until stopped or exhausted."""
        ...

    def stop(self) -> None:
        """Stop receiving; `batches()` then yields what it already holds and ends."""
        ...


class Service(Protocol):
    """A long-lived part that runs until the pipeline's `stopping` event is set."""

    name: str

    async def run(self, stopping: asyncio.Event) -> None: ...


class Lake(LakeWriter, Service, Protocol):
    """The lake writer plus its timers; `drain()` writes out everything it holds."""

    @property
    def writable(self) -> bool: ...

    async def drain(self) -> None: ...


class Pipeline:
    """One source, the per-message path, and the services around them."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        clock: Clock,
        *,
        lake: Lake | None = None,
        live: LiveView | None = None,
        services: Sequence[Service] = (),
        serve_after_input: bool = False,
    ) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        self.lake = lake
        self.live = live
        self.services = list(services)
        self.serve_after_input = serve_after_input
        self.metrics = Metrics()
        self.ingest = Ingest(clock, settings.dedup_seconds, lake=lake, live=live)
        self.metrics.register(self.ingest.collect)
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        self._stop_requested = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Return whether the source is connected and the lake (if any) is writable."""
        return self.source.connected and (self.lake is None or self.lake.writable)

    @property
    def stop_requested(self) -> bool:
        """Return whether a graceful shutdown has begun."""
        return self._stop_requested.is_set()

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe to call from a signal handler."""
        if not self._stop_requested.is_set():
            logger.info("stopping: input first, then the lake, then the server")
        self._stop_requested.set()
        self.source.stop()

    async def run(self) -> None:
        """Run until the input ends (replay) or a stop is requested, then shut down."""
        async with asyncio.TaskGroup() as group:
            for service in self._services():
                group.create_task(service.run(self.stopping), name=service.name)
            group.create_task(self._summaries(), name="summary")

            await group.create_task(self._consume(), name="source")
            if self.serve_after_input:
                logger.info("input finished; still serving until stopped")
                await self._stop_requested.wait()
            await self._drain_lake()
            self.stopping.set()

    def _services(self) -> list[Service]:
        return [self.lake, *self.services] if self.lake is not None else self.services

    async def _consume(self) -> None:
        handle = self.ingest.handle_batch
        async for batch in self.source.batches():
            handle(batch)
        logger.info("input finished after %d messages", self.ingest.stats.messages)

    async def _drain_lake(self) -> None:
        if self.lake is None:
            return
        try:
            async with asyncio.timeout(DRAIN_DEADLINE_SECONDS):
                await self.lake.drain()
        except TimeoutError:
            logger.error("lake did not drain within %.0f s", DRAIN_DEADLINE_SECONDS)

    async def _summaries(self) -> None:
        previous, previous_at = 0, time.monotonic()
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SUMMARY_SECONDS):
                    await self.stopping.wait()
            stats, now = self.ingest.stats, time.monotonic()
            rate = (stats.messages - previous) / max(now - previous_at, 1e-9)
            logger.info(
                "ingest: %d messages (%.0f/s), %d events, %d duplicates, %d rejected, %d vehicles",
                stats.messages,
                rate,
                stats.events,
                stats.duplicate_messages + stats.duplicate_events,
                stats.rejected,
                len(self.ingest.vehicles),
            )
            previous, previous_at = stats.messages, now


def install_signal_handlers(pipeline: Pipeline) -> None:
    """Make SIGINT and SIGTERM stop the pipeline gracefully; a second one exits at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if pipeline.stop_requested:
            logger.warning("second %s: exiting without finishing", signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        pipeline.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)

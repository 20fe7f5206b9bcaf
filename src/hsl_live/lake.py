"""The lake writer: buffers rows, writes Parquet files to the sink, survives sink failures.

Ingest hands every distinct message, event and rejection to `Lake` on the event
loop; that only appends to a buffer and to the write-ahead log. A timer seals old
buffers, a writer task encodes sealed batches in a thread and delivers them to the
sink (or the spool while the sink fails), and the uploader empties the spool. At
shutdown, `drain()` writes every buffer out and gives the spool a last upload pass.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from hsl_live.batcher import Batch, Batcher, FlushReason, encode
from hsl_live.capture import RawMessage
from hsl_live.hfp import Event, Rejection
from hsl_live.metrics import counter, gauge
from hsl_live.pipeline import DRAIN_DEADLINE_SECONDS, Source
from hsl_live.schema import Zone, hour_of
from hsl_live.settings import Settings
from hsl_live.sink import Sink, open_sink
from hsl_live.spool import Spool
from hsl_live.wal import WriteAheadLog

logger = logging.getLogger(__name__)

TIMER_MAX_SECONDS = 1.0
QUEUE_POLL_SECONDS = 0.25
# Sink calls during a drain end this early, so that spooling what they could not
# upload still fits in the pipeline's drain deadline.
DRAIN_SINK_SECONDS = DRAIN_DEADLINE_SECONDS - 5.0


@dataclass
class LakeStats:
    """What the lake wrote since start, per zone; files count once, in sink or spool."""

    rows: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    flushes: Counter[str] = field(default_factory=Counter)
    encode_errors: int = 0


@dataclass
class _Cycle:
    seconds: float = 0.0
    files: int = 0
    rows: int = 0
    bytes: int = 0
    spooled: int = 0


_received_at: Callable[[RawMessage | Rejection], datetime] = attrgetter("received_at")
_tst: Callable[[Event], datetime] = attrgetter("tst")


class Lake:
    """Raw, processed and rejected zones written as hourly-partitioned Parquet files."""

    name = "lake"

    def __init__(self, settings: Settings, sink: Sink | None = None) -> None:
        self.settings = settings
        self.sink = sink if sink is not None else open_sink(settings)
        spool_dir = Path(settings.spool_dir)
        self.spool = Spool(spool_dir / "files", self.sink)
        self.wal = WriteAheadLog(spool_dir / "wal", self._oldest_needed)
        self.batcher = Batcher(settings.flush_rows, settings.flush_seconds, settings.writer_id)
        self.stats = LakeStats()
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._in_flight: dict[str, int] = {}
        self._segment = 0
        self._cycle = _Cycle()

    @property
    def writable(self) -> bool:
        """Return whether the sink answered the last write or check (else files are spooling).

        True again as soon as the sink takes one file, while the spool may still hold more.
        """
        return not self.spool.failing

    def add_raw(self, message: RawMessage) -> None:
        """Log and buffer a distinct message; events and rejections of it follow."""
        self.add_raws([message])

    def add_raws(self, messages: Sequence[RawMessage]) -> None:
        """Log and buffer distinct messages, in the order received."""
        if messages:
            self._segment = self.wal.extend(messages)
            self._add_runs(Zone.RAW, messages, _received_at)

    def add_event(self, event: Event) -> None:
        """Buffer an event in the hour of its `tst`."""
        self.add_events([event])

    def add_events(self, events: Sequence[Event]) -> None:
        """Buffer events, each in the hour of its `tst`."""
        self._add_runs(Zone.PROCESSED, events, _tst)

    def add_rejected(self, rejection: Rejection) -> None:
        """Buffer a rejection in the hour it was received."""
        self._add_runs(Zone.REJECTED, [rejection], _received_at)

    def recovering(self, source: Source) -> Source:
        """Return a source that first yields what the write-ahead log kept from a crash."""
        return RecoveringSource(self.wal, source)

    async def run(self, stopping: asyncio.Event) -> None:
        """Run the flush timer, the writer, the uploader and the log until stopping."""
        await self._open()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._timer(stopping), name="lake-timer")
                group.create_task(self._writer(stopping), name="lake-writer")
                group.create_task(self.spool.run(stopping), name="lake-uploader")
                group.create_task(self.wal.run(stopping), name="lake-wal")
        finally:
            await self.wal.close()
            await self.sink.close()

    async def drain(self) -> None:
        """Write every buffer to the sink or the spool, then upload what the spool holds.

        Sink calls end within `DRAIN_SINK_SECONDS`; files they could not upload stay in
        the spool for the next start, and a warning says how many.
        """
        deadline = asyncio.get_running_loop().time() + DRAIN_SINK_SECONDS
        self.spool.close_by(deadline)
        for batch in self.batcher.seal_all():
            self._enqueue(batch)
        while not self._queue.empty():
            await self._write(self._queue.get_nowait())
            self._queue.task_done()
        await self._queue.join()
        self._log_cycle()

        await self.spool.flush()

    def collect(self) -> Iterable[Metric]:
        """Yield the lake's counters and gauges for /metrics."""
        stats = self.stats
        for name, help_text, values in (
            ("hsl_live_lake_rows_written", "Rows written, by zone", stats.rows),
            ("hsl_live_lake_files_written", "Files written, by zone", stats.files),
            ("hsl_live_lake_bytes_written", "Parquet bytes written, by zone", stats.bytes),
        ):
            family = CounterMetricFamily(name, help_text, labels=["zone"])
            for zone in Zone:
                family.add_metric([zone.value], values[zone.value])
            yield family

        flushes = CounterMetricFamily(
            "hsl_live_lake_flushes", "Buffers sealed, by reason", labels=["reason"]
        )
        for reason in FlushReason:
            flushes.add_metric([reason.value], stats.flushes[reason.value])
        yield flushes

        spool = self.spool
        yield counter(
            "hsl_live_lake_upload_errors", "Failed sink writes", spool.stats.upload_errors
        )
        yield counter("hsl_live_lake_encode_errors", "Batches that failed", stats.encode_errors)
        yield gauge("hsl_live_lake_spool_files", "Files waiting for the sink", spool.files)
        yield gauge("hsl_live_lake_spool_bytes", "Bytes waiting for the sink", spool.pending_bytes)
        yield gauge(
            "hsl_live_lake_buffered_rows", "Rows not yet sealed", self.batcher.buffered_rows
        )
        yield gauge("hsl_live_lake_writable", "1 while the sink accepts writes", int(self.writable))

    def _add_runs(
        self, zone: Zone, rows: Sequence[Any], time_of: Callable[[Any], datetime]
    ) -> None:
        """Buffer rows in the hour of their time column, keeping their order within each hour."""
        if not rows:
            return
        add_many, segment = self.batcher.add_many, self._segment
        # Rows of one source batch nearly always share an hour: the earliest and the latest
        # time tell at C speed, and then they are one run and one call.
        earliest, latest = min(map(time_of, rows)), max(map(time_of, rows))
        if hour_of(earliest) == hour_of(latest):
            runs: Iterable[tuple[datetime, Iterable[Any]]] = [(hour_of(earliest), rows)]
        else:
            runs = itertools.groupby(rows, lambda row: hour_of(time_of(row)))
        for hour, run in runs:
            group = list(run)
            for batch in add_many(zone, hour, group, group[0].received_at, segment):
                self._enqueue(batch)

    def _enqueue(self, batch: Batch) -> None:
        self._in_flight[batch.key] = batch.wal_segment
        self.stats.flushes[batch.reason.value] += 1
        self._queue.put_nowait(batch)

    def _oldest_needed(self) -> int | None:
        buffered = self.batcher.oldest_segment()
        segments = [*self._in_flight.values(), *([] if buffered is None else [buffered])]

        return min(segments, default=None)

    async def _open(self) -> None:
        logger.info("lake: writing to %s, spooling in %s", self.sink.url, self.settings.spool_dir)
        await self.spool.open()

    async def _timer(self, stopping: asyncio.Event) -> None:
        tick = min(TIMER_MAX_SECONDS, self.settings.flush_seconds / 4)
        while not stopping.is_set():
            try:
                async with asyncio.timeout(tick):
                    await stopping.wait()
            except TimeoutError:
                for batch in self.batcher.expired():
                    self._enqueue(batch)

    async def _writer(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                async with asyncio.timeout(QUEUE_POLL_SECONDS):
                    batch = await self._queue.get()
            except TimeoutError:
                continue
            try:
                await self._write(batch)
            finally:
                self._queue.task_done()
            # Written: its columns (tens of MB at the default flush size) must not stay alive
            # while the next buffer fills, as they would until the next get() rebinds `batch`.
            del batch
            if self._queue.empty():
                self._log_cycle()

    async def _write(self, batch: Batch) -> None:
        started = time.monotonic()
        try:
            data = await asyncio.to_thread(encode, batch.zone, batch.rows, batch.frames)
        except Exception:
            # The rows stay in the write-ahead log (their segment stays in flight).
            self.stats.encode_errors += 1
            logger.exception("cannot encode %s; its rows stay in the write-ahead log", batch.key)
            return
        in_sink = await self.spool.deliver(batch.key, data)
        del self._in_flight[batch.key]

        zone, stats, cycle = batch.zone.value, self.stats, self._cycle
        stats.rows[zone] += batch.size
        stats.files[zone] += 1
        stats.bytes[zone] += len(data)
        cycle.files += 1
        cycle.rows += batch.size
        cycle.bytes += len(data)
        cycle.spooled += not in_sink
        cycle.seconds += time.monotonic() - started

    def _log_cycle(self) -> None:
        cycle = self._cycle
        if cycle.files:
            logger.info(
                "lake: wrote %d files, %d rows, %d bytes (%d spooled) in %.2f s",
                cycle.files,
                cycle.rows,
                cycle.bytes,
                cycle.spooled,
                cycle.seconds,
            )
        self._cycle = _Cycle()


class RecoveringSource:
    """A source that replays the write-ahead log of a crashed run before its own input."""

    def __init__(self, wal: WriteAheadLog, source: Source) -> None:
        self.wal = wal
        self.source = source

    @property
    def connected(self) -> bool:
        """Return whether the wrapped source is connected."""
        return self.source.connected

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        """Yield recovered messages (even after a stop: they were received), then the input."""
        async for batch in self.wal.replay():
            yield batch
        async for batch in self.source.batches():
            yield batch

    def stop(self) -> None:
        """Stop the wrapped source."""
        self.source.stop()

"""Buffer rows per zone and partition hour, and encode full or old buffers as Parquet files.

A buffer is sealed when it holds `flush_rows` rows, when its oldest row has waited
`flush_seconds` (wall time, so a replay at full speed still flushes on time), or on
drain. Sealing assigns the file's name, so a retried upload reuses it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import polars as pl

from hsl_live.schema import (
    TIME_COLUMN,
    Zone,
    events_frame,
    partition_path,
    raw_frame,
    rejected_frame,
)


class FlushReason(StrEnum):
    """Why a buffer was sealed; a metric label."""

    ROWS = "rows"
    AGE = "age"
    DRAIN = "drain"


@dataclass
class Buffer:
    """Rows of one zone and UTC hour waiting to be written, in arrival order.

    `wal_segment` is the write-ahead-log segment of the first row: every row of the
    buffer lives in that segment or a later one.
    """

    zone: Zone
    hour: datetime
    first_received: datetime
    wal_segment: int
    opened: float = field(default_factory=time.monotonic)
    rows: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Batch:
    """A sealed buffer with its final lake key."""

    key: str
    zone: Zone
    rows: list[Any]
    reason: FlushReason
    wal_segment: int


class Batcher:
    """Buffers per (zone, hour); hands out sealed batches with deterministic, unique keys."""

    def __init__(self, flush_rows: int, flush_seconds: float, writer_id: str) -> None:
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.writer_id = writer_id
        self.buffered_rows = 0
        self._seq = 0
        self._buffers: dict[tuple[Zone, datetime], Buffer] = {}

    def add(
        self, zone: Zone, hour: datetime, row: Any, received_at: datetime, wal_segment: int
    ) -> Batch | None:
        """Buffer one row; return the sealed batch when this row filled its buffer."""
        buffer = self._buffers.get((zone, hour))
        if buffer is None:
            buffer = Buffer(zone, hour, received_at, wal_segment)
            self._buffers[zone, hour] = buffer
        buffer.rows.append(row)
        self.buffered_rows += 1

        if len(buffer.rows) >= self.flush_rows:
            return self._seal(buffer, FlushReason.ROWS)
        return None

    def expired(self, now: float | None = None) -> list[Batch]:
        """Seal and return every buffer whose oldest row is `flush_seconds` old."""
        now = time.monotonic() if now is None else now
        due = [b for b in self._buffers.values() if now - b.opened >= self.flush_seconds]

        return [self._seal(buffer, FlushReason.AGE) for buffer in due]

    def seal_all(self) -> list[Batch]:
        """Seal and return every buffer, for shutdown."""
        return [self._seal(buffer, FlushReason.DRAIN) for buffer in list(self._buffers.values())]

    def oldest_segment(self) -> int | None:
        """Return the earliest WAL segment any buffered row came from, or None when empty."""
        return min((b.wal_segment for b in self._buffers.values()), default=None)

    def _seal(self, buffer: Buffer, reason: FlushReason) -> Batch:
        del self._buffers[buffer.zone, buffer.hour]
        self.buffered_rows -= len(buffer.rows)
        first_ms = int(buffer.first_received.timestamp() * 1000)
        name = f"part-{first_ms}-{self.writer_id}-{self._seq}.parquet"
        self._seq += 1

        key = f"{partition_path(buffer.zone, buffer.hour)}/{name}"
        return Batch(key, buffer.zone, buffer.rows, reason, buffer.wal_segment)


_FRAMES: dict[Zone, Callable[[list[Any]], pl.DataFrame]] = {
    Zone.RAW: raw_frame,
    Zone.PROCESSED: events_frame,
    Zone.REJECTED: rejected_frame,
}


def encode(zone: Zone, rows: list[Any]) -> bytes:
    """Return zstd Parquet bytes of a zone's rows, sorted by the zone's time column.

    CPU-bound: call it in a worker thread, never on the event loop.
    """
    frame: pl.DataFrame = _FRAMES[zone](rows)
    frame = frame.sort(TIME_COLUMN[zone], maintain_order=True)
    output = io.BytesIO()
    frame.write_parquet(output, compression="zstd", statistics=True)

    return output.getvalue()

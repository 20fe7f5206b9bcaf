"""A write-ahead log of received messages, so a crash loses at most about a second of input.

Every distinct message is appended as a capture line (the format `replay` reads) to
an in-memory buffer, which a task writes and fsyncs to the current segment every
`interval` seconds. Segments rotate every `segment_seconds`. A closed segment is
deleted once no buffered or in-flight lake row comes from it or an earlier one.
On start, segments left by a crash are replayed through the normal ingest path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from hsl_live.capture import CaptureStats, RawMessage, format_line, format_lines, parse_line

logger = logging.getLogger(__name__)

WAL_INTERVAL_SECONDS = 0.5
WAL_SEGMENT_SECONDS = 10.0
SUFFIX = ".wal"


class WriteAheadLog:
    """Segments `<directory>/<start ns>-<n>.wal`, numbered `n` within this run."""

    def __init__(
        self,
        directory: Path,
        oldest_needed: Callable[[], int | None],
        *,
        interval: float = WAL_INTERVAL_SECONDS,
        segment_seconds: float = WAL_SEGMENT_SECONDS,
    ) -> None:
        self.directory = directory
        self.oldest_needed = oldest_needed
        self.interval = interval
        self.segment_seconds = segment_seconds
        self.segment = 0
        self.bytes_written = 0
        self.recovered = sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []
        self._run_id = time.time_ns()
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._segment_opened = time.monotonic()
        self._closed: list[int] = []
        self._lock = asyncio.Lock()

    def append(self, message: RawMessage) -> int:
        """Buffer a message's capture line; return the segment it belongs to."""
        self._buffer += format_line(message)
        return self.segment

    def extend(self, messages: Sequence[RawMessage]) -> int:
        """Buffer the capture lines of messages; return the segment they belong to."""
        self._buffer += format_lines(messages)
        return self.segment

    async def sync(self) -> None:
        """Write and fsync what is buffered, rotate if due, delete segments no longer needed.

        `oldest_needed()` is the earliest segment a buffered or in-flight row came
        from, or None when the lake holds no rows.
        """
        async with self._lock:
            data, segment = bytes(self._buffer), self.segment
            self._buffer.clear()
            rotate = time.monotonic() - self._segment_opened >= self.segment_seconds
            if rotate:
                self.segment += 1
                self._segment_opened = time.monotonic()
            await asyncio.to_thread(self._write, segment, data, rotate)

            oldest_needed = self.oldest_needed()
            if oldest_needed is None:
                oldest_needed = self.segment
            done = [n for n in self._closed if n < oldest_needed]
            if done:
                await asyncio.to_thread(self._delete, done)
                self._closed = [n for n in self._closed if n >= oldest_needed]

    async def run(self, stopping: asyncio.Event) -> None:
        """Sync every `interval` seconds until stopping."""
        while not stopping.is_set():
            try:
                async with asyncio.timeout(self.interval):
                    await stopping.wait()
            except TimeoutError:
                await self.sync()

    async def close(self) -> None:
        """Sync; when the lake holds no rows any more, delete every segment of this run."""
        await self.sync()
        async with self._lock:
            await asyncio.to_thread(self._finish, self.oldest_needed() is None)

    async def replay(self) -> AsyncIterator[list[RawMessage]]:
        """Yield the messages of segments left by an earlier run, then delete those segments.

        The caller re-appends each yielded message to this log; the old segments are
        removed only after that has been synced, so a second crash loses nothing.
        """
        if not self.recovered:
            return
        stats = CaptureStats()
        logger.info("recovering %d write-ahead segments", len(self.recovered))
        lines = _read_all(self.recovered, stats)
        while batch := await asyncio.to_thread(_take, lines, 2000):
            yield batch

        await self.sync()
        await asyncio.to_thread(self._unlink, self.recovered)
        logger.info("recovered %d messages from the write-ahead log", stats.lines - stats.broken)
        self.recovered = []

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{self._run_id}-{segment:08d}{SUFFIX}"

    def _write(self, segment: int, data: bytes, rotate: bool) -> None:
        if data:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._file = self._segment_path(segment).open("ab")
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.bytes_written += len(data)
        if rotate:
            self._close_file(segment)

    def _close_file(self, segment: int) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._closed.append(segment)

    def _delete(self, segments: list[int]) -> None:
        self._unlink([self._segment_path(n) for n in segments])

    def _finish(self, delete: bool) -> None:
        self._close_file(self.segment)
        if delete:
            self._delete(self._closed)
            self._closed = []

    @staticmethod
    def _unlink(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)


def _read_all(paths: list[Path], stats: CaptureStats) -> Iterator[RawMessage]:
    # A crash can cut the last line of a segment short; it is counted as broken.
    for path in paths:
        with path.open("rb") as file:
            for line in file:
                stats.lines += 1
                message = parse_line(line)
                if message is None:
                    stats.broken += 1
                    continue
                yield message


def _take(messages: Iterator[RawMessage], count: int) -> list[RawMessage]:
    return [message for _, message in zip(range(count), messages, strict=False)]

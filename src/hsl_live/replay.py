"""Feed capture files into the pipeline at recorded pace, faster, or as fast as possible."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

from hsl_live.capture import CaptureStats, RawMessage, read_capture

logger = logging.getLogger(__name__)

BATCH = 2000
MAX_GAP_SECONDS = 5.0


class ReplaySource:
    """Read capture files in order and yield their messages in batches.

    With `speed` X > 0 the messages are paced at X times their recorded rate; a
    silence longer than `max_gap` capture seconds is skipped rather than waited
    out. With `speed` 0 they come as fast as the pipeline takes them. Files are
    read in a worker thread so the event loop never waits on the disk.
    """

    def __init__(
        self, paths: Sequence[Path], speed: float = 1.0, max_gap: float = MAX_GAP_SECONDS
    ) -> None:
        self.paths = list(paths)
        self.speed = speed
        self.max_gap = max_gap
        self.stats = CaptureStats()
        self.connected = True
        self._stopped = False

    def stop(self) -> None:
        """End the replay after the batch in hand; unread lines were never received."""
        self._stopped = True

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        """Yield the capture's messages, paced by their receive times."""
        messages = self._messages()
        pacer = _Pacer(self.speed, self.max_gap)
        while not self._stopped:
            batch = await asyncio.to_thread(list, itertools.islice(messages, BATCH))
            if not batch:
                return
            if self.speed <= 0:
                yield batch
                continue
            for chunk in pacer.chunks(batch):
                if self._stopped:
                    return
                await pacer.wait(chunk[0])
                yield chunk

    def _messages(self) -> Iterator[RawMessage]:
        for path in self.paths:
            logger.info("replaying %s", path)
            yield from read_capture(path, self.stats)


class _Pacer:
    """Map capture time onto wall time at a given speed, skipping long silences."""

    def __init__(self, speed: float, max_gap: float) -> None:
        self.speed = speed
        self.max_gap = max_gap
        self._origin_capture: float | None = None
        self._origin_wall = 0.0
        self._last_capture = 0.0

    def chunks(self, batch: list[RawMessage]) -> Iterator[list[RawMessage]]:
        """Split a batch into runs that share one 50 ms slot of capture time."""
        slot = 0.05 * self.speed
        start = 0
        first = batch[0].received_at.timestamp()
        for index, message in enumerate(batch):
            moment = message.received_at.timestamp()
            if moment - first >= slot or moment < first:
                yield batch[start:index]
                start, first = index, moment
        yield batch[start:]

    async def wait(self, message: RawMessage) -> None:
        """Sleep until a message is due."""
        delay = self.delay(message.received_at.timestamp(), time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    def delay(self, moment: float, wall: float) -> float:
        """Return how long to wait at monotonic time `wall` for a message of capture time `moment`.

        The first message, and the first after a gap longer than `max_gap`, is due at once.
        """
        if self._origin_capture is None or moment - self._last_capture > self.max_gap:
            self._origin_capture = moment
            self._origin_wall = wall
        self._last_capture = max(self._last_capture, moment)
        due = self._origin_wall + (moment - self._origin_capture) / self.speed

        return due - wall

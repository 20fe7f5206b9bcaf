"""Write what a source delivers to a capture file, whole lines only, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from hsl_live.capture import CaptureWriter
from hsl_live.pipeline import Source

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
SUMMARY_SECONDS = 60.0


class RecordStats(msgspec.Struct):
    """What a recording wrote: messages and files."""

    messages: int = 0
    files: list[str] = msgspec.field(default_factory=list)


class Recorder:
    """Append a source's messages to capture files, flushing every second.

    With `rotate_seconds` a new file is started that often; its name is the
    given path with the start time inserted before the suffixes
    (`feed.capture.zst` → `feed.20260105T080000Z.capture.zst`). The recording
    ends when the source ends, after `max_messages`, or after `duration` seconds.
    """

    def __init__(
        self,
        source: Source,
        path: Path,
        *,
        max_messages: int | None = None,
        duration: float | None = None,
        rotate_seconds: float | None = None,
    ) -> None:
        self.source = source
        self.path = path
        self.max_messages = max_messages
        self.duration = duration
        self.rotate_seconds = rotate_seconds
        self.stats = RecordStats()

    async def run(self) -> RecordStats:
        """Record until the source ends or a limit is reached; return what was written."""
        stopper = asyncio.create_task(self._stop_after_duration(), name="record-duration")
        writer = self._open()
        opened = flushed = summarised = time.monotonic()
        try:
            async for batch in self.source.batches():
                if self.max_messages is not None:
                    batch = batch[: self.max_messages - self.stats.messages]
                for message in batch:
                    writer.write(message)
                self.stats.messages += len(batch)
                if self.max_messages is not None and self.stats.messages >= self.max_messages:
                    self.source.stop()

                now = time.monotonic()
                if self.rotate_seconds is not None and now - opened >= self.rotate_seconds:
                    writer.close()
                    writer, opened = self._open(), now
                elif now - flushed >= FLUSH_SECONDS:
                    writer.flush()
                    flushed = now
                if now - summarised >= SUMMARY_SECONDS:
                    logger.info("recorded %d messages", self.stats.messages)
                    summarised = now
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
            writer.close()
        logger.info("recorded %d messages to %s", self.stats.messages, ", ".join(self.stats.files))

        return self.stats

    def _open(self) -> CaptureWriter:
        path = self.path
        if self.rotate_seconds is not None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            name, _, suffixes = path.name.partition(".")
            path = path.with_name(f"{name}.{stamp}" + (f".{suffixes}" if suffixes else ""))
        self.stats.files.append(str(path))
        logger.info("recording to %s", path)

        return CaptureWriter(path)

    async def _stop_after_duration(self) -> None:
        if self.duration is not None:
            await asyncio.sleep(self.duration)
            self.source.stop()


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Make SIGINT and SIGTERM call `stop` once; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    signalled = False

    def on_signal(signum: int) -> None:
        nonlocal signalled
        name = signal.Signals(signum).name
        if signalled:
            logger.warning("second %s: exiting without finishing", name)
            raise SystemExit(128 + signum)
        signalled = True
        logger.info("%s: finishing the recording", name)
        stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)

"""Deliver finished lake files to the sink; keep them on local disk while the sink fails.

A file that cannot be uploaded is written under `<spool>/<lake key>` and retried by
the uploader with capped, jittered exponential backoff. Files left by an earlier run
are found and uploaded on start. The lake key travels with the file, so an upload
retry writes the same object name and never a second copy, and the order of uploads
does not matter: once the sink accepts a write, new files go straight to it while the
uploader empties the spool. Before exit, `flush()` makes one last pass within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hsl_live.errors import SinkError
from hsl_live.sink import TEMP_SUFFIX, Sink

logger = logging.getLogger(__name__)

BACKOFF_START_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
IDLE_POLL_SECONDS = 0.5

T = TypeVar("T")


@dataclass
class SpoolStats:
    """Counters of deliveries since start."""

    uploaded: int = 0
    spooled: int = 0
    upload_errors: int = 0
    spool_errors: int = 0


class Spool:
    """The durable hand-off between encoded files and the sink.

    `failing` is set by a failed sink write and cleared by the next one that succeeds;
    while it is set, new files go to the spool without trying the sink.
    """

    def __init__(self, directory: Path, sink: Sink) -> None:
        self.directory = directory
        self.sink = sink
        self.stats = SpoolStats()
        self.failing = False
        self._pending: dict[str, int] = {}
        self._unsaved: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self._passing = asyncio.Lock()
        self._deadline: float | None = None
        self._limits: set[asyncio.Timeout] = set()
        self._uploaded_from_spool = 0

    @property
    def files(self) -> int:
        """Return how many files wait for the sink (on disk or, if the disk failed, in memory)."""
        return len(self._pending) + len(self._unsaved)

    @property
    def pending_bytes(self) -> int:
        """Return the size of the files that wait for the sink."""
        return sum(self._pending.values()) + sum(len(d) for d in self._unsaved.values())

    async def open(self) -> None:
        """Find files an earlier run left behind and check the sink, so the uploader starts."""
        found = await asyncio.to_thread(self._scan)
        self._pending.update(found)
        if found:
            logger.info("spool %s holds %d files from an earlier run", self.directory, len(found))
            self._wake.set()
        try:
            await self._bounded("check", self.sink.check())
        except SinkError as exc:
            self._mark_failing(exc)

    async def deliver(self, key: str, data: bytes) -> bool:
        """Put a file in the sink, or in the spool when the sink fails; return True if in sink.

        While the sink is known to fail, files go straight to the spool; the uploader
        probes the sink. A file the spool cannot store either stays in memory and is
        retried, so nothing is dropped.
        """
        if not self.failing:
            try:
                await self._bounded(key, self.sink.put(key, data))
            except SinkError as exc:
                self._mark_failing(exc)
            else:
                self.stats.uploaded += 1
                return True

        await self._store(key, data)
        return False

    async def run(self, stopping: asyncio.Event) -> None:
        """Upload spooled files until stopping, backing off while the sink fails."""
        delay = BACKOFF_START_SECONDS
        while not stopping.is_set():
            if not self.files:
                await _pause(self._wake, IDLE_POLL_SECONDS)
                self._wake.clear()
                continue
            async with self._passing:
                uploaded = await self._upload_all(stopping)
            if uploaded:
                delay = BACKOFF_START_SECONDS
                continue

            pause = random.uniform(0, delay)
            delay = min(delay * 2, BACKOFF_CAP_SECONDS)
            await _pause(stopping, pause)

    def close_by(self, deadline: float) -> None:
        """Make every sink call end by `deadline` (event loop time), those under way too.

        A call cut short fails like any other: its file goes to (or stays in) the spool.
        """
        self._deadline = deadline
        for limit in self._limits:
            when = limit.when()
            limit.reschedule(deadline if when is None else min(when, deadline))

    async def flush(self) -> None:
        """Upload every spooled file the sink takes; stop at the first failure, then report.

        A sink that is down gets one attempt, not a retry loop. Files still spooled
        after the pass are logged as one warning: the next start uploads them.
        """
        async with self._passing:
            if self.files:
                await self._upload_all(asyncio.Event())

        if self._pending:
            logger.warning(
                "%d files (%d bytes) still in the spool at %s; they are uploaded on the next start",
                len(self._pending),
                sum(self._pending.values()),
                self.directory,
            )
        if self._unsaved:
            logger.error(
                "%d files (%d bytes) could be stored neither in the sink nor in the spool at %s "
                "and are lost at exit",
                len(self._unsaved),
                sum(len(data) for data in self._unsaved.values()),
                self.directory,
            )

    async def _upload_all(self, stopping: asyncio.Event) -> bool:
        """Upload spooled files until done, stopping or a failure; return False on a failure."""
        await self._retry_unsaved()
        for key in sorted(self._unsaved):
            if not await self._upload(key, self._unsaved[key]):
                return False
            self._unsaved.pop(key, None)
        for key in sorted(self._pending):
            if stopping.is_set():
                return True
            try:
                data = await asyncio.to_thread(self._path(key).read_bytes)
            except OSError:
                logger.exception("cannot read spooled %s; leaving it for the next start", key)
                self._pending.pop(key, None)
                continue
            if not await self._upload(key, data):
                return False
            await asyncio.to_thread(self._remove, key)
            self._pending.pop(key, None)

        if not self.files and self._uploaded_from_spool:
            logger.info(
                "spool %s emptied: %d files uploaded", self.directory, self._uploaded_from_spool
            )
            self._uploaded_from_spool = 0
        return True

    async def _upload(self, key: str, data: bytes) -> bool:
        """Put one spooled file in the sink; return False (and mark failing) if it fails."""
        try:
            await self._bounded(key, self.sink.put(key, data))
        except SinkError as exc:
            self._mark_failing(exc)
            return False

        if self.failing:
            logger.info("sink recovered; %d files left in the spool", self.files - 1)
            self.failing = False
        self.stats.uploaded += 1
        self._uploaded_from_spool += 1
        return True

    async def _bounded(self, what: str, call: Awaitable[T]) -> T:
        """Await a sink call, cut short at the `close_by` deadline; raise SinkError then."""
        loop = asyncio.get_running_loop()
        if self._deadline is not None and loop.time() >= self._deadline:
            if asyncio.iscoroutine(call):
                call.close()
            raise SinkError(f"no time left before exit for {what} in {self.sink.url}")

        limit = asyncio.timeout_at(self._deadline)
        try:
            async with limit:
                self._limits.add(limit)
                return await call
        except TimeoutError as exc:
            if not limit.expired():
                raise
            raise SinkError(f"{what} in {self.sink.url} did not finish before exit") from exc
        finally:
            self._limits.discard(limit)

    async def _retry_unsaved(self) -> None:
        for key, data in list(self._unsaved.items()):
            del self._unsaved[key]
            await self._store(key, data)

    async def _store(self, key: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._write, key, data)
        except OSError:
            self.stats.spool_errors += 1
            logger.exception("cannot spool %s; keeping it in memory and retrying", key)
            self._unsaved[key] = data
        else:
            self._pending[key] = len(data)
            self.stats.spooled += 1
        self._wake.set()

    def _mark_failing(self, exc: SinkError) -> None:
        """Count a sink failure; log it when the sink was healthy until now."""
        self.stats.upload_errors += 1
        if not self.failing:
            logger.warning("sink failing; spooling to %s: %s", self.directory, exc)
            self.failing = True

    def _path(self, key: str) -> Path:
        return self.directory / key

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with temp.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)

    def _remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _scan(self) -> dict[str, int]:
        if not self.directory.is_dir():
            return {}
        found: dict[str, int] = {}
        for path in self.directory.rglob("*"):
            if not path.is_file():
                continue
            if path.name.endswith(TEMP_SUFFIX):
                path.unlink(missing_ok=True)
                continue
            found[path.relative_to(self.directory).as_posix()] = path.stat().st_size
        return found


async def _pause(event: asyncio.Event, seconds: float) -> None:
    """Wait until the event is set or the seconds have passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()

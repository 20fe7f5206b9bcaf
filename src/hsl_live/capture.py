"""Read and write capture files: one `<received_at> <topic> <payload>` line per message.

This is the format of HSL's own raw dumps, so they replay unchanged. Files ending
in `.gz` or `.zst` are (de)compressed transparently.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import msgspec
import zstandard

from hsl_live.errors import CaptureError

logger = logging.getLogger(__name__)


class RawMessage(msgspec.Struct, gc=False):
    """One message as delivered by the broker or read from a capture, not yet decoded."""

    received_at: datetime
    topic: str
    payload: bytes


class CaptureStats(msgspec.Struct):
    """What a reader saw: lines read, blank lines skipped, broken lines skipped."""

    lines: int = 0
    blank: int = 0
    broken: int = 0


def format_line(message: RawMessage) -> bytes:
    """Return the capture line for a message, newline included.

    A time without a zone is taken as UTC, as `parse_line` reads it. Line breaks
    in the topic or payload become spaces (JSON whitespace), so one message
    stays one line.
    """
    global _last_stamp
    received_at = message.received_at
    last_at, stamp = _last_stamp
    if received_at is not last_at:
        stamp = _stamp(received_at)
        _last_stamp = received_at, stamp
    topic, payload = message.topic.encode(), message.payload
    if b"\n" in payload or b"\r" in payload:
        payload = payload.replace(b"\r", b" ").replace(b"\n", b" ")
    if b"\n" in topic or b"\r" in topic:
        topic = topic.replace(b"\r", b" ").replace(b"\n", b" ")

    return b"%s %s %s\n" % (stamp, topic, payload)


def format_lines(messages: Sequence[RawMessage]) -> bytes:
    """Return the capture lines of messages, as `format_line` writes each, in one pass.

    About half the cost of a `format_line` per message: the check for line breaks runs
    once over all payloads and topics, and only a batch that has one takes that path.
    """
    topics = [message.topic.encode() for message in messages]
    if _has_line_break(b"".join(topics)) or _has_line_break(b"".join(m.payload for m in messages)):
        return b"".join(map(format_line, messages))
    parts: list[bytes] = []
    space, newline = b" ", b"\n"
    last: datetime | None = None
    stamp = b""
    for message, topic in zip(messages, topics, strict=True):
        if message.received_at is not last:
            last = message.received_at
            stamp = _stamp(last)
        parts += (stamp, space, topic, space, message.payload, newline)
    return b"".join(parts)


def _has_line_break(data: bytes) -> bool:
    return b"\n" in data or b"\r" in data


# The source stamps every message of one socket read with the same datetime object, so
# the last formatted stamp is reused by identity (strftime was most of a line's cost).
_last_stamp: tuple[datetime | None, bytes] = (None, b"")


def _stamp(received_at: datetime) -> bytes:
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    return received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def parse_line(line: bytes) -> RawMessage | None:
    """Parse one capture line; return None when it is not `<time> <topic> {payload}`.

    The payload starts at the first ` {`, because headsigns in topics contain spaces.
    """
    line = line.rstrip(b"\r\n")
    stamp_end = line.find(b" ")
    payload_start = line.find(b" {", stamp_end)
    if stamp_end <= 0 or payload_start <= stamp_end:
        return None
    try:
        received_at = datetime.fromisoformat(line[:stamp_end].decode("ascii"))
        topic = line[stamp_end + 1 : payload_start].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)

    return RawMessage(received_at, topic, line[payload_start + 1 :])


def open_binary(path: Path, mode: str) -> IO[bytes]:
    """Open a capture for reading ("rb") or appending ("ab"), by its suffix."""
    try:
        if path.suffix == ".gz":
            return gzip.GzipFile(path, mode)  # type: ignore[return-value]
        if path.suffix == ".zst":
            raw = path.open(mode)
            if mode == "rb":
                return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
            return zstandard.ZstdCompressor(level=10).stream_writer(raw, closefd=True)
        return path.open(mode)
    except OSError as exc:
        raise CaptureError(f"cannot open capture {path}: {exc.strerror}") from exc


def read_capture(path: Path, stats: CaptureStats | None = None) -> Iterator[RawMessage]:
    """Yield the messages of a capture in file order, counting blank and broken lines."""
    stats = stats if stats is not None else CaptureStats()
    with (
        open_binary(path, "rb") as raw,
        io.BufferedReader(raw, buffer_size=1 << 20) as lines,  # type: ignore[type-var]
    ):
        try:
            for line in lines:
                stats.lines += 1
                if not line.strip():
                    stats.blank += 1
                    continue
                message = parse_line(line)
                if message is None:
                    stats.broken += 1
                    continue
                yield message
        except (EOFError, gzip.BadGzipFile, zstandard.ZstdError) as exc:
            # A recorder killed mid-write leaves a truncated stream; keep what was read.
            stats.lines += 1
            stats.broken += 1
            logger.warning("%s: compressed data ends or breaks here (%s); rest skipped", path, exc)


class CaptureWriter:
    """Append messages to a capture file, one whole line per write.

    A line is handed to the file in one call, so a stop between messages never
    leaves half a line behind; `close()` flushes and syncs to disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file = open_binary(path, "ab")
        if _ends_mid_line(path):
            # A writer killed mid-line left a torn tail: end it, so our first
            # line is not glued onto it.
            self._file.write(b"\n")

    def write(self, message: RawMessage) -> None:
        """Append one message."""
        self._file.write(format_line(message))
        self.count += 1

    def flush(self) -> None:
        """Push buffered lines to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush, finish the compressed stream if any, and sync the file."""
        self._file.flush()
        self._file.close()
        with self.path.open("rb") as synced:
            os.fsync(synced.fileno())

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_mid_line(path: Path) -> bool:
    if path.suffix in (".gz", ".zst"):
        return False
    with path.open("rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"

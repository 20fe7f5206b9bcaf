"""Tests of the write-ahead log: syncing, rotation, release and recovery."""

from __future__ import annotations

from pathlib import Path

from hfp_capture import feed
from hsl_live.capture import RawMessage, parse_line
from hsl_live.wal import WriteAheadLog


class Needed:
    """A stand-in for the lake's answer to "which segment is still needed?"."""

    def __init__(self) -> None:
        self.segment: int | None = None

    def __call__(self) -> int | None:
        return self.segment


def _wal(directory: Path, needed: Needed, segment_seconds: float = 60) -> WriteAheadLog:
    return WriteAheadLog(directory, needed, segment_seconds=segment_seconds)


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def _logged(directory: Path) -> list[RawMessage]:
    lines = [
        line for path in sorted(directory.glob("*.wal")) for line in path.read_bytes().splitlines()
    ]
    messages = [parse_line(line) for line in lines]
    return [m for m in messages if m is not None]


async def test_wal_sync_writes_capture_lines(tmp_path: Path) -> None:
    messages = feed(2)
    wal = _wal(tmp_path, Needed())
    for message in messages:
        wal.append(message)

    await wal.sync()

    assert _logged(tmp_path) == messages
    await wal.close()


async def test_wal_keeps_closed_segment_while_a_row_needs_it(tmp_path: Path) -> None:
    needed = Needed()
    wal = _wal(tmp_path, needed, segment_seconds=0)
    needed.segment = wal.append(feed(1)[0])

    await wal.sync()
    await wal.sync()

    assert len(_segments(tmp_path)) == 1
    needed.segment = None
    await wal.sync()
    assert _segments(tmp_path) == []


async def test_wal_rotation_moves_later_messages_to_next_segment(tmp_path: Path) -> None:
    wal = _wal(tmp_path, Needed(), segment_seconds=0)
    first = wal.append(feed(1)[0])
    await wal.sync()

    assert wal.append(feed(1)[0]) == first + 1
    await wal.close()


async def test_wal_close_deletes_segments_when_nothing_is_needed(tmp_path: Path) -> None:
    wal = _wal(tmp_path, Needed())
    wal.append(feed(1)[0])

    await wal.close()

    assert _segments(tmp_path) == []


async def test_wal_close_keeps_segments_still_needed(tmp_path: Path) -> None:
    needed = Needed()
    wal = _wal(tmp_path, needed)
    needed.segment = wal.append(feed(1)[0])

    await wal.close()

    assert len(_logged(tmp_path)) == 1


async def test_wal_replay_yields_earlier_run_then_removes_it(tmp_path: Path) -> None:
    messages = feed(3)
    crashed = _wal(tmp_path, Needed())
    for message in messages:
        crashed.append(message)
    await crashed.sync()
    crashed._finish(delete=False)
    wal = _wal(tmp_path, Needed())

    replayed = []
    async for batch in wal.replay():
        replayed += batch
        for message in batch:
            wal.append(message)

    assert replayed == messages
    assert _logged(tmp_path) == messages
    assert len(_segments(tmp_path)) == 1
    await wal.close()

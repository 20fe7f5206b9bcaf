"""Tests for replaying capture files at recorded pace, faster, or as fast as possible."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hsl_live.capture import CaptureWriter, RawMessage
from hsl_live.replay import ReplaySource, _Pacer

START = datetime(2024, 2, 13, 16, 33, tzinfo=UTC)
TOPIC = "/hfp/v2/deadrun/ongoing/vp/bus/0018/01047"


def at(seconds: float) -> RawMessage:
    tst = (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return RawMessage(
        START + timedelta(seconds=seconds), TOPIC, b'{"VP":{"tst":"%s"}}' % tst.encode()
    )


def write_capture(path: Path, seconds: list[float]) -> Path:
    with CaptureWriter(path) as writer:
        for moment in seconds:
            writer.write(at(moment))
    return path


async def collect(source: ReplaySource) -> list[RawMessage]:
    received: list[RawMessage] = []
    async for batch in source.batches():
        received.extend(batch)
    return received


def capture_time(seconds: float) -> float:
    return (START + timedelta(seconds=seconds)).timestamp()


def test_pacer_delay_scales_with_speed() -> None:
    pacer = _Pacer(speed=4, max_gap=5)

    assert pacer.delay(capture_time(0), wall=100.0) == 0.0
    assert pacer.delay(capture_time(2), wall=100.0) == pytest.approx(0.5)
    assert pacer.delay(capture_time(2), wall=100.3) == pytest.approx(0.2)


def test_pacer_delay_recorded_pace_at_speed_one() -> None:
    pacer = _Pacer(speed=1, max_gap=5)
    pacer.delay(capture_time(0), wall=0.0)

    assert pacer.delay(capture_time(1.5), wall=0.0) == pytest.approx(1.5)


def test_pacer_late_message_is_due_at_once() -> None:
    pacer = _Pacer(speed=1, max_gap=5)
    pacer.delay(capture_time(3), wall=0.0)

    assert pacer.delay(capture_time(1), wall=0.0) < 0


def test_pacer_skips_long_gap() -> None:
    pacer = _Pacer(speed=1, max_gap=5)
    pacer.delay(capture_time(0), wall=0.0)

    assert pacer.delay(capture_time(3600), wall=1.0) == 0.0
    assert pacer.delay(capture_time(3601), wall=1.0) == pytest.approx(1.0)


def test_pacer_gap_within_limit_is_waited() -> None:
    pacer = _Pacer(speed=1, max_gap=5)
    pacer.delay(capture_time(0), wall=0.0)

    assert pacer.delay(capture_time(4.5), wall=0.0) == pytest.approx(4.5)


def test_pacer_chunks_group_messages_by_50ms_slots() -> None:
    pacer = _Pacer(speed=1, max_gap=5)
    batch = [at(0), at(0.01), at(0.04), at(0.06), at(0.2), at(0.1)]

    chunks = list(pacer.chunks(batch))

    assert [len(chunk) for chunk in chunks] == [3, 1, 1, 1]
    assert [message for chunk in chunks for message in chunk] == batch


async def test_batches_speed_zero_yields_everything_in_order(tmp_path: Path) -> None:
    seconds = [0.0, 600.0, 1.0, 1200.0]
    path = write_capture(tmp_path / "a.txt", seconds)
    source = ReplaySource([path, path], speed=0)

    started = time.monotonic()
    received = await collect(source)

    assert time.monotonic() - started < 2
    assert received == [at(s) for s in seconds] * 2
    assert source.stats.lines == 8


async def test_batches_paced_at_speed(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "a.txt", [n * 0.1 for n in range(21)])
    source = ReplaySource([path], speed=4)

    started = time.monotonic()
    received = await collect(source)
    elapsed = time.monotonic() - started

    assert len(received) == 21
    assert 0.4 <= elapsed < 2.0


async def test_batches_skip_silent_gap(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "a.txt", [0.0, 3600.0, 3600.1])
    source = ReplaySource([path], speed=1, max_gap=5)

    started = time.monotonic()
    received = await collect(source)

    assert len(received) == 3
    assert time.monotonic() - started < 2


async def test_stop_ends_replay_within_a_batch(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "a.txt", [n * 0.1 for n in range(100)])
    source = ReplaySource([path], speed=1)
    received: list[RawMessage] = []

    started = time.monotonic()
    async for batch in source.batches():
        received.extend(batch)
        if len(received) >= 3:
            source.stop()

    assert 3 <= len(received) < 100
    assert time.monotonic() - started < 2


async def test_stop_before_start_yields_nothing(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "a.txt", [0.0, 1.0])
    source = ReplaySource([path], speed=0)
    source.stop()

    assert await collect(source) == []


async def test_batches_count_broken_lines(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "a.txt", [0.0])
    with path.open("ab") as file:
        file.write(b"\nnot a capture line\n")
    source = ReplaySource([path], speed=0)

    assert len(await collect(source)) == 1
    assert (source.stats.lines, source.stats.blank, source.stats.broken) == (3, 1, 1)

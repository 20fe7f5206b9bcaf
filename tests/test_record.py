"""Tests for recording: whole lines, limits, signals, and a record-then-replay round trip."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from brokers import Mosquitto, publish
from hsl_live.capture import RawMessage, read_capture
from hsl_live.record import Recorder
from hsl_live.replay import ReplaySource
from hsl_live.simulate import Simulation, generate

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC).timestamp()


class ListSource:
    """A source that yields prepared batches, then ends (or waits to be stopped)."""

    def __init__(self, batches: list[list[RawMessage]], *, wait: bool = False) -> None:
        self.prepared = batches
        self.wait = wait
        self.connected = True
        self.stopped = asyncio.Event()

    def stop(self) -> None:
        self.stopped.set()

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        for batch in self.prepared:
            yield batch
        if self.wait:
            await self.stopped.wait()


def traffic(count: int) -> list[RawMessage]:
    messages = generate(Simulation(vehicles=20, duration=60, start=START))
    return [
        RawMessage(datetime.fromtimestamp(at, UTC), topic, payload)
        for (at, topic, payload), _ in zip(messages, range(count), strict=False)
    ]


async def test_recorder_writes_every_message(tmp_path: Path) -> None:
    messages = traffic(300)
    path = tmp_path / "out.capture"

    stats = await Recorder(ListSource([messages[:100], messages[100:]]), path).run()

    assert stats.messages == 300
    assert list(read_capture(path)) == messages


async def test_recorder_stops_at_max_messages(tmp_path: Path) -> None:
    source = ListSource([traffic(50)], wait=True)
    path = tmp_path / "out.capture.gz"

    stats = await asyncio.wait_for(Recorder(source, path, max_messages=20).run(), 10)

    assert stats.messages == 20
    assert list(read_capture(path)) == traffic(20)


async def test_recorder_stops_after_duration(tmp_path: Path) -> None:
    source = ListSource([traffic(5)], wait=True)

    stats = await asyncio.wait_for(Recorder(source, tmp_path / "o.capture", duration=0.2).run(), 10)

    assert source.stopped.is_set()
    assert stats.messages == 5


async def test_recorder_rotates_into_timestamped_files(tmp_path: Path) -> None:
    messages = traffic(40)
    batches = [messages[index : index + 10] for index in range(0, 40, 10)]
    recorder = Recorder(ListSource(batches), tmp_path / "feed.capture.zst", rotate_seconds=1e-9)

    stats = await recorder.run()

    files = sorted(set(stats.files))
    assert all(name.endswith(".capture.zst") and "feed." in name for name in files)
    assert [m for name in files for m in read_capture(Path(name))] == messages


@pytest.mark.integration
async def test_record_then_replay_reproduces_published_messages(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sent = [(m.topic, m.payload) for m in traffic(2000)]
    sent.append(("/hfp/v2/journey/ongoing/vp/bus/0012/01825/x", b"{not json at all"))
    path = tmp_path / "recorded.capture.zst"
    environment = {**os.environ, "HSL_LIVE_MQTT_URL": mosquitto.url, "HSL_LIVE_TOPICS": "/hfp/#"}
    recorder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hsl_live", "record", str(path), env=environment,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    log = b""

    async def connected() -> None:
        nonlocal log
        while b"connected to" not in log:
            assert recorder.stderr is not None
            log += await recorder.stderr.readline()

    await asyncio.wait_for(connected(), 20)
    await asyncio.to_thread(publish, mosquitto.port, sent)
    await asyncio.sleep(0.5)
    recorder.send_signal(signal.SIGTERM)
    await asyncio.wait_for(recorder.wait(), 20)

    replayed = [
        (message.topic, message.payload)
        async for batch in ReplaySource([path], speed=0).batches()
        for message in batch
    ]
    assert recorder.returncode == 0
    assert replayed == sent

"""Tests of the lake writer end to end: counts, schemas, timers, outages and crashes."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from hfp_capture import START, Expected, feed, mixed_capture, vp_message, write_capture
from hsl_live import lake as lake_module
from hsl_live.batcher import Batch
from hsl_live.capture import RawMessage
from hsl_live.clock import Clock
from hsl_live.hfp import Event, decode
from hsl_live.lake import Lake
from hsl_live.pipeline import Pipeline
from hsl_live.replay import ReplaySource
from hsl_live.s3 import S3Sink
from hsl_live.schema import SCHEMAS, Zone
from hsl_live.settings import Settings
from hsl_live.sink import LocalSink, Sink
from s3_server import S3Server, free_port, s3_server

__all__ = ["s3_server"]

HSL_LIVE = Path(sys.executable).parent / "hsl-live"


def _settings(tmp_path: Path, **values: object) -> Settings:
    defaults: dict[str, object] = {
        "lake_url": str(tmp_path / "lake"),
        "spool_dir": str(tmp_path / "spool"),
        "writer_id": "test",
    }
    return Settings(**{**defaults, **values})  # type: ignore[arg-type]


class HangingSink(LocalSink):
    """A local sink whose writes never finish, like an endpoint that accepts and never answers."""

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.Event().wait()


async def _replay(settings: Settings, capture: Path, sink: Sink | None = None) -> Pipeline:
    lake = Lake(settings, sink)
    source = ReplaySource([capture], speed=0)
    pipeline = Pipeline(settings, lake.recovering(source), Clock(replay=True), lake=lake)
    await pipeline.run()
    return pipeline


async def _zone(sink: Sink, zone: Zone) -> pl.DataFrame:
    keys = await sink.list(f"{zone}/")
    frames = [pl.read_parquet(io.BytesIO(await sink.get(key))) for key in keys]
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMAS[zone])


async def _counts(sink: Sink) -> Expected:
    raw = await _zone(sink, Zone.RAW)
    processed = await _zone(sink, Zone.PROCESSED)
    rejected = await _zone(sink, Zone.REJECTED)
    return Expected(raw=raw.height, processed=processed.height, rejected=rejected.height)


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {seconds} s")


async def test_lake_replay_writes_each_distinct_message_and_event_once(tmp_path: Path) -> None:
    capture = tmp_path / "mixed.capture"
    expected = mixed_capture(capture)
    sink = LocalSink(tmp_path / "lake")

    pipeline = await _replay(_settings(tmp_path), capture)

    assert await _counts(sink) == expected
    stats = pipeline.ingest.stats
    assert expected.raw == stats.messages - stats.duplicate_messages
    processed = await _zone(sink, Zone.PROCESSED)
    keys = ["unique_vehicle_id", "tst"]
    assert processed.select(keys).n_unique() == processed.height


async def test_lake_replay_partitions_by_hour_of_zone_time(tmp_path: Path) -> None:
    capture = tmp_path / "mixed.capture"
    mixed_capture(capture)

    await _replay(_settings(tmp_path), capture)

    keys = await LocalSink(tmp_path / "lake").list("")
    folders = sorted({key.rsplit("/", 1)[0] for key in keys})
    assert folders == [
        "processed/year=2024/month=02/day=13/hour=15",
        "processed/year=2024/month=02/day=13/hour=16",
        "raw/year=2024/month=02/day=13/hour=15",
        "raw/year=2024/month=02/day=13/hour=16",
        "rejected/year=2024/month=02/day=13/hour=15",
    ]
    assert all(key.rsplit("/", 1)[1].startswith("part-") for key in keys)


def test_lake_buffers_each_row_in_the_hour_of_its_time_keeping_order(tmp_path: Path) -> None:
    lake = Lake(_settings(tmp_path))
    second = timedelta(seconds=1)
    before, after = START + 9 * second, START + 10 * second  # 15:59:59 and 16:00:00
    # Received and sent on both sides of 16:00, interleaved, then a batch inside one hour.
    mixed = [
        vp_message(before, 1, before),
        vp_message(after, 2, after),
        vp_message(before, 3, before - second),
    ]
    same_hour = [vp_message(after + second, veh, after + veh * second) for veh in (4, 5)]

    for messages in (mixed, same_hour):
        lake.add_raws(messages)
        events = [decode(m.received_at, m.topic, m.payload) for m in messages]
        lake.add_events([event for event in events if isinstance(event, Event)])

    def hour(key: str) -> str:
        zone, *_, hour_level, _ = key.split("/")
        return f"{zone}/{hour_level}"

    def vehicle(row: RawMessage | Event) -> int:
        return row.vehicle_number if isinstance(row, Event) else int(row.topic.split("/")[8])

    batches = lake.batcher.seal_all()
    assert {hour(b.key): [vehicle(row) for row in b.rows] for b in batches} == {
        "raw/hour=15": [1, 3],
        "raw/hour=16": [2, 4, 5],
        "processed/hour=15": [1, 3],
        "processed/hour=16": [2, 4, 5],
    }


async def test_lake_files_have_design_schema_and_millisecond_timestamps(tmp_path: Path) -> None:
    capture = tmp_path / "mixed.capture"
    mixed_capture(capture)

    await _replay(_settings(tmp_path), capture)

    for zone in Zone:
        files = sorted((tmp_path / "lake" / zone).rglob("*.parquet"))
        assert pl.read_parquet_schema(files[0]) == dict(SCHEMAS[zone])
        units = duckdb.execute(
            f"SELECT name, logical_type FROM parquet_schema('{files[0]}') "
            "WHERE name IN ('received_at', 'tst')"
        ).fetchall()
        assert units, zone
        for name, logical in units:
            assert "isAdjustedToUTC=1" in logical, name
            assert "MILLIS=MilliSeconds()" in logical, name
            assert "NANOS=<null>" in logical, name


async def test_lake_timer_flushes_quiet_partition(tmp_path: Path) -> None:
    lake = Lake(_settings(tmp_path, flush_seconds=0.2))
    stopping = asyncio.Event()
    sink = LocalSink(tmp_path / "lake")

    async with asyncio.TaskGroup() as group:
        group.create_task(lake.run(stopping))
        for message in feed(1, vehicles=2):
            lake.add_raw(message)
        await _until(lambda: lake.stats.files["raw"] == 1, seconds=5)
        assert lake.stats.flushes["age"] == 1
        stopping.set()

    assert (await _zone(sink, Zone.RAW)).height == 2


async def test_lake_lets_go_of_a_written_batch_before_the_next_one(tmp_path: Path) -> None:
    lake = Lake(_settings(tmp_path, flush_rows=2))
    sealed: list[weakref.ref[Batch]] = []
    add_many = lake.batcher.add_many

    def watched(*args: Any) -> list[Batch]:
        batches = add_many(*args)
        sealed.extend(weakref.ref(batch) for batch in batches)
        return batches

    lake.batcher.add_many = watched  # type: ignore[method-assign,assignment]
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(lake.run(stopping))
        lake.add_raws(list(feed(1, vehicles=2)))
        await _until(lambda: lake.stats.files["raw"] == 1, seconds=5)
        await asyncio.sleep(0.1)  # the writer is back to waiting for the next batch

        assert len(sealed) == 1
        assert sealed[0]() is None
        stopping.set()


async def test_lake_failing_sink_spools_and_next_start_uploads(tmp_path: Path) -> None:
    capture = tmp_path / "mixed.capture"
    expected = mixed_capture(capture)
    blocked = tmp_path / "lake"
    blocked.write_bytes(b"a file where the lake folder should be")

    first = await _replay(_settings(tmp_path), capture)

    assert first.lake is not None
    assert not first.lake.writable
    spooled = sorted((tmp_path / "spool" / "files").rglob("*.parquet"))
    assert len(spooled) == 5
    blocked.unlink()
    lake = Lake(_settings(tmp_path, writer_id="second"))
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(lake.run(stopping))
        await _until(lambda: lake.spool.stats.uploaded == len(spooled))
        stopping.set()

    assert await _counts(LocalSink(blocked)) == expected
    assert list((tmp_path / "spool" / "files").rglob("*.parquet")) == []


async def test_lake_drain_writes_partial_buffers_and_clears_wal(tmp_path: Path) -> None:
    lake = Lake(_settings(tmp_path))
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(lake.run(stopping))
        for message in feed(2):
            lake.add_raw(message)
        await lake.drain()
        stopping.set()

    assert lake.stats.flushes["drain"] == 1
    assert lake.stats.rows["raw"] == 6
    assert list((tmp_path / "spool" / "wal").glob("*.wal")) == []


async def test_lake_drain_warns_about_files_left_in_spool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    capture = tmp_path / "mixed.capture"
    mixed_capture(capture)
    (tmp_path / "lake").write_bytes(b"a file where the lake folder should be")

    with caplog.at_level(logging.WARNING, logger="hsl_live"):
        await _replay(_settings(tmp_path), capture)

    spool = tmp_path / "spool" / "files"
    spooled = list(spool.rglob("*.parquet"))
    size = sum(path.stat().st_size for path in spooled)
    assert caplog.messages[-1] == (
        f"{len(spooled)} files ({size} bytes) still in the spool at {spool}; "
        "they are uploaded on the next start"
    )


async def test_lake_drain_ends_by_its_deadline_when_sink_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake_module, "DRAIN_SINK_SECONDS", 0.5)
    lake = Lake(_settings(tmp_path), HangingSink(tmp_path / "lake"))
    stopping = asyncio.Event()
    started = time.monotonic()

    async with asyncio.TaskGroup() as group:
        group.create_task(lake.run(stopping))
        for message in feed(20):
            lake.add_raw(message)
        await lake.drain()
        drained = time.monotonic() - started
        stopping.set()

    assert drained < 2.0
    assert time.monotonic() - started < 3.0
    assert lake.spool.files == lake.stats.files["raw"] == 2
    assert not lake.writable


@pytest.mark.integration
async def test_lake_s3_replay_writes_each_distinct_message_once(
    tmp_path: Path, s3_server: S3Server
) -> None:
    capture = tmp_path / "mixed.capture"
    expected = mixed_capture(capture)
    url = f"s3://{s3_server.bucket}/lake"
    settings = _settings(tmp_path, lake_url=url, s3_endpoint_url=s3_server.url)

    await _replay(settings, capture)

    reader = S3Sink(url, endpoint_url=s3_server.url)
    try:
        assert await _counts(reader) == expected
    finally:
        await reader.close()
    assert all(key.startswith("lake/") for key in s3_server.object_keys())


@pytest.mark.integration
async def test_lake_s3_outage_spools_then_uploads_everything(
    tmp_path: Path, s3_server: S3Server
) -> None:
    url = f"s3://{s3_server.bucket}/lake"
    settings = _settings(tmp_path, lake_url=url, s3_endpoint_url=s3_server.url, flush_seconds=0.2)
    sink = S3Sink(url, endpoint_url=s3_server.url, timeout=3)
    lake = Lake(settings, sink)
    before, during = feed(5), feed(5, start=START + timedelta(minutes=10))
    stopping = asyncio.Event()

    async with asyncio.TaskGroup() as group:
        group.create_task(lake.run(stopping))
        for message in before:
            lake.add_raw(message)
        await _until(lambda: lake.stats.rows["raw"] == len(before))
        await asyncio.to_thread(s3_server.stop)
        for message in during:
            lake.add_raw(message)
        await _until(lambda: lake.spool.files > 0)
        assert not lake.writable
        await asyncio.to_thread(s3_server.start)
        await _until(lambda: lake.spool.files == 0, seconds=20)
        assert lake.writable
        stopping.set()

    reader = S3Sink(url, endpoint_url=s3_server.url)
    try:
        raw = await _zone(reader, Zone.RAW)
    finally:
        await reader.close()
    assert raw.height == len(before) + len(during)
    assert raw["payload"].n_unique() == raw.height


def _hsl_live(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HSL_LIVE_LAKE_URL": str(tmp_path / "lake"),
        "HSL_LIVE_SPOOL_DIR": str(tmp_path / "spool"),
        "HSL_LIVE_PORT": str(free_port()),
        "HSL_LIVE_FLUSH_SECONDS": "60",
    }
    return subprocess.Popen(
        [str(HSL_LIVE), *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(process: subprocess.Popen[str], text: str, seconds: float = 20) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{text!r} not logged")


def _summary_value(summary: str, name: str) -> int:
    for line in summary.splitlines():
        if line.startswith(name):
            return int(line.split()[-1])
    raise AssertionError(f"{name} not in summary:\n{summary}")


@pytest.mark.integration
async def test_lake_sigterm_during_replay_loses_nothing_received(tmp_path: Path) -> None:
    capture = tmp_path / "long.capture"
    write_capture(capture, feed(60, vehicles=10, per_second=5))
    process = _hsl_live(tmp_path, "replay", str(capture), "--speed", "1")

    await asyncio.to_thread(_wait_for_line, process, "replaying")
    await asyncio.sleep(2)
    process.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"no exit within 30 s after SIGTERM:\n{stderr}") from None

    assert process.returncode == 0, stderr
    messages = _summary_value(stdout, "messages")
    assert 0 < messages < 3000
    counts = await _counts(LocalSink(tmp_path / "lake"))
    assert counts.raw == messages - _summary_value(stdout, "  duplicate messages")
    assert counts.processed == _summary_value(stdout, "events")


@pytest.mark.integration
async def test_lake_sigkill_loses_at_most_a_second_of_input(tmp_path: Path) -> None:
    rate = 50
    capture = tmp_path / "long.capture"
    write_capture(capture, feed(60, vehicles=10, per_second=5))
    process = _hsl_live(tmp_path, "replay", str(capture), "--speed", "1")

    await asyncio.to_thread(_wait_for_line, process, "replaying")
    started = time.monotonic()
    await asyncio.sleep(3)
    process.kill()
    killed_after = time.monotonic() - started
    await asyncio.to_thread(process.communicate, timeout=10)
    received = int(killed_after * rate)

    empty = tmp_path / "empty.capture"
    write_capture(empty, [])
    recovery = _hsl_live(tmp_path, "replay", str(empty))
    await asyncio.to_thread(recovery.communicate, timeout=30)

    counts = await _counts(LocalSink(tmp_path / "lake"))
    lost = received - counts.raw
    assert recovery.returncode == 0
    assert lost <= rate, f"lost {lost} of about {received} messages"
    assert counts.raw <= received + rate


@pytest.mark.integration
async def test_lake_s3_run_after_outage_empties_spool_before_exit(
    tmp_path: Path, s3_server: S3Server
) -> None:
    first, second = tmp_path / "first.capture", tmp_path / "second.capture"
    expected = mixed_capture(first)
    later = feed(10, start=START + timedelta(hours=2))
    write_capture(second, later)
    url = f"s3://{s3_server.bucket}/lake"
    down = _settings(tmp_path, lake_url=url, s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    up = _settings(tmp_path, lake_url=url, s3_endpoint_url=s3_server.url)

    await _replay(down, first)
    spooled = sorted((tmp_path / "spool" / "files").rglob("*.parquet"))
    await _replay(up, second)

    assert len(spooled) == 5
    assert list((tmp_path / "spool" / "files").rglob("*.parquet")) == []
    reader = S3Sink(url, endpoint_url=s3_server.url)
    try:
        raw, counts = await _zone(reader, Zone.RAW), await _counts(reader)
    finally:
        await reader.close()
    assert raw["payload"].n_unique() == raw.height
    assert counts == Expected(
        raw=expected.raw + len(later),
        processed=expected.processed + len(later),
        rejected=expected.rejected,
    )

"""Tests of delivering lake files through the spool while the sink fails and recovers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from hsl_live.errors import SinkError
from hsl_live.sink import LocalSink
from hsl_live.spool import Spool

KEY = "raw/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-0.parquet"
KEY2 = "raw/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-1.parquet"
KEY3 = "raw/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-2.parquet"


class FlakySink(LocalSink):
    """A local sink that refuses every write while `failing` is set, and counts attempts."""

    failing = False
    attempts = 0

    async def put(self, key: str, data: bytes) -> None:
        self.attempts += 1
        if self.failing:
            raise SinkError(f"cannot write {key}: test outage")
        await super().put(key, data)


class GatedSink(LocalSink):
    """A local sink whose writes of one key wait until `gate` is set."""

    def __init__(self, root: Path, gated_key: str) -> None:
        super().__init__(root)
        self.gated_key = gated_key
        self.gate = asyncio.Event()

    async def put(self, key: str, data: bytes) -> None:
        if key == self.gated_key:
            await self.gate.wait()
        await super().put(key, data)


async def _spool_with(directory: Path, sink: LocalSink, *keys: str) -> Spool:
    """Return a spool holding `keys` as if an earlier run had left them there."""
    for key in keys:
        (directory / key).parent.mkdir(parents=True, exist_ok=True)
        (directory / key).write_bytes(key.encode())
    spool = Spool(directory, sink)
    await spool.open()
    return spool


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {seconds} s")


async def test_spool_deliver_puts_in_sink_when_healthy(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "lake")
    spool = Spool(tmp_path / "spool", sink)

    assert await spool.deliver(KEY, b"data") is True
    assert await sink.get(KEY) == b"data"
    assert spool.files == 0


async def test_spool_deliver_stores_file_when_sink_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(tmp_path / "lake")
    sink.failing = True
    spool = Spool(tmp_path / "spool", sink)

    with caplog.at_level(logging.WARNING, logger="hsl_live.spool"):
        assert await spool.deliver(KEY, b"one") is False
        assert await spool.deliver(KEY2, b"two") is False

    assert (tmp_path / "spool" / KEY).read_bytes() == b"one"
    assert (spool.files, spool.pending_bytes) == (2, 6)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "sink failing; spooling to " + str(tmp_path / "spool")
    ]


async def test_spool_uploader_empties_spool_after_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(tmp_path / "lake")
    sink.failing = True
    spool = Spool(tmp_path / "spool", sink)
    await spool.deliver(KEY, b"one")
    await spool.deliver(KEY2, b"two")
    stopping = asyncio.Event()

    with caplog.at_level(logging.INFO, logger="hsl_live.spool"):
        async with asyncio.TaskGroup() as group:
            group.create_task(spool.run(stopping))
            sink.failing = False
            await _until(lambda: spool.files == 0)
            stopping.set()

    assert await sink.list("raw/") == [KEY, KEY2]
    assert not (tmp_path / "spool" / KEY).exists()
    assert caplog.messages[1:] == [
        "sink recovered; 1 files left in the spool",
        f"spool {tmp_path / 'spool'} emptied: 2 files uploaded",
    ]
    assert spool.failing is False


async def test_spool_open_uploads_files_left_by_earlier_run(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "lake")
    sink.failing = True
    await Spool(tmp_path / "spool", sink).deliver(KEY, b"left over")
    sink.failing = False
    spool = Spool(tmp_path / "spool", sink)
    stopping = asyncio.Event()

    await spool.open()
    assert spool.files == 1
    async with asyncio.TaskGroup() as group:
        group.create_task(spool.run(stopping))
        await _until(lambda: spool.files == 0)
        stopping.set()

    assert await sink.get(KEY) == b"left over"


async def test_spool_keeps_file_in_memory_when_spool_disk_fails(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "lake")
    sink.failing = True
    (tmp_path / "spool").write_bytes(b"a file where the spool folder should be")
    spool = Spool(tmp_path / "spool", sink)

    assert await spool.deliver(KEY, b"data") is False

    assert (spool.files, spool.stats.spool_errors) == (1, 1)


async def test_spool_while_failing_new_files_skip_the_sink(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "lake")
    sink.failing = True
    spool = Spool(tmp_path / "spool", sink)
    await spool.deliver(KEY, b"one")
    await spool.deliver(KEY2, b"two")

    assert spool.stats.upload_errors == 1


async def test_spool_open_marks_failing_when_sink_check_fails(tmp_path: Path) -> None:
    (tmp_path / "lake").write_bytes(b"a file where the lake folder should be")
    spool = Spool(tmp_path / "spool", LocalSink(tmp_path / "lake"))

    await spool.open()

    assert spool.failing is True


async def test_spool_healthy_sink_at_start_takes_new_files_before_leftovers(
    tmp_path: Path,
) -> None:
    sink = FlakySink(tmp_path / "lake")
    spool = await _spool_with(tmp_path / "spool", sink, KEY)

    assert await spool.deliver(KEY2, b"new") is True

    assert await sink.get(KEY2) == b"new"
    assert spool.files == 1


async def test_spool_after_recovery_new_files_go_to_sink_while_spool_drains(
    tmp_path: Path,
) -> None:
    sink = GatedSink(tmp_path / "lake", gated_key=KEY2)
    spool = await _spool_with(tmp_path / "spool", sink, KEY, KEY2)
    spool.failing = True
    stopping = asyncio.Event()

    async with asyncio.TaskGroup() as group:
        group.create_task(spool.run(stopping))
        await _until(lambda: not spool.failing)
        assert await spool.deliver(KEY3, b"new") is True
        assert spool.files == 1
        sink.gate.set()
        await _until(lambda: spool.files == 0)
        stopping.set()

    assert await sink.list("raw/") == [KEY, KEY2, KEY3]


async def test_spool_flush_uploads_every_spooled_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(tmp_path / "lake")
    spool = await _spool_with(tmp_path / "spool", sink, KEY, KEY2)

    with caplog.at_level(logging.WARNING, logger="hsl_live.spool"):
        await spool.flush()

    assert await sink.list("raw/") == [KEY, KEY2]
    assert list((tmp_path / "spool").rglob("*.parquet")) == []
    assert caplog.messages == []


async def test_spool_flush_tries_a_down_sink_once_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(tmp_path / "lake")
    spool = await _spool_with(tmp_path / "spool", sink, KEY, KEY2)
    sink.failing = True

    with caplog.at_level(logging.WARNING, logger="hsl_live.spool"):
        await spool.flush()

    assert sink.attempts == 1
    assert caplog.messages[-1] == (
        f"2 files ({len(KEY) + len(KEY2)} bytes) still in the spool at {tmp_path / 'spool'}; "
        "they are uploaded on the next start"
    )


async def test_spool_close_by_cuts_short_a_write_under_way(tmp_path: Path) -> None:
    sink = GatedSink(tmp_path / "lake", gated_key=KEY)
    spool = Spool(tmp_path / "spool", sink)
    loop = asyncio.get_running_loop()

    async with asyncio.TaskGroup() as group:
        delivery = group.create_task(spool.deliver(KEY, b"data"))
        await asyncio.sleep(0.05)
        spool.close_by(loop.time() + 0.1)

    assert delivery.result() is False
    assert (tmp_path / "spool" / KEY).read_bytes() == b"data"
    assert spool.failing is True


async def test_spool_after_close_by_deadline_skips_the_sink(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "lake")
    spool = Spool(tmp_path / "spool", sink)
    spool.close_by(asyncio.get_running_loop().time())

    assert await spool.deliver(KEY, b"data") is False

    assert (sink.attempts, spool.files) == (0, 1)

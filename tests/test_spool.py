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


class FlakySink(LocalSink):
    """A local sink that refuses every write while `failing` is set."""

    failing = False

    async def put(self, key: str, data: bytes) -> None:
        if self.failing:
            raise SinkError(f"cannot write {key}: test outage")
        await super().put(key, data)


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
    assert "sink recovered; 2 files uploaded" in caplog.messages
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

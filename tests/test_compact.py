from __future__ import annotations

import asyncio
import io
import json
import os
import re
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from hsl_live.capture import RawMessage, format_line, parse_line
from hsl_live.cli import main
from hsl_live.compact import (
    COMPACTED_FROM,
    Compactor,
    compact_lake,
    compacted_name,
    is_compacted,
    lake_hours,
    merge_files,
)
from hsl_live.errors import SinkError
from hsl_live.hfp import Event, decode
from hsl_live.s3 import S3Sink
from hsl_live.schema import SCHEMAS, TIME_COLUMN, Zone, events_frame, partition_path, raw_frame
from hsl_live.settings import Settings
from hsl_live.sink import LocalSink, Sink
from s3_server import S3Server, s3_server  # noqa: F401 (a fixture, requested by name)

HOUR = datetime(2024, 2, 13, 16, tzinfo=UTC)
LATENESS = 3600.0
# Long after HOUR and its lateness window: every hour in these tests is sealed.
NOW = (HOUR + timedelta(days=1)).timestamp()


def _line(received: datetime, veh: int, tst: datetime, *, journey: str = "ongoing") -> bytes:
    stamp = tst.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    levels = f"{veh:05d}/1052/1/Kamppi/16:00/1130106/5/60;24/19/74/97"
    topic = f"/hfp/v2/journey/{journey}/vp/bus/0018/{levels}"
    payload = (
        f'{{"VP":{{"desi":"52","dir":"1","oper":18,"veh":{veh},"tst":"{stamp}",'
        f'"tsi":{int(tst.timestamp())},"spd":{veh % 17}.5,"hdg":90,"lat":60.17,"long":24.93,'
        f'"acc":0.1,"dl":-30,"odo":1200,"drst":0,"oday":"2024-02-13","jrn":1,"line":52,'
        f'"start":"16:00","loc":"GPS","stop":null,"route":"1052","occu":0}}}}'
    )
    received_text = received.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{received_text} {topic} {payload}".encode()


def _message(
    second: int, veh: int = 1, *, delay: float = 0.5, journey: str = "ongoing"
) -> RawMessage:
    tst = HOUR + timedelta(seconds=second)
    message = parse_line(_line(tst + timedelta(seconds=delay), veh, tst, journey=journey))
    assert message is not None
    return message


def _events(messages: Sequence[RawMessage]) -> list[Event]:
    events = [decode(m.received_at, m.topic, m.payload) for m in messages]
    assert all(isinstance(event, Event) for event in events)
    return [event for event in events if isinstance(event, Event)]


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


async def _put_part(
    sink: Sink, zone: Zone, frame: pl.DataFrame, seq: int, hour: datetime = HOUR
) -> str:
    key = f"{partition_path(zone, hour)}/part-{1707840000000 + seq}-w1-{seq}.parquet"
    await sink.put(key, _parquet(frame))
    return key


async def _put_processed(sink: Sink, parts: Sequence[Sequence[RawMessage]]) -> None:
    for seq, messages in enumerate(parts):
        await _put_part(sink, Zone.PROCESSED, events_frame(_events(messages)), seq)


async def _put_raw(sink: Sink, parts: Sequence[Sequence[RawMessage]]) -> None:
    for seq, messages in enumerate(parts):
        await _put_part(sink, Zone.RAW, raw_frame(messages), seq)


async def _names(sink: Sink, zone: Zone, hour: datetime = HOUR) -> list[str]:
    keys = await sink.list(f"{partition_path(zone, hour)}/")
    return [key.rpartition("/")[2] for key in keys]


async def _rows(sink: Sink, zone: Zone, hour: datetime = HOUR) -> pl.DataFrame:
    """Return every row a reader listing the partition sees, in a canonical order."""
    keys = await sink.list(f"{partition_path(zone, hour)}/")
    frames = [pl.read_parquet(io.BytesIO(await sink.get(key))) for key in keys]
    rows = pl.concat(frames)
    return rows.sort(rows.columns, nulls_last=True)


async def _compact(sink: Sink, now: float = NOW) -> None:
    report = await compact_lake(sink, now=now, lateness_seconds=LATENESS)
    assert report.failed == []


def _spread(count: int, parts: int) -> list[list[RawMessage]]:
    messages = [_message(second % 3600, veh=1 + second // 3600) for second in range(count)]
    return [messages[index::parts] for index in range(parts)]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
async def sink(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sink]:
    """Yield a lake sink on a local folder or on a moto S3 server."""
    lake: Sink
    if request.param == "local":
        lake = LocalSink(tmp_path / "lake")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        lake = S3Sink(f"s3://{server.bucket}/lake", endpoint_url=server.url)
    yield lake
    await lake.close()


class CrashingSink:
    """A sink that fails every delete after the first `deletes` ones, like a crash would."""

    def __init__(self, inner: Sink, deletes: int) -> None:
        self.inner = inner
        self.url = inner.url
        self.deletes = deletes

    async def put(self, key: str, data: bytes) -> None:
        await self.inner.put(key, data)

    async def list(self, prefix: str) -> list[str]:
        return await self.inner.list(prefix)

    async def get(self, key: str) -> bytes:
        return await self.inner.get(key)

    async def put_file(self, key: str, path: Path) -> None:
        await self.inner.put_file(key, path)

    async def get_file(self, key: str, path: Path) -> None:
        await self.inner.get_file(key, path)

    async def delete(self, key: str) -> None:
        if self.deletes <= 0:
            raise SinkError(f"simulated crash before deleting {key}")
        self.deletes -= 1
        await self.inner.delete(key)

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


async def test_compact_lake_keeps_distinct_processed_rows(sink: Sink) -> None:
    await _put_processed(sink, _spread(300, parts=6))
    before = await _rows(sink, Zone.PROCESSED)

    await _compact(sink)

    assert len(await _names(sink, Zone.PROCESSED)) == 1
    after = await _rows(sink, Zone.PROCESSED)
    assert after.height == 300
    assert after.equals(before)


async def test_compact_lake_keeps_distinct_raw_rows(sink: Sink) -> None:
    await _put_raw(sink, _spread(200, parts=4))
    before = await _rows(sink, Zone.RAW)

    await _compact(sink)

    assert len(await _names(sink, Zone.RAW)) == 1
    assert (await _rows(sink, Zone.RAW)).equals(before)


async def test_compact_lake_removes_processed_duplicates_across_parts(sink: Sink) -> None:
    first = [_message(10), _message(20)]
    # The same events received again later (a replica or a redelivery) in another part.
    again = [_message(10, delay=2.0), _message(20, delay=3.0), _message(30)]
    await _put_processed(sink, [first, again])

    await _compact(sink)

    rows = await _rows(sink, Zone.PROCESSED)
    assert rows["tst"].to_list() == [HOUR + timedelta(seconds=s) for s in (10, 20, 30)]
    assert rows["received_at"].to_list()[:2] == [m.received_at for m in first]


async def test_compact_lake_keeps_ongoing_and_upcoming_of_same_instant(sink: Sink) -> None:
    both = [_message(10), _message(10, journey="upcoming")]
    await _put_processed(sink, [both[:1], both[1:]])

    await _compact(sink)

    rows = await _rows(sink, Zone.PROCESSED)
    assert sorted(rows["is_ongoing"].to_list()) == [False, True]


async def test_compact_lake_removes_repeated_raw_rows(sink: Sink) -> None:
    messages = [_message(1), _message(2)]
    # A part uploaded twice under two names (e.g. replayed from a write-ahead log).
    await _put_raw(sink, [messages, messages, [_message(3)]])

    await _compact(sink)

    assert (await _rows(sink, Zone.RAW)).height == 3


async def test_compact_lake_sorts_rows_by_time_column(sink: Sink) -> None:
    await _put_processed(sink, [[_message(50), _message(5)], [_message(30), _message(1)]])

    await _compact(sink)

    key = (await sink.list(f"{partition_path(Zone.PROCESSED, HOUR)}/"))[0]
    merged = pl.read_parquet(io.BytesIO(await sink.get(key)))
    assert merged["tst"].is_sorted()
    assert merged.height == 4


@pytest.mark.parametrize("deletes", [0, 1, 2])
async def test_compact_lake_rerun_after_interruption_sees_rows_once(
    sink: Sink, deletes: int
) -> None:
    await _put_processed(sink, _spread(90, parts=3))
    expected = await _rows(sink, Zone.PROCESSED)

    report = await compact_lake(CrashingSink(sink, deletes), now=NOW, lateness_seconds=LATENESS)
    assert report.failed == [partition_path(Zone.PROCESSED, HOUR)]
    assert len(await _names(sink, Zone.PROCESSED)) == 4 - deletes
    await _compact(sink)

    assert len(await _names(sink, Zone.PROCESSED)) == 1
    assert (await _rows(sink, Zone.PROCESSED)).equals(expected)


async def test_compact_lake_rerun_after_interruption_only_finishes_deletes(sink: Sink) -> None:
    await _put_processed(sink, _spread(90, parts=3))
    await compact_lake(CrashingSink(sink, 1), now=NOW, lateness_seconds=LATENESS)
    [compacted] = [name for name in await _names(sink, Zone.PROCESSED) if is_compacted(name)]

    report = await compact_lake(sink, now=NOW, lateness_seconds=LATENESS)

    summary = report.zones[Zone.PROCESSED]
    assert (summary.finished, summary.rows_before) == (2, 0)
    assert await _names(sink, Zone.PROCESSED) == [compacted]


async def test_compact_lake_leaves_unsealed_hours_untouched(sink: Sink) -> None:
    await _put_processed(sink, _spread(60, parts=3))
    names = await _names(sink, Zone.PROCESSED)
    # Half an hour after the hour ended: still inside the one-hour lateness window.
    now = (HOUR + timedelta(minutes=90)).timestamp()

    report = await compact_lake(sink, now=now, lateness_seconds=LATENESS)

    assert report.unsealed == 1
    assert await _names(sink, Zone.PROCESSED) == names


async def test_compact_lake_folds_late_rows_into_next_compaction(sink: Sink) -> None:
    await _put_processed(sink, _spread(60, parts=3))
    await _compact(sink)
    late = [_message(3599, veh=9), _message(0, veh=1, delay=9.0)]
    await _put_part(sink, Zone.PROCESSED, events_frame(_events(late)), seq=7)
    assert len(await _names(sink, Zone.PROCESSED)) == 2

    await _compact(sink)

    rows = await _rows(sink, Zone.PROCESSED)
    assert len(await _names(sink, Zone.PROCESSED)) == 1
    assert rows.height == 61
    assert rows.filter(pl.col("veh") == 9).height == 1


async def test_compact_lake_second_run_changes_nothing(sink: Sink) -> None:
    await _put_processed(sink, _spread(60, parts=3))
    await _compact(sink)
    names = await _names(sink, Zone.PROCESSED)

    report = await compact_lake(sink, now=NOW, lateness_seconds=LATENESS)

    assert not report.changed
    assert await _names(sink, Zone.PROCESSED) == names


async def test_compact_lake_merged_schema_equals_parts(sink: Sink, tmp_path: Path) -> None:
    await _put_processed(sink, _spread(30, parts=2))
    part = tmp_path / "part.parquet"
    part.write_bytes(await sink.get((await sink.list("processed/"))[0]))

    await _compact(sink)

    merged = tmp_path / "merged.parquet"
    merged.write_bytes(await sink.get((await sink.list("processed/"))[0]))
    assert pl.read_parquet_schema(merged) == dict(SCHEMAS[Zone.PROCESSED])
    assert _parquet_types(merged) == _parquet_types(part)


def _parquet_types(path: Path) -> list[tuple[object, ...]]:
    query = "select name, type, converted_type, logical_type from parquet_schema(?)"
    return duckdb.execute(query, [str(path)]).fetchall()


async def test_compact_lake_records_inputs_in_metadata(sink: Sink, tmp_path: Path) -> None:
    await _put_processed(sink, _spread(30, parts=2))
    parts = await _names(sink, Zone.PROCESSED)

    await _compact(sink)

    [name] = await _names(sink, Zone.PROCESSED)
    merged = tmp_path / name
    merged.write_bytes(await sink.get(f"{partition_path(Zone.PROCESSED, HOUR)}/{name}"))
    assert name == compacted_name(parts)
    assert json.loads(pl.read_parquet_metadata(merged)[COMPACTED_FROM]) == parts


async def test_compact_lake_leaves_hour_with_foreign_schema_alone(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "lake")
    await _put_processed(sink, [[_message(1)]])
    await _put_part(sink, Zone.PROCESSED, pl.DataFrame({"tst": [1]}), seq=5)
    names = await _names(sink, Zone.PROCESSED)

    report = await compact_lake(sink, now=NOW, lateness_seconds=LATENESS)

    assert report.failed == [partition_path(Zone.PROCESSED, HOUR)]
    assert await _names(sink, Zone.PROCESSED) == names


async def test_compact_hour_never_deletes_mutually_covering_files(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "lake")
    folder = partition_path(Zone.PROCESSED, HOUR)
    frames = [events_frame(_events([_message(1)])), events_frame(_events([_message(2)]))]
    # Two compacted files that each claim to hold the other: neither may be deleted unmerged.
    names = [
        "part-1-compact.00000000000000aa-0.parquet",
        "part-2-compact.00000000000000bb-0.parquet",
    ]
    for frame, name, other in zip(frames, names, reversed(names), strict=True):
        buffer = io.BytesIO()
        frame.write_parquet(buffer, metadata={COMPACTED_FROM: json.dumps([other])})
        await sink.put(f"{folder}/{name}", buffer.getvalue())

    await _compact(sink)

    assert (await _rows(sink, Zone.PROCESSED)).height == 2


def test_lake_hours_groups_by_zone_and_hour_and_skips_other_files() -> None:
    folder = partition_path(Zone.RAW, HOUR)
    keys = [
        f"{folder}/part-1-w-0.parquet",
        f"{folder}/.part-1-w-1.parquet.ab12.tmp",
        f"{folder}/notes.txt",
        f"{partition_path(Zone.RAW, HOUR + timedelta(hours=1))}/part-2-w-0.parquet",
        "raw/year=2024/month=13/day=01/hour=00/part-3-w-0.parquet",
    ]

    hours = lake_hours(keys)

    assert [(h.zone, h.hour, h.names) for h in hours] == [
        (Zone.RAW, HOUR, ("part-1-w-0.parquet",)),
        (Zone.RAW, HOUR + timedelta(hours=1), ("part-2-w-0.parquet",)),
    ]


def test_compacted_name_ignores_input_order() -> None:
    assert compacted_name(["b", "a"]) == compacted_name(["a", "b"]) != compacted_name(["a"])


async def test_compactor_compacts_then_stops(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "lake")
    await _put_processed(sink, _spread(30, parts=3))
    settings = Settings(
        lake_url=str(tmp_path / "lake"),
        spool_dir=str(tmp_path / "spool"),
        compact_interval_seconds=3600.0,
    )
    stopping = asyncio.Event()

    task = asyncio.create_task(Compactor(settings, sink).run(stopping))
    for _ in range(200):
        if len(await _names(sink, Zone.PROCESSED)) == 1:
            break
        await asyncio.sleep(0.02)
    stopping.set()
    async with asyncio.timeout(5):
        await task

    assert len(await _names(sink, Zone.PROCESSED)) == 1


async def test_cli_compact_prints_summary_per_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = LocalSink(tmp_path / "lake")
    await _put_processed(sink, [[_message(1), _message(2)], [_message(2, delay=5.0)]])
    await _put_raw(sink, [[_message(1)], [_message(2)]])

    status = await asyncio.to_thread(main, ["compact", "--lake-url", str(tmp_path / "lake")])

    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[1].split() == ["raw", "1", "2", "1", "2", "2", "0"]
    assert out[2].split() == ["processed", "1", "2", "1", "3", "2", "1"]
    assert out[3].split() == ["rejected", "0", "0", "0", "0", "0", "0"]


def test_cli_compact_missing_lake_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["compact", "--lake-url", str(tmp_path / "nowhere")])

    assert status == 2
    assert f"no lake at {tmp_path / 'nowhere'}" in capsys.readouterr().err


class StallingSink(LocalSink):
    """A local sink whose downloads hang until cancelled, like a stalled connection."""

    async def get(self, key: str) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def get_file(self, key: str, path: Path) -> None:
        await asyncio.Event().wait()


async def test_compactor_stop_cancels_compaction_in_flight(tmp_path: Path) -> None:
    sink = StallingSink(tmp_path / "lake")
    await _put_processed(sink, _spread(30, parts=3))
    names = await _names(sink, Zone.PROCESSED)
    settings = Settings(lake_url=str(tmp_path / "lake"), spool_dir=str(tmp_path / "spool"))
    stopping = asyncio.Event()
    task = asyncio.create_task(Compactor(settings, sink).run(stopping))
    await asyncio.sleep(0.1)

    stopping.set()
    async with asyncio.timeout(2):
        await task

    assert await _names(sink, Zone.PROCESSED) == names


async def _lake_rows(sink: Sink) -> dict[Zone, pl.DataFrame]:
    rows: dict[Zone, pl.DataFrame] = {}
    for zone in Zone:
        frames = [pl.read_parquet(io.BytesIO(await sink.get(key))) for key in await sink.list(zone)]
        frame = pl.concat(frames)
        rows[zone] = frame.sort(frame.columns, nulls_last=True)
    return rows


def test_compact_after_replay_keeps_every_zone_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [_message(second, veh=veh) for second in range(0, 7200, 60) for veh in (1, 2)]
    broken = messages[5].received_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " /hfp/v2/x {not json"
    capture = tmp_path / "capture.txt"
    capture.write_text(b"".join(format_line(m) for m in messages).decode() + broken + "\n")
    monkeypatch.setenv("HSL_LIVE_FLUSH_ROWS", "20")
    lake = tmp_path / "lake"
    flags = ["--lake-url", str(lake), "--spool-dir", str(tmp_path / "spool")]
    assert main(["replay", str(capture), *flags]) == 0
    sink = LocalSink(lake)
    before = asyncio.run(_lake_rows(sink))
    parts = len(asyncio.run(sink.list("")))

    assert main(["compact", *flags]) == 0

    after = asyncio.run(_lake_rows(sink))
    assert all(after[zone].equals(before[zone]) for zone in Zone)
    keys = asyncio.run(sink.list(""))
    assert parts > len(keys) == len(lake_hours(keys)) == 5


def _many_events(rows: int) -> pl.DataFrame:
    """Return `rows` distinct processed rows: one decoded event, varied in tst and vehicle."""
    one = events_frame(_events([_message(0)]))
    index = pl.int_range(rows, dtype=pl.Int64)
    stamp = pl.lit(HOUR).dt.cast_time_unit("ms") + pl.duration(
        milliseconds=index * 3600_000 // rows
    )
    veh = (index % 997 + 1).cast(pl.Int32)
    return one.select(pl.all().gather([0] * rows)).with_columns(
        stamp.alias("tst"),
        (stamp + pl.duration(milliseconds=500)).alias("received_at"),
        veh.alias("veh"),
        pl.format("18/{}", veh).alias("unique_vehicle_id"),
    )


def test_merge_files_larger_hour_runs_under_duckdb_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _many_events(200_000)
    parts = 8
    paths = []
    for index in range(parts):
        path = tmp_path / f"part-{index}.parquet"
        rows.gather_every(parts, offset=index).write_parquet(path, compression="zstd")
        paths.append(path)
    again = tmp_path / "part-9.parquet"
    rows.head(1000).with_columns(pl.col("received_at") + timedelta(seconds=5)).write_parquet(again)
    limits: list[object] = []
    connect = duckdb.connect

    def recording_connect(
        database: str = ":memory:", *, config: dict[str, str | bool | int | float | list[str]]
    ) -> duckdb.DuckDBPyConnection:
        limits.append(config["memory_limit"])
        return connect(database, config=config)

    monkeypatch.setattr(duckdb, "connect", recording_connect)
    memory_mb = 128

    counts = merge_files(
        Zone.PROCESSED, [*paths, again], tmp_path / "out.parquet", memory_mb=memory_mb
    )

    assert limits == [f"{memory_mb}MB"]
    assert counts == (201_000, 200_000)
    merged = pl.read_parquet(tmp_path / "out.parquet")
    assert merged.equals(rows)
    # Re-encoded in batches, written as long row groups: zstd packs long runs tighter.
    groups = duckdb.execute(
        "SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(?)",
        [str(tmp_path / "out.parquet")],
    ).fetchall()
    assert groups == [(0, 200_000)]


@pytest.mark.parametrize("zone", [Zone.RAW, Zone.PROCESSED])
def test_merge_files_output_types_equal_parts(tmp_path: Path, zone: Zone) -> None:
    messages = [_message(second, veh=second % 3 + 1) for second in range(0, 600, 7)]
    frame = raw_frame(messages) if zone is Zone.RAW else events_frame(_events(messages))
    paths = [tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"]
    frame.gather_every(2).write_parquet(paths[0], compression="zstd")
    frame.gather_every(2, offset=1).write_parquet(paths[1], compression="zstd")

    merge_files(zone, paths, tmp_path / "out.parquet")

    merged = tmp_path / "out.parquet"
    assert pl.read_parquet_schema(merged) == dict(SCHEMAS[zone])
    assert _parquet_types(merged) == _parquet_types(paths[0])
    assert pl.read_parquet(merged)[TIME_COLUMN[zone]].is_sorted()


class WholeFileSpy(LocalSink):
    """A local sink that records the size of every object passed whole through memory."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.in_memory: list[int] = []

    async def put(self, key: str, data: bytes) -> None:
        self.in_memory.append(len(data))
        await super().put(key, data)

    async def get(self, key: str) -> bytes:
        data = await super().get(key)
        self.in_memory.append(len(data))
        return data


def _noise_hour(rows: int, parts: int) -> list[pl.DataFrame]:
    """Return raw-zone parts whose payloads are random hex, so zstd cannot shrink them."""
    start = HOUR.replace(tzinfo=None)
    payloads = [os.urandom(100).hex() for _ in range(rows)]
    received = [start + timedelta(milliseconds=index * 3600_000 // rows) for index in range(rows)]
    frame = pl.DataFrame(
        {"received_at": received, "topic": ["/hfp/v2/x"] * rows, "payload": payloads},
        schema=SCHEMAS[Zone.RAW],
    )
    return [frame.gather_every(parts, offset=index) for index in range(parts)]


async def test_compact_lake_never_holds_merged_file_in_memory(tmp_path: Path) -> None:
    sink = WholeFileSpy(tmp_path / "lake")
    for seq, part in enumerate(_noise_hour(80_000, parts=4)):
        await _put_part(sink, Zone.RAW, part, seq)
    await _compact(sink)  # a first merge, so the second downloads a compacted file too
    await _put_part(sink, Zone.RAW, _noise_hour(100, parts=1)[0], seq=9)
    sink.in_memory.clear()
    tracemalloc.start()
    try:
        await _compact(sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    [key] = await sink.list("raw/")
    merged = (tmp_path / "lake" / key).stat().st_size
    assert merged > 8 * 2**20
    assert sink.in_memory == []
    assert peak < merged / 2, (peak, merged)


def test_compacted_name_keeps_the_lake_file_name_shape() -> None:
    name = compacted_name(["part-1707840000500-w1-3.parquet", "part-1707840000001-w2-0.parquet"])

    assert re.fullmatch(r"part-1707840000001-compact\.[0-9a-f]{16}-0\.parquet", name)
    assert is_compacted(name)
    assert not is_compacted("part-1707840000001-w2-0.parquet")

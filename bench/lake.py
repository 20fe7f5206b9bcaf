"""Lake and SQL: Parquet size against the JSON received, and every view on 10 million events.

The big lake is made from the synthetic workload, decoded once by hsl_live's own
decoder, then repeated with its times shifted forward (the same fleet driving on),
and written partitioned by hour like the real lake: one file per copy and hour.
It is cached under bench/results/cache, keyed by its size.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path

import polars as pl

from bench.common import CACHE, Figure, median, mib
from bench.workload import START, Workload, load
from hsl_live.capture import RawMessage
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.packets import PacketSplitter
from hsl_live.query import LocalLake
from hsl_live.schema import TIME_COLUMN, Zone, events_frame, partition_path, raw_frame

VIEW_TARGET_SECONDS = 2.0
SHIFTED = {Zone.RAW: ("received_at",), Zone.PROCESSED: ("received_at", "tst", "ttarr", "ttdep")}


def size_figures(workload: Workload, zone_bytes: dict[str, int]) -> list[Figure]:
    """Compare the zones an ingest round wrote, then compacted, with the JSON it received.

    The writer's files live until their hour is compacted; the compacted file is what
    the lake keeps, so the target applies to it.
    """
    json_bytes = workload.payload_bytes

    def ratio(zone: str) -> float:
        return round(json_bytes / max(zone_bytes[zone], 1), 1)

    kept = ratio("processed compacted")
    return [
        Figure("lake", "JSON payloads received", mib(json_bytes), "MiB"),
        Figure("lake", "processed Parquet, as written", mib(zone_bytes["processed"]), "MiB"),
        Figure("lake", "processed Parquet, compacted", mib(zone_bytes["processed compacted"]),
               "MiB"),
        Figure("lake", "JSON / processed, as written", ratio("processed"), "x"),
        Figure("lake", "JSON / processed, compacted", kept, "x", ">= 15", kept >= 15),
        Figure("lake", "JSON / raw zone, as written / compacted",
               f"{ratio('raw')} / {ratio('raw compacted')}", "x"),
    ]  # fmt: skip


def sql_figures(events: int, rounds: int) -> list[Figure]:
    """Time every view on a lake of about `events` events; the median of `rounds` runs each."""
    lake, built = build_lake(events)
    figures = [Figure("sql", "lake", f"{events} events, built in {built:.0f} s (0 = cached)")]
    with LocalLake(lake) as local:
        count = local.run("SELECT count(*) FROM processed").rows[0][0]
        figures.append(Figure("sql", "processed rows", count))
        for name in local.views:
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                local.run(name)
                times.append(time.perf_counter() - started)
            seconds = median(times)
            figures.append(
                Figure("sql", f"view {name}", round(seconds, 2), "s",
                       f"<= {VIEW_TARGET_SECONDS:.0f}", seconds <= VIEW_TARGET_SECONDS)
            )  # fmt: skip
    return figures


def build_lake(events: int) -> tuple[Path, float]:
    """Return a lake folder of about `events` processed rows, and seconds spent building it."""
    lake = CACHE / f"lake-{events}"
    if (lake / "complete").exists():
        return lake, 0.0
    started = time.perf_counter()
    shutil.rmtree(lake, ignore_errors=True)
    raw, processed, rejected = _template(load(300_000, 2000))
    first = processed["tst"].min()
    last = processed["tst"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    span = last - first + timedelta(seconds=1)
    copies = -(-events // processed.height)
    for copy in range(copies):
        shift = span * copy
        rows = processed if copy < copies - 1 else processed.head(events - copy * processed.height)
        _write(lake, Zone.PROCESSED, _shifted(rows, Zone.PROCESSED, shift), copy)
        _write(lake, Zone.RAW, _shifted(raw.head(rows.height), Zone.RAW, shift), copy)
        if rejected.height:
            _write(lake, Zone.REJECTED, _shifted(rejected, Zone.RAW, shift), copy)
    (lake / "complete").touch()
    return lake, time.perf_counter() - started


def _template(workload: Workload) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    messages: list[RawMessage] = []
    base = datetime.fromtimestamp(START, UTC)

    def accept(topics: list[str], payloads: list[bytes]) -> None:
        messages.extend(map(RawMessage, repeat(base), topics, payloads))

    PacketSplitter(accept, lambda _: None).feed(Path(workload.path).read_bytes())
    events: list[Event] = []
    rejections: list[Rejection] = []
    for message in messages:
        result = decode(message.received_at, message.topic, message.payload)
        if isinstance(result, Event):
            result.received_at = result.tst + timedelta(milliseconds=200)
            events.append(result)
        else:
            rejections.append(result)
    processed = events_frame(events)
    raw = raw_frame(messages).with_columns(received_at=processed["received_at"].head(len(messages)))
    rejected = pl.DataFrame(schema={**raw.schema, "reason": pl.String, "detail": pl.String})
    return raw, processed, rejected


def _shifted(frame: pl.DataFrame, zone: Zone, shift: timedelta) -> pl.DataFrame:
    columns = [c for c in SHIFTED[zone] if c in frame.columns]
    return frame.with_columns([pl.col(c) + shift for c in columns])


def _write(lake: Path, zone: Zone, frame: pl.DataFrame, copy: int) -> None:
    hours = frame.with_columns(_hour=pl.col(TIME_COLUMN[zone]).dt.truncate("1h"))
    for (hour,), part in hours.partition_by("_hour", as_dict=True).items():
        assert isinstance(hour, datetime)
        folder = lake / partition_path(zone, hour)
        folder.mkdir(parents=True, exist_ok=True)
        rows = part.drop("_hour").sort(TIME_COLUMN[zone])
        rows.write_parquet(folder / f"part-{copy:04d}-bench-0.parquet", compression="zstd")

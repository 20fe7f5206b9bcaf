"""Merge each sealed hour of the lake into one file per zone, safely and repeatably.

The protocol survives being interrupted at any point. A merged file is named like every
lake file, as written by the writer `compact.<hash of its inputs' names>`
(`part-<first ms of its inputs>-compact.<hash>-0.parquet`), and lists its inputs in its Parquet
key-value metadata; only once it is stored are the inputs deleted. A later run that finds
a compacted file beside inputs it lists only finishes deleting them: rows are never merged
twice, and nothing is deleted unless a stored compacted file already holds its rows.
Rows that arrive after compaction land in a new part of that hour, and the next run merges
the compacted file with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from polars.io.plugins import register_io_source

from hsl_live.errors import HslLiveError, SinkError
from hsl_live.schema import SCHEMA_VERSION, SCHEMAS, TIME_COLUMN, Zone, partition_path
from hsl_live.settings import Settings
from hsl_live.sink import Sink, open_sink

logger = logging.getLogger(__name__)

# Parquet key-value metadata of a compacted file: a JSON list of the file names it merged.
COMPACTED_FROM = "hsl_live.compacted_from"
SCHEMA_VERSION_KEY = "hsl_live.schema_version"

# One row per key survives; the processed key is the design's event identity, and raw or
# rejected rows are exact repeats only (e.g. a part re-uploaded after a crash).
DEDUP_KEYS: dict[Zone, tuple[str, ...]] = {
    Zone.RAW: ("received_at", "topic", "payload"),
    Zone.PROCESSED: ("unique_vehicle_id", "event_type", "journey_type", "is_ongoing", "tst", "seq"),
    Zone.REJECTED: ("received_at", "topic", "payload", "reason"),
}

_KEY = re.compile(
    r"(?P<zone>raw|processed|rejected)/year=(?P<year>\d{4})/month=(?P<month>\d{2})"
    r"/day=(?P<day>\d{2})/hour=(?P<hour>\d{2})/(?P<name>part-[^/]+\.parquet)"
)
_HOUR = timedelta(hours=1)

# DuckDB's share of the memory a merge may use; the sort and dedup spill to disk beyond it.
DEFAULT_MEMORY_MB = 256
# Rows per batch when the sorted rows are re-encoded.
BATCH_ROWS = 65_536
# A compacted hour is written once and kept, so it gets a slower, denser zstd level than
# the writer's micro-batches (level 3), and row groups and pages big enough that zstd sees a
# long run of each column (Polars' default page is 1 MiB). In the ingest benchmark the
# processed zone goes from 13.2x smaller than its JSON (level 15, 65,536-row groups, default
# pages) to 15.7x, for about 60 MiB more memory while a row group is encoded.
COMPACTED_ZSTD_LEVEL = 15
COMPACTED_ROW_GROUP_ROWS = 262_144
COMPACTED_PAGE_BYTES = 4 * 1024 * 1024


class CompactionError(HslLiveError):
    """A lake file cannot be compacted (for example, its columns are not the zone's)."""


@dataclass(frozen=True)
class LakeHour:
    """The lake files of one zone and UTC hour, by name."""

    zone: Zone
    hour: datetime
    names: tuple[str, ...]

    @property
    def folder(self) -> str:
        return partition_path(self.zone, self.hour)

    def key(self, name: str) -> str:
        return f"{self.folder}/{name}"

    def sealed(self, now: float, lateness_seconds: float) -> bool:
        """Return whether the hour ended more than `lateness_seconds` before `now`."""
        return (self.hour + _HOUR).timestamp() + lateness_seconds <= now

    @property
    def done(self) -> bool:
        """Return whether the hour already is one compacted file."""
        return len(self.names) == 1 and is_compacted(self.names[0])


@dataclass
class HourResult:
    """What compacting one hour did; rows are counted only for the files merged."""

    files_before: int
    files_after: int
    rows_before: int = 0
    rows_after: int = 0
    finished: int = 0


@dataclass
class ZoneSummary:
    """Totals over the hours of one zone that a run changed."""

    hours: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    finished: int = 0

    def add(self, result: HourResult) -> None:
        self.hours += 1
        self.files_before += result.files_before
        self.files_after += result.files_after
        self.rows_before += result.rows_before
        self.rows_after += result.rows_after
        self.finished += result.finished


@dataclass
class CompactionReport:
    """A run over the whole lake: a summary per zone and the hours that failed."""

    zones: dict[Zone, ZoneSummary] = field(default_factory=lambda: {z: ZoneSummary() for z in Zone})
    failed: list[str] = field(default_factory=list)
    unsealed: int = 0

    @property
    def changed(self) -> bool:
        return any(summary.hours for summary in self.zones.values())


_COMPACTED = re.compile(r"part-\d+-compact\.[0-9a-f]{16}-0\.parquet")
_FIRST_MS = re.compile(r"part-(\d+)-")


def is_compacted(name: str) -> bool:
    """Return whether a file name is one compaction wrote."""
    return _COMPACTED.fullmatch(name) is not None


def compacted_name(inputs: Sequence[str]) -> str:
    """Return the deterministic name of the file that merges these input names.

    It keeps the lake's `part-<first received ms>-<writer id>-<seq>.parquet` shape: the
    first ms is the earliest of the inputs', the writer id `compact.<hash of the names>`.
    """
    digest = hashlib.sha256("\n".join(sorted(inputs)).encode()).hexdigest()[:16]
    firsts = [int(match[1]) for name in inputs if (match := _FIRST_MS.match(name))]
    return f"part-{min(firsts, default=0)}-compact.{digest}-0.parquet"


def lake_hours(keys: Sequence[str]) -> list[LakeHour]:
    """Group lake keys by zone and hour; keys that are not lake files are left out."""
    groups: dict[tuple[Zone, datetime], list[str]] = {}
    for key in keys:
        match = _KEY.fullmatch(key)
        if match is None:
            continue
        year, month, day, at = (int(match[name]) for name in ("year", "month", "day", "hour"))
        try:
            hour = datetime(year, month, day, at, tzinfo=UTC)
        except ValueError:
            continue
        groups.setdefault((Zone(match["zone"]), hour), []).append(match["name"])

    return [
        LakeHour(zone, hour, tuple(sorted(names))) for (zone, hour), names in sorted(groups.items())
    ]


async def compact_lake(
    sink: Sink,
    *,
    now: float,
    lateness_seconds: float,
    memory_mb: int = DEFAULT_MEMORY_MB,
    scratch: Path | None = None,
) -> CompactionReport:
    """Compact every sealed hour of every zone; `now` is in epoch seconds.

    Work files (downloads, spilled sort runs) go to a temporary folder inside `scratch`,
    or the system's, which should be a disk: a tmpfs would hold them in memory.
    An hour that fails is logged and listed in the report; the others still run.
    """
    report = CompactionReport()
    for zone in Zone:
        for hour in lake_hours(await sink.list(f"{zone}/")):
            if hour.done:
                continue
            if not hour.sealed(now, lateness_seconds):
                report.unsealed += 1
                continue
            try:
                result = await compact_hour(sink, hour, memory_mb=memory_mb, scratch=scratch)
            except (SinkError, CompactionError, pl.exceptions.PolarsError):
                logger.exception("compacting %s failed; it is left as it was", hour.folder)
                report.failed.append(hour.folder)
                continue
            report.zones[zone].add(result)

    return report


async def compact_hour(
    sink: Sink, hour: LakeHour, *, memory_mb: int = DEFAULT_MEMORY_MB, scratch: Path | None = None
) -> HourResult:
    """Merge one hour's files into one compacted file, or finish an interrupted merge."""
    if scratch is not None:
        await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hsl-live-compact-", dir=scratch) as work:
        folder = Path(work)
        names = list(hour.names)
        covered = await _covered(sink, hour, folder)
        if covered:
            logger.info(
                "finishing an earlier compaction of %s: deleting %d merged files",
                hour.folder,
                len(covered),
            )
            for name in sorted(covered):
                await sink.delete(hour.key(name))
        remaining = [name for name in names if name not in covered]
        if len(remaining) == 1 and is_compacted(remaining[0]):
            return HourResult(len(names), 1, finished=len(covered))

        return await _merge_hour(
            sink, hour, remaining, folder, finished=len(covered), memory_mb=memory_mb
        )


async def _covered(sink: Sink, hour: LakeHour, folder: Path) -> set[str]:
    """Download the hour's compacted files; return the files a kept compacted file holds.

    Coverage is followed down from the files nothing covers, so a file is only ever
    deleted when its rows are inside a compacted file that stays.
    """
    present = set(hour.names)
    holds: dict[str, set[str]] = {}
    for name in hour.names:
        if is_compacted(name):
            path = await _download(sink, hour.key(name), folder / name)
            holds[name] = set(await asyncio.to_thread(_inputs_of, path)) & present - {name}

    held = set().union(*holds.values())
    covered: set[str] = set()
    pending = [name for name in holds if name not in held]
    while pending:
        for name in holds.get(pending.pop(), set()) - covered:
            covered.add(name)
            pending.append(name)

    return covered


async def _merge_hour(
    sink: Sink, hour: LakeHour, inputs: list[str], folder: Path, *, finished: int, memory_mb: int
) -> HourResult:
    paths = [folder / name for name in inputs]
    for name, path in zip(inputs, paths, strict=True):
        if not path.exists():
            await _download(sink, hour.key(name), path)

    output = folder / compacted_name(inputs)
    started = time.monotonic()
    rows_before, rows_after = await asyncio.to_thread(
        merge_files, hour.zone, paths, output, memory_mb=memory_mb
    )
    await sink.put_file(hour.key(output.name), output)
    for name in inputs:
        await sink.delete(hour.key(name))

    logger.info(
        "compacted %s: %d files, %d rows -> 1 file, %d rows in %.1f s",
        hour.folder,
        len(inputs),
        rows_before,
        rows_after,
        time.monotonic() - started,
    )
    return HourResult(len(inputs) + finished, 1, rows_before, rows_after, finished)


async def _download(sink: Sink, key: str, path: Path) -> Path:
    await sink.get_file(key, path)
    return path


def _inputs_of(path: Path) -> list[str]:
    metadata = pl.read_parquet_metadata(path)
    try:
        inputs = json.loads(metadata[COMPACTED_FROM])
    except (KeyError, ValueError) as exc:
        raise CompactionError(f"{path.name} has no valid {COMPACTED_FROM} metadata") from exc
    if not isinstance(inputs, list) or not all(isinstance(name, str) for name in inputs):
        raise CompactionError(f"{path.name}: {COMPACTED_FROM} must be a list of file names")

    return inputs


def merge_files(
    zone: Zone, paths: Sequence[Path], output: Path, *, memory_mb: int = DEFAULT_MEMORY_MB
) -> tuple[int, int]:
    """Write the distinct rows of Parquet files, sorted by time, to one zstd file.

    Earlier paths win among duplicates. Memory stays near `memory_mb` (plus a batch of
    rows) whatever the row count: DuckDB deduplicates and sorts out of core, spilling
    into the output's folder, and the sorted rows are re-encoded in batches. Return the
    row counts before and after. Raises CompactionError when a file's columns or types
    are not the zone's schema.
    """
    schema = SCHEMAS[zone]
    for path in paths:
        found = pl.read_parquet_schema(path)
        if pl.Schema(found) != schema:
            raise CompactionError(f"{path.name} does not have the {zone} zone's columns and types")
    # Counted from each file's footer: a scan given a schema would decode every row.
    rows_before = sum(_row_count(path) for path in paths)

    ordered = output.with_name(f"{output.stem}.sorted.parquet")
    _dedup_and_sort(zone, paths, ordered, memory_mb)
    metadata = {
        COMPACTED_FROM: json.dumps([path.name for path in paths]),
        SCHEMA_VERSION_KEY: str(SCHEMA_VERSION),
    }
    _reencode(zone, ordered, output, metadata)
    ordered.unlink()
    rows_after = _row_count(output)

    return rows_before, rows_after


def _dedup_and_sort(zone: Zone, paths: Sequence[Path], output: Path, memory_mb: int) -> None:
    """Write the first row of each key, in time order, with DuckDB under a memory limit.

    The order of the files, then the row number in a file, decides which duplicate is
    first and breaks ties of the sort, as a stable merge of the files in order would.
    """
    # Imported here: the serving process loads DuckDB only once it has an hour to merge.
    import duckdb

    keys = DEDUP_KEYS[zone]
    key_list = ", ".join(f'"{key}"' for key in keys)
    same_key = " AND ".join(f'p."{key}" IS NOT DISTINCT FROM d."{key}"' for key in keys)
    columns = ", ".join(f'p."{name}"' for name in SCHEMAS[zone])
    files = (
        "(SELECT *, list_position($files, filename) AS file_index"
        " FROM read_parquet($files, filename = true, file_row_number = true))"
    )
    # Only keys seen more than once are joined back, so the join's table stays small.
    query = f"""
        COPY (
            WITH repeated AS (
                SELECT {key_list}, min((file_index, file_row_number)) AS kept
                FROM {files} GROUP BY ALL HAVING count(*) > 1
            )
            SELECT {columns} FROM {files} AS p LEFT JOIN repeated AS d ON {same_key}
            WHERE d.kept IS NULL OR d.kept = (p.file_index, p.file_row_number)
            ORDER BY p."{TIME_COLUMN[zone]}", p.received_at, p.file_index, p.file_row_number
        ) TO '{_sql_text(output)}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE {BATCH_ROWS})
    """
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{memory_mb}MB",
        "temp_directory": str(output.parent / "spill"),
        "preserve_insertion_order": False,
        "threads": 1,
    }
    try:
        with duckdb.connect(config=config) as connection:
            connection.execute(query, {"files": [str(path) for path in paths]})
    except duckdb.Error as exc:
        raise CompactionError(f"cannot merge {len(paths)} files into {output.name}: {exc}") from exc


def _row_count(path: Path) -> int:
    rows: int = pl.scan_parquet(path).select(pl.len()).collect().item()
    return rows


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def _reencode(zone: Zone, source: Path, output: Path, metadata: dict[str, str]) -> None:
    """Copy a Parquet file batch by batch into the zone's exact column types.

    DuckDB can only write microsecond timestamps, and the lake promises milliseconds.
    Reading in fixed batches bounds memory, which a plain scan-and-sink does not.
    """
    schema = SCHEMAS[zone]
    rows = _row_count(source)
    typed = [pl.col(name).cast(dtype) for name, dtype in schema.items()]

    def batches(
        columns: list[str] | None, predicate: pl.Expr | None, limit: int | None, _: int | None
    ) -> Iterator[pl.DataFrame]:
        for offset in range(0, rows if limit is None else min(rows, limit), BATCH_ROWS):
            batch = pl.scan_parquet(source).slice(offset, BATCH_ROWS).select(typed)
            batch = batch if predicate is None else batch.filter(predicate)
            yield (batch if columns is None else batch.select(columns)).collect()

    frames = register_io_source(batches, schema=schema)
    frames.sink_parquet(
        output,
        compression="zstd",
        compression_level=COMPACTED_ZSTD_LEVEL,
        row_group_size=COMPACTED_ROW_GROUP_ROWS,
        data_page_size=COMPACTED_PAGE_BYTES,
        metadata=metadata,
    )


class Compactor:
    """The background service: compact the lake's sealed hours every interval.

    A stop cancels a compaction in flight; the protocol makes that safe, and the next
    run finishes it. The compactor owns its sink (by default its own connection, so the
    lake writer closing its sink at shutdown never cuts a compaction short) and closes it.
    """

    name = "compactor"

    def __init__(self, settings: Settings, sink: Sink | None = None) -> None:
        self.sink = sink if sink is not None else open_sink(settings)
        self.interval = settings.compact_interval_seconds
        self.lateness = settings.lateness_seconds
        self.memory_mb = settings.compact_memory_mb
        self.scratch = Path(settings.spool_dir) / "compact"

    async def run(self, stopping: asyncio.Event) -> None:
        """Compact now and every interval until `stopping` is set, then close the sink."""
        logger.info(
            "compactor: every %.0f s, hours sealed %.0f s after they end",
            self.interval,
            self.lateness,
        )
        try:
            await self._loop(stopping)
        finally:
            await self.sink.close()

    async def _loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            compaction = asyncio.create_task(self.run_once(), name="compaction")
            halt = asyncio.create_task(stopping.wait(), name="compactor-stop")
            try:
                await asyncio.wait((compaction, halt), return_when=asyncio.FIRST_COMPLETED)
            finally:
                halt.cancel()
                compaction.cancel()
                await asyncio.wait((compaction, halt))

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await stopping.wait()

    async def run_once(self) -> CompactionReport | None:
        """Compact the lake once; failures are logged, never raised, so ingestion goes on."""
        try:
            report = await compact_lake(
                self.sink,
                now=time.time(),
                lateness_seconds=self.lateness,
                memory_mb=self.memory_mb,
                scratch=self.scratch,
            )
        except SinkError as exc:
            logger.warning("compaction skipped: %s", exc)
            return None
        except Exception:
            # A background pass must never take ingestion down; the next pass retries.
            logger.exception("compaction failed; retrying in %.0f s", self.interval)
            return None
        if report.changed or report.failed:
            for zone, summary in report.zones.items():
                if summary.hours:
                    logger.info(
                        "compaction of %s: %d hours, %d files -> %d, %d rows -> %d",
                        zone,
                        summary.hours,
                        summary.files_before,
                        summary.files_after,
                        summary.rows_before,
                        summary.rows_after,
                    )
        return report


def format_report(report: CompactionReport) -> str:
    """Return a run's summary as a table, one line per zone, then what was left alone."""
    header = "zone       hours  files before  files after   rows before    rows after  duplicates"
    lines = [header]
    for zone, s in report.zones.items():
        duplicates = s.rows_before - s.rows_after
        lines.append(
            f"{zone:<9} {s.hours:>6} {s.files_before:>13} {s.files_after:>12}"
            f" {s.rows_before:>13} {s.rows_after:>13} {duplicates:>11}"
        )
    finished = sum(s.finished for s in report.zones.values())
    if finished:
        lines.append(f"finished an interrupted compaction: {finished} merged files deleted")
    lines.append(f"unsealed hours left alone: {report.unsealed}")
    if report.failed:
        lines.append(f"failed (left as they were, see the log): {', '.join(report.failed)}")

    return "\n".join(lines)

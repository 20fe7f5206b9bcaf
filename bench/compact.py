"""Benchmark compaction of one processed-zone hour: wall time and peak memory.

Measured on 2 cores (60 parts, about 1 % duplicates and 1 % late rows), peak VmHWM:
before (whole hour in Polars)        1M rows:  2.2 s, 1,255 MiB;  5M:  22 s, 3,804 MiB.
after (DuckDB, compact_memory_mb 256) 1M rows: 12.1 s,   405 MiB;  5M: 110 s,   432 MiB.
zstd 15, 262,144-row groups (2026-12-04) 1M rows: 10.5 s, 479 MiB (+401), 33.8 MiB written;
5M: 115 s, 561 MiB (+483). At level 15 with 65,536-row groups, 1M rows took 8.1 s, 419 MiB,
and wrote 36.3 MiB.

Each measurement runs in a fresh Python process, so the peak resident set size it reports
(`VmHWM`) belongs to that compaction alone; `extra` is that peak minus the process's
size just before merging (interpreter, imports and nothing else).

`--sink local` or `--sink s3` measures a whole `compact_lake` run instead of the merge
alone: download of the parts, merge, upload of the merged file and deletes, against a lake
folder or a moto S3 server run in its own process (so its memory is not counted). It also
reports each phase's rise above the memory at its start. Peak VmHWM, upload phase's rise:
                                       1M rows (39 MiB merged)    5M rows
before (merged file uploaded as bytes) local 412, +39; s3 427, +72   s3 615, +377
after  (put_file: copy / multipart)    local 409,  +0; s3 421, +62   s3 447, +50; local 433
The merge phase (DuckDB's limit plus re-encoding) is then the peak: +323 MiB at 1M rows.

`python -m bench.compact [--quick] [--rows N ...] [--sink merge|local|s3]` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import polars as pl

from hsl_live import compact
from hsl_live.compact import CompactionReport, compact_lake, merge_files
from hsl_live.schema import SCHEMAS, Zone, partition_path
from hsl_live.settings import Settings
from hsl_live.sink import Sink, open_sink

HOUR = datetime(2024, 2, 13, 16, tzinfo=UTC)
PARTS = 60
VEHICLES = 1500
LATE_SHARE = 0.01
DUPLICATE_SHARE = 0.01
SINKS = ("merge", "local", "s3")
BUCKET = "bench-lake"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def make_hour(folder: Path, rows: int, parts: int = PARTS) -> list[Path]:
    """Write `parts` processed-zone part files holding about `rows` rows of one hour.

    Like the batcher's output: each part covers a slice of receipt time and is sorted by
    `tst`; about 1 % of rows arrive late (in a later part) and 1 % are duplicates of an
    earlier row received again in the next part.
    """
    frame = _events(rows)
    per_part = -(-rows // parts)
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    noise = index.hash(7) % 10_000
    late = noise < int(LATE_SHARE * 10_000)
    slot = index // per_part
    spread = (index.hash(11) % parts).cast(pl.Int64)
    part = pl.when(late).then(pl.max_horizontal(slot, spread)).otherwise(slot)
    duplicate = noise >= 10_000 - DUPLICATE_SHARE * 10_000
    frame = frame.with_columns(part.alias("_part"), duplicate.alias("_dup"))

    again = frame.filter("_dup").with_columns(
        (pl.col("_part") + 1).clip(upper_bound=parts - 1),
        (pl.col("received_at") + pl.duration(seconds=2)),
    )
    frame = pl.concat([frame, again])

    paths = []
    for group in frame.partition_by("_part", maintain_order=False):
        seq = int(group["_part"][0])
        path = folder / f"part-{1707840000000 + seq * 60_000}-bench-{seq:04d}.parquet"
        group.drop("_part", "_dup").sort("tst").write_parquet(path, compression="zstd")
        paths.append(path)

    return sorted(paths)


def _events(rows: int) -> pl.DataFrame:
    schema = SCHEMAS[Zone.PROCESSED]
    start = int(HOUR.timestamp() * 1000)
    index = pl.int_range(rows, dtype=pl.Int64)
    veh = (index.hash(1) % VEHICLES + 1).cast(pl.Int32)
    oper = (veh % 30 + 6).cast(pl.Int16)
    route = (veh % 400 + 1000).cast(pl.String)
    tst = pl.lit(start) + index * 3_600_000 // rows
    values: dict[str, pl.Expr] = {
        "received_at": tst + 300 + index.hash(2) % 900,
        "topic_prefix": pl.lit("/hfp/"),
        "topic_version": pl.lit("v2"),
        "journey_type": pl.lit("journey"),
        "is_ongoing": pl.lit(True),
        "event_type": pl.when(index.hash(3) % 20 == 0).then(pl.lit("DOO")).otherwise(pl.lit("VP")),
        "mode": pl.when(veh % 5 == 0).then(pl.lit("tram")).otherwise(pl.lit("bus")),
        "owner_operator_id": oper,
        "vehicle_number": veh,
        "unique_vehicle_id": pl.format("{}/{}", oper, veh),
        "route_id": route,
        "direction_id": (veh % 2 + 1).cast(pl.Int8),
        "headsign": pl.format("Headsign {}", veh % 400),
        "journey_start_time": pl.format("{}:00", veh % 24),
        "next_stop_id": (index.hash(4) % 9000 + 1_000_000).cast(pl.String),
        "geohash_level": (index.hash(5) % 5).cast(pl.Int8),
        "topic_latitude": pl.lit(60.17),
        "topic_longitude": pl.lit(24.94),
        "desi": (veh % 400).cast(pl.String),
        "dir": (veh % 2 + 1).cast(pl.Int8),
        "oper": oper,
        "veh": veh,
        "tst": tst,
        "tsi": tst // 1000,
        "spd": (index.hash(6) % 2000).cast(pl.Float64) / 100,
        "hdg": (index.hash(8) % 360).cast(pl.Int16),
        "lat": 60.1 + (index.hash(9) % 100_000).cast(pl.Float64) / 1e6,
        "long": 24.8 + (index.hash(10) % 300_000).cast(pl.Float64) / 1e6,
        "acc": (index.hash(12) % 300).cast(pl.Float64) / 100 - 1.5,
        "dl": (index.hash(13) % 600).cast(pl.Int32) - 300,
        "odo": (index.hash(14) % 30_000).cast(pl.Float64),
        "drst": index.hash(15) % 2 == 0,
        "oday": pl.lit(HOUR.date()),
        "jrn": (veh % 900).cast(pl.Int32),
        "line": (veh % 400).cast(pl.Int32),
        "start": pl.format("{}:00", veh % 24),
        "loc": pl.lit("GPS"),
        "stop": pl.when(index.hash(16) % 4 == 0).then(index.hash(17) % 9000 + 1_000_000),
        "route": route,
        "occu": pl.lit(0),
        "seq": pl.lit(1),
        "label": pl.lit(None, pl.String),
    }
    frame: pl.DataFrame = pl.select(*(value.alias(name) for name, value in values.items()))
    frame = frame.with_columns(pl.lit(None).alias(name) for name in schema if name not in values)

    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def _measure(paths: list[Path], output: Path) -> dict[str, float]:
    """Merge in this process and return seconds, rows and memory in MiB."""
    before = _rss_mib()
    started = time.perf_counter()
    rows_before, rows_after = merge_files(Zone.PROCESSED, paths, output)
    seconds = time.perf_counter() - started
    peak = _status_mib("VmHWM")

    return {
        "seconds": round(seconds, 2),
        "rows_before": rows_before,
        "rows_after": rows_after,
        "peak_rss_mib": round(peak),
        "extra_mib": round(peak - before),
        "output_mib": round(output.stat().st_size / 2**20, 1),
    }


def _measure_lake(lake_url: str, endpoint_url: str | None, scratch: Path) -> dict[str, float]:
    """Compact the lake in this process and return seconds, rows and memory in MiB.

    Besides the whole run's peak, each phase's rise above the memory at its start:
    downloading the parts, merging them, and uploading the result (then deletes).
    """
    settings = Settings(lake_url=lake_url, s3_endpoint_url=endpoint_url)
    sink = open_sink(settings)
    now = (HOUR + timedelta(days=1)).timestamp()
    phases = _Phases()
    before = _rss_mib()
    started = time.perf_counter()
    with phases.around_merge():
        report = asyncio.run(_compact(sink, now, scratch))
    seconds = time.perf_counter() - started
    phases.end("upload_extra_mib")
    summary = report.zones[Zone.PROCESSED]

    return {
        "seconds": round(seconds, 2),
        "rows_before": summary.rows_before,
        "rows_after": summary.rows_after,
        "peak_rss_mib": round(phases.peak),
        "extra_mib": round(phases.peak - before),
        **{name: round(value) for name, value in phases.rises.items()},
        "failed": len(report.failed),
    }


class _Phases:
    """Split a run's peak memory at the merge, resetting VmHWM between phases.

    Writing 5 to /proc/self/clear_refs resets VmHWM to the current size, so the next
    reading is that phase's peak; the run's peak is the largest of them.
    """

    def __init__(self) -> None:
        self.start = _rss_mib()
        self.peak = 0.0
        self.rises: dict[str, float] = {}

    def end(self, name: str) -> None:
        high = _status_mib("VmHWM")
        self.peak = max(self.peak, high)
        self.rises[name] = high - self.start
        self.start = _rss_mib()
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")

    @contextmanager
    def around_merge(self) -> Iterator[None]:
        """Patch compaction's merge_files to end a phase before and after it runs."""
        merge = compact.merge_files

        def measured(*args: Any, **kwargs: Any) -> tuple[int, int]:
            self.end("download_extra_mib")
            try:
                return merge(*args, **kwargs)
            finally:
                self.end("merge_extra_mib")

        compact.merge_files = measured
        try:
            yield
        finally:
            compact.merge_files = merge


async def _compact(sink: Sink, now: float, scratch: Path) -> CompactionReport:
    try:
        return await compact_lake(sink, now=now, lateness_seconds=3600, scratch=scratch)
    finally:
        await sink.close()


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _status_mib(field: str) -> float:
    # VmHWM, unlike ru_maxrss, starts afresh at exec: it is not the forking parent's peak.
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(rows: int, sink: str = "merge") -> dict[str, float]:
    """Build an hour of `rows` rows in 60 parts and compact it in a fresh process.

    `sink` "merge" times `merge_files` alone; "local" and "s3" a whole `compact_lake`.
    """
    with tempfile.TemporaryDirectory(prefix="hsl-live-bench-") as scratch:
        folder = Path(scratch)
        paths = make_hour(folder, rows)
        command = [sys.executable, "-m", "bench.compact", "--child", scratch]
        if sink == "merge":
            result = subprocess.run(command, check=True, capture_output=True, text=True)
        elif sink == "local":
            lake = folder / "lake"
            _move_into(lake, paths)
            command += ["--lake", str(lake)]
            result = subprocess.run(command, check=True, capture_output=True, text=True)
        else:
            with _moto_server() as endpoint:
                _upload(endpoint, paths)
                command += ["--lake", f"s3://{BUCKET}/lake", "--endpoint", endpoint]
                env = {**os.environ, **FAKE_AWS}
                result = subprocess.run(
                    command, check=True, capture_output=True, text=True, env=env
                )

    measured: dict[str, float] = json.loads(result.stdout)
    return measured


def _move_into(lake: Path, paths: list[Path]) -> None:
    folder = lake / partition_path(Zone.PROCESSED, HOUR)
    folder.mkdir(parents=True)
    for path in paths:
        shutil.move(path, folder / path.name)


def _upload(endpoint: str, paths: list[Path]) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    client.create_bucket(Bucket=BUCKET)
    for path in paths:
        key = f"lake/{partition_path(Zone.PROCESSED, HOUR)}/{path.name}"
        client.upload_file(str(path), BUCKET, key)
        path.unlink()


def _boto_credentials() -> dict[str, str]:
    return {
        "region_name": FAKE_AWS["AWS_DEFAULT_REGION"],
        "aws_access_key_id": FAKE_AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
    }


@contextmanager
def _moto_server() -> Iterator[str]:
    """Run moto's S3 in its own process on a free local port; yield its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"moto server did not listen on port {port} within 10 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(quick: bool) -> dict[str, object]:
    """Return time and peak memory of compacting 1M and 5M processed rows (quick: 200k)."""
    sizes = [200_000] if quick else [1_000_000, 5_000_000]
    return {f"compact_{rows}_rows": measure(rows) for rows in sizes}


def _child(scratch: str, lake: str | None, endpoint: str | None) -> None:
    folder = Path(scratch)
    if lake is not None:
        print(json.dumps(_measure_lake(lake, endpoint, folder / "work")))
        return
    paths = sorted(folder.glob("part-*.parquet"))
    print(json.dumps(_measure(paths, folder / "compacted.parquet")))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compact")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, nargs="*")
    parser.add_argument("--sink", choices=SINKS, default="merge")
    parser.add_argument("--child")
    parser.add_argument("--lake")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.lake, args.endpoint)
        return
    sizes = args.rows or ([200_000] if args.quick else [1_000_000, 5_000_000])
    for rows in sizes:
        print(rows, args.sink, measure(rows, args.sink), flush=True)


if __name__ == "__main__":
    main()

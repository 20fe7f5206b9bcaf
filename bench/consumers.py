"""Consumer processes of the ingest benchmark: a stock aiomqtt loop and hsl_live's pipeline.

Each subscribes, prints "ready", receives `--count` messages, and prints one JSON
line: when the last message was done (monotonic clock, shared by every process),
CPU seconds and peak RSS. The pipeline also reports what it wrote to its lake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import polars as pl

from bench.common import TOPIC_FILTER, own_usage, pin
from hsl_live.cli import assemble
from hsl_live.clock import Clock
from hsl_live.pipeline import Pipeline
from hsl_live.settings import Settings
from hsl_live.source import MqttSource

POLL_SECONDS = 0.005


async def count_aiomqtt(port: int, count: int) -> dict[str, Any]:
    """Count messages with aiomqtt's documented `async for message in client.messages` loop."""
    received = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-aiomqtt") as client:
        await client.subscribe(TOPIC_FILTER)
        print("ready", flush=True)
        async for _ in client.messages:
            received += 1
            if received >= count:
                break
        finished = time.monotonic()

    return {"received": received, "finished": finished, **_usage()}


async def run_pipeline(port: int, count: int, directory: Path) -> dict[str, Any]:
    """Run hsl_live's pipeline (MQTT source, lake, live view) until `count` messages are in."""
    settings = Settings(
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        mqtt_client_id="bench-pipeline",
        topics=(TOPIC_FILTER,),
        lake_url=str(directory / "lake"),
        spool_dir=str(directory / "spool"),
        writer_id="bench",
    )
    source = MqttSource(settings)
    # The same assembly as `hsl-live run`, less the HTTP server.
    pipeline = assemble(settings, source, Clock(), serve=False)
    watcher = asyncio.create_task(_stop_after(pipeline, source, count))
    await pipeline.run()
    finished = time.monotonic()
    with contextlib.suppress(asyncio.CancelledError):
        watcher.cancel()
        await watcher

    stats = pipeline.ingest.stats
    return {
        "received": stats.messages,
        "finished": finished,
        "dropped": source.stats.dropped,
        "events": stats.events,
        "rejected": stats.rejected,
        "duplicates": stats.duplicate_messages + stats.duplicate_events,
        "vehicles": len(pipeline.ingest.vehicles),
        "lake": lake_figures(directory / "lake"),
        **_usage(),
    }


async def _stop_after(pipeline: Pipeline, source: MqttSource, count: int) -> None:
    # The source and ingest keep plain counters and no events, so this polls them.
    while not source.connected:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    print("ready", flush=True)
    while source.stats.messages < count:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    while pipeline.ingest.stats.messages < source.stats.messages - source.stats.dropped:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    pipeline.request_stop()


def lake_figures(lake: Path) -> dict[str, dict[str, int]]:
    """Return the files, rows and bytes of each zone of a local lake."""
    figures: dict[str, dict[str, int]] = {}
    for zone in ("raw", "processed", "rejected"):
        files = sorted((lake / zone).rglob("*.parquet"))
        rows = sum(pl.scan_parquet(path).select(pl.len()).collect().item() for path in files)
        size = sum(path.stat().st_size for path in files)
        figures[zone] = {"files": len(files), "rows": rows, "bytes": size}
    return figures


def _usage() -> dict[str, float]:
    usage = own_usage()
    return {"cpu_seconds": usage.cpu_seconds, "peak_rss_bytes": usage.peak_rss_bytes}


def main() -> None:
    """Run one consumer from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.consumers")
    parser.add_argument("kind", choices=("aiomqtt", "pipeline"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="write a pyinstrument report")
    parser.add_argument("--gc-threshold", type=int, default=None, help="first GC generation size")
    args = parser.parse_args()
    pin(args.cpu)
    if args.gc_threshold is not None:
        gc.freeze()
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    if args.kind == "aiomqtt":
        work = count_aiomqtt(args.port, args.count)
    else:
        work = run_pipeline(args.port, args.count, args.dir)
    if args.profile is None:
        result = asyncio.run(work)
    else:
        from pyinstrument import Profiler

        with Profiler(async_mode="disabled", interval=0.0005) as profiler:
            result = asyncio.run(work)
        args.profile.write_text(profiler.output_text(unicode=True, show_all=False))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()

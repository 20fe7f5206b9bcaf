"""The `hsl-live` command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hsl_live import __version__, publish, simulate
from hsl_live.clock import Clock
from hsl_live.compact import CompactionReport, Compactor, compact_lake, format_report
from hsl_live.errors import HslLiveError
from hsl_live.lake import Lake
from hsl_live.pipeline import Pipeline, Source, install_signal_handlers
from hsl_live.record import Recorder, RecordStats, install_stop_handlers
from hsl_live.replay import ReplaySource
from hsl_live.server import attach_web
from hsl_live.settings import Settings, load_settings
from hsl_live.sink import open_sink
from hsl_live.source import MqttSource
from hsl_live.store import VehicleStore

logger = logging.getLogger("hsl_live")

# Flags that override a setting of the same name.
SETTING_FLAGS = (
    ("--mqtt-url", "mqtt_url", str),
    ("--topics", "topics", str),
    ("--lake-url", "lake_url", str),
    ("--spool-dir", "spool_dir", str),
    ("--host", "host", str),
    ("--port", "port", str),
    ("--log-level", "log_level", str),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        _configure_logging(settings.log_level)
        status: int = args.command(args, settings)
        return status
    except HslLiveError as exc:
        print(f"hsl-live: {exc}", file=sys.stderr)
        return 2
    except ExceptionGroup as group:
        # A task of the pipeline failed on bad input (say, an unreadable capture): report
        # it like any other start-up error rather than as a task-group traceback.
        ours, others = group.split(HslLiveError)
        if ours is None or others is not None:
            raise
        for error in _leaves(ours):
            print(f"hsl-live: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _leaves(group: BaseExceptionGroup[HslLiveError]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves += _leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return leaves


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsl-live", description="HSL's live vehicle feed as a live map, a lake and SQL."
    )
    parser.add_argument("--version", action="version", version=f"hsl-live {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    replay = _command(commands, "replay", _replay, "run the pipeline on capture files")
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE")
    replay.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="1 = recorded pace, 10 = ten times faster, 0 = as fast as possible (default)",
    )
    replay.add_argument(
        "--serve",
        action="store_true",
        help="keep serving the map and API after the input ends, until SIGINT/SIGTERM",
    )

    _command(commands, "run", _run_live, "follow the live feed: lake, map, SSE and API")

    record = _command(commands, "record", _record, "write what the broker delivers to a capture")
    record.add_argument("file", type=Path, metavar="FILE", help=".gz or .zst to compress")
    record.add_argument("--max-messages", type=int, default=None, help="stop after N messages")
    record.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    record.add_argument(
        "--rotate-seconds", type=float, default=None, help="start a new timestamped file this often"
    )

    simulate = _command(
        commands, "simulate", _simulate, "publish synthetic HFP traffic, or write it to a capture"
    )
    simulate.add_argument("--vehicles", type=int, default=400)
    simulate.add_argument("--duration", type=float, default=None, help="seconds of traffic")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--duplicates", type=float, default=0.0, help="share sent twice, 0-1")
    simulate.add_argument("--malformed", type=float, default=0.0, help="share broken, 0-1")
    simulate.add_argument(
        "--rate-scale",
        default="1",
        help="1 = real time, 10 = ten times faster, max = as fast as the broker takes it",
    )
    simulate.add_argument("--output", type=Path, default=None, help="write a capture instead")

    _command(commands, "compact", _compact, "merge each sealed lake hour into one file per zone")

    run_query = _command(commands, "query", _query, "run a view or SQL on the local lake (DuckDB)")
    run_query.add_argument(
        "sql", nargs="?", metavar="NAME_OR_SQL", help="a view name, or SQL in Athena's dialect"
    )
    run_query.add_argument("--format", default="table", help="table, csv or json")
    run_query.add_argument("--limit", type=int, default=None, help="print at most this many rows")

    ddl = _command(commands, "athena-ddl", _athena_ddl, "print the Athena tables and views")
    ddl.add_argument("--location", help="the lake on S3, s3://bucket/prefix (default: lake URL)")
    ddl.add_argument("--database", default=None, help="Glue database (default hsl_live)")
    ddl.add_argument("--start-year", type=int, default=None, help="first projected year")
    ddl.add_argument("--out", type=Path, help="write one NN-name.sql file per statement here")

    return parser


def _command(commands: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    command: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    command.set_defaults(command=handler)
    command.add_argument("--config", type=Path, help="TOML file with settings")
    for flag, _, kind in SETTING_FLAGS:
        command.add_argument(flag, type=kind, default=None)
    return command


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {key: getattr(args, key, None) for _, key, _ in SETTING_FLAGS}
    return load_settings(config_file=args.config, overrides=overrides)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.speed < 0:
        raise HslLiveError(f"--speed must be 0 (as fast as possible) or positive, got {args.speed}")
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        raise HslLiveError(f"no such capture file: {', '.join(missing)}")

    source = ReplaySource(args.files, speed=args.speed)
    pipeline = assemble(settings, source, Clock(replay=True), serve=True)
    pipeline.serve_after_input = args.serve
    asyncio.run(_run(pipeline))
    print(_summary(pipeline, source))
    return 0


def _run_live(args: argparse.Namespace, settings: Settings) -> int:
    source = MqttSource(settings)
    pipeline = assemble(settings, source, Clock(), serve=True)
    pipeline.metrics.register(source.collect)
    asyncio.run(_run(pipeline))
    return 0


def _record(args: argparse.Namespace, settings: Settings) -> int:
    for flag in ("max_messages", "duration", "rotate_seconds"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise HslLiveError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    stats = asyncio.run(_record_capture(args, settings))
    print(f"recorded {stats.messages} messages to {', '.join(stats.files)}")
    return 0


async def _record_capture(args: argparse.Namespace, settings: Settings) -> RecordStats:
    source = MqttSource(settings)
    recorder = Recorder(
        source,
        args.file,
        max_messages=args.max_messages,
        duration=args.duration,
        rotate_seconds=args.rotate_seconds,
    )
    install_stop_handlers(source.stop)
    return await recorder.run()


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    simulation = simulate.Simulation(
        vehicles=args.vehicles,
        seed=args.seed,
        duration=args.duration,
        duplicates=args.duplicates,
        malformed=args.malformed,
    )
    simulate.check(simulation)
    rate_scale = publish.parse_rate_scale(args.rate_scale)
    if args.output is not None:
        if args.duration is None:
            raise HslLiveError("--output needs --duration (seconds of traffic to write)")
        count = publish.write_capture(simulate.generate(simulation), args.output)
        print(f"wrote {count} messages to {args.output}")
        return 0

    messages = simulate.generate(simulation)
    count = asyncio.run(
        publish.publish(
            messages,
            settings.mqtt_url,
            ws_path=settings.mqtt_ws_path,
            ca_file=settings.mqtt_ca_file,
            client_id=f"{settings.mqtt_client_id}-simulate",
            rate_scale=rate_scale,
        )
    )
    print(f"published {count} messages to {settings.mqtt_url}")
    return 0


def _compact(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.is_s3 and not Path(settings.lake_url).is_dir():
        raise HslLiveError(f"no lake at {settings.lake_url}: not a directory")
    report = asyncio.run(_compact_lake(settings))
    print(format_report(report))
    return 1 if report.failed else 0


async def _compact_lake(settings: Settings) -> CompactionReport:
    sink = open_sink(settings)
    try:
        await sink.check()
        return await compact_lake(
            sink,
            now=time.time(),
            lateness_seconds=settings.lateness_seconds,
            memory_mb=settings.compact_memory_mb,
            scratch=Path(settings.spool_dir) / "compact",
        )
    finally:
        await sink.close()


def _query(args: argparse.Namespace, settings: Settings) -> int:
    # DuckDB and sqlglot load only for the commands that use them, not for `run`.
    from hsl_live import query

    if args.format not in query.FORMATS:
        choices = ", ".join(query.FORMATS)
        raise HslLiveError(f"--format must be one of {choices}, got {args.format!r}")
    if args.sql is None:
        print("\n".join(query.load_views()))
        return 0
    if settings.is_s3:
        raise HslLiveError(
            f"hsl-live query reads a local lake, and the lake URL is {settings.lake_url}; "
            "query it with Athena (hsl-live athena-ddl) or pass --lake-url with a local copy"
        )
    result = query.run_query(Path(settings.lake_url), args.sql, args.limit)
    print(query.format_result(result, args.format))
    return 0


def _athena_ddl(args: argparse.Namespace, settings: Settings) -> int:
    location = args.location or (settings.lake_url if settings.is_s3 else None)
    if location is None:
        raise HslLiveError("--location s3://bucket/prefix is required when the lake is local")
    from hsl_live import athena

    database = args.database or athena.DEFAULT_DATABASE
    statements = athena.render_statements(location, database, args.start_year)
    if args.out is None:
        print("\n".join(sql for _, sql in statements), end="")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for number, (name, sql) in enumerate(statements, start=1):
        (args.out / f"{number:02d}-{name}.sql").write_text(sql, encoding="utf-8")
    print(f"wrote {len(statements)} statements to {args.out}")
    return 0


def assemble(settings: Settings, source: Source, clock: Clock, *, serve: bool) -> Pipeline:
    """Build the pipeline every command shares: the source, plus the lake and live view.

    `serve` starts the HTTP server (map, SSE, API) beside ingestion.
    """
    lake = Lake(settings)
    store = VehicleStore(
        clock,
        stale_seconds=settings.stale_seconds,
        trail_points=settings.trail_points,
        ring_size=settings.resume_changes,
    )
    # A replay writes old hours that already look sealed, so only a live run compacts.
    services = [] if clock.replay else [Compactor(settings)]
    pipeline = Pipeline(
        settings, lake.recovering(source), clock, lake=lake, live=store, services=services
    )
    pipeline.metrics.register(lake.collect)
    pipeline.metrics.register(store.collect)
    if serve:
        attach_web(pipeline, store)
    return pipeline


async def _run(pipeline: Pipeline) -> None:
    install_signal_handlers(pipeline)
    # What start-up built (modules, settings, caches) lives as long as the process; moving
    # it out of the collector's view keeps full collections short on the per-message path.
    gc.freeze()
    await pipeline.run()


def _summary(pipeline: Pipeline, source: ReplaySource) -> str:
    stats = pipeline.ingest.stats
    lines = [
        f"lines                {source.stats.lines}",
        f"  blank              {source.stats.blank}",
        f"  broken             {source.stats.broken}",
        f"messages             {stats.messages}",
        f"  duplicate messages {stats.duplicate_messages}",
        f"  rejected           {stats.rejected}",
        f"  duplicate events   {stats.duplicate_events}",
        f"events               {stats.events}",
    ]
    lines += [f"  {kind:<18} {n}" for kind, n in sorted(stats.events_by_type.items())]
    lines += ["rejected by reason"] if stats.rejected else []
    lines += [f"  {reason:<18} {n}" for reason, n in sorted(stats.rejected_by_reason.items())]
    lines.append(f"distinct vehicles    {len(pipeline.ingest.vehicles)}")
    return "\n".join(lines)

"""A synthetic HFP capture with known quirks, and a lake built from it, for the view tests."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from hsl_live import schema
from hsl_live.capture import RawMessage, format_line, read_capture
from hsl_live.clock import Clock
from hsl_live.hfp import Event, Rejection
from hsl_live.ingest import Ingest
from hsl_live.schema import Zone

START = datetime(2024, 2, 13, 6, 57, 0, tzinfo=UTC)
GEOHASH = "60;24/19/74/97"
# Duplicates in the synthetic capture lie up to minutes apart; dedup over a wide window.
ANALYTICS_DEDUP_SECONDS = 600.0


def stamp(moment: datetime) -> str:
    """Return HFP's ISO-8601 UTC text with milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Vehicle:
    """A vehicle on one trip, with the fields every message of it repeats."""

    mode: str
    oper: int
    veh: int
    route: str
    direction: int
    start: str
    lat: float
    lon: float
    journey: str = "journey"

    def topic(self, event: str, temporal: str = "ongoing", level: int = 4) -> str:
        """Return the v2 topic of one of this vehicle's messages."""
        trip = f"{self.route}/{self.direction}/Kamppi/{self.start}/1130106/{level}/{GEOHASH}"
        return (
            f"/hfp/v2/{self.journey}/{temporal}/{event.lower()}/{self.mode}/"
            f"{self.oper:04d}/{self.veh:05d}/{trip}"
        )

    def payload(self, event: str, tst: datetime, **fields: Any) -> bytes:
        """Return the JSON payload of one message, `fields` overriding the defaults."""
        body: dict[str, Any] = {
            "desi": self.route[1:],
            "dir": str(self.direction),
            "oper": self.oper,
            "veh": self.veh,
            "tst": stamp(tst),
            "tsi": int(tst.timestamp()),
            "spd": 5.0,
            "hdg": 90,
            "lat": self.lat,
            "long": self.lon,
            "acc": 0.0,
            "dl": 0,
            "odo": 100,
            "drst": 0,
            "oday": tst.date().isoformat(),
            "jrn": 1,
            "line": 1,
            "start": self.start,
            "loc": "GPS",
            "stop": None,
            "route": self.route,
            "occu": 0,
        }
        body.update(fields)
        return msgspec.json.encode({event: body})


@dataclass
class Capture:
    """Messages in arrival order."""

    messages: list[RawMessage] = field(default_factory=list)

    def add(self, received: datetime, topic: str, payload: bytes) -> None:
        """Append one message."""
        self.messages.append(RawMessage(received, topic, payload))


def synthetic_capture(extra_days_ago: Sequence[int] = ()) -> list[RawMessage]:
    """Return about 1,900 messages over 06:57-07:03 UTC on 2024-02-13, with known quirks.

    Four vehicles on three routes at 1 Hz; speeds that cross HSL's speed classes, doors open
    and closed, delays on both sides of zero, null positions, a GPS jump, a 90 s silence,
    clocks ahead of the server, upcoming and deadrun copies, transport duplicates, duplicate
    events with different bytes, broken messages, and stop events (ARS/ARR/PDE/PAS/DEP).
    `extra_days_ago` adds a few VPs of route 9999 that many days before now.
    """
    rng = random.Random(7)
    capture = Capture()
    fleet = [
        Vehicle("bus", 18, 101, "1052", 1, "08:50", 60.1700, 24.9300),
        Vehicle("bus", 18, 102, "1052", 2, "08:40", 60.1800, 24.9500),
        Vehicle("tram", 40, 201, "1004", 1, "08:45", 60.1650, 24.9400),
        Vehicle("bus", 12, 301, "4400", 1, "08:55", 60.2000, 24.9990),
    ]
    for vehicle in fleet:
        _drive(capture, vehicle, rng)
    _stop_visits(capture, fleet[0], fleet[1])
    _deadrun(capture)
    _broken(capture)
    for days in extra_days_ago:
        _recent(capture, days)

    capture.messages.sort(key=lambda m: m.received_at)
    return capture.messages


def _drive(capture: Capture, vehicle: Vehicle, rng: random.Random) -> None:
    for second in range(360):
        if vehicle.veh == 301 and 100 <= second < 190:
            continue  # a silence longer than the movement view's 60 s step limit
        tst = START + timedelta(seconds=second, milliseconds=rng.randrange(1000))
        speed = rng.choice([0.0, 0.1, 0.26, 0.27, 0.5, 0.83, 3.0, 8.0, 12.5])
        doors = 1 if speed < 1 and rng.random() < 0.3 else 0
        vehicle.lat += speed * 0.6 / 111_000
        vehicle.lon += speed * 0.8 / 55_000
        lat: float | None = round(vehicle.lat, 6)
        lon: float | None = round(vehicle.lon, 6)
        if vehicle.veh == 301 and second % 17 == 0:
            lat = lon = None  # position unavailable
        if vehicle.veh == 102 and second == 200:
            lat, lon = 60.5, 25.5  # a GPS jump of tens of kilometres
        fields = {
            "spd": speed,
            "drst": doors,
            "dl": rng.randrange(-420, 120),
            "lat": lat,
            "long": lon,
        }
        if vehicle.mode == "tram" and second % 11 == 0:
            fields["drst"] = None
        skew = rng.uniform(0.05, 3.0) if second % 29 else -rng.uniform(0.1, 2.0)
        received = tst + timedelta(seconds=skew)
        topic = vehicle.topic("VP")
        payload = vehicle.payload("VP", tst, **fields)
        capture.add(received, topic, payload)
        if second % 13 == 0:  # the feed delivers an exact copy
            capture.add(received + timedelta(milliseconds=20), topic, payload)
        if second % 23 == 0:  # the same event again, under another geohash level
            capture.add(
                received + timedelta(milliseconds=40), vehicle.topic("VP", level=5), payload
            )
        if vehicle.veh == 101 and second >= 340:  # also announced as the next trip
            capture.add(received, vehicle.topic("VP", temporal="upcoming"), payload)


def _stop_visits(capture: Capture, first: Vehicle, second: Vehicle) -> None:
    plan = START.replace(minute=58, second=0, microsecond=0)
    events = [
        (first, "ARR", 1130106, 62.0, plan),
        (first, "ARS", 1130106, 64.5, plan),
        (first, "PDE", 1130106, 80.25, plan),
        (first, "PDE", 1130106, 85.0, plan),  # doors reopened, ready to depart again
        (first, "DEP", 1130106, 88.0, plan),
        (first, "ARR", 1130107, 150.0, plan + timedelta(minutes=2)),
        (first, "PAS", 1130107, 155.5, plan + timedelta(minutes=2)),
        (first, "DEP", 1130107, 158.0, plan + timedelta(minutes=2)),
        (second, "ARR", 1140001, 175.0, plan + timedelta(minutes=1)),
        (second, "DEP", 1140001, 201.125, plan + timedelta(minutes=1)),
        # Across the hour boundary: arrives 06:59:50, departs 07:00:20.
        (second, "ARS", 1140002, 170.0 + 0, plan + timedelta(minutes=2)),
        (second, "PDE", 1140002, 200.0, plan + timedelta(minutes=2)),
        (first, "ARS", 1130108, 250.0, plan + timedelta(minutes=3)),
    ]
    for vehicle, event, stop, seconds, planned in events:
        tst = START + timedelta(seconds=seconds)
        payload = vehicle.payload(
            event, tst, stop=stop, ttarr=stamp(planned), ttdep=stamp(planned), spd=0.0
        )
        capture.add(tst + timedelta(seconds=0.4), vehicle.topic(event), payload)


def _deadrun(capture: Capture) -> None:
    vehicle = Vehicle("bus", 22, 501, "", 1, "", 60.19, 24.95, journey="deadrun")
    for second in range(0, 300, 10):
        tst = START + timedelta(seconds=second)
        topic = "/hfp/v2/deadrun/ongoing/vp/bus/0022/00501"
        payload = vehicle.payload("VP", tst, desi=None, dir=None, route=None, start=None)
        capture.add(tst + timedelta(seconds=0.5), topic, payload)


def _broken(capture: Capture) -> None:
    good = Vehicle("bus", 18, 101, "1052", 1, "08:50", 60.17, 24.93)
    for second in (30, 90, 200, 330):
        received = START + timedelta(seconds=second, milliseconds=777)
        capture.add(received, good.topic("VP"), b'{"VP":{"veh":101,')
    missing = msgspec.json.encode({"VP": {"veh": 101, "spd": 1.0}})
    capture.add(START + timedelta(seconds=45), good.topic("VP"), missing)
    capture.add(START + timedelta(seconds=250), "/hfp/v2/journey/ongoing/vp/bus/xx", b'{"VP":{}}')


def _recent(capture: Capture, days_ago: int) -> None:
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    vehicle = Vehicle("bus", 18, 999, "9999", 1, "10:00", 60.2, 24.9)
    for second in range(5):
        tst = now - timedelta(days=days_ago) + timedelta(seconds=second)
        payload = vehicle.payload("VP", tst, dl=-100 * (second + days_ago))
        capture.add(tst + timedelta(seconds=0.2), vehicle.topic("VP"), payload)


@dataclass
class Lake:
    """What a capture became: the lake folder and the rows written to each zone."""

    path: Path
    raw: list[RawMessage]
    events: list[Event]
    rejected: list[Rejection]


class _Collector:
    def __init__(self) -> None:
        self.raw: list[RawMessage] = []
        self.events: list[Event] = []
        self.rejected: list[Rejection] = []

    def add_raws(self, messages: Sequence[RawMessage]) -> None:
        self.raw += messages

    def add_events(self, events: Sequence[Event]) -> None:
        self.events += events

    def add_rejected(self, rejection: Rejection) -> None:
        self.rejected.append(rejection)


def write_capture(path: Path, messages: Iterable[RawMessage]) -> None:
    """Write messages as capture lines."""
    with path.open("wb") as out:
        for message in messages:
            out.write(format_line(message))


def build_lake(capture: Path, lake: Path, files_per_hour: int = 2) -> Lake:
    """Ingest a capture and write each zone's hours as zstd Parquet under hive partitions.

    Each hour gets `files_per_hour` files, as a writer that flushed more than once leaves it.
    """
    collector = _Collector()
    ingest = Ingest(Clock(replay=True), dedup_seconds=ANALYTICS_DEDUP_SECONDS, lake=collector)
    for message in read_capture(capture):
        ingest.handle(message)

    _write_zone(lake, Zone.RAW, collector.raw, lambda m: m.received_at, files_per_hour)
    _write_zone(lake, Zone.PROCESSED, collector.events, lambda e: e.tst, files_per_hour)
    _write_zone(lake, Zone.REJECTED, collector.rejected, lambda r: r.received_at, files_per_hour)

    return Lake(lake, collector.raw, collector.events, collector.rejected)


_FRAMES: dict[Zone, Callable[[Any], pl.DataFrame]] = {
    Zone.RAW: schema.raw_frame,
    Zone.PROCESSED: schema.events_frame,
    Zone.REJECTED: schema.rejected_frame,
}


def _write_zone(
    lake: Path, zone: Zone, rows: Sequence[Any], when: Callable[[Any], datetime], parts: int
) -> None:
    hours: dict[datetime, list[Any]] = defaultdict(list)
    for row in rows:
        hours[schema.hour_of(when(row))].append(row)
    for hour, items in hours.items():
        folder = lake / schema.partition_path(zone, hour)
        folder.mkdir(parents=True, exist_ok=True)
        size = math.ceil(len(items) / parts)
        for part in range(parts):
            chunk = items[part * size : (part + 1) * size]
            if chunk:
                frame = _FRAMES[zone](chunk).sort(schema.TIME_COLUMN[zone])
                frame.write_parquet(folder / f"part-{part}.parquet", compression="zstd")


def partition(moment: datetime) -> tuple[str, str, str, str]:
    """Return the (year, month, day, hour) partition values of a UTC moment."""
    return (f"{moment:%Y}", f"{moment:%m}", f"{moment:%d}", f"{moment:%H}")


def quantile(values: Sequence[float], q: float) -> float:
    """Return the linearly interpolated quantile, as DuckDB's quantile_cont computes it."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def today() -> date:
    """Return the current UTC date."""
    return datetime.now(UTC).date()

"""Parse HFP topic strings (v1 and v2) into their typed levels."""

from __future__ import annotations

import re

import msgspec

JOURNEY_TYPES = frozenset({"journey", "deadrun", "signoff"})
TEMPORAL_TYPES = frozenset({"ongoing", "upcoming"})
EVENT_TYPES = frozenset(
    {"vp", "due", "arr", "dep", "ars", "pde", "pas", "wait", "doo", "doc"}
    | {"tlr", "tla", "da", "dout", "ba", "bout", "vja", "vjout", "apc", "partial-apc"}
)

_VERSION = re.compile(r"v\d+|dev")
_START_TIME = re.compile(r"\d\d:\d\d")
_MODE = re.compile(r"[a-z]*")


class TopicError(ValueError):
    """The topic does not have the shape of an HFP topic; the message says which level."""


class Topic(msgspec.Struct, gc=False):
    """The levels of one HFP topic, named as in HSL's HFP database."""

    topic_prefix: str
    topic_version: str
    journey_type: str
    is_ongoing: bool
    event_type: str | None
    mode: str | None
    owner_operator_id: int
    vehicle_number: int
    route_id: str | None = None
    direction_id: int | None = None
    headsign: str | None = None
    journey_start_time: str | None = None
    next_stop_id: str | None = None
    geohash_level: int | None = None
    topic_latitude: float | None = None
    topic_longitude: float | None = None
    sid: int | None = None

    @property
    def unique_vehicle_id(self) -> str:
        """Return HSL's vehicle key, `"<int oper>/<int veh>"`."""
        return f"{self.owner_operator_id}/{self.vehicle_number}"


def parse_topic(topic: str) -> Topic:
    """Parse an HFP topic; raise TopicError when a level is missing or malformed.

    `event_type` is upper case, or None for v1 topics, which have no event-type level.
    """
    levels = topic.split("/")
    version_at = _version_index(levels)
    prefix = "/".join(levels[:version_at]) + "/"
    version = levels[version_at]
    rest = levels[version_at + 1 :]
    has_event_level = version != "v1"
    fixed = 6 if has_event_level else 5
    if len(rest) < fixed:
        raise TopicError(
            f"topic has {len(rest)} levels after the version, expected at least {fixed}"
        )

    journey_type, temporal = rest[0], rest[1]
    if journey_type not in JOURNEY_TYPES:
        raise TopicError(f"unknown journey type {journey_type!r}")
    if temporal not in TEMPORAL_TYPES:
        raise TopicError(f"unknown temporal type {temporal!r}")
    event_type = None
    if has_event_level:
        event_type = rest[2]
        if event_type not in EVENT_TYPES:
            raise TopicError(f"unknown event type {event_type!r}")
        event_type = event_type.upper()

    mode, operator, vehicle = rest[fixed - 3 : fixed]
    if not _MODE.fullmatch(mode):
        raise TopicError(f"malformed transport mode {mode!r}")
    parsed = Topic(
        topic_prefix=prefix,
        topic_version=version,
        journey_type=journey_type,
        is_ongoing=temporal == "ongoing",
        event_type=event_type,
        mode=mode or None,
        owner_operator_id=_integer(operator, "operator id", 9999),
        vehicle_number=_integer(vehicle, "vehicle number", 99999),
    )
    trip = rest[fixed:]
    if len(trip) >= 6:
        _parse_trip(parsed, trip)

    return parsed


def _version_index(levels: list[str]) -> int:
    for index in range(1, len(levels)):
        if _VERSION.fullmatch(levels[index]):
            return index
    raise TopicError("no version level (v1, v2 or dev) in topic")


def _integer(text: str, what: str, limit: int) -> int:
    if not text.isdigit() or not text.isascii() or int(text) > limit:
        raise TopicError(f"{what} must be a number up to {limit}, got {text!r}")
    return int(text)


def _parse_trip(parsed: Topic, trip: list[str]) -> None:
    route, direction, *tail = trip
    headsign, tail = _split_headsign(tail)
    start, next_stop, level, *geohash = tail + [""] * max(0, 3 - len(tail))

    parsed.route_id = route or None
    parsed.direction_id = _integer(direction, "direction id", 9) if direction else None
    parsed.headsign = headsign or None
    parsed.journey_start_time = start or None
    parsed.next_stop_id = next_stop or None
    parsed.geohash_level = _integer(level, "geohash level", 9) if level else None
    parsed.topic_latitude, parsed.topic_longitude = _geohash_position(geohash[:4])
    if len(geohash) > 4 and geohash[4]:
        parsed.sid = _integer(geohash[4], "junction id", 2**31 - 1)


def _split_headsign(tail: list[str]) -> tuple[str, list[str]]:
    # A headsign may itself contain '/', which shifts every later level; the
    # start time (HH:mm) that follows it is the anchor to find where it ends.
    if len(tail) > 1 and not _START_TIME.fullmatch(tail[1]):
        for index in range(2, len(tail)):
            if _START_TIME.fullmatch(tail[index]):
                return "/".join(tail[:index]), tail[index:]
    return tail[0], tail[1:]


def _geohash_position(cells: list[str]) -> tuple[float | None, float | None]:
    """Rebuild the 3-decimal position from HSL's home-made geohash levels.

    `60;24/19/85/93` is lat 60.189, lon 24.953; `0////` means no position.
    """
    if not cells or ";" not in cells[0]:
        return None, None
    whole_lat, _, whole_lon = cells[0].partition(";")
    try:
        lat, lon = float(int(whole_lat)), float(int(whole_lon))
    except ValueError:
        return None, None
    scale = 0.1
    for cell in cells[1:4]:
        if len(cell) != 2 or not cell.isdigit():
            break
        lat += int(cell[0]) * scale
        lon += int(cell[1]) * scale
        scale /= 10
    return round(lat, 3), round(lon, 3)

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
_COMMON_VERSIONS = frozenset({"v1", "v2"})
_V2_LEVELS = (
    "journey type",
    "temporal type",
    "event type",
    "transport mode",
    "operator id",
    "vehicle number",
)
_V1_LEVELS = (*_V2_LEVELS[:2], *_V2_LEVELS[3:])


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
    # HSL's vehicle key, "<int oper>/<int veh>". Set once per parsed topic, so every event
    # of a cached topic shares one string (and its hash) through dedup, store and sets.
    unique_vehicle_id: str = ""

    def __post_init__(self) -> None:
        self.unique_vehicle_id = f"{self.owner_operator_id}/{self.vehicle_number}"


def parse_topic(topic: str) -> Topic:
    """Parse an HFP topic; raise TopicError when a level is missing or malformed.

    `event_type` is upper case, or None for v1 topics, which have no event-type level.
    """
    levels = topic.split("/")
    version_at = _version_index(levels)
    version = levels[version_at]
    rest = levels[version_at + 1 :]
    names = _V1_LEVELS if version == "v1" else _V2_LEVELS
    fixed = len(names)
    if len(rest) < fixed:
        raise TopicError(f"topic ends before its {names[len(rest)]} level")

    journey_type, temporal = rest[0], rest[1]
    if journey_type not in JOURNEY_TYPES:
        raise TopicError(f"unknown journey type {journey_type!r}")
    if temporal not in TEMPORAL_TYPES:
        raise TopicError(f"unknown temporal type {temporal!r}")
    event_type = None
    if fixed == 6:
        event_type = rest[2]
        if event_type not in EVENT_TYPES:
            raise TopicError(f"unknown event type {event_type!r}")
        event_type = event_type.upper()

    mode, operator, vehicle = rest[fixed - 3 : fixed]
    if mode and not (mode.isascii() and mode.isalpha() and mode.islower()):
        raise TopicError(f"malformed transport mode {mode!r}")
    prefix = "/".join(levels[:version_at]) + "/"
    owner_operator_id = _integer(operator, "operator id", 9999)
    vehicle_number = _integer(vehicle, "vehicle number", 99999)
    trip = rest[fixed:]
    # Only journey topics carry trip levels after the vehicle number.
    trip_levels = _trip_levels(trip) if len(trip) >= 6 else ()

    return Topic(
        prefix,
        version,
        journey_type,
        temporal == "ongoing",
        event_type,
        mode or None,
        owner_operator_id,
        vehicle_number,
        *trip_levels,
    )


# The shape of nearly every topic in the feed: a v2 journey topic with its position.
# parse_topic_fast() reads it in one match; anything else takes parse_topic()'s path.
_V2_JOURNEY = re.compile(
    r"/hfp/v2/(journey|deadrun|signoff)/(ongoing|upcoming)/"
    rf"({'|'.join(sorted(EVENT_TYPES, key=len, reverse=True))})/([a-z]*)/([0-9]+)/([0-9]+)/"
    r"([^/]*)/([0-9]?)/(.*?)/([0-9][0-9]:[0-9][0-9])/([^/]*)/([0-9])/"
    r"(-?[0-9]{1,3});(-?[0-9]{1,3})/([0-9])([0-9])/([0-9])([0-9])/([0-9])([0-9])(?:/([0-9]*))?"
)


def parse_topic_fast(topic: str) -> Topic:
    """Return parse_topic(topic), reading the feed's usual shape in one regular expression."""
    match = _V2_JOURNEY.fullmatch(topic)
    if match is None:
        return parse_topic(topic)
    levels = match.groups()
    journey_type, temporal, event_type, mode, operator, vehicle, route, direction = levels[:8]
    headsign, start, next_stop, level, whole_lat, whole_lon = levels[8:14]
    y1, x1, y2, x2, y3, x3, sid = levels[14:]
    owner_operator_id, vehicle_number = int(operator), int(vehicle)
    if (
        owner_operator_id > 9999
        or vehicle_number > 99999
        or (sid and int(sid) > 2**31 - 1)
        or "/" in headsign  # where such a headsign ends is parse_topic()'s business
    ):
        return parse_topic(topic)
    return Topic(
        "/hfp/",
        "v2",
        journey_type,
        temporal == "ongoing",
        event_type.upper(),
        mode or None,
        owner_operator_id,
        vehicle_number,
        route or None,
        int(direction) if direction else None,
        headsign or None,
        start,
        next_stop or None,
        int(level),
        float(f"{whole_lat}.{y1}{y2}{y3}"),
        float(f"{whole_lon}.{x1}{x2}{x3}"),
        int(sid) if sid else None,
    )


def _version_index(levels: list[str]) -> int:
    # Fast path for the usual `/hfp/v2/…`; anything else searches like HSL's parser.
    if len(levels) > 2 and levels[1] == "hfp" and levels[2] in _COMMON_VERSIONS:
        return 2
    for index in range(1, len(levels)):
        if _VERSION.fullmatch(levels[index]):
            return index
    raise TopicError("no version level (v1, v2 or dev) in topic")


def _integer(text: str, what: str, limit: int) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > limit:
        raise TopicError(f"{what} must be a number up to {limit}, got {text!r}")
    return int(text)


_TripLevels = tuple[
    str | None,
    int | None,
    str | None,
    str | None,
    str | None,
    int | None,
    float | None,
    float | None,
    int | None,
]


def _trip_levels(trip: list[str]) -> _TripLevels:
    """Return route, direction, headsign, start, next stop, geohash level, lat, lon, sid."""
    route, direction, *tail = trip
    headsign, tail = _split_headsign(tail)
    start, next_stop, level, *geohash = tail + [""] * max(0, 3 - len(tail))

    lat, lon = _geohash_position(geohash[:4])
    sid = geohash[4] if len(geohash) > 4 else ""

    return (
        route or None,
        _integer(direction, "direction id", 9) if direction else None,
        headsign or None,
        start or None,
        next_stop or None,
        _integer(level, "geohash level", 9) if level else None,
        lat,
        lon,
        _integer(sid, "junction id", 2**31 - 1) if sid else None,
    )


def _is_start_time(text: str) -> bool:
    return len(text) == 5 and text[2] == ":" and text[:2].isdecimal() and text[3:].isdecimal()


def _split_headsign(tail: list[str]) -> tuple[str, list[str]]:
    # A headsign may itself contain '/', which shifts every later level; the
    # start time (HH:mm) that follows it is the anchor to find where it ends.
    if len(tail) > 1 and not _is_start_time(tail[1]):
        for index in range(2, len(tail)):
            if _is_start_time(tail[index]):
                return "/".join(tail[:index]), tail[index:]
    return tail[0], tail[1:]


def _geohash_position(cells: list[str]) -> tuple[float | None, float | None]:
    """Rebuild the 3-decimal position from HSL's home-made geohash levels.

    `60;24/19/85/93` is lat 60.189, lon 24.953; `0////` means no position. The
    digits are joined as text, so negative whole degrees keep their sign.
    """
    if not cells or ";" not in cells[0]:
        return None, None
    whole_lat, _, whole_lon = cells[0].partition(";")
    if not (_is_whole_degree(whole_lat) and _is_whole_degree(whole_lon)):
        return None, None
    digits = _leading_cells(cells[1:4])

    lat = float(f"{whole_lat}.{digits[0::2]}")
    lon = float(f"{whole_lon}.{digits[1::2]}")
    return lat, lon


def _leading_cells(cells: list[str]) -> str:
    """Return the digits of the well-formed two-digit cells before the first bad one."""
    digits = ""
    for cell in cells:
        if len(cell) != 2 or not cell.isascii() or not cell.isdigit():
            break
        digits += cell
    return digits


def _is_whole_degree(text: str) -> bool:
    digits = text[1:] if text.startswith("-") else text
    return 0 < len(digits) <= 3 and digits.isascii() and digits.isdigit()

"""Which vehicles a client asked for: the `mode`, `route` and `bbox` query parameters."""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from hsl_live.errors import HslLiveError
from hsl_live.store import VehicleState

MODES = ("bus", "tram", "train", "ferry", "metro", "ubus", "robot")
STREAM_PARAMETERS = frozenset({"mode", "route", "bbox", "last_event_id"})


class FilterError(HslLiveError):
    """A query parameter of /events or /api/vehicles is unknown or malformed."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class Filter(msgspec.Struct, frozen=True):
    """Which vehicles a client wants; None means no restriction on that property."""

    modes: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    bbox: tuple[float, float, float, float] | None = None

    def matches(self, state: VehicleState) -> bool:
        """Return whether a vehicle passes the filter; `route` matches route_id or desi."""
        if self.modes is not None and state.mode not in self.modes:
            return False
        routes = self.routes
        if routes is not None and state.route not in routes and state.desi not in routes:
            return False
        if self.bbox is None:
            return True
        if state.lat is None or state.lon is None:
            return False
        min_lon, min_lat, max_lon, max_lat = self.bbox
        return min_lon <= state.lon <= max_lon and min_lat <= state.lat <= max_lat


def parse_filter(
    params: Iterable[tuple[str, str]], allowed: frozenset[str] = STREAM_PARAMETERS
) -> Filter:
    """Build a Filter from query parameters; raise FilterError naming a bad one."""
    values: dict[str, list[str]] = {}
    for key, value in params:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise FilterError(key, f"unknown parameter {key!r} (known: {known})")
        values.setdefault(key, []).append(value)

    modes = routes = bbox = None
    if "mode" in values:
        modes = _parse_modes(",".join(values["mode"]))
    if "route" in values:
        routes = _parse_routes(",".join(values["route"]))
    if "bbox" in values:
        bbox = _parse_bbox(values["bbox"][-1])

    return Filter(modes=modes, routes=routes, bbox=bbox)


def _parse_modes(text: str) -> frozenset[str]:
    items = _items(text)
    unknown = [item for item in items if item not in MODES]
    if not items or unknown:
        bad = unknown[0] if unknown else text
        expected = ", ".join(MODES)
        raise FilterError("mode", f"bad parameter mode={bad!r}: expected some of {expected}")
    return frozenset(items)


def _parse_routes(text: str) -> frozenset[str]:
    items = _items(text)
    bad = [item for item in items if not item.replace(" ", "").isalnum()]
    if not items or bad:
        shown = bad[0] if bad else text
        message = f"bad parameter route={shown!r}: expected route ids such as 2550,1069"
        raise FilterError("route", message)
    return frozenset(items)


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    message = f"bad parameter bbox={text!r}: expected min lon,min lat,max lon,max lat"
    try:
        numbers = [float(item) for item in text.split(",")]
    except ValueError:
        raise FilterError("bbox", message) from None
    if len(numbers) != 4 or not all(math.isfinite(number) for number in numbers):
        raise FilterError("bbox", message)
    min_lon, min_lat, max_lon, max_lat = numbers
    in_world = -180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90
    if not in_world:
        raise FilterError("bbox", message + " within -180..180 and -90..90, min before max")
    return min_lon, min_lat, max_lon, max_lat


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]

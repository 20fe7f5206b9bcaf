"""The live view's memory: latest state per vehicle, numbered changes, and short trails."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from datetime import datetime

import msgspec
from prometheus_client.core import Metric

from hsl_live.clock import Clock
from hsl_live.hfp import Event
from hsl_live.metrics import counter, gauge, labelled_counter

# Fields a non-VP event (ARR, DOO, ...) may lack; a missing one keeps the vehicle's last value.
_CARRIED = (
    "mode",
    "route",
    "desi",
    "dir",
    "headsign",
    "start",
    "spd",
    "acc",
    "dl",
    "occu",
    "drst",
    "loc",
    "stop",
    "next_stop",
)


class VehicleState(msgspec.Struct, gc=False):
    """What the map and the API know about one vehicle.

    `id` is HSL's `unique_vehicle_id` ("<oper>/<veh>" of the topic); `oper` and `veh`
    are its parts. `lat`/`lon` are the last known position (kept when an event has
    none). `tst` is the vehicle's time of the event; `seen` is the pipeline clock
    (epoch seconds) when it arrived, which is what staleness is measured against.
    """

    id: str
    oper: int
    veh: int
    mode: str | None
    route: str | None
    desi: str | None
    dir: int | None
    headsign: str | None
    start: str | None
    journey_type: str
    lat: float | None
    lon: float | None
    hdg: int | None
    spd: float | None
    acc: float | None
    dl: int | None
    occu: int | None
    drst: bool | None
    loc: str | None
    event: str
    stop: int | None
    next_stop: str | None
    tst: datetime
    seen: float


class TrailPoint(msgspec.Struct, gc=False):
    """One past position of a vehicle."""

    tst: datetime
    lat: float
    lon: float


class StoreStats(msgspec.Struct):
    """Counters of the store since start."""

    applied: int = 0
    out_of_order: int = 0
    other_cars: int = 0
    not_ongoing: int = 0
    expired: int = 0


class VehicleStore:
    """Latest state per vehicle, replaced only by a newer `tst`.

    Every change (an update or a removal) gets the next sequence number, and a ring
    remembers which vehicle each recent number changed, so a reader who saw
    everything up to number N can ask what changed after it. Numbers start at the
    process's start time in microseconds, so an id from an earlier process is never
    mistaken for one of ours.
    """

    def __init__(
        self, clock: Clock, *, stale_seconds: float, trail_points: int, ring_size: int
    ) -> None:
        self.clock = clock
        self.stale_seconds = stale_seconds
        self.stats = StoreStats()
        self.first_seq = time.time_ns() // 1000
        self.seq = self.first_seq
        self._states: dict[str, VehicleState] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._trails: dict[str, deque[TrailPoint]] = {}
        self._trail_points = trail_points
        self._ring: deque[str] = deque(maxlen=ring_size)

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, event: Event) -> None:
        """Take one decoded event into the live view, unless it is older than what we have."""
        self.apply_many((event,))

    def apply_many(self, events: Iterable[Event]) -> None:
        """Take events into the live view in order, each unless it is older than what we have.

        One pass with the store's parts bound once: this runs for every event of the feed.
        """
        stats, states, seen, trails, ring = (
            self.stats, self._states, self._seen, self._trails, self._ring
        )  # fmt: skip
        move_to_end, ring_append = seen.move_to_end, ring.append
        now = self.clock.now()
        applied = 0
        for event in events:
            # The map shows a train once, as digitransit does: metro sends one message per car.
            if event.seq is not None and event.seq != 1:
                stats.other_cars += 1
                continue
            if not event.is_ongoing:
                stats.not_ongoing += 1
                continue
            vehicle_id = event.unique_vehicle_id
            old = states.get(vehicle_id)
            # Vehicles replay buffered messages out of order, so only a newer tst replaces a
            # state. A stop event may share its instant with a VP; the same event type at the
            # same instant is a repeat.
            if old is not None and not (
                event.tst > old.tst or (event.tst == old.tst and event.event_type != old.event)
            ):
                stats.out_of_order += 1
                continue

            states[vehicle_id] = _next_state(event, old, now)
            seen[vehicle_id] = now
            move_to_end(vehicle_id)
            lat, lon = event.lat, event.long
            if lat is not None and lon is not None:
                trail = trails.get(vehicle_id)
                if trail is None:
                    trail = trails[vehicle_id] = deque(maxlen=self._trail_points)
                trail.append(TrailPoint(event.tst, lat, lon))
            ring_append(vehicle_id)
            applied += 1
        stats.applied += applied
        self.seq += applied

    def expire(self, now: float) -> list[str]:
        """Remove vehicles silent for `stale_seconds` of pipeline time; return their ids."""
        limit = now - self.stale_seconds
        removed: list[str] = []
        seen = self._seen
        while seen:
            vehicle_id, last = next(iter(seen.items()))
            if last > limit:
                break
            del seen[vehicle_id]
            del self._states[vehicle_id]
            self._trails.pop(vehicle_id, None)
            self._record(vehicle_id)
            removed.append(vehicle_id)
        self.stats.expired += len(removed)

        return removed

    def get(self, vehicle_id: str) -> VehicleState | None:
        """Return a vehicle's latest state, or None when it is not on the live view."""
        return self._states.get(vehicle_id)

    def states(self) -> list[VehicleState]:
        """Return the latest state of every vehicle on the live view."""
        return list(self._states.values())

    def trail(self, vehicle_id: str) -> list[TrailPoint]:
        """Return a vehicle's recent positions, oldest first."""
        return list(self._trails.get(vehicle_id, ()))

    def covers(self, seq: int) -> bool:
        """Return whether every change after `seq` is still in the ring."""
        return self.first_seq <= seq <= self.seq and self.seq - seq <= len(self._ring)

    def changed_since(self, seq: int) -> list[str] | None:
        """Return the distinct ids changed after `seq`, newest first; None if not covered.

        An id whose vehicle is no longer in the store was removed.
        """
        if not self.covers(seq):
            return None
        recent = itertools.islice(reversed(self._ring), self.seq - seq)

        return list(dict.fromkeys(recent))

    def collect(self) -> Iterable[Metric]:
        """Yield the store's gauges and counters for /metrics."""
        stats = self.stats
        yield gauge("hsl_live_vehicles", "Vehicles on the live view", len(self._states))
        yield counter(
            "hsl_live_store_changes",
            "Vehicle states changed or removed on the live view",
            self.seq - self.first_seq,
        )
        yield labelled_counter(
            "hsl_live_store_skipped",
            "Events not taken into the live view, by reason",
            "reason",
            [
                ("out_of_order", stats.out_of_order),
                ("other_car", stats.other_cars),
                ("not_ongoing", stats.not_ongoing),
            ],
        )
        yield counter(
            "hsl_live_store_expired",
            "Vehicles removed from the live view after going silent",
            stats.expired,
        )

    def _record(self, vehicle_id: str) -> None:
        self.seq += 1
        self._ring.append(vehicle_id)


def _next_state(event: Event, old: VehicleState | None, now: float) -> VehicleState:
    lat: float | None
    lon: float | None
    if event.lat is not None and event.long is not None:
        lat, lon, hdg = event.lat, event.long, event.hdg
    elif old is not None:
        lat, lon, hdg = old.lat, old.lon, old.hdg
    else:
        lat, lon, hdg = None, None, None

    # Positional, in field order: about three times faster than keywords, once per event.
    state = VehicleState(
        event.unique_vehicle_id,  # id
        event.owner_operator_id,  # oper
        event.vehicle_number,  # veh
        event.mode,
        event.route_id,  # route
        event.desi,
        event.dir if event.dir is not None else event.direction_id,  # dir
        event.headsign,
        event.start if event.start is not None else event.journey_start_time,  # start
        event.journey_type,
        lat,
        lon,
        hdg,
        event.spd,
        event.acc,
        event.dl,
        event.occu,
        event.drst,
        event.loc,
        event.event_type,  # event
        event.stop,
        event.next_stop_id,  # next_stop
        event.tst,
        now,  # seen
    )
    # A VP is the vehicle's whole state, so a null there means "unknown now". Other events
    # describe one happening and often lack fields, which keep their last known value.
    if old is None or event.event_type == "VP":
        return state
    carried = {name: getattr(old, name) for name in _CARRIED if getattr(state, name) is None}

    return msgspec.structs.replace(state, **carried) if carried else state

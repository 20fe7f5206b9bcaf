"""Synthetic HFP v2 traffic: vehicles driving invented routes around Helsinki.

`generate()` is a plain iterator of (received_at, topic, payload) in receive order,
so the same traffic can be published to a broker or written to a capture file (see
`publish`), or fed to a benchmark. Given a seed, the output is the same on every run.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import math
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec

from hsl_live.errors import HslLiveError

logger = logging.getLogger(__name__)

SOUTH, NORTH, WEST, EAST = 60.15, 60.30, 24.75, 25.15
METRES_PER_DEGREE_LAT = 111_320.0
METRES_PER_DEGREE_LON = METRES_PER_DEGREE_LAT * math.cos(math.radians(60.2))
HELSINKI_OFFSET = timedelta(hours=2)

HEADSIGNS = (
    "Matinkylä (M)", "Itäkeskus (M)", "Rautatientori", "Kamppi", "Pasila", "Töölön halli",
    "Espoon keskus", "Tikkurila", "Vuosaari (M)", "Kallio", "Munkkiniemi", "Länsiterminaali",
    "Herttoniemi (M)", "Otaniemi", "Kauppatori", "Lentoasema", "Käpylä", "Malmi as.",
    "Kivenlahti (M)", "Arabianranta", "Jätkäsaari", "Pihlajamäki", "Myyrmäki", "Östersundom",
)  # fmt: skip
FERRY_NAMES = ("Suokki", "Tor", "Jetta", "Suomenlinna II")
MALFORMED_KINDS = ("json", "tst", "topic", "coordinates", "event")


class Mode(msgspec.Struct, frozen=True):
    """How one transport mode looks in the feed."""

    name: str
    share: float
    operators: tuple[int, ...]
    speed: float  # m/s while moving
    stop_spacing: float  # m
    segments: int
    cars: int  # messages per vehicle and second; metro sends one per car (`seq`)
    stop_events: bool


MODES = (
    Mode("bus", 0.74, (12, 17, 18, 21, 22, 30, 36), 8.5, 420.0, 14, 1, True),
    Mode("tram", 0.10, (40,), 6.0, 350.0, 10, 1, True),
    Mode("train", 0.06, (90,), 18.0, 2200.0, 8, 1, True),
    Mode("metro", 0.06, (50,), 15.0, 1400.0, 8, 2, False),
    Mode("ferry", 0.04, (60,), 4.0, 3000.0, 2, 1, False),
)


class Route:
    """A path with stops, driven in direction 1 from its start and in 2 from its end."""

    def __init__(self, rng: random.Random, mode: Mode, number: int) -> None:
        self.mode = mode
        self.desi = _designation(mode, number)
        self.route_id = {"bus": "1", "tram": "10", "train": "300", "metro": "31", "ferry": "1"}[
            mode.name
        ] + self.desi
        self.headsigns = tuple(rng.sample(HEADSIGNS, 2))
        self.points = _path(rng, mode)
        self.lengths = [0.0]
        for (lat1, lon1), (lat2, lon2) in zip(self.points, self.points[1:], strict=False):
            self.lengths.append(self.lengths[-1] + _distance(lat1, lon1, lat2, lon2))
        self.length = self.lengths[-1]
        count = max(2, int(self.length / mode.stop_spacing) + 1)
        self.stops = [self.length * index / (count - 1) for index in range(count)]
        first_id = rng.randrange(1_000_000, 4_900_000, 1000)
        self.stop_ids = [first_id + index * 7 for index in range(count)]

    def position(self, distance: float) -> tuple[float, float, int]:
        """Return lat, lon and heading (degrees) at a distance along the path."""
        distance = min(max(distance, 0.0), self.length)
        index = min(bisect.bisect_right(self.lengths, distance), len(self.points) - 1)
        (lat1, lon1), (lat2, lon2) = self.points[index - 1], self.points[index]
        span = self.lengths[index] - self.lengths[index - 1] or 1.0
        part = (distance - self.lengths[index - 1]) / span
        heading = math.degrees(
            math.atan2((lon2 - lon1) * METRES_PER_DEGREE_LON, (lat2 - lat1) * METRES_PER_DEGREE_LAT)
        )

        return lat1 + (lat2 - lat1) * part, lon1 + (lon2 - lon1) * part, int(heading) % 360


def _designation(mode: Mode, number: int) -> str:
    if mode.name == "metro":
        return ("M1", "M2")[number % 2]
    if mode.name == "train":
        return "AIKLPRUE"[number % 8]
    if mode.name == "ferry":
        return "19"
    return str(number)


def _path(rng: random.Random, mode: Mode) -> list[tuple[float, float]]:
    if mode.name == "ferry":
        return [(60.1676, 24.9532), (60.1580, 24.9700), (60.1455, 24.9880)]
    lat, lon = rng.uniform(SOUTH + 0.02, NORTH - 0.02), rng.uniform(WEST + 0.03, EAST - 0.03)
    heading = rng.uniform(0, 2 * math.pi)
    points = [(lat, lon)]
    for _ in range(mode.segments):
        step = rng.uniform(300, 900) * (3 if mode.name in ("train", "metro") else 1)
        heading += rng.uniform(-0.7, 0.7)
        lat += math.cos(heading) * step / METRES_PER_DEGREE_LAT
        lon += math.sin(heading) * step / METRES_PER_DEGREE_LON
        if not (SOUTH < lat < NORTH and WEST < lon < EAST):
            heading += math.pi
            lat, lon = min(max(lat, SOUTH + 0.005), NORTH - 0.005), min(max(lon, WEST), EAST)
        points.append((lat, lon))

    return points


def _distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return math.hypot((lat2 - lat1) * METRES_PER_DEGREE_LAT, (lon2 - lon1) * METRES_PER_DEGREE_LON)


class Vehicle:
    """One vehicle's trip state, advanced one second at a time."""

    def __init__(self, rng: random.Random, route: Route, number: int, now: float) -> None:
        self.rng = rng
        self.route = route
        self.mode = route.mode
        self.oper = rng.choice(route.mode.operators)
        self.veh = number
        self.phase = rng.random()
        self.latency = rng.uniform(0.03, 0.4)
        self.direction = rng.choice((1, 2))
        self.distance = rng.uniform(0, route.length * 0.9)
        self.dwell = 0
        self.delay = rng.randint(-240, 60)
        self.block = rng.randint(1000, 9999)
        self.previous: tuple[int, int, tuple[object, ...]] | None = None
        self.events: list[tuple[str, int]] = []
        self._new_trip(now, announce=False)

    def _new_trip(self, now: float, announce: bool = True) -> None:
        begun = now - self.rng.uniform(0, 1800) if not announce else now
        local = datetime.fromtimestamp(begun, UTC) + HELSINKI_OFFSET
        self.start = local.strftime("%H:%M")
        self.oday = local.strftime("%Y-%m-%d")
        self.jrn = self.rng.randint(1, 999)
        self.odo = 0.0
        self.next_index = self._stop_after(self.distance)
        if announce and self.mode.stop_events:
            self.events.append(("VJA", self.next_index))

    def _stop_after(self, distance: float) -> int:
        return min(bisect.bisect_right(self.route.stops, distance), len(self.route.stops) - 1)

    def stop_id(self, index: int) -> int:
        """Return the id of the index-th stop in the direction of travel."""
        ids = self.route.stop_ids
        return ids[index] if self.direction == 1 else ids[len(ids) - 1 - index]

    @property
    def headsign(self) -> str:
        return self.route.headsigns[self.direction - 1]

    def along(self) -> float:
        """Return the distance along the route as this direction sees it."""
        return self.distance if self.direction == 1 else self.route.length - self.distance

    def step(self, now: float) -> float:
        """Advance one second; queue the stop events it caused; return the speed in m/s."""
        self.events.clear()
        stops = self.route.stops
        if self.dwell > 0:
            self.dwell -= 1
            if self.dwell == 0:
                self._leave(self.next_index, "DEP", now)
            return 0.0

        speed = self.mode.speed * self.rng.uniform(0.6, 1.3)
        target = self.distance + speed
        if self.mode.stop_events and stops[self.next_index] - self.distance > 60 >= (
            stops[self.next_index] - target
        ):
            self.events.append(("DUE", self.next_index))
        if target >= stops[self.next_index]:
            target = stops[self.next_index]
            if self.rng.random() < 0.75 or self.next_index == len(stops) - 1:
                self.dwell = self.rng.randint(4, 25)
                if self.mode.stop_events:
                    self.events += [("ARR", self.next_index), ("DOO", self.next_index)]
            else:
                self._leave(self.next_index, "PAS", now)
        self.odo += target - self.distance
        self.distance = target

        return speed

    def _leave(self, index: int, event: str, now: float) -> None:
        if self.mode.stop_events:
            if event == "DEP":
                self.events.append(("DOC", index))
            self.events.append((event, index))
        if index == len(self.route.stops) - 1:
            if self.mode.stop_events:
                self.events.append(("VJOUT", index))
            self.direction = 3 - self.direction
            self.distance = 0.0
            self.delay = self.rng.randint(-120, 60)
            self._new_trip(now, announce=True)
        else:
            self.next_index = index + 1
        self.delay += self.rng.randint(-3, 2)


class Simulation(msgspec.Struct, kw_only=True):
    """What to simulate: how many vehicles, from when, for how long, how dirty."""

    vehicles: int = 400
    seed: int = 0
    start: float = 0.0  # epoch seconds of the first message; 0 = now
    duration: float | None = None  # seconds of traffic; None = forever
    duplicates: float = 0.0  # share of messages delivered twice
    malformed: float = 0.0  # share of messages broken so that decoding rejects them


def check(simulation: Simulation) -> None:
    """Raise HslLiveError naming the first option that is out of range."""
    if simulation.vehicles <= 0:
        raise HslLiveError(f"--vehicles must be a positive number, got {simulation.vehicles}")
    if simulation.duration is not None and simulation.duration <= 0:
        raise HslLiveError(f"--duration must be positive seconds, got {simulation.duration}")
    for name in ("duplicates", "malformed"):
        share = getattr(simulation, name)
        if not 0.0 <= share <= 1.0:
            raise HslLiveError(f"--{name} must be a fraction between 0 and 1, got {share}")


def generate(simulation: Simulation) -> Iterator[tuple[float, str, bytes]]:
    """Yield (received_at epoch seconds, topic, payload) in receive order.

    Each vehicle reports a VP about once a second (a metro train once per car),
    plus DUE/ARR/DOO/DOC/DEP/PAS at stops and VJA/VJOUT at the ends of trips.
    """
    rng = random.Random(simulation.seed)
    start = simulation.start or time.time()
    vehicles = _fleet(rng, simulation.vehicles, start)
    vehicles.sort(key=lambda vehicle: vehicle.phase)
    encoder = msgspec.json.Encoder()
    heap: list[tuple[float, int, str, bytes]] = []
    order = 0
    second = 0
    while simulation.duration is None or second < simulation.duration:
        base = start + second
        stamp = _second_text(base)
        for vehicle in vehicles:
            for received, topic, payload in _messages(vehicle, base, stamp, encoder):
                heapq.heappush(heap, (received, order, topic, payload))
                order += 1
                if rng.random() < simulation.duplicates:
                    heapq.heappush(
                        heap, (received + rng.uniform(0.001, 0.3), order, topic, payload)
                    )
                    order += 1
        second += 1
        # Latency stays under a second, so whatever is due before `base` is final.
        while heap and heap[0][0] < base:
            received, _, topic, payload = heapq.heappop(heap)
            if rng.random() < simulation.malformed:
                topic, payload = _malform(rng, topic, payload)
            yield received, topic, payload
    while heap:
        received, _, topic, payload = heapq.heappop(heap)
        if rng.random() < simulation.malformed:
            topic, payload = _malform(rng, topic, payload)
        yield received, topic, payload


def _fleet(rng: random.Random, count: int, now: float) -> list[Vehicle]:
    vehicles: list[Vehicle] = []
    routes: dict[str, list[Route]] = {}
    for mode in MODES:
        wanted = max(1 if count >= len(MODES) else 0, round(count * mode.share))
        per_route = 4 if mode.name in ("bus", "tram") else 3
        routes[mode.name] = [
            Route(rng, mode, 10 + index * 7 if mode.name == "bus" else index + 1)
            for index in range(max(1, wanted // per_route))
        ]
        for index in range(wanted):
            if len(vehicles) >= count:
                break
            route = routes[mode.name][index % len(routes[mode.name])]
            number = 1000 + len(vehicles) if mode.name == "bus" else 100 + index
            vehicles.append(Vehicle(rng, route, number, now))
    while len(vehicles) < count:
        vehicles.append(Vehicle(rng, routes["bus"][0], 1000 + len(vehicles), now))

    return vehicles


def _second_text(moment: float) -> str:
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _messages(
    vehicle: Vehicle, base: float, stamp: str, encoder: msgspec.json.Encoder
) -> Iterator[tuple[float, str, bytes]]:
    speed = vehicle.step(base)
    millis = int(vehicle.phase * 1000)
    tst_epoch = int(base) + millis / 1000
    tst = f"{stamp}.{millis:03d}Z"
    lat, lon, heading = vehicle.route.position(vehicle.along())
    if vehicle.direction == 2:
        heading = (heading + 180) % 360
    rng = vehicle.rng
    located = rng.random() >= 0.005
    received = tst_epoch + vehicle.latency
    body = _body(vehicle, tst, int(tst_epoch), speed, heading, lat, lon, located)

    for event, stop_index in vehicle.events:
        event_body = dict(body)
        stop_id = vehicle.stop_id(stop_index)
        event_body["stop"] = stop_id
        if event in ("VJA", "VJOUT"):
            event_body["dr-type"] = 1
            event_body["block"] = vehicle.block
        else:
            scheduled = f"{_second_text(base - vehicle.delay)}.000Z"
            event_body["ttarr"] = event_body["ttdep"] = scheduled
        topic = _topic(vehicle, event, lat, lon, located, stop_id)
        yield received, topic, encoder.encode({event: event_body})

    for seq in range(1, vehicle.mode.cars + 1):
        if vehicle.mode.cars > 1:
            body["seq"] = seq
        topic = _topic(vehicle, "VP", lat, lon, located, None)
        yield received + seq / 1000, topic, encoder.encode({"VP": body})


def _body(
    vehicle: Vehicle,
    tst: str,
    tsi: int,
    speed: float,
    heading: int,
    lat: float,
    lon: float,
    located: bool,
) -> dict[str, object]:
    rng, route = vehicle.rng, vehicle.route
    at_stop = vehicle.dwell > 0
    body: dict[str, object] = {
        "desi": route.desi,
        "dir": str(vehicle.direction),
        "oper": vehicle.oper,
        "veh": vehicle.veh,
        "tst": tst,
        "tsi": tsi,
        "spd": round(speed, 2),
        "hdg": heading,
        "lat": round(lat, 6) if located else None,
        "long": round(lon, 6) if located else None,
        "acc": round(rng.uniform(-0.6, 0.6), 2),
        "dl": vehicle.delay if rng.random() >= 0.01 else None,
        "odo": round(vehicle.odo) if rng.random() >= 0.02 else None,
        "drst": 1 if at_stop else 0,
        "oday": vehicle.oday,
        "jrn": vehicle.jrn,
        "line": 100 + route.stop_ids[0] % 900,
        "start": vehicle.start,
        "loc": "GPS" if located else "ODO",
        "stop": vehicle.stop_id(vehicle.next_index) if at_stop else None,
        "route": route.route_id,
        "occu": 0 if rng.random() < 0.97 else 100,
    }
    if vehicle.mode.name == "ferry":
        body["label"] = FERRY_NAMES[vehicle.veh % len(FERRY_NAMES)]
        body["occu"] = rng.randint(0, 80)
    if vehicle.mode.name == "metro":
        body["loc"] = "MAN"
        body["drst"] = None

    return body


def _topic(
    vehicle: Vehicle, event: str, lat: float, lon: float, located: bool, stop: int | None
) -> str:
    route = vehicle.route
    final = event == "VJOUT" or (vehicle.next_index == len(route.stops) - 1 and vehicle.dwell > 0)
    next_stop = "EOL" if final else str(vehicle.stop_id(vehicle.next_index))
    key = (route.route_id, vehicle.direction, vehicle.start, next_stop)
    if located:
        fine_lat, fine_lon = int(lat * 100_000), int(lon * 100_000)
        level = _geohash_level(vehicle.previous, fine_lat, fine_lon, key)
        vehicle.previous = (fine_lat, fine_lon, key)
        lat3, lon3 = fine_lat // 100, fine_lon // 100
        cells = "/".join(f"{lat3 // 10**power % 10}{lon3 // 10**power % 10}" for power in (2, 1, 0))
        geohash = f"{level}/{lat3 // 1000};{lon3 // 1000}/{cells}"
    else:
        vehicle.previous = None
        geohash = "0////"
    mode = vehicle.mode.name

    return (
        f"/hfp/v2/journey/ongoing/{event.lower()}/{mode}/{vehicle.oper:04d}/{vehicle.veh:05d}/"
        f"{route.route_id}/{vehicle.direction}/{vehicle.headsign}/{vehicle.start}/"
        f"{next_stop}/{geohash}"
    )


def _geohash_level(
    previous: tuple[int, int, tuple[object, ...]] | None,
    lat: int,
    lon: int,
    key: tuple[object, ...],
) -> int:
    """Return HSL's geohash level: the first decimal at which the position changed, up to 5."""
    if previous is None or previous[2] != key:
        return 0
    for level, scale in enumerate((100_000, 10_000, 1000, 100, 10)):
        if lat // scale != previous[0] // scale or lon // scale != previous[1] // scale:
            return level
    return 5


def _malform(rng: random.Random, topic: str, payload: bytes) -> tuple[str, bytes]:
    """Break a message in one of the ways the decoder must reject."""
    kind = rng.choice(MALFORMED_KINDS)
    if kind == "json":
        return topic, payload[: len(payload) // 2]
    if kind == "tst":
        return topic, payload.replace(b'"tst":', b'"tsx":', 1)
    if kind == "topic":
        levels = topic.split("/")
        levels[7] = "0x12"
        return "/".join(levels), payload
    if kind == "coordinates":
        return topic, payload.replace(b'"lat":', b'"lat":1', 1)
    return topic, b'{"XYZ"' + payload[payload.find(b":") :]

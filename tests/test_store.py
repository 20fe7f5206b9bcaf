"""Tests for the live view's vehicle store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from hsl_live.clock import Clock
from hsl_live.hfp import Event
from hsl_live.store import VehicleStore

T0 = datetime(2024, 2, 13, 16, 0, 0, tzinfo=UTC)
REQUIRED = {"id", "mode", "route", "desi", "dir", "headsign", "lat", "lon", "hdg", "spd", "dl"}
REQUIRED |= {"occu", "event", "stop", "next_stop", "tst"}


def make_event(
    vehicle: int = 1825,
    *,
    at: float = 0.0,
    event_type: str = "VP",
    lat: float | None = 60.17,
    lon: float | None = 24.94,
    **fields: object,
) -> Event:
    """Return a decoded event of bus 22/<vehicle>, `at` seconds after T0."""
    values: dict[str, object] = {
        "received_at": T0 + timedelta(seconds=at),
        "event_type": event_type,
        "mode": "bus",
        "owner_operator_id": 22,
        "vehicle_number": vehicle,
        "unique_vehicle_id": f"22/{vehicle}",
        "route_id": "2550",
        "desi": "550",
        "dir": 1,
        "headsign": "Itäkeskus",
        "next_stop_id": "1234567",
        "tst": T0 + timedelta(seconds=at),
        "lat": lat,
        "long": lon,
        "hdg": 90,
        "spd": 8.5,
        "dl": -30,
        "journey_type": "journey",
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


def make_store(clock: Clock | None = None, ring: int = 1000, trail: int = 3) -> VehicleStore:
    return VehicleStore(
        clock or Clock(replay=True), stale_seconds=60.0, trail_points=trail, ring_size=ring
    )


def test_store_apply_keeps_latest_state() -> None:
    store = make_store()
    store.apply(make_event(at=0, lat=60.1))
    store.apply(make_event(at=1, lat=60.2))

    state = store.get("22/1825")
    assert state is not None
    assert (state.lat, state.tst) == (60.2, T0 + timedelta(seconds=1))


def test_store_apply_ignores_older_tst() -> None:
    store = make_store()
    store.apply(make_event(at=5, lat=60.5))
    store.apply(make_event(at=3, lat=60.3))

    state = store.get("22/1825")
    assert state is not None
    assert state.lat == 60.5
    assert store.stats.out_of_order == 1


def test_store_apply_shows_metro_train_once() -> None:
    store = make_store()
    store.apply(make_event(1, at=0, mode="metro", seq=1, lat=60.1))
    store.apply(make_event(1, at=1, mode="metro", seq=2, lat=60.9))
    store.apply(make_event(2, at=0, mode="metro", seq=None))

    first = store.get("22/1")
    assert first is not None
    assert first.lat == 60.1
    assert len(store) == 2
    assert store.stats.other_cars == 1


def test_store_apply_ignores_upcoming_journeys() -> None:
    store = make_store()
    store.apply(make_event(at=0, is_ongoing=False))

    assert store.get("22/1825") is None


def test_store_apply_event_without_position_keeps_coordinates() -> None:
    store = make_store()
    store.apply(make_event(at=0, lat=60.1, lon=24.9))
    store.apply(make_event(at=1, lat=None, lon=None, spd=None))

    state = store.get("22/1825")
    assert state is not None
    assert (state.lat, state.lon, state.hdg, state.spd) == (60.1, 24.9, 90, None)


def test_store_apply_stop_event_keeps_fields_it_lacks() -> None:
    store = make_store()
    store.apply(make_event(at=0, occu=40))
    store.apply(make_event(at=1, event_type="DOO", stop=1234567, dl=None, occu=None, lat=None))

    state = store.get("22/1825")
    assert state is not None
    assert (state.event, state.stop, state.dl, state.occu) == ("DOO", 1234567, -30, 40)


def test_store_apply_stop_event_at_the_same_instant_as_a_vp() -> None:
    store = make_store()
    store.apply(make_event(at=1))
    store.apply(make_event(at=1, event_type="ARR", stop=1))

    state = store.get("22/1825")
    assert state is not None
    assert state.event == "ARR"


def test_store_expire_removes_silent_vehicles_on_pipeline_clock() -> None:
    clock = Clock(replay=True)
    store = make_store(clock)
    clock.observe(T0)
    store.apply(make_event(1))
    clock.observe(T0 + timedelta(seconds=50))
    store.apply(make_event(2, at=50))

    removed = store.expire((T0 + timedelta(seconds=61)).timestamp())

    assert removed == ["22/1"]
    assert store.get("22/1") is None
    assert store.get("22/2") is not None


def test_store_changed_since_lists_distinct_ids_newest_first() -> None:
    store = make_store()
    start = store.seq
    store.apply(make_event(1, at=0))
    store.apply(make_event(2, at=0))
    store.apply(make_event(1, at=1))

    assert store.seq == start + 3
    assert store.changed_since(start) == ["22/1", "22/2"]
    assert store.changed_since(start + 2) == ["22/1"]
    assert store.changed_since(store.seq) == []


def test_store_changed_since_is_none_beyond_the_ring() -> None:
    store = make_store(ring=2)
    start = store.seq
    for vehicle in range(3):
        store.apply(make_event(vehicle))

    assert store.changed_since(start) is None
    assert store.changed_since(start + 1) == ["22/2", "22/1"]


def test_store_covers_rejects_ids_outside_this_process() -> None:
    store = make_store()
    store.apply(make_event())

    assert not store.covers(store.first_seq - 1)
    assert not store.covers(store.seq + 1)
    assert store.covers(store.first_seq)


def test_store_trail_keeps_recent_positions() -> None:
    store = make_store(trail=3)
    for second in range(5):
        store.apply(make_event(at=second, lat=60.0 + second / 100))
    store.apply(make_event(at=9, lat=None, lon=None))

    assert [point.lat for point in store.trail("22/1825")] == [60.02, 60.03, 60.04]


def test_store_state_json_has_the_documented_fields() -> None:
    store = make_store()
    store.apply(make_event())

    encoded = msgspec.json.decode(msgspec.json.encode(store.states()))

    assert set(encoded[0]) >= REQUIRED
    assert encoded[0]["id"] == "22/1825"
    assert encoded[0]["tst"] == "2024-02-13T16:00:00Z"


def test_store_state_takes_each_field_from_its_event_field() -> None:
    store = make_store()
    event = make_event(start="08:15", occu=40, drst=True, loc="GPS", stop=1020, acc=0.4, seq=None)
    store.apply(event)

    [state] = store.states()

    assert msgspec.structs.asdict(state) == {
        "id": "22/1825",
        "oper": 22,
        "veh": 1825,
        "mode": "bus",
        "route": "2550",
        "desi": "550",
        "dir": 1,
        "headsign": "Itäkeskus",
        "start": "08:15",
        "journey_type": "journey",
        "lat": 60.17,
        "lon": 24.94,
        "hdg": 90,
        "spd": 8.5,
        "acc": 0.4,
        "dl": -30,
        "occu": 40,
        "drst": True,
        "loc": "GPS",
        "event": "VP",
        "stop": 1020,
        "next_stop": "1234567",
        "tst": event.tst,
        "seen": state.seen,
    }

"""Tests for synthetic HFP traffic: shape, validity and dirt on request."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest

from hsl_live.errors import HslLiveError
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.simulate import Simulation, check, generate

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC).timestamp()


def simulated(**options: float | int | None) -> list[tuple[float, str, bytes]]:
    values: dict[str, float | int | None] = {"vehicles": 120, "duration": 60, "start": START}
    return list(generate(Simulation(**{**values, **options})))  # type: ignore[arg-type]


def decoded(messages: list[tuple[float, str, bytes]]) -> list[Event | Rejection]:
    return [
        decode(datetime.fromtimestamp(at, UTC), topic, payload) for at, topic, payload in messages
    ]


def test_generate_decodes_without_rejections() -> None:
    results = decoded(simulated())

    assert [r for r in results if isinstance(r, Rejection)] == []


def test_generate_sends_about_one_vp_per_vehicle_and_second() -> None:
    events = [r for r in decoded(simulated()) if isinstance(r, Event) and r.event_type == "VP"]
    per_vehicle = Counter(event.unique_vehicle_id for event in events if event.seq in (None, 1))

    assert len(per_vehicle) == 120
    assert set(per_vehicle.values()) == {60}


def test_generate_covers_modes_and_stop_events() -> None:
    events = [r for r in decoded(simulated(duration=300)) if isinstance(r, Event)]

    assert {event.mode for event in events} == {"bus", "tram", "train", "metro", "ferry"}
    assert {"DUE", "ARR", "DEP", "PAS", "DOO", "DOC", "VJA", "VJOUT"} <= {
        event.event_type for event in events
    }
    assert {event.seq for event in events if event.mode == "metro"} == {1, 2}


def test_generate_stays_around_helsinki() -> None:
    events = [r for r in decoded(simulated()) if isinstance(r, Event) and r.lat is not None]

    assert all(60.1 <= event.lat <= 60.35 for event in events if event.lat is not None)
    assert all(24.7 <= event.long <= 25.2 for event in events if event.long is not None)


def test_generate_topics_carry_geohash_and_unicode_headsigns() -> None:
    events = [r for r in decoded(simulated()) if isinstance(r, Event)]
    located = [event for event in events if event.lat is not None and event.event_type == "VP"]

    assert any(" " in (event.headsign or "") for event in events)
    assert any(not (event.headsign or "").isascii() for event in events)
    assert all(
        abs(event.topic_latitude - event.lat) < 0.0011  # type: ignore[operator]
        for event in located
    )
    assert {event.geohash_level for event in located} >= {0, 3, 4, 5}


def test_generate_has_realistic_nulls() -> None:
    events = [r for r in decoded(simulated(duration=300)) if isinstance(r, Event)]

    assert any(event.lat is None for event in events)
    assert any(event.odo is None for event in events)
    assert any(event.dl is None for event in events)


def test_generate_is_in_receive_order_and_reproducible() -> None:
    first, second = simulated(seed=7), simulated(seed=7)

    assert first == second
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(first))


@pytest.mark.parametrize("share", [0.02, 0.1])
def test_generate_malformed_share_is_rejected(share: float) -> None:
    results = decoded(simulated(duration=120, malformed=share))

    rejected = sum(isinstance(result, Rejection) for result in results) / len(results)

    assert rejected == pytest.approx(share, abs=0.01)


def test_generate_duplicates_are_byte_identical_copies() -> None:
    messages = simulated(duplicates=0.1)
    pairs = Counter((topic, payload) for _, topic, payload in messages)

    copies = sum(count - 1 for count in pairs.values()) / len(messages)

    assert copies == pytest.approx(0.1 / 1.1, abs=0.01)


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        ({"vehicles": 0}, "--vehicles"),
        ({"malformed": 1.5}, "--malformed"),
        ({"duration": -1}, "--duration"),
    ],
)
def test_check_names_bad_option(options: dict[str, float], bad: str) -> None:
    with pytest.raises(HslLiveError, match=bad):
        check(Simulation(**options))  # type: ignore[arg-type]

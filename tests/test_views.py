"""Every view on a lake built from a synthetic capture, checked against plain Python."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from analytics_lake import (
    ANALYTICS_DEDUP_SECONDS,
    START,
    Lake,
    build_lake,
    partition,
    quantile,
    synthetic_capture,
    today,
    write_capture,
)
from hsl_live.cli import main
from hsl_live.hfp import Event
from hsl_live.query import QUERIES_DIR, LocalLake
from hsl_live.topic import TopicError, parse_topic

VIEW_FILES = sorted((QUERIES_DIR / "views").glob("*.sql"))
Row = dict[str, Any]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    folder = tmp_path_factory.mktemp("analytics")
    capture = folder / "synthetic.capture"
    write_capture(capture, synthetic_capture(extra_days_ago=(1, 7, 30)))
    return build_lake(capture, folder / "lake")


@pytest.fixture(scope="module")
def local(lake: Lake) -> Iterator[LocalLake]:
    with LocalLake(lake.path) as opened:
        yield opened


def rows(local: LocalLake, view: str) -> list[Row]:
    result = local.run(view)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def keyed(found: list[Row], key: tuple[str, ...]) -> dict[tuple[Any, ...], Row]:
    table = {tuple(row[name] for name in key): row for row in found}
    assert len(table) == len(found), "the view's rows are not unique by its key"
    return table


def assert_matches(found: Row, expected: Row) -> None:
    for name, value in expected.items():
        if isinstance(value, float):
            assert found[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
        else:
            assert found[name] == value, name


def service_vps(lake: Lake) -> list[Event]:
    return [
        e
        for e in lake.events
        if e.event_type == "VP" and e.journey_type == "journey" and e.is_ongoing
    ]


def approx_value(value: Any) -> Any:
    """Return a value whose floats compare within rounding: sums depend on reading order."""
    return pytest.approx(value, rel=1e-9) if isinstance(value, float) else value


def approx_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return a row whose floats compare within rounding."""
    return tuple(approx_value(v) for v in row)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371008.8 * math.atan2(math.sqrt(a), math.sqrt(1 - a))


def speed_class(spd: float, doors_open: bool | None) -> str:
    if doors_open and spd < 1:
        return "stop"
    if not doors_open and spd < 0.27:
        return "delay"
    if not doors_open and spd < 0.83:
        return "slow"
    return "fast"


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@pytest.mark.parametrize("path", VIEW_FILES, ids=[p.stem for p in VIEW_FILES])
def test_view_file_parses_as_athena_create_view(path: Path) -> None:
    statement = sqlglot.parse_one(path.read_text(), read="athena")

    assert isinstance(statement, exp.Create)
    assert statement.kind == "VIEW"
    assert statement.this.name == path.stem


def test_vehicle_movement_matches_python(lake: Lake, local: LocalLake) -> None:
    tracks: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for e in service_vps(lake):
        if e.lat is not None and e.long is not None:
            tracks[(partition(e.tst), e.unique_vehicle_id, e.seq)].append(e)
    groups: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {"vehicles": set(), "speeds": [], "metres": 0.0, "seconds": 0.0}
    )
    for (hour, vehicle, _), track in tracks.items():
        track.sort(key=lambda e: e.tst)
        for prev, e in zip([None, *track], track, strict=False):
            group = groups[(*hour, e.mode, e.route_id)]
            group["vehicles"].add(vehicle)
            group["speeds"].append(e.spd)
            if prev is None or prev.lat is None or prev.long is None or e.lat is None:
                continue
            seconds = (e.tst - prev.tst).total_seconds()
            metres = haversine_m(prev.lat, prev.long, e.lat, e.long or 0.0)
            if 0 < seconds <= 60 and metres <= 50 * seconds:
                group["metres"] += metres
                group["seconds"] += seconds

    found = keyed(
        rows(local, "vehicle_movement_by_route_hour"),
        ("year", "month", "day", "hour", "mode", "route_id"),
    )

    assert found.keys() == groups.keys()
    for key, g in groups.items():
        assert_matches(
            found[key],
            {
                "active_vehicles": len(g["vehicles"]),
                "positions": len(g["speeds"]),
                "distance_km": g["metres"] / 1000,
                "tracked_s": g["seconds"],
                "avg_speed_ms": sum(g["speeds"]) / len(g["speeds"]),
                "median_speed_ms": quantile(g["speeds"], 0.5),
                "track_speed_ms": g["metres"] / g["seconds"] if g["seconds"] else None,
            },
        )


def test_vehicle_movement_skips_gps_jump_and_silence(local: LocalLake) -> None:
    found = keyed(
        rows(local, "vehicle_movement_by_route_hour"),
        ("year", "month", "day", "hour", "route_id"),
    )

    # The synthetic buses move under 13 m/s: a kept 40 km jump or a 90 s gap would show.
    for key in [("2024", "02", "13", "06", "1052"), ("2024", "02", "13", "07", "4400")]:
        row = found[key]
        assert row["track_speed_ms"] < 13
        assert row["distance_km"] < 13 * row["tracked_s"] / 1000


@pytest.mark.parametrize(
    ("view", "key_names"),
    [
        ("congestion_by_route_hour", ("mode", "route_id", "direction_id")),
        ("congestion_by_area_hour", ("mode", "cell_lat", "cell_lon")),
    ],
)
def test_congestion_matches_python(
    lake: Lake, local: LocalLake, view: str, key_names: tuple[str, ...]
) -> None:
    groups: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for e in service_vps(lake):
        if e.spd is None:
            continue
        key: tuple[Any, ...]
        if view == "congestion_by_route_hour":
            key = (e.mode, e.route_id, e.direction_id)
        elif e.lat is not None and e.long is not None:
            key = (
                e.mode,
                (math.floor(e.lat * 100) + 0.5) / 100,
                (math.floor(e.long * 50) + 0.5) / 50,
            )
        else:
            continue
        groups[(*partition(e.tst), *key)].append(e)

    found = keyed(rows(local, view), ("year", "month", "day", "hour", *key_names))

    assert found.keys() == groups.keys()
    for key, events in groups.items():
        classes = [speed_class(e.spd or 0.0, e.drst) for e in events]
        moving = len(classes) - classes.count("stop")
        crawl = classes.count("delay") + classes.count("slow")
        assert_matches(
            found[key],
            {
                "vehicles": len({e.unique_vehicle_id for e in events}),
                "positions": len(events),
                "stop_positions": classes.count("stop"),
                "delay_positions": classes.count("delay"),
                "slow_positions": classes.count("slow"),
                "fast_positions": classes.count("fast"),
                "delay_share": share(classes.count("delay"), moving),
                "crawl_share": share(crawl, moving),
                "median_speed_ms": quantile([e.spd or 0.0 for e in events], 0.5),
            },
        )


def test_congestion_counts_every_speed_class(local: LocalLake) -> None:
    found = rows(local, "congestion_by_route_hour")

    for column in ("stop_positions", "delay_positions", "slow_positions", "fast_positions"):
        assert sum(row[column] for row in found) > 0, column


def test_delay_by_route_hour_matches_python(lake: Lake, local: LocalLake) -> None:
    groups: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for e in service_vps(lake):
        if e.dl is not None:
            groups[(*partition(e.tst), e.mode, e.route_id, e.direction_id)].append(e)

    found = keyed(
        rows(local, "delay_by_route_hour"),
        ("year", "month", "day", "hour", "mode", "route_id", "direction_id"),
    )

    assert found.keys() == groups.keys()
    for key, events in groups.items():
        late = [float(-(e.dl or 0)) for e in events]
        n = len(late)
        assert_matches(
            found[key],
            {
                "vehicles": len({e.unique_vehicle_id for e in events}),
                "positions": n,
                "avg_delay_s": sum(late) / n,
                "delay_p50_s": quantile(late, 0.5),
                "delay_p90_s": quantile(late, 0.9),
                "delay_p95_s": quantile(late, 0.95),
                "delay_max_s": int(max(late)),
                "late_60s_share": sum(d > 60 for d in late) / n,
                "late_180s_share": sum(d > 180 for d in late) / n,
                "late_300s_share": sum(d > 300 for d in late) / n,
                "early_60s_share": sum(d < -60 for d in late) / n,
            },
        )


def test_delay_by_route_hour_counts_negative_dl_as_late(local: LocalLake) -> None:
    yesterday = today() - timedelta(days=1)

    found = [
        row
        for row in rows(local, "delay_by_route_hour")
        if row["route_id"] == "9999" and row["day"] == f"{yesterday:%d}"
    ]

    # Route 9999 reported dl -100 .. -500 yesterday: all late, by 100 s to 500 s.
    assert len(found) == 1
    assert found[0]["delay_p50_s"] == pytest.approx(300.0)
    assert found[0]["delay_max_s"] == 500
    assert found[0]["late_60s_share"] == 1.0
    assert found[0]["early_60s_share"] == 0.0


def test_delay_recent_keeps_only_last_seven_days(local: LocalLake) -> None:
    week_ago = today() - timedelta(days=7)
    expected = [
        row
        for row in rows(local, "delay_by_route_hour")
        if datetime.strptime(f"{row['year']}-{row['month']}-{row['day']}", "%Y-%m-%d").date()
        >= week_ago
    ]

    found = rows(local, "delay_by_route_hour_recent")

    assert found == [{k: approx_value(v) for k, v in row.items()} for row in expected]
    # Route 9999 ran yesterday, 7 days ago (the first day kept) and 30 days ago.
    days = [today() - timedelta(days=n) for n in (7, 1)]
    assert [(row["route_id"], row["day"]) for row in found] == [("9999", f"{d:%d}") for d in days]


def test_stop_events_match_python(lake: Lake, local: LocalLake) -> None:
    visits: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for e in lake.events:
        if (
            e.event_type in {"ARS", "ARR", "PDE", "PAS", "DEP"}
            and e.journey_type == "journey"
            and e.is_ongoing
            and e.stop is not None
        ):
            key = (*partition(e.tst)[:3], e.route_id, e.direction_id, e.oday, e.start, e.stop)
            visits[(*key, e.unique_vehicle_id)].append(e)

    found = keyed(
        rows(local, "stop_events"),
        (
            "year",
            "month",
            "day",
            "route_id",
            "direction_id",
            "oday",
            "start",
            "stop",
            "unique_vehicle_id",
        ),
    )

    assert found.keys() == visits.keys()
    for key, events in visits.items():
        times: dict[str, list[datetime]] = defaultdict(list)
        for e in events:
            times[e.event_type].append(e.tst)
        arrivals = times["ARS"] or times["ARR"]
        departures = times["PDE"] + times["PAS"] or times["DEP"]
        arrival = min(arrivals) if arrivals else None
        departure = max(departures) if departures else None
        passed = bool(times["PAS"]) and not times["ARS"]
        dwell = None
        if arrival and departure and not passed and departure >= arrival:
            dwell = (departure - arrival).total_seconds()
        planned_arrival = min(e.ttarr for e in events if e.ttarr)
        assert_matches(
            found[key],
            {
                "observed_arrival": arrival,
                "observed_departure": departure,
                "passed": passed,
                "dwell_s": dwell,
                "planned_arrival": planned_arrival,
                "arrival_delay_s": (arrival - planned_arrival).total_seconds() if arrival else None,
            },
        )


def test_stop_events_prefer_ars_and_last_pde(local: LocalLake) -> None:
    found = keyed(rows(local, "stop_events"), ("stop",))

    first = found[(1130106,)]
    assert first["observed_arrival"] == START + timedelta(seconds=64.5)  # ARS, not ARR at 62 s
    assert first["observed_departure"] == START + timedelta(seconds=85)  # last PDE, not DEP
    assert first["dwell_s"] == pytest.approx(20.5)
    passed = found[(1130107,)]
    assert passed["passed"] is True
    assert passed["observed_departure"] == START + timedelta(seconds=155.5)
    assert passed["dwell_s"] is None
    fallback = found[(1140001,)]
    assert (fallback["arrival_source"], fallback["departure_source"]) == ("ARR", "DEP")


def stored_ms(moment: datetime) -> datetime:
    """Return a moment as the lake stores it: Parquet TIMESTAMP(MILLIS) truncates."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def topic_operator(topic: str) -> int | None:
    try:
        return parse_topic(topic).owner_operator_id
    except TopicError:
        return None


def test_data_quality_matches_python(lake: Lake, local: LocalLake) -> None:
    expected: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {"events": 0, "vp": 0, "null": 0, "skews": [], "raw": 0, "rejected": 0}
    )
    for e in lake.events:
        group = expected[(*partition(e.tst), e.owner_operator_id)]
        group["events"] += 1
        group["vp"] += e.event_type == "VP"
        group["null"] += e.event_type == "VP" and (e.lat is None or e.long is None)
        group["skews"].append((stored_ms(e.received_at) - e.tst).total_seconds())
    for m in lake.raw:
        expected[(*partition(m.received_at), topic_operator(m.topic))]["raw"] += 1
    for r in lake.rejected:
        expected[(*partition(r.received_at), topic_operator(r.topic))]["rejected"] += 1

    found = keyed(
        rows(local, "data_quality_by_operator_hour"),
        ("year", "month", "day", "hour", "operator_id"),
    )

    assert found.keys() == expected.keys()
    for key, g in expected.items():
        skews = g["skews"]
        assert_matches(
            found[key],
            {
                "events": g["events"],
                "vp_events": g["vp"],
                "null_position_share": share(g["null"], g["vp"]),
                "clock_skew_p50_s": quantile(skews, 0.5) if skews else None,
                "clock_skew_p99_s": quantile(skews, 0.99) if skews else None,
                "clock_skew_max_s": max(skews) if skews else None,
                "clock_ahead_events": sum(s < 0 for s in skews),
                "raw_messages": g["raw"],
                "rejected": g["rejected"],
                "duplicate_events": g["raw"] - g["rejected"] - g["events"],
            },
        )


def test_data_quality_sees_duplicates_and_null_positions(local: LocalLake) -> None:
    found = [r for r in rows(local, "data_quality_by_operator_hour") if r["year"] == "2024"]

    # The capture repeats events under another topic: raw holds them, processed once.
    assert sum(r["duplicate_events"] for r in found) > 0
    bus_301 = [r for r in found if r["operator_id"] == 12]
    assert all(r["null_position_share"] > 0 for r in bus_301)


def test_rejects_by_reason_match_python(lake: Lake, local: LocalLake) -> None:
    expected: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    for r in lake.rejected:
        key = (*partition(r.received_at), r.reason, topic_operator(r.topic))
        expected[key].append(stored_ms(r.received_at))

    found = keyed(
        rows(local, "rejects_by_reason_hour"),
        ("year", "month", "day", "hour", "reason", "operator_id"),
    )

    assert found.keys() == expected.keys()
    assert {key[4] for key in found} == {"invalid_json", "missing_tst", "malformed_topic"}
    for key, moments in expected.items():
        assert_matches(
            found[key],
            {
                "messages": len(moments),
                "first_received_at": min(moments),
                "last_received_at": max(moments),
            },
        )


def test_views_agree_on_a_lake_written_by_replay(
    lake: Lake, local: LocalLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixture's lake was deduplicated over a 600 s window; replay with the same one.
    monkeypatch.setenv("HSL_LIVE_DEDUP_SECONDS", str(ANALYTICS_DEDUP_SECONDS))
    capture = lake.path.parent / "synthetic.capture"
    argv = ["replay", str(capture), "--lake-url", str(tmp_path / "lake")]

    status = main([*argv, "--spool-dir", str(tmp_path / "spool"), "--port", "0"])

    assert status == 0
    with LocalLake(tmp_path / "lake") as replayed:
        for name in local.views:
            expected = [approx_row(row) for row in local.run(name).rows]
            assert replayed.run(name).rows == expected, name

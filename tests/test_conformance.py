"""Decode the real HFP captures in ../shared/data/hfp-samples and check SOURCES.md's counts.

The expected numbers are the ones SOURCES.md states; distinct-event counts are
recomputed here with plain `json`, independently of hsl_live's decoder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hsl_live.capture import CaptureStats, RawMessage, read_capture
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.topic import TopicError, parse_topic, parse_topic_fast

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hfp-samples"
V2_DUMPS = sorted((SAMPLES / "hfp-v2-raw-dumps").glob("*.hfp.dump"))
V1_FILE = SAMPLES / "hfp-v1-raw" / "hfp-5000.txt"

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"HFP samples not found at {SAMPLES}"),
]


def read_all(paths: list[Path]) -> tuple[list[RawMessage], CaptureStats]:
    stats = CaptureStats()
    messages = [message for path in paths for message in read_capture(path, stats)]
    return messages, stats


def decode_all(messages: list[RawMessage]) -> list[Event]:
    results = [decode(m.received_at, m.topic, m.payload) for m in messages]
    rejections = [r for r in results if isinstance(r, Rejection)]
    assert rejections == []
    return [r for r in results if isinstance(r, Event)]


def expected_distinct_events(messages: list[RawMessage]) -> Counter[str]:
    """Count distinct (vehicle, type, journey, temporal, tst, seq) per type, with plain json."""
    keys: set[tuple[Any, ...]] = set()
    for message in messages:
        [(event_type, body)] = json.loads(message.payload).items()
        levels = message.topic.split("/")
        journey, temporal = levels[3], levels[4]
        operator, vehicle = _vehicle_levels(levels)
        vehicle_id = f"{int(operator)}/{int(vehicle)}"
        keys.add((vehicle_id, event_type, journey, temporal, body["tst"], body.get("seq")))
    return Counter(key[1] for key in keys)


def _vehicle_levels(levels: list[str]) -> tuple[str, str]:
    first = 6 if levels[2] == "v1" else 7
    return levels[first], levels[first + 1]


def test_fast_topic_parser_reads_every_real_topic_as_the_general_parser() -> None:
    messages, _ = read_all([*V2_DUMPS, V1_FILE])
    topics = {message.topic for message in messages}

    def parsed(parse: Callable[[str], object], topic: str) -> object:
        try:
            return parse(topic)
        except TopicError as exc:
            return str(exc)

    differing = [t for t in topics if parsed(parse_topic_fast, t) != parsed(parse_topic, t)]
    assert len(topics) > 1000
    assert differing == []


def run_replay(paths: list[Path], workdir: Path) -> dict[str, int]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HSL_LIVE_")}
    env["HSL_LIVE_LOG_LEVEL"] = "WARNING"
    env["HSL_LIVE_PORT"] = "0"
    command = [sys.executable, "-m", "hsl_live", "replay", *map(str, paths)]
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = {}
    for line in done.stdout.splitlines():
        label, _, number = line.strip().rpartition(" ")
        if number.isdigit():
            counts[label.strip()] = int(number)
    return counts


# v2 dumps (SOURCES.md section 2)


def test_v2_dumps_every_line_decodes() -> None:
    messages, stats = read_all(V2_DUMPS)

    events = decode_all(messages)

    assert len(V2_DUMPS) == 13
    assert (stats.lines, stats.blank, stats.broken) == (3690, 0, 0)
    assert len(events) == 3690


def test_v2_dumps_event_type_counts() -> None:
    events = decode_all(read_all(V2_DUMPS)[0])

    assert Counter(event.event_type for event in events) == {
        "VP": 3496,
        "DUE": 25,
        "DEP": 23,
        "ARS": 20,
        "PDE": 20,
        "ARR": 20,
        "DOO": 19,
        "DOC": 18,
        "VJA": 13,
        "VJOUT": 13,
        "WAIT": 9,
        "TLR": 8,
        "PAS": 3,
        "BOUT": 3,
    }


def test_v2_dumps_journey_and_temporal_counts() -> None:
    events = decode_all(read_all(V2_DUMPS)[0])

    assert Counter((e.journey_type, e.is_ongoing) for e in events) == {
        ("journey", True): 2414,
        ("deadrun", True): 1264,
        ("journey", False): 12,
    }


def test_v2_dumps_loc_counts_and_unique_lines() -> None:
    messages, _ = read_all(V2_DUMPS)
    events = decode_all(messages)

    assert Counter(event.loc for event in events) == {"GPS": 2637, "ODO": 1053}
    assert len({(m.topic, m.payload) for m in messages}) == 1990


def test_v2_dumps_tlr_topics_carry_sid() -> None:
    events = decode_all(read_all(V2_DUMPS)[0])

    tlr = [event for event in events if event.event_type == "TLR"]
    assert tlr
    assert all(event.sid is not None for event in tlr)


def test_v2_dumps_vehicles() -> None:
    events = decode_all(read_all(V2_DUMPS)[0])

    assert {event.unique_vehicle_id for event in events} == {
        "18/1029",
        "18/678",
        "18/1047",
        "18/679",
        "12/1124",
        "12/1913",
        "12/1211",
    }


# v1 capture (SOURCES.md section 1)


def test_v1_capture_every_line_decodes() -> None:
    messages, stats = read_all([V1_FILE])

    events = decode_all(messages)

    assert (stats.lines, stats.broken) == (5000, 0)
    assert len(events) == 5000
    assert {event.event_type for event in events} == {"VP"}
    assert {event.topic_version for event in events} == {"v1"}


def test_v1_capture_journey_mode_and_vehicle_counts() -> None:
    messages, _ = read_all([V1_FILE])
    events = decode_all(messages)

    assert Counter((e.journey_type, e.is_ongoing) for e in events) == {
        ("journey", True): 4167,
        ("deadrun", True): 717,
        ("journey", False): 112,
        ("deadrun", False): 4,
    }
    assert Counter(event.mode for event in events) == {"bus": 4249, "train": 456, "tram": 295}
    assert len({event.unique_vehicle_id for event in events}) == 1460
    assert len({(m.topic, m.payload) for m in messages}) == 4956


def test_v1_capture_tst_whole_seconds() -> None:
    events = decode_all(read_all([V1_FILE])[0])

    assert all(event.tst.microsecond == 0 for event in events)


# single v2 payloads (SOURCES.md section 3), under a topic built from their own fields


@pytest.mark.parametrize(
    "name", ["pas-2019-06-27.json", "tlr-2019-10-21.json", "vp-2019-11-20.json"]
)
def test_v2_json_payload_decodes(name: str) -> None:
    raw = (SAMPLES / "hfp-v2-json" / name).read_bytes()
    [(key, body)] = json.loads(raw).items()
    trip = f"{body['route']}/{body['dir']}/Synthetic/{body['start']}/{body['stop'] or ''}/0////"
    topic = f"/hfp/v2/journey/ongoing/{key.lower()}/bus/{body['oper']:04d}/{body['veh']:05d}/{trip}"

    event = decode(datetime.now(UTC), topic, raw)

    assert isinstance(event, Event), event
    assert (event.event_type, event.veh, event.route) == (key, body["veh"], body["route"])
    assert event.tst == datetime.fromisoformat(body["tst"])


def test_v2_json_tlr_priority_fields() -> None:
    raw = (SAMPLES / "hfp-v2-json" / "tlr-2019-10-21.json").read_bytes()
    topic = "/hfp/v2/journey/ongoing/tlr/bus/0022/00754/2112/1/Synthetic/10:15//0/////2107"

    event = decode(datetime.now(UTC), topic, raw)

    assert isinstance(event, Event), event
    assert (event.sid, event.signal_groupid, event.tlp_frequency) == (2107, 894, 461200)
    assert (event.tlp_requesttype, event.tlp_protocol, event.tlp_decision) == (
        "NORMAL",
        "KAR",
        "NAK",
    )


# CSV door events (SOURCES.md section 4) are not captures


def test_csv_door_events_not_read_as_captures() -> None:
    stats = CaptureStats()
    paths = sorted((SAMPLES / "hfp-csv-door-events").glob("*.csv.gz"))

    messages = [m for path in paths for m in read_capture(path, stats)]

    assert len(paths) == 2
    assert messages == []
    assert stats.broken == stats.lines > 13_000


# `hsl-live replay`, end to end


def test_replay_v2_dumps_prints_correct_counts(tmp_path: Path) -> None:
    messages, _ = read_all(V2_DUMPS)

    counts = run_replay(V2_DUMPS, tmp_path)

    assert (counts["lines"], counts["broken"], counts["messages"]) == (3690, 0, 3690)
    assert counts["duplicate messages"] == 3690 - 1990
    assert counts["rejected"] == 0
    distinct = expected_distinct_events(messages)
    assert counts["events"] == sum(distinct.values()) == 1990
    assert {kind: counts[kind] for kind in distinct} == distinct
    assert counts["distinct vehicles"] == 7


def test_replay_v1_capture_prints_correct_counts(tmp_path: Path) -> None:
    messages, _ = read_all([V1_FILE])

    counts = run_replay([V1_FILE], tmp_path)

    assert (counts["lines"], counts["messages"]) == (5000, 5000)
    assert counts["duplicate messages"] == 44
    assert counts["rejected"] == 0
    distinct = expected_distinct_events(messages)
    assert counts["events"] == counts["VP"] == distinct["VP"] == 4956
    assert counts["distinct vehicles"] == 1460

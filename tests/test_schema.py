"""Tests for the lake's zone schemas, frame builders and partition paths."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import polars as pl
import pytest

from hsl_live import simulate
from hsl_live.capture import RawMessage
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.schema import (
    NOT_NULL,
    SCHEMAS,
    Zone,
    events_frame,
    hour_of,
    partition_path,
    payload_text,
    raw_frame,
    rejected_frame,
)

RECEIVED = datetime(2024, 2, 13, 16, 33, 1, 250_000, tzinfo=UTC)
TOPIC = "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/Martinlaakso/17:35/4150208/0////"
HELSINKI = timezone(timedelta(hours=2))
SPARSE = b'{"VP":{"tst":"2024-02-13T16:33:00.931Z"}}'


def test_partition_path_is_hive_style_and_zero_padded() -> None:
    hour = hour_of(datetime(2024, 2, 3, 7, 59, 59, tzinfo=UTC))

    assert partition_path(Zone.PROCESSED, hour) == ("processed/year=2024/month=02/day=03/hour=07")


@pytest.mark.parametrize(
    "moments",
    [
        [datetime(2024, 2, 3, 7, 59, 59, 999_999, tzinfo=UTC), datetime(2024, 2, 3, 8, tzinfo=UTC)],
        [datetime(2024, 2, 3, 8, 30, tzinfo=UTC), datetime(2024, 2, 3, 7, 59, tzinfo=UTC)],
        [datetime(2024, 2, 3, 8, 30, tzinfo=UTC), datetime(2024, 2, 3, 8, 45, tzinfo=UTC)],
        [datetime(2024, 2, 3, 8, 30, tzinfo=UTC), datetime(2024, 2, 3, 8, 45, tzinfo=HELSINKI)],
        [datetime(2024, 2, 3, 8, 30), datetime(2024, 2, 3, 8, 45, tzinfo=UTC)],
    ],
)
def test_hour_of_is_the_start_of_each_moments_hour_in_its_zone(moments: list[datetime]) -> None:
    hours = [hour_of(moment) for moment in moments]

    assert hours == [m.replace(minute=0, second=0, microsecond=0) for m in moments]
    assert [hour.tzinfo for hour in hours] == [moment.tzinfo for moment in moments]


def test_events_frame_keeps_required_columns_filled_when_the_payload_is_sparse() -> None:
    event = decode(RECEIVED, TOPIC, SPARSE)
    assert isinstance(event, Event)

    frame = events_frame([event])

    assert frame.schema == SCHEMAS[Zone.PROCESSED]
    assert all(frame[column].null_count() == 0 for column in NOT_NULL[Zone.PROCESSED])
    assert frame["received_at"][0] == datetime(2024, 2, 13, 16, 33, 1, 250_000, tzinfo=UTC)


def test_raw_frame_keeps_utf8_payload_text_exactly() -> None:
    payload = '{"VP":{"desi":"Itäkeskus (M)","tst":"2024-02-13T16:33:00Z"}}'.encode()

    frame = raw_frame([RawMessage(RECEIVED, TOPIC, payload)])

    assert frame.schema == SCHEMAS[Zone.RAW]
    assert frame["payload"][0].encode() == payload


def test_rejected_frame_escapes_bytes_that_are_not_utf8() -> None:
    rejection = decode(RECEIVED, TOPIC, b'{"VP":\xff}')
    assert isinstance(rejection, Rejection)

    frame = rejected_frame([rejection])

    assert frame.schema == SCHEMAS[Zone.REJECTED]
    assert frame["payload"][0] == '{"VP":\\xff}'
    assert frame["reason"][0] == "invalid_json"


@pytest.mark.parametrize("zone", list(Zone))
def test_not_null_columns_exist_in_their_zone(zone: Zone) -> None:
    assert set(NOT_NULL[zone]) <= set(SCHEMAS[zone].names())


def _row_wise(events: list[Event]) -> pl.DataFrame:
    # The builder events_frame replaced: Polars reading one tuple per event.
    rows = [msgspec.structs.astuple(event) for event in events]
    return pl.DataFrame(rows, schema=SCHEMAS[Zone.PROCESSED], orient="row")


def _varied_events() -> list[Event]:
    simulation = simulate.Simulation(vehicles=40, seed=3, start=1_700_000_000.0)
    shared = datetime(2024, 2, 13, 16, 33, 1, 250_999, tzinfo=UTC)
    payloads = [
        SPARSE,
        b'{"DOO":{"tst":"2024-02-13T18:33:00.931+02:00","ttarr":"2024-02-13T18:35:00+02:00"}}',
        b'{"VP":{"tst":"1969-12-31T23:59:59.9995Z","oday":"1969-12-31","spd":null,"drst":1}}',
        b'{"TLR":{"tst":"2024-02-13T16:33:00.000001Z","tlp-requestid":7,"tlp-att-seq":2,'
        b'"tlp-decision":"ACK","tlp-frequency":5000,"sid":1234,"signal-groupid":3}}',
    ]
    topics = [TOPIC, TOPIC.replace("/vp/", "/doo/"), TOPIC, TOPIC.replace("/vp/", "/tlr/")]
    events: list[Event] = []
    for received, topic, payload in itertools.islice(simulate.generate(simulation), 3000):
        at = shared if len(events) % 2 else datetime.fromtimestamp(received, UTC)
        events.append(_event(at, topic, payload))
    events += [_event(shared, t, p) for t, p in zip(topics, payloads, strict=True)]
    return events


def _event(received: datetime, topic: str, payload: bytes) -> Event:
    event = decode(received, topic, payload)
    assert isinstance(event, Event), event
    return event


def test_events_frame_equals_the_row_wise_frame_for_varied_events() -> None:
    events = _varied_events()

    frame = events_frame(events)

    assert {event.event_type for event in events} >= {"VP", "DOO", "ARR", "DEP", "TLR"}
    assert frame.equals(_row_wise(events))
    assert frame.schema == SCHEMAS[Zone.PROCESSED]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"VP":{"tst":"1969-12-31T23:59:59.999Z","oday":"1969-12-30"}}',
        b'{"VP":{"tst":"2024-02-13T16:33:00.5Z","oday":"2024-02-13","lat":60.1}}',
    ],
)
def test_events_frame_of_sparse_events_equals_the_row_wise_frame(payload: bytes) -> None:
    shared = datetime(2024, 2, 13, 16, 33, 1, 250_000, tzinfo=UTC)
    events = [_event(shared, TOPIC, payload), _event(shared, TOPIC, SPARSE)]

    assert events_frame(events).equals(_row_wise(events))


def test_events_frame_of_no_events_is_empty_with_the_schema() -> None:
    frame = events_frame([])

    assert (frame.height, frame.schema) == (0, SCHEMAS[Zone.PROCESSED])


def test_events_frame_reads_a_time_without_a_zone_as_polars_does() -> None:
    events = _varied_events()[:3]
    events[1].received_at = datetime(2024, 2, 13, 16, 33, 1, 250_000)

    assert events_frame(events).equals(_row_wise(events))


def test_raw_and_rejected_frames_equal_the_row_wise_frames() -> None:
    messages = [
        RawMessage(RECEIVED, TOPIC, SPARSE),
        RawMessage(RECEIVED, TOPIC, b'{"VP":\xff}'),
        RawMessage(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC), "/x", b"{}"),
    ]
    rejections = [
        Rejection(m.received_at, m.topic, m.payload, "invalid_json", "detail") for m in messages
    ]
    raw_rows = [(m.received_at, m.topic, payload_text(m.payload)) for m in messages]
    rejected_rows = [(*row, "invalid_json", "detail") for row in raw_rows]

    assert raw_frame(messages).equals(
        pl.DataFrame(raw_rows, schema=SCHEMAS[Zone.RAW], orient="row")
    )
    assert rejected_frame(rejections).equals(
        pl.DataFrame(rejected_rows, schema=SCHEMAS[Zone.REJECTED], orient="row")
    )
    # Without the row that is not UTF-8, the payload column is checked whole, not row by row.
    utf8 = [messages[0], messages[2]]
    assert raw_frame(utf8).equals(
        pl.DataFrame([raw_rows[0], raw_rows[2]], schema=SCHEMAS[Zone.RAW], orient="row")
    )

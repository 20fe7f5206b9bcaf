"""Tests for the lake's zone schemas, frame builders and partition paths."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hsl_live.capture import RawMessage
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.schema import (
    NOT_NULL,
    SCHEMAS,
    Zone,
    events_frame,
    hour_of,
    partition_path,
    raw_frame,
    rejected_frame,
)

RECEIVED = datetime(2024, 2, 13, 16, 33, 1, 250_000, tzinfo=UTC)
TOPIC = "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/Martinlaakso/17:35/4150208/0////"
SPARSE = b'{"VP":{"tst":"2024-02-13T16:33:00.931Z"}}'


def test_partition_path_is_hive_style_and_zero_padded() -> None:
    hour = hour_of(datetime(2024, 2, 3, 7, 59, 59, tzinfo=UTC))

    assert partition_path(Zone.PROCESSED, hour) == ("processed/year=2024/month=02/day=03/hour=07")


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

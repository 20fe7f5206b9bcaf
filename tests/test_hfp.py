"""Tests for decoding one HFP message into an Event or a Rejection."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsl_live import hfp
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.schema import PROCESSED_TYPES

RECEIVED = datetime(2024, 2, 13, 16, 33, 0, 5271, tzinfo=UTC)
TOPIC = (
    "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/Martinlaakso/17:35/4150208/5/60;24/28/65/93"
)
TLR_TOPIC = "/hfp/v2/journey/ongoing/tlr/bus/0022/00754/2112/1/Tapiola (M)/10:15/2222222/0/////2107"
VP_FIELDS: dict[str, Any] = {
    "desi": "520",
    "dir": "1",
    "oper": 6,
    "veh": 1029,
    "tst": "2024-02-13T16:32:59.931Z",
    "tsi": 1707841979,
    "spd": 4.5,
    "hdg": 271,
    "lat": 60.269247,
    "long": 24.853777,
    "acc": -0.2,
    "dl": -232,
    "odo": 25030,
    "drst": 0,
    "oday": "2024-02-13",
    "jrn": 632,
    "line": 1110,
    "start": "17:35",
    "loc": "GPS",
    "stop": 4150208,
    "route": "5520",
    "occu": 0,
}
TLR_FIELDS: dict[str, Any] = {
    **VP_FIELDS,
    "sid": 2107,
    "signal-groupid": 894,
    "tlp-signalgroupnbr": -1,
    "tlp-requestid": 100,
    "tlp-requesttype": "NORMAL",
    "tlp-prioritylevel": "normal",
    "tlp-line-configid": None,
    "tlp-point-configid": 7,
    "tlp-frequency": 461200,
    "tlp-protocol": "KAR-MQTT",
    "tlp-att-seq": 1,
    "tlp-reason": "AHEAD",
    "tlp-decision": "NAK",
}


def payload(key: str = "VP", /, **fields: Any) -> bytes:
    body = {**VP_FIELDS, **fields}
    return json.dumps({key: {k: v for k, v in body.items() if v is not ...}}).encode()


def decoded(topic: str = TOPIC, body: bytes | None = None) -> Event:
    result = decode(RECEIVED, topic, payload() if body is None else body)
    assert isinstance(result, Event), result
    return result


def rejected(topic: str = TOPIC, body: bytes | None = None) -> Rejection:
    result = decode(RECEIVED, topic, payload() if body is None else body)
    assert isinstance(result, Rejection), result
    return result


def test_event_fields_follow_processed_columns() -> None:
    assert Event.__struct_fields__ == tuple(PROCESSED_TYPES)


def test_decode_vp_payload_fields() -> None:
    event = decoded()

    assert (event.desi, event.dir, event.oper, event.veh) == ("520", 1, 6, 1029)
    assert event.tst == datetime(2024, 2, 13, 16, 32, 59, 931000, tzinfo=UTC)
    assert event.tsi == 1707841979
    assert (event.spd, event.hdg, event.acc, event.dl) == (4.5, 271, -0.2, -232)
    assert (event.lat, event.long) == (60.269247, 24.853777)
    assert event.odo == 25030.0
    assert isinstance(event.odo, float)
    assert event.drst is False
    assert event.oday == date(2024, 2, 13)
    assert (event.jrn, event.line, event.start, event.loc) == (632, 1110, "17:35", "GPS")
    assert (event.stop, event.route, event.occu) == (4150208, "5520", 0)


def test_decode_copies_topic_levels() -> None:
    event = decoded()

    assert event.received_at == RECEIVED
    assert (event.topic_prefix, event.topic_version) == ("/hfp/", "v2")
    assert (event.journey_type, event.is_ongoing, event.event_type) == ("journey", True, "VP")
    assert (event.mode, event.owner_operator_id, event.vehicle_number) == ("bus", 18, 1029)
    assert event.unique_vehicle_id == "18/1029"
    assert (event.route_id, event.direction_id, event.headsign) == ("5520", 1, "Martinlaakso")
    assert (event.journey_start_time, event.next_stop_id) == ("17:35", "4150208")
    assert (event.geohash_level, event.topic_latitude, event.topic_longitude) == (5, 60.269, 24.853)


def test_decode_tlr_hyphenated_keys() -> None:
    event = decoded(TLR_TOPIC, json.dumps({"TLR": TLR_FIELDS}).encode())

    assert (event.sid, event.signal_groupid, event.tlp_signalgroupnbr) == (2107, 894, -1)
    assert (event.tlp_requestid, event.tlp_requesttype) == (100, "NORMAL")
    assert (event.tlp_prioritylevel, event.tlp_reason) == ("normal", "AHEAD")
    assert (event.tlp_line_configid, event.tlp_point_configid) == (None, 7)
    assert (event.tlp_frequency, event.tlp_protocol) == (461200, "KAR-MQTT")
    assert (event.tlp_att_seq, event.tlp_decision) == (1, "NAK")


def test_decode_sid_taken_from_topic_when_payload_lacks_it() -> None:
    body = json.dumps({"TLR": {**TLR_FIELDS, "sid": None}}).encode()

    assert decoded(TLR_TOPIC, body).sid == 2107


def test_decode_vja_dr_type_and_block() -> None:
    topic = TOPIC.replace("/vp/", "/vja/")

    event = decoded(topic, payload("VJA", **{"dr-type": 1, "block": 417}))

    assert (event.event_type, event.dr_type, event.block) == ("VJA", 1, 417)


def test_decode_stop_event_schedule_times() -> None:
    body = payload("PAS", ttarr="2024-02-13T16:29:00.000Z", ttdep="2024-02-13T16:30:00Z")

    event = decoded(TOPIC.replace("/vp/", "/pas/"), body)

    assert event.ttarr == datetime(2024, 2, 13, 16, 29, tzinfo=UTC)
    assert event.ttdep == datetime(2024, 2, 13, 16, 30, tzinfo=UTC)


def test_decode_metro_seq_and_ferry_label() -> None:
    event = decoded(body=payload(seq=2, label="Suomenlinna II", occu=37))

    assert (event.seq, event.label, event.occu) == (2, "Suomenlinna II", 37)


@pytest.mark.parametrize(("drst", "expected"), [(0, False), (1, True), (None, None)])
def test_decode_drst_as_boolean(drst: int | None, expected: bool | None) -> None:
    assert decoded(body=payload(drst=drst)).drst is expected


@pytest.mark.parametrize(("direction", "expected"), [("1", 1), ("2", 2), (2, 2), (None, None)])
def test_decode_dir_string_to_int(direction: object, expected: int | None) -> None:
    assert decoded(body=payload(dir=direction)).dir == expected


@pytest.mark.parametrize(
    ("tst", "expected"),
    [
        ("2024-02-13T16:32:59.931Z", datetime(2024, 2, 13, 16, 32, 59, 931000, tzinfo=UTC)),
        ("2018-10-09T04:32:52Z", datetime(2018, 10, 9, 4, 32, 52, tzinfo=UTC)),
        ("2024-02-13T18:32:59.931+02:00", datetime(2024, 2, 13, 16, 32, 59, 931000, tzinfo=UTC)),
    ],
)
def test_decode_tst_to_utc(tst: str, expected: datetime) -> None:
    event = decoded(body=payload(tst=tst))

    assert event.tst == expected
    assert event.tst.utcoffset() == timedelta(0)
    assert event.tst.tzinfo is UTC


def test_decode_schedule_time_with_offset_to_utc() -> None:
    event = decoded(body=payload(ttarr="2024-02-13T18:29:00+02:00"))

    assert event.ttarr is not None
    assert event.ttarr.tzinfo is UTC
    assert event.ttarr == datetime(2024, 2, 13, 16, 29, tzinfo=UTC)


def test_decode_missing_and_null_fields_alike() -> None:
    optional = [name for name in VP_FIELDS if name != "tst"]
    missing = decoded(body=payload(**dict.fromkeys(optional, ...)))
    null = decoded(body=payload(**dict.fromkeys(optional, None)))

    assert missing == null
    assert all(getattr(missing, name) is None for name in optional)


def test_decode_unknown_keys_ignored() -> None:
    body = payload(future={"nested": [1, 2]}, another="x", block=None)

    assert decoded(body=body) == decoded()


def test_decode_v1_topic_takes_event_type_from_payload() -> None:
    topic = (
        "/hfp/v1/journey/ongoing/bus/0018/00640/1057/1/Munkkiniemi/07:32/1471139/3/60;25/20/38/71"
    )

    event = decoded(topic)

    assert (event.topic_version, event.event_type, event.vehicle_number) == ("v1", "VP", 640)


@pytest.mark.parametrize(
    ("topic", "body", "reason"),
    [
        (TOPIC, b"", hfp.INVALID_JSON),
        (TOPIC, b"not json", hfp.INVALID_JSON),
        (TOPIC, b'{"VP": {"tst": "2024-02-13T16:32:59Z"}', hfp.INVALID_JSON),
        (TOPIC, b'{"VP": {"tst": "2024-02-13T16:32:59Z"}} trailing', hfp.INVALID_JSON),
        (TOPIC, b'{"VP": {"tst": "2024-02-13T16:32:59Z", "desi": "\xff"}}', hfp.INVALID_JSON),
        (TOPIC, b'{"VP": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}", hfp.INVALID_JSON),
        (TOPIC, b'{"VP": {"veh": 1}}', hfp.MISSING_TST),
        (TOPIC, b'{"VP": {"tst": null}}', hfp.MISSING_TST),
        (TOPIC, b'{"XYZ": {"tst": "2024-02-13T16:32:59Z"}}', hfp.UNKNOWN_EVENT_TYPE),
        (TOPIC, b'{"vp": {"tst": "2024-02-13T16:32:59Z"}}', hfp.UNKNOWN_EVENT_TYPE),
        (TOPIC, b'{"DUE": {"tst": "2024-02-13T16:32:59Z"}}', hfp.EVENT_TYPE_MISMATCH),
        (
            "/hfp/v2/journey/ongoing/vp/bus/18",
            b'{"VP": {"tst": "2024-02-13T16:32:59Z"}}',
            hfp.MALFORMED_TOPIC,
        ),
        ("", b'{"VP": {"tst": "2024-02-13T16:32:59Z"}}', hfp.MALFORMED_TOPIC),
        (TOPIC, payload(lat=91.0), hfp.INVALID_COORDINATES),
        (TOPIC, payload(lat=-90.5), hfp.INVALID_COORDINATES),
        (TOPIC, payload(long=180.01), hfp.INVALID_COORDINATES),
        (TOPIC, payload(long=-181), hfp.INVALID_COORDINATES),
        (TOPIC, payload(lat="nan"), hfp.INVALID_COORDINATES),
        (TOPIC, b"[]", hfp.INVALID_PAYLOAD),
        (TOPIC, b"null", hfp.INVALID_PAYLOAD),
        (TOPIC, b"{}", hfp.INVALID_PAYLOAD),
        (TOPIC, b'{"VP": 1}', hfp.INVALID_PAYLOAD),
        (TOPIC, payload(tst="yesterday"), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(tst="2024-02-13T16:32:59"), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(spd="fast"), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(veh=[1]), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(drst=2), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(oday="13.2.2024"), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(dir=300), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(hdg=2**15), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(stop=2**31), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(tsi=2**63), hfp.INVALID_PAYLOAD),
        (TOPIC, payload(desi=520), hfp.INVALID_PAYLOAD),
        (
            TOPIC,
            b'{"VP": {"tst": "2024-02-13T16:32:59Z"}, "DUE": {"tst": "2024-02-13T16:32:59Z"}}',
            hfp.INVALID_PAYLOAD,
        ),
    ],
)
def test_decode_rejects_with_stable_reason(topic: str, body: bytes, reason: str) -> None:
    rejection = rejected(topic, body)

    assert rejection.reason == reason
    assert rejection.reason in hfp.REASONS
    assert (rejection.received_at, rejection.topic, rejection.payload) == (RECEIVED, topic, body)
    assert rejection.detail


def test_decode_malformed_topic_detail_names_the_level() -> None:
    topic = "/hfp/v2/journey/ongoing/vp/bus/0018/x1029"

    assert "vehicle number" in rejected(topic).detail


def test_decode_mismatch_detail_names_both_types() -> None:
    rejection = rejected(body=payload("DUE"))

    assert "VP" in rejection.detail
    assert "DUE" in rejection.detail


def test_decode_reasons_are_stable_strings() -> None:
    assert hfp.REASONS == (
        "invalid_json",
        "invalid_payload",
        "missing_tst",
        "unknown_event_type",
        "event_type_mismatch",
        "malformed_topic",
        "invalid_coordinates",
    )


def test_dedup_key_fields() -> None:
    event = decoded(body=payload(seq=1))

    assert event.dedup_key() == ("18/1029", "VP", "journey", True, event.tst, 1)


# Property tests: decode is total, whatever arrives.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from([*VP_FIELDS, *TLR_FIELDS, "seq", "label", "ttarr", "dr-type"])


@settings(max_examples=300)
@given(topic=st.text(), body=st.binary())
def test_decode_never_raises_on_arbitrary_input(topic: str, body: bytes) -> None:
    assert isinstance(decode(RECEIVED, topic, body), Event | Rejection)


@settings(max_examples=300)
@given(
    topic=st.lists(st.text(alphabet=st.characters(exclude_characters="/")), max_size=22).map(
        lambda levels: "/hfp/v2/" + "/".join(levels)
    )
)
def test_decode_never_raises_on_hfp_shaped_topics(topic: str) -> None:
    assert isinstance(decode(RECEIVED, topic, payload()), Event | Rejection)


@settings(max_examples=300)
@given(body=st.dictionaries(st.text(), JSON_VALUES, max_size=3))
def test_decode_never_raises_on_arbitrary_json_objects(body: dict[str, Any]) -> None:
    result = decode(RECEIVED, TOPIC, json.dumps(body).encode())

    assert isinstance(result, Event | Rejection)


@settings(max_examples=300)
@given(fields=st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6))
def test_decode_never_raises_on_mutated_fields(fields: dict[str, Any]) -> None:
    result = decode(RECEIVED, TLR_TOPIC, json.dumps({"TLR": {**TLR_FIELDS, **fields}}).encode())

    assert isinstance(result, Event | Rejection)


@settings(max_examples=300)
@given(data=st.data())
def test_decode_never_raises_on_mutated_bytes(data: st.DataObject) -> None:
    body = bytearray(payload())
    for _ in range(data.draw(st.integers(1, 5))):
        index = data.draw(st.integers(0, len(body) - 1))
        body[index] = data.draw(st.integers(0, 255))

    result = decode(RECEIVED, TOPIC, bytes(body))

    assert isinstance(result, Event | Rejection)


@settings(max_examples=200)
@given(data=st.data())
def test_decode_never_raises_on_mutated_topics(data: st.DataObject) -> None:
    topic = list(TLR_TOPIC)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(topic) - 1))
        topic[index] = data.draw(st.characters())

    result = decode(RECEIVED, "".join(topic), json.dumps({"TLR": TLR_FIELDS}).encode())

    assert isinstance(result, Event | Rejection)


def test_decode_unknown_event_key_with_invalid_body_is_unknown_event_type() -> None:
    topic = "/hfp/v2/journey/ongoing/vp/bus/0012/01825/1069/1/X/07:20/123/5/60;24/19/85/93"
    result = decode(datetime(2024, 1, 1, tzinfo=UTC), topic, b'{"FOO":{}}')
    assert isinstance(result, Rejection)
    assert result.reason == "unknown_event_type"

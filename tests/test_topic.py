"""Tests for HFP topic parsing."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hsl_live.topic import EVENT_TYPES, Topic, TopicError, parse_topic, parse_topic_fast

VP_TOPIC = (
    "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/Martinlaakso/17:35/4150208/5/60;24/28/65/93"
)


def test_parse_topic_full_v2_journey_topic() -> None:
    parsed = parse_topic(VP_TOPIC)

    assert parsed == Topic(
        topic_prefix="/hfp/",
        topic_version="v2",
        journey_type="journey",
        is_ongoing=True,
        event_type="VP",
        mode="bus",
        owner_operator_id=18,
        vehicle_number=1029,
        route_id="5520",
        direction_id=1,
        headsign="Martinlaakso",
        journey_start_time="17:35",
        next_stop_id="4150208",
        geohash_level=5,
        topic_latitude=60.269,
        topic_longitude=24.853,
        sid=None,
    )


def test_parse_topic_unique_vehicle_id_drops_zero_padding() -> None:
    assert parse_topic(VP_TOPIC).unique_vehicle_id == "18/1029"


@pytest.mark.parametrize("journey_type", ["journey", "deadrun", "signoff"])
@pytest.mark.parametrize(("temporal", "ongoing"), [("ongoing", True), ("upcoming", False)])
def test_parse_topic_journey_and_temporal_types(
    journey_type: str, temporal: str, ongoing: bool
) -> None:
    parsed = parse_topic(f"/hfp/v2/{journey_type}/{temporal}/vp/bus/0012/01825")

    assert (parsed.journey_type, parsed.is_ongoing) == (journey_type, ongoing)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_parse_topic_every_event_type_upper_cased(event_type: str) -> None:
    parsed = parse_topic(f"/hfp/v2/journey/ongoing/{event_type}/bus/0012/01825")

    assert parsed.event_type == event_type.upper()


@pytest.mark.parametrize("mode", ["bus", "tram", "train", "ferry", "metro", "ubus", "robot"])
def test_parse_topic_transport_modes(mode: str) -> None:
    assert parse_topic(f"/hfp/v2/journey/ongoing/vp/{mode}/0012/01825").mode == mode


def test_parse_topic_empty_mode_is_none() -> None:
    parsed = parse_topic("/hfp/v2/journey/ongoing/vp//0012/01825/1069/1/Kamppi/07:20/1130446/3")

    assert parsed.mode is None
    assert parsed.route_id == "1069"


def test_parse_topic_deadrun_ends_at_vehicle_number() -> None:
    parsed = parse_topic("/hfp/v2/deadrun/ongoing/vp/bus/0018/01047")

    assert (parsed.owner_operator_id, parsed.vehicle_number) == (18, 1047)
    assert parsed.route_id is None
    assert parsed.headsign is None
    assert parsed.topic_latitude is None


def test_parse_topic_no_position_geohash() -> None:
    parsed = parse_topic(
        "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/Martinlaakso/17:35/4170293/0////"
    )

    assert parsed.geohash_level == 0
    assert (parsed.topic_latitude, parsed.topic_longitude) == (None, None)
    assert parsed.sid is None


def test_parse_topic_trailing_sid_level() -> None:
    parsed = parse_topic(
        "/hfp/v2/journey/ongoing/tlr/bus/0018/01029/5520/2/Matinkylä (M)/18:48/4170299/0/////3230"
    )

    assert parsed.sid == 3230
    assert parsed.headsign == "Matinkylä (M)"
    assert parsed.topic_latitude is None


def test_parse_topic_sid_after_a_position() -> None:
    parsed = parse_topic(
        "/hfp/v2/journey/ongoing/tlr/bus/0018/01029/5520/2/Kamppi/18:48/4170299/4/60;24/19/85/93/3230"
    )

    assert (parsed.topic_latitude, parsed.topic_longitude, parsed.sid) == (60.189, 24.953, 3230)


@pytest.mark.parametrize(
    "headsign",
    ["Itäkeskus (M)", "Matinkylä (M)", "Kauklahti via Espoon keskus", "Åbo/Turku", "A/B/C"],
)
def test_parse_topic_headsign_kept_whole(headsign: str) -> None:
    trip = f"4413/2/{headsign}/14:05/4170203/4/60;24/27/84/40"
    topic = f"/hfp/v2/journey/ongoing/vp/bus/0022/00817/{trip}"

    parsed = parse_topic(topic)

    assert parsed.headsign == headsign
    assert parsed.journey_start_time == "14:05"
    assert parsed.next_stop_id == "4170203"
    assert (parsed.topic_latitude, parsed.topic_longitude) == (60.284, 24.74)


def test_parse_topic_route_with_space() -> None:
    parsed = parse_topic(
        "/hfp/v2/journey/ongoing/vp/train/0090/01234/1004 4/1/Helsinki/07:20/X/0////"
    )

    assert parsed.route_id == "1004 4"


def test_parse_topic_extra_levels_after_sid_ignored() -> None:
    parsed = parse_topic(VP_TOPIC + "/77/future/levels")

    assert parsed.sid == 77
    assert parsed.topic_latitude == 60.269


@pytest.mark.parametrize(
    ("topic", "prefix", "version"),
    [
        (
            "/hsldevcom/public/hfp/v2/journey/ongoing/vp/bus/0018/01047",
            "/hsldevcom/public/hfp/",
            "v2",
        ),
        ("hfp/v2/journey/ongoing/vp/bus/0018/01047", "hfp/", "v2"),
        ("/hfp/dev/journey/ongoing/vp/bus/0018/01047", "/hfp/", "dev"),
        ("/hfp/v3/journey/ongoing/vp/bus/0018/01047", "/hfp/", "v3"),
    ],
)
def test_parse_topic_prefix_and_version(topic: str, prefix: str, version: str) -> None:
    parsed = parse_topic(topic)

    assert (parsed.topic_prefix, parsed.topic_version) == (prefix, version)
    assert parsed.vehicle_number == 1047


def test_parse_topic_v1_has_no_event_type_level() -> None:
    parsed = parse_topic(
        "/hfp/v1/journey/ongoing/bus/0018/00640/1057/1/Munkkiniemi/07:32/1471139/3/60;25/20/38/71"
    )

    assert parsed.topic_version == "v1"
    assert parsed.event_type is None
    assert (parsed.mode, parsed.owner_operator_id, parsed.vehicle_number) == ("bus", 18, 640)
    assert (parsed.route_id, parsed.direction_id, parsed.headsign) == ("1057", 1, "Munkkiniemi")
    assert (parsed.journey_start_time, parsed.next_stop_id) == ("07:32", "1471139")
    assert (parsed.geohash_level, parsed.topic_latitude, parsed.topic_longitude) == (
        3,
        60.237,
        25.081,
    )


def test_parse_topic_v1_deadrun() -> None:
    parsed = parse_topic("/hfp/v1/deadrun/ongoing/train/0090/06313")

    assert (parsed.journey_type, parsed.mode, parsed.unique_vehicle_id) == (
        "deadrun",
        "train",
        "90/6313",
    )


@pytest.mark.parametrize(
    ("geohash", "lat", "lon"),
    [
        ("60;24/19/85/93", 60.189, 24.953),
        ("60;24/17/28/39", 60.123, 24.789),
        ("60;25/00/00/00", 60.0, 25.0),
        ("60;24/19/85/", 60.18, 24.95),
        ("60;24/1x/85/93", 60.0, 24.0),
        ("-33;151/81/55/39", -33.853, 151.159),
    ],
)
def test_parse_topic_geohash_to_three_decimals(geohash: str, lat: float, lon: float) -> None:
    parsed = parse_topic(f"/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/X/17:35/1/5/{geohash}")

    assert (parsed.topic_latitude, parsed.topic_longitude) == (lat, lon)


@pytest.mark.parametrize("head", ["60", "60;x", "x;24", "", ";"])
def test_parse_topic_unreadable_geohash_is_no_position(head: str) -> None:
    parsed = parse_topic(
        f"/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/X/17:35/1/5/{head}/19/85/93"
    )

    assert (parsed.topic_latitude, parsed.topic_longitude) == (None, None)


def test_parse_topic_non_ascii_digit_geohash_cell_is_no_decimal() -> None:
    parsed = parse_topic(
        "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/X/17:35/1/5/60;24/²³/85/93"
    )

    assert (parsed.topic_latitude, parsed.topic_longitude) == (60.0, 24.0)


def test_parse_topic_empty_trip_levels_are_none() -> None:
    parsed = parse_topic("/hfp/v2/journey/ongoing/vp/bus/0018/01029//////")

    assert parsed.route_id is None
    assert parsed.direction_id is None
    assert parsed.headsign is None
    assert parsed.journey_start_time is None
    assert parsed.next_stop_id is None
    assert parsed.geohash_level is None


def test_parse_topic_short_trip_is_ignored() -> None:
    parsed = parse_topic("/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1")

    assert parsed.route_id is None


@pytest.mark.parametrize(
    ("topic", "level"),
    [
        ("", "version"),
        ("/hfp/journey/ongoing/vp/bus/0018/01029", "version"),
        ("/hfp/v2/journey/ongoing/vp/bus/0018", "vehicle number"),
        ("/hfp/v2/journey/ongoing/vp/bus", "operator id"),
        ("/hfp/v2/journey", "temporal type"),
        ("/hfp/v2", "journey type"),
        ("/hfp/v1/journey/ongoing/bus/0018", "vehicle number"),
        ("/hfp/v2/walk/ongoing/vp/bus/0018/01029", "journey type"),
        ("/hfp/v2/journey/soon/vp/bus/0018/01029", "temporal type"),
        ("/hfp/v2/journey/ongoing/xyz/bus/0018/01029", "event type"),
        ("/hfp/v2/journey/ongoing/VP/bus/0018/01029", "event type"),
        ("/hfp/v2/journey/ongoing/vp/Bus/0018/01029", "transport mode"),
        ("/hfp/v2/journey/ongoing/vp/bus 2/0018/01029", "transport mode"),
        ("/hfp/v2/journey/ongoing/vp/bus/00a8/01029", "operator id"),
        ("/hfp/v2/journey/ongoing/vp/bus//01029", "operator id"),
        ("/hfp/v2/journey/ongoing/vp/bus/12345/01029", "operator id"),
        ("/hfp/v2/journey/ongoing/vp/bus/0018/-1029", "vehicle number"),
        ("/hfp/v2/journey/ongoing/vp/bus/0018/\uff11\uff10\uff12\uff19", "vehicle number"),
        ("/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/x/X/17:35/1/5", "direction id"),
        ("/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/X/17:35/1/high", "geohash level"),
        ("/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/X/17:35/1/0/////j1", "junction id"),
    ],
)
def test_parse_topic_malformed_names_the_level(topic: str, level: str) -> None:
    with pytest.raises(TopicError, match=level):
        parse_topic(topic)


def test_parse_topic_geohash_cells_must_be_two_digits() -> None:
    parsed = parse_topic(
        "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/X/17:35/1/5/60;24/123/4/56"
    )

    assert (parsed.topic_latitude, parsed.topic_longitude) == (60.0, 24.0)


def _parsed(parse: object, topic: str) -> Topic | str:
    try:
        return parse(topic)  # type: ignore[operator, no-any-return]
    except TopicError as exc:
        return f"TopicError: {exc}"


# Topics built from levels that each may or may not have the usual shape.
_LEVEL = st.sampled_from(["", "0", "1", "9", "10", "00", "x", ":", ";", "-", "\u0661", " "])
_TOPIC_LEVELS = st.tuples(
    st.sampled_from(["journey", "deadrun", "upcoming"]),
    st.sampled_from(["ongoing", "upcoming"]),
    st.sampled_from(["vp", "arr", "partial-apc", "VP"]),
    st.sampled_from(["bus", "", "Bus"]),
    st.sampled_from(["0012", "12345", "00012", "1"]),
    st.sampled_from(["01825", "123456", "0", "\uff11"]),
    st.lists(
        st.one_of(
            _LEVEL,
            st.sampled_from(["17:35", "1:35", "60;24", "-1;-179", "1000;24", "28", "2147483648"]),
            st.text(max_size=4),
        ),
        max_size=14,
    ),
)


@given(levels=_TOPIC_LEVELS)
@example(levels=("journey", "ongoing", "vp", "bus", "0018", "01029", VP_TOPIC.split("/")[9:]))
def test_parse_topic_fast_equals_parse_topic(
    levels: tuple[str, str, str, str, str, str, list[str]],
) -> None:
    *fixed, trip = levels
    topic = "/".join(["", "hfp", "v2", *fixed, *trip])

    assert _parsed(parse_topic_fast, topic) == _parsed(parse_topic, topic)


@pytest.mark.parametrize(
    "topic",
    [
        VP_TOPIC,
        VP_TOPIC + "/1234",
        VP_TOPIC + "/",
        VP_TOPIC.replace("Martinlaakso", "Kamppi/Kampen"),
        VP_TOPIC.replace("Martinlaakso", ""),
        VP_TOPIC.replace("60;24", "-1;-179"),
        VP_TOPIC.replace("/1/Martinlaakso", "//Martinlaakso"),
        VP_TOPIC.replace("/vp/bus/", "/vp//"),
        VP_TOPIC.replace("/journey/ongoing/", "/deadrun/upcoming/"),
    ],
)
def test_parse_topic_fast_reads_the_usual_shapes_as_parse_topic(topic: str) -> None:
    assert parse_topic_fast(topic) == parse_topic(topic)

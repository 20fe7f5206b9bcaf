"""Tests for the per-message path: dedup, decode, and hand-off to the lake and live view."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hsl_live.capture import RawMessage
from hsl_live.clock import Clock
from hsl_live.hfp import Event, Rejection
from hsl_live.ingest import Ingest
from hsl_live.metrics import Metrics

RECEIVED = datetime(2024, 2, 13, 16, 33, tzinfo=UTC)
TOPIC = (
    "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/1/Martinlaakso/17:35/4150208/5/60;24/28/65/93"
)
PAYLOAD = b'{"VP":{"veh":1029,"tst":"2024-02-13T16:32:59.931Z","lat":60.269247,"long":24.853777}}'


class FakeLake:
    def __init__(self) -> None:
        self.raw: list[RawMessage] = []
        self.events: list[Event] = []
        self.rejected: list[Rejection] = []

    def add_raws(self, messages: Sequence[RawMessage]) -> None:
        self.raw += messages

    def add_events(self, events: Sequence[Event]) -> None:
        self.events += events

    def add_rejected(self, rejection: Rejection) -> None:
        self.rejected.append(rejection)


class FakeLive:
    def __init__(self) -> None:
        self.applied: list[Event] = []

    def apply_many(self, events: Sequence[Event]) -> None:
        self.applied += events


def message(topic: str = TOPIC, payload: bytes = PAYLOAD, seconds: float = 0.0) -> RawMessage:
    return RawMessage(RECEIVED + timedelta(seconds=seconds), topic, payload)


def make_ingest() -> tuple[Ingest, FakeLake, FakeLive]:
    lake, live = FakeLake(), FakeLive()
    return Ingest(Clock(replay=True), dedup_seconds=300, lake=lake, live=live), lake, live


def test_handle_valid_message_reaches_lake_and_live_view() -> None:
    ingest, lake, live = make_ingest()

    ingest.handle(message())

    assert lake.raw == [message()]
    assert [event.unique_vehicle_id for event in lake.events] == ["18/1029"]
    assert live.applied == lake.events
    assert ingest.stats.events == 1
    assert ingest.stats.events_by_type == {"VP": 1}
    assert ingest.vehicles == {"18/1029"}


def test_handle_exact_duplicate_message_counted_not_stored() -> None:
    ingest, lake, live = make_ingest()

    for n in range(4):
        ingest.handle(message(seconds=n * 0.01))

    assert ingest.stats.messages == 4
    assert ingest.stats.duplicate_messages == 3
    assert ingest.stats.duplicate_events == 0
    assert (len(lake.raw), len(lake.events), len(live.applied)) == (1, 1, 1)


def test_handle_duplicate_event_with_other_bytes_counted_separately() -> None:
    ingest, lake, _ = make_ingest()
    moved_stop = TOPIC.replace("/4150208/", "/4150209/")

    ingest.handle(message())
    ingest.handle(message(topic=moved_stop))

    assert ingest.stats.duplicate_messages == 0
    assert ingest.stats.duplicate_events == 1
    assert len(lake.raw) == 2
    assert len(lake.events) == 1


def test_handle_ongoing_and_upcoming_pair_both_kept() -> None:
    ingest, lake, _ = make_ingest()

    ingest.handle(message())
    ingest.handle(message(topic=TOPIC.replace("/ongoing/", "/upcoming/")))

    assert [event.is_ongoing for event in lake.events] == [True, False]
    assert ingest.stats.duplicate_events == 0


def test_handle_rejections_counted_by_reason() -> None:
    ingest, lake, live = make_ingest()

    ingest.handle(message(payload=b"not json"))
    ingest.handle(message(payload=b'{"VP":{"veh":1}}'))
    ingest.handle(message(payload=b'{"VP":{"tst":null}}'))
    ingest.handle(message(topic="/hfp/v2/nonsense"))

    assert ingest.stats.rejected == 4
    assert ingest.stats.rejected_by_reason == {
        "invalid_json": 1,
        "missing_tst": 2,
        "malformed_topic": 1,
    }
    assert [r.reason for r in lake.rejected] == [
        "invalid_json",
        "missing_tst",
        "missing_tst",
        "malformed_topic",
    ]
    assert len(lake.raw) == 4
    assert live.applied == []


def test_handle_repeated_rejection_counted_once() -> None:
    ingest, lake, _ = make_ingest()

    ingest.handle(message(payload=b"not json"))
    ingest.handle(message(payload=b"not json"))

    assert (ingest.stats.rejected, ingest.stats.duplicate_messages) == (1, 1)
    assert len(lake.rejected) == 1


def test_handle_without_lake_or_live_view() -> None:
    ingest = Ingest(Clock(replay=True), dedup_seconds=300)

    ingest.handle(message())

    assert ingest.stats.events == 1


def test_handle_replay_clock_follows_received_at() -> None:
    ingest, _, _ = make_ingest()

    ingest.handle(message(seconds=5))
    ingest.handle(message(seconds=1, payload=b"late"))

    assert ingest.clock.now() == (RECEIVED + timedelta(seconds=5)).timestamp()
    assert ingest.stats.last_received_at == ingest.clock.now()


def test_handle_same_message_after_dedup_window_is_new() -> None:
    ingest, lake, _ = make_ingest()

    ingest.handle(message())
    ingest.handle(message(seconds=700))

    assert ingest.stats.duplicate_messages == 0
    assert len(lake.raw) == 2


def test_collect_metric_names_and_values() -> None:
    ingest, _, _ = make_ingest()
    ingest.handle(message())
    ingest.handle(message())
    ingest.handle(message(payload=b"not json"))
    metrics = Metrics()
    metrics.register(ingest.collect)

    text = metrics.render().decode()

    assert "hsl_live_messages_received_total 3.0" in text
    assert 'hsl_live_duplicates_total{kind="message"} 1.0' in text
    assert 'hsl_live_duplicates_total{kind="event"} 0.0' in text
    assert 'hsl_live_events_total{event_type="VP"} 1.0' in text
    assert 'hsl_live_rejected_total{reason="invalid_json"} 1.0' in text
    assert "hsl_live_last_message_timestamp_seconds " in text

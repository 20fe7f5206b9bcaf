"""The per-message path: dedup, decode, and hand each result to the lake and the live view."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Protocol

import msgspec
from prometheus_client.core import Metric

from hsl_live.capture import RawMessage
from hsl_live.clock import Clock
from hsl_live.dedup import Deduplicator
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.metrics import counter, gauge, labelled_counter


class LakeWriter(Protocol):
    """Where every distinct message, event and rejection is written."""

    def add_raws(self, messages: Sequence[RawMessage]) -> None: ...

    def add_events(self, events: Sequence[Event]) -> None: ...

    def add_rejected(self, rejection: Rejection) -> None: ...


class LiveView(Protocol):
    """What keeps the latest state of each vehicle."""

    def apply_many(self, events: Sequence[Event]) -> None:
        """Take distinct events in, in the order received."""
        ...


_EVENT_TYPE = attrgetter("event_type")
_VEHICLE = attrgetter("unique_vehicle_id")


class IngestStats(msgspec.Struct):
    """Counters of the per-message path since start."""

    messages: int = 0
    duplicate_messages: int = 0
    duplicate_events: int = 0
    events: int = 0
    rejected: int = 0
    last_received_at: float = 0.0
    events_by_type: Counter[str] = msgspec.field(default_factory=Counter)
    rejected_by_reason: Counter[str] = msgspec.field(default_factory=Counter)


class Ingest:
    """Route each message: exact repeats are counted and dropped, the rest reach the lake.

    A message whose bytes were already seen is a transport duplicate (the feed
    delivers copies); a decoded event whose key was already seen is a duplicate
    event. Neither is stored twice. Invalid messages are kept with a reason.
    """

    def __init__(
        self,
        clock: Clock,
        dedup_seconds: float,
        lake: LakeWriter | None = None,
        live: LiveView | None = None,
    ) -> None:
        self.clock = clock
        self.lake = lake
        self.live = live
        self.stats = IngestStats()
        self.vehicles: set[str] = set()
        self._messages = Deduplicator(dedup_seconds)
        self._events = Deduplicator(dedup_seconds)

    def handle(self, message: RawMessage) -> None:
        """Process one message received from the broker or read from a capture."""
        self.handle_batch([message])

    def handle_batch(self, messages: Sequence[RawMessage]) -> None:
        """Process messages in the order received; duplicates are found a batch at a time."""
        stats = self.stats
        clock = self.clock
        if clock.replay:
            for message in messages:
                clock.observe(message.received_at)
        now = clock.now()
        stats.messages += len(messages)
        stats.last_received_at = now

        fresh = self._messages.fresh([(m.topic, m.payload) for m in messages], now)
        stats.duplicate_messages += len(messages) - sum(fresh)
        lake = self.lake
        if len(fresh) > sum(fresh):
            messages = [message for message, new in zip(messages, fresh, strict=True) if new]
        if lake is not None:
            lake.add_raws(messages)
        events: list[Event] = []
        for message in messages:
            result = decode(message.received_at, message.topic, message.payload)
            if isinstance(result, Event):
                events.append(result)
                continue
            stats.rejected += 1
            stats.rejected_by_reason[result.reason] += 1
            if lake is not None:
                lake.add_rejected(result)

        fresh = self._events.fresh([event.dedup_key() for event in events], now)
        if len(fresh) > sum(fresh):
            stats.duplicate_events += len(fresh) - sum(fresh)
            events = [event for event, new in zip(events, fresh, strict=True) if new]
        if lake is not None:
            lake.add_events(events)
        stats.events += len(events)
        stats.events_by_type.update(map(_EVENT_TYPE, events))
        self.vehicles.update(map(_VEHICLE, events))
        if self.live is not None:
            self.live.apply_many(events)

    def collect(self) -> Iterable[Metric]:
        """Yield the ingest counters for /metrics."""
        stats = self.stats
        yield counter(
            "hsl_live_messages_received", "Messages received from the source", stats.messages
        )
        yield labelled_counter(
            "hsl_live_duplicates",
            "Duplicates dropped, by kind",
            "kind",
            [("message", stats.duplicate_messages), ("event", stats.duplicate_events)],
        )
        yield labelled_counter(
            "hsl_live_events",
            "Distinct valid events, by event type",
            "event_type",
            sorted(stats.events_by_type.items()),
        )
        yield labelled_counter(
            "hsl_live_rejected",
            "Messages rejected, by reason",
            "reason",
            sorted(stats.rejected_by_reason.items()),
        )
        yield gauge(
            "hsl_live_last_message_timestamp_seconds",
            "Pipeline time of the last message",
            stats.last_received_at,
        )

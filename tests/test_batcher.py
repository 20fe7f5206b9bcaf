"""Tests of buffering per zone and hour, sealing, naming and Parquet encoding."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from hfp_capture import START, broken_message, feed
from hsl_live.batcher import Batcher, FlushReason, encode
from hsl_live.hfp import Event, Rejection, decode
from hsl_live.schema import SCHEMAS, Zone, events_frame, hour_of

HOUR = datetime(2024, 2, 13, 16, tzinfo=UTC)


def _events(seconds: int) -> list[Event]:
    events = [decode(m.received_at, m.topic, m.payload) for m in feed(seconds)]
    assert all(isinstance(event, Event) for event in events)
    return [event for event in events if isinstance(event, Event)]


def test_batcher_seals_buffer_at_flush_rows() -> None:
    batcher = Batcher(flush_rows=3, flush_seconds=60, writer_id="w1")
    results = [batcher.add(Zone.RAW, HOUR, n, HOUR, 0) for n in range(3)]

    assert results[:2] == [None, None]
    batch = results[2]
    assert batch is not None
    assert (batch.rows, batch.reason) == ([0, 1, 2], FlushReason.ROWS)
    assert batcher.buffered_rows == 0


def test_batcher_add_many_seals_every_full_buffer_and_keeps_the_rest() -> None:
    batcher = Batcher(flush_rows=3, flush_seconds=60, writer_id="w1")
    batcher.add(Zone.RAW, HOUR, "a", HOUR, 0)

    sealed = batcher.add_many(Zone.RAW, HOUR, list("bcdefgh"), HOUR, 0)

    assert [batch.rows for batch in sealed] == [list("abc"), list("def")]
    assert [batch.key.rsplit("-", 1)[1] for batch in sealed] == ["0.parquet", "1.parquet"]
    assert batcher.buffered_rows == 2
    [rest] = batcher.seal_all()
    assert rest.rows == ["g", "h"]


def test_batcher_expired_seals_only_old_buffers() -> None:
    batcher = Batcher(flush_rows=100, flush_seconds=10, writer_id="w1")
    batcher.add(Zone.RAW, HOUR, "old", HOUR, 0)
    opened = batcher._buffers[Zone.RAW, HOUR].opened
    batcher.add(Zone.PROCESSED, HOUR, "new", HOUR, 0)
    batcher._buffers[Zone.PROCESSED, HOUR].opened = opened + 5

    expired = batcher.expired(now=opened + 10)

    assert [(b.zone, b.rows, b.reason) for b in expired] == [(Zone.RAW, ["old"], FlushReason.AGE)]
    assert batcher.buffered_rows == 1


def test_batcher_keys_name_partition_first_receipt_writer_and_seq() -> None:
    batcher = Batcher(flush_rows=100, flush_seconds=60, writer_id="host.ab12")
    received = HOUR + timedelta(minutes=5, milliseconds=250)
    batcher.add(Zone.PROCESSED, HOUR, "a", received, 0)
    batcher.add(Zone.RAW, HOUR, "b", received, 0)
    batcher.add(Zone.PROCESSED, HOUR, "c", received + timedelta(seconds=1), 0)

    keys = [batch.key for batch in batcher.seal_all()]

    first_ms = int(received.timestamp() * 1000)
    assert keys == [
        f"processed/year=2024/month=02/day=13/hour=16/part-{first_ms}-host.ab12-0.parquet",
        f"raw/year=2024/month=02/day=13/hour=16/part-{first_ms}-host.ab12-1.parquet",
    ]


def test_batcher_keeps_hours_apart() -> None:
    batcher = Batcher(flush_rows=100, flush_seconds=60, writer_id="w1")
    batcher.add(Zone.RAW, HOUR, "a", HOUR, 0)
    batcher.add(Zone.RAW, HOUR + timedelta(hours=1), "b", HOUR, 0)

    assert sorted(batch.rows[0] for batch in batcher.seal_all()) == ["a", "b"]


def test_batcher_packs_rows_into_frames_every_chunk_rows() -> None:
    events = _events(4)[:10]
    batcher = Batcher(flush_rows=100, flush_seconds=60, writer_id="w1", chunk_rows=4)
    for event in events:
        batcher.add(Zone.PROCESSED, HOUR, event, HOUR, 0)

    [batch] = batcher.seal_all()

    assert ([frame.height for frame in batch.frames], batch.rows) == ([4, 4], events[8:])
    assert batch.size == 10
    packed = encode(Zone.PROCESSED, batch.rows, batch.frames)
    assert pl.read_parquet(io.BytesIO(packed)).equals(
        pl.read_parquet(io.BytesIO(encode(Zone.PROCESSED, events)))
    )


def test_batcher_seals_at_flush_rows_counting_packed_rows() -> None:
    batcher = Batcher(flush_rows=5, flush_seconds=60, writer_id="w1", chunk_rows=2)
    batches = [batcher.add(Zone.RAW, HOUR, m, HOUR, 0) for m in feed(2)[:5]]

    sealed = batches[-1]
    assert batches[:-1] == [None] * 4
    assert sealed is not None
    assert sealed.size == 5
    assert batcher.buffered_rows == 0


def test_batcher_keeps_rows_it_cannot_pack(caplog: pytest.LogCaptureFixture) -> None:
    batcher = Batcher(flush_rows=100, flush_seconds=60, writer_id="w1", chunk_rows=2)
    for n in range(5):
        batcher.add(Zone.RAW, HOUR, n, HOUR, 0)

    [batch] = batcher.seal_all()

    assert (batch.rows, batch.frames, batch.size) == ([0, 1, 2, 3, 4], (), 5)
    assert "cannot build columns of raw rows" in caplog.text


def test_batcher_oldest_segment_is_first_row_segment_of_any_buffer() -> None:
    batcher = Batcher(flush_rows=100, flush_seconds=60, writer_id="w1")
    assert batcher.oldest_segment() is None

    batcher.add(Zone.RAW, HOUR, "a", HOUR, 4)
    batcher.add(Zone.RAW, HOUR, "b", HOUR, 7)
    batcher.add(Zone.PROCESSED, HOUR, "c", HOUR, 5)

    assert batcher.oldest_segment() == 4


def test_encode_processed_has_design_schema_with_ms_timestamps() -> None:
    data = encode(Zone.PROCESSED, _events(2))

    schema = pl.read_parquet_schema(io.BytesIO(data))

    assert schema == dict(SCHEMAS[Zone.PROCESSED])
    assert schema["tst"] == pl.Datetime("ms", "UTC")
    assert schema["received_at"] == pl.Datetime("ms", "UTC")


def test_encode_sorts_rows_by_time_column() -> None:
    events = _events(5)

    frame = pl.read_parquet(io.BytesIO(encode(Zone.PROCESSED, events[::-1])))

    assert frame["tst"].is_sorted()
    assert frame.height == len(events)


def test_encode_keeps_arrival_order_among_rows_of_the_same_time() -> None:
    events = _events(4)[:4]
    late, early = events[-1].tst, events[0].tst
    for number, event in enumerate(events):
        event.tst = early if number % 2 else late
        event.odo = float(number)
    packed = events_frame(events[:2])

    frame = pl.read_parquet(io.BytesIO(encode(Zone.PROCESSED, events[2:], [packed])))

    assert late > early
    assert frame["odo"].to_list() == [1.0, 3.0, 0.0, 2.0]


def test_encode_raw_keeps_payload_as_received() -> None:
    messages = feed(2)

    frame = pl.read_parquet(io.BytesIO(encode(Zone.RAW, messages)))

    assert frame["payload"].to_list() == [m.payload.decode() for m in messages]
    assert frame["topic"].to_list() == [m.topic for m in messages]
    assert pl.read_parquet_schema(io.BytesIO(encode(Zone.RAW, messages))) == dict(SCHEMAS[Zone.RAW])


def test_encode_rejected_keeps_reason() -> None:
    message = broken_message(START)
    rejection = decode(message.received_at, message.topic, message.payload)
    assert isinstance(rejection, Rejection)

    frame = pl.read_parquet(io.BytesIO(encode(Zone.REJECTED, [rejection])))

    assert frame["reason"].to_list() == ["invalid_json"]
    assert hour_of(frame["received_at"][0]) == hour_of(START)

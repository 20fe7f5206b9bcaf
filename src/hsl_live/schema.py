"""The lake's zones, their column types and their partition layout."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec
import polars as pl

from hsl_live.capture import RawMessage
from hsl_live.hfp import EVENT_FIELDS, Event, Rejection

SCHEMA_VERSION = 1

Timestamp = pl.Datetime("ms", "UTC")


class Zone(StrEnum):
    """A top-level folder of the lake."""

    RAW = "raw"
    PROCESSED = "processed"
    REJECTED = "rejected"


PROCESSED_TYPES: dict[str, pl.DataType] = {
    "received_at": Timestamp,
    "topic_prefix": pl.String(),
    "topic_version": pl.String(),
    "journey_type": pl.String(),
    "is_ongoing": pl.Boolean(),
    "event_type": pl.String(),
    "mode": pl.String(),
    "owner_operator_id": pl.Int16(),
    "vehicle_number": pl.Int32(),
    "unique_vehicle_id": pl.String(),
    "route_id": pl.String(),
    "direction_id": pl.Int8(),
    "headsign": pl.String(),
    "journey_start_time": pl.String(),
    "next_stop_id": pl.String(),
    "geohash_level": pl.Int8(),
    "topic_latitude": pl.Float64(),
    "topic_longitude": pl.Float64(),
    "desi": pl.String(),
    "dir": pl.Int8(),
    "oper": pl.Int16(),
    "veh": pl.Int32(),
    "tst": Timestamp,
    "tsi": pl.Int64(),
    "spd": pl.Float64(),
    "hdg": pl.Int16(),
    "lat": pl.Float64(),
    "long": pl.Float64(),
    "acc": pl.Float64(),
    "dl": pl.Int32(),
    "odo": pl.Float64(),
    "drst": pl.Boolean(),
    "oday": pl.Date(),
    "jrn": pl.Int32(),
    "line": pl.Int32(),
    "start": pl.String(),
    "loc": pl.String(),
    "stop": pl.Int32(),
    "route": pl.String(),
    "occu": pl.Int16(),
    "seq": pl.Int16(),
    "label": pl.String(),
    "ttarr": Timestamp,
    "ttdep": Timestamp,
    "dr_type": pl.Int8(),
    "block": pl.Int32(),
    "sid": pl.Int32(),
    "signal_groupid": pl.Int32(),
    "tlp_requestid": pl.Int16(),
    "tlp_requesttype": pl.String(),
    "tlp_prioritylevel": pl.String(),
    "tlp_reason": pl.String(),
    "tlp_att_seq": pl.Int16(),
    "tlp_decision": pl.String(),
    "tlp_signalgroupnbr": pl.Int16(),
    "tlp_line_configid": pl.Int32(),
    "tlp_point_configid": pl.Int32(),
    "tlp_frequency": pl.Int32(),
    "tlp_protocol": pl.String(),
}
assert tuple(PROCESSED_TYPES) == EVENT_FIELDS, "processed columns must follow Event's fields"

RAW_TYPES: dict[str, pl.DataType] = {
    "received_at": Timestamp,
    "topic": pl.String(),
    "payload": pl.String(),
}

REJECTED_TYPES: dict[str, pl.DataType] = {
    **RAW_TYPES,
    "reason": pl.String(),
    "detail": pl.String(),
}

SCHEMAS: dict[Zone, pl.Schema] = {
    Zone.RAW: pl.Schema(RAW_TYPES),
    Zone.PROCESSED: pl.Schema(PROCESSED_TYPES),
    Zone.REJECTED: pl.Schema(REJECTED_TYPES),
}

NOT_NULL: dict[Zone, tuple[str, ...]] = {
    Zone.RAW: ("received_at", "topic", "payload"),
    Zone.PROCESSED: ("received_at", "event_type", "unique_vehicle_id", "tst"),
    Zone.REJECTED: ("received_at", "topic", "payload", "reason"),
}

# Rows inside a file are sorted by the zone's time column, which is also what partitions it.
TIME_COLUMN: dict[Zone, str] = {
    Zone.RAW: "received_at",
    Zone.PROCESSED: "tst",
    Zone.REJECTED: "received_at",
}


def partition_path(zone: Zone, hour: datetime) -> str:
    """Return the hive-style folder of a UTC hour, e.g. `processed/year=2024/…/hour=07`."""
    return f"{zone}/year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"


def hour_of(moment: datetime) -> datetime:
    """Return the start of the UTC hour that holds a moment."""
    # Nearly every message falls in one of the last two hours seen (a raw row's receive
    # hour and an event's own hour), and datetime.replace() was a visible cost per row;
    # the same result object also speeds up buffer lookups.
    global _last_hour, _other_hour
    if moment.tzinfo is not UTC:
        return moment.replace(minute=0, second=0, microsecond=0)
    last = _last_hour
    if _NO_TIME <= moment - last < _ONE_HOUR:
        return last
    other = _other_hour
    if _NO_TIME <= moment - other < _ONE_HOUR:
        _last_hour, _other_hour = other, last
        return other
    _last_hour, _other_hour = moment.replace(minute=0, second=0, microsecond=0), last
    return _last_hour


_NO_TIME = timedelta(0)
_ONE_HOUR = timedelta(hours=1)
_last_hour = _other_hour = datetime(1970, 1, 1, tzinfo=UTC)


def payload_text(payload: bytes) -> str:
    """Return a payload as text; bytes that are not UTF-8 are kept as backslash escapes."""
    return payload.decode("utf-8", errors="backslashreplace")


def events_frame(events: Sequence[Event]) -> pl.DataFrame:
    """Return processed-zone rows for events, typed and in column order."""
    # Column-wise: Polars builds a typed column from a list about twice as fast as a
    # frame from row tuples, and converts epoch milliseconds far faster than datetimes.
    columns = _transpose(events) or [()] * len(EVENT_FIELDS)
    series = [
        _column(name, values, dtype)
        for (name, dtype), values in zip(_PROCESSED.items(), columns, strict=True)
    ]

    return pl.DataFrame(series)


def raw_frame(messages: Iterable[RawMessage]) -> pl.DataFrame:
    """Return raw-zone rows for messages as received."""
    messages = list(messages)
    series = [
        _column("received_at", [m.received_at for m in messages], Timestamp),
        pl.Series("topic", [m.topic for m in messages], pl.String()),
        _payload_column([m.payload for m in messages]),
    ]

    return pl.DataFrame(series)


def rejected_frame(rejections: Iterable[Rejection]) -> pl.DataFrame:
    """Return rejected-zone rows, each with its reason."""
    rejections = list(rejections)
    series = [
        _column("received_at", [r.received_at for r in rejections], Timestamp),
        pl.Series("topic", [r.topic for r in rejections], pl.String()),
        _payload_column([r.payload for r in rejections]),
        pl.Series("reason", [r.reason for r in rejections], pl.String()),
        pl.Series("detail", [r.detail for r in rejections], pl.String()),
    ]

    return pl.DataFrame(series)


_PROCESSED = SCHEMAS[Zone.PROCESSED]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _payload_column(payloads: list[bytes]) -> pl.Series:
    # Polars checks a whole column of UTF-8 at once; only a column holding bytes that are
    # not UTF-8 is decoded a payload at a time, with escapes.
    try:
        return pl.Series("payload", payloads, pl.Binary()).cast(pl.String())
    except pl.exceptions.ComputeError:
        return pl.Series("payload", [payload_text(p) for p in payloads], pl.String())


def _transpose(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    # Each row tuple is a new object the collector tracks, so it would run every ~700
    # rows to scan tuples that are freed (by refcount, no cycles) right after; pausing
    # it halves the cost. Another thread may pause it too: whoever paused it resumes it.
    paused = gc.isenabled()
    gc.disable()
    try:
        return list(zip(*map(msgspec.structs.astuple, events), strict=True))
    finally:
        if paused:
            gc.enable()


def _column(name: str, values: Sequence[Any], dtype: pl.DataType) -> pl.Series:
    if dtype == Timestamp:
        try:
            return pl.Series(name, _epoch_ms(values), pl.Int64()).cast(Timestamp)
        except TypeError:
            pass  # a time without a zone: let Polars read it as it always has
    return pl.Series(name, values, dtype)


def _epoch_ms(times: Iterable[datetime | None]) -> list[int | None]:
    # Rows received in one socket read share one datetime object: convert it once.
    result: list[int | None] = []
    append = result.append
    last: datetime | None = None
    last_ms: int | None = None
    for moment in times:
        if moment is not last:
            last = moment
            last_ms = None if moment is None else _ms(moment)
        append(last_ms)
    return result


def _ms(moment: datetime) -> int:
    ms = (moment - _EPOCH) // _MILLISECOND
    if ms < 0 and moment.microsecond % 1000:
        ms += 1  # Polars truncates toward zero before 1970
    return ms

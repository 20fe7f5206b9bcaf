"""The lake's zones, their column types and their partition layout."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

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
    return moment.replace(minute=0, second=0, microsecond=0)


def payload_text(payload: bytes) -> str:
    """Return a payload as text; bytes that are not UTF-8 are kept as backslash escapes."""
    return payload.decode("utf-8", errors="backslashreplace")


def events_frame(events: Sequence[Event]) -> pl.DataFrame:
    """Return processed-zone rows for events, typed and in column order."""
    rows = [msgspec.structs.astuple(event) for event in events]
    return pl.DataFrame(rows, schema=SCHEMAS[Zone.PROCESSED], orient="row")


def raw_frame(messages: Iterable[RawMessage]) -> pl.DataFrame:
    """Return raw-zone rows for messages as received."""
    rows = [(m.received_at, m.topic, payload_text(m.payload)) for m in messages]
    return pl.DataFrame(rows, schema=SCHEMAS[Zone.RAW], orient="row")


def rejected_frame(rejections: Iterable[Rejection]) -> pl.DataFrame:
    """Return rejected-zone rows, each with its reason."""
    rows = [
        (r.received_at, r.topic, payload_text(r.payload), r.reason, r.detail) for r in rejections
    ]
    return pl.DataFrame(rows, schema=SCHEMAS[Zone.REJECTED], orient="row")

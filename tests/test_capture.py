"""Tests for reading and writing capture files."""

from __future__ import annotations

import gzip
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard

from hsl_live.capture import (
    CaptureStats,
    CaptureWriter,
    RawMessage,
    format_line,
    format_lines,
    parse_line,
    read_capture,
)
from hsl_live.errors import CaptureError

RECEIVED = datetime(2024, 2, 13, 16, 33, 0, 5271, tzinfo=UTC)
TOPIC = "/hfp/v2/journey/ongoing/vp/bus/0018/01029/5520/2/Matinkylä (M)/18:48/4170299/0/////3230"
PAYLOAD = b'{"VP":{"desi":"520","tst":"2024-02-13T16:32:59.931Z","loc":"ODO","lat":null}}'
MESSAGE = RawMessage(RECEIVED, TOPIC, PAYLOAD)


def messages(count: int) -> list[RawMessage]:
    return [
        RawMessage(RECEIVED + timedelta(microseconds=n), f"{TOPIC}/{n}", PAYLOAD)
        for n in range(count)
    ]


def test_format_line_shape() -> None:
    line = format_line(MESSAGE)

    assert line == b"2024-02-13T16:33:00.005271Z " + TOPIC.encode() + b" " + PAYLOAD + b"\n"


def test_parse_line_round_trip() -> None:
    assert parse_line(format_line(MESSAGE)) == MESSAGE


def test_parse_line_keeps_payload_bytes_exact() -> None:
    payload = b'{"VP":{"tst":"2024-02-13T16:32:59Z","label":"Suomenlinna II  { x }"}}'

    parsed = parse_line(format_line(RawMessage(RECEIVED, TOPIC, payload)))

    assert parsed is not None
    assert parsed.payload == payload
    assert parsed.topic == TOPIC


def test_parse_line_hsl_v1_dump_with_plus_0000_offset() -> None:
    line = (
        b"2018-10-09T04:32:52.549043+0000 /hfp/v1/deadrun/ongoing/train/0090/06313 "
        b'{"VP":{"veh":6313,"tst":"2018-10-09T04:32:52Z"}}\n'
    )

    parsed = parse_line(line)

    assert parsed is not None
    assert parsed.received_at == datetime(2018, 10, 9, 4, 32, 52, 549043, tzinfo=UTC)
    assert parsed.topic == "/hfp/v1/deadrun/ongoing/train/0090/06313"
    assert parsed.payload == b'{"VP":{"veh":6313,"tst":"2018-10-09T04:32:52Z"}}'


def test_parse_line_without_zone_is_utc() -> None:
    parsed = parse_line(b"2024-02-13T16:33:00.005271 /hfp/v2/x {}\r\n")

    assert parsed is not None
    assert parsed.received_at == RECEIVED
    assert parsed.payload == b"{}"


@pytest.mark.parametrize(
    "line",
    [
        b"garbage",
        b"2024-02-13T16:33:00Z /hfp/v2/x",
        b"2024-02-13T16:33:00Z /hfp/v2/x []",
        b"yesterday /hfp/v2/x {}",
        b" /hfp/v2/x {}",
        b"2024-02-13T16:33:00Z {}",
        b"2024-02-13T16:33:00Z /hfp/\xff/x {}",
    ],
)
def test_parse_line_broken_is_none(line: bytes) -> None:
    assert parse_line(line) is None


def test_format_line_converts_offset_to_utc() -> None:
    local = RECEIVED.astimezone(timezone(timedelta(hours=2)))

    line = format_line(RawMessage(local, TOPIC, PAYLOAD))

    assert line.startswith(b"2024-02-13T16:33:00.005271Z ")


def test_format_line_naive_time_is_utc() -> None:
    naive = RECEIVED.replace(tzinfo=None)

    assert format_line(RawMessage(naive, TOPIC, PAYLOAD)) == format_line(MESSAGE)


def test_format_line_line_breaks_stay_on_one_line() -> None:
    pretty = b'{\n  "VP": {\r\n    "tst": "2024-02-13T16:32:59Z"\n  }\n}'

    line = format_line(RawMessage(RECEIVED, "/hfp/v2/a\nb", pretty))

    assert line.count(b"\n") == 1
    parsed = parse_line(line)
    assert parsed is not None
    assert parsed.payload == pretty.replace(b"\r", b" ").replace(b"\n", b" ")


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (TOPIC, PAYLOAD),
        (TOPIC, b'{\n  "VP": {\r\n    "tst": "2024-02-13T16:32:59Z"\n  }\n}'),
        ("/hfp/v2/a\rb", PAYLOAD),
    ],
    ids=["plain", "payload-line-breaks", "topic-line-break"],
)
def test_format_lines_writes_what_format_line_writes_for_each(topic: str, payload: bytes) -> None:
    # Two socket reads (two stamp objects), a naive time, and one odd message among plain ones.
    later = RECEIVED + timedelta(seconds=1)
    batch = [
        MESSAGE,
        RawMessage(RECEIVED, topic, payload),
        RawMessage(later, TOPIC, PAYLOAD),
        RawMessage(later.replace(tzinfo=None), TOPIC, PAYLOAD),
    ]

    assert format_lines(batch) == b"".join(map(format_line, batch))
    assert format_lines([]) == b""


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_capture_writer_and_reader_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"capture.txt{suffix}"
    sent = messages(50)

    with CaptureWriter(path) as writer:
        for message in sent:
            writer.write(message)

    assert writer.count == 50
    assert list(read_capture(path)) == sent


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_capture_files_really_compressed(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"capture{suffix}"
    with CaptureWriter(path) as writer:
        writer.write(MESSAGE)

    raw = path.read_bytes()
    if suffix == ".gz":
        plain = gzip.decompress(raw)
    else:
        plain = zstandard.ZstdDecompressor().decompressobj().decompress(raw)

    assert plain == format_line(MESSAGE)


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_capture_writer_appends_across_sessions(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"capture{suffix}"
    first, second = messages(3), messages(5)[3:]

    for batch in (first, second):
        with CaptureWriter(path) as writer:
            for message in batch:
                writer.write(message)

    assert list(read_capture(path)) == first + second


def test_capture_writer_leaves_no_torn_line_on_error(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"

    def record_then_fail() -> None:
        with CaptureWriter(path) as writer:
            writer.write(MESSAGE)
            writer.write(MESSAGE)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        record_then_fail()

    assert path.read_bytes() == format_line(MESSAGE) * 2


def test_capture_writer_ends_a_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_bytes(format_line(MESSAGE) + format_line(MESSAGE)[:40])
    stats = CaptureStats()

    with CaptureWriter(path) as writer:
        writer.write(MESSAGE)

    assert list(read_capture(path, stats)) == [MESSAGE, MESSAGE]
    assert (stats.lines, stats.broken) == (3, 1)


def test_read_capture_counts_blank_and_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    good = format_line(MESSAGE)
    path.write_bytes(good + b"\n   \n" + b"broken line\n" + good + b"\xff\xfe{\n" + good.rstrip())
    stats = CaptureStats()

    read = list(read_capture(path, stats))

    assert read == [MESSAGE] * 3
    assert (stats.lines, stats.blank, stats.broken) == (7, 2, 2)


def test_read_capture_truncated_gzip_keeps_what_was_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "capture.gz"
    # Larger than the reader's 1 MiB buffer, so whole buffers precede the damage.
    plain = b"".join(format_line(m) for m in messages(20_000))
    path.write_bytes(gzip.compress(plain)[:-100])
    stats = CaptureStats()

    with caplog.at_level(logging.WARNING, logger="hsl_live.capture"):
        read = list(read_capture(path, stats))

    assert 0 < len(read) < 20_000
    assert read == messages(len(read))
    assert stats.broken == 1
    assert str(path) in caplog.text


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_read_capture_not_compressed_counts_one_broken_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"capture{suffix}"
    path.write_bytes(format_line(MESSAGE))
    stats = CaptureStats()

    assert list(read_capture(path, stats)) == []
    assert stats.broken == 1


def test_read_capture_missing_file_raises_capture_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.txt"

    with pytest.raises(CaptureError, match=str(path)):
        list(read_capture(path))

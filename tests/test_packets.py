"""Tests for splitting a byte stream from the broker into MQTT packets."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from hsl_live.packets import PacketSplitter
from test_source import TOPIC, payload


def publish_packet(topic: str, body: bytes, flags: int = 0) -> bytes:
    """Encode an MQTT 3.1.1 QoS 0 PUBLISH packet."""
    encoded = topic.encode()
    rest = struct.pack("!H", len(encoded)) + encoded + body
    length, remaining = bytearray(), len(rest)
    while True:
        remaining, digit = divmod(remaining, 128)
        length.append(digit | (0x80 if remaining else 0))
        if not remaining:
            break
    return bytes([0x30 | flags]) + bytes(length) + rest


def collect(received: list[tuple[str, bytes]]) -> Callable[[list[str], list[bytes]], None]:
    def accept(topics: list[str], bodies: list[bytes]) -> None:
        received.extend(zip(topics, bodies, strict=True))

    return accept


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 100_000])
def test_packet_splitter_reassembles_cut_stream(chunk: int) -> None:
    # Packets whose remaining lengths take one, two and three bytes.
    shapes = [("a/b", b"{}"), (TOPIC, payload(0)), (TOPIC, payload(1) * 40)]
    shapes.append((TOPIC, payload(2) * 200))
    sent = [(topic, body * (index % 3 + 1)) for index, (topic, body) in enumerate(shapes * 5)]
    control = bytes([0x90, 3, 0, 1, 0])  # a SUBACK between the publishes
    stream = b"".join(publish_packet(topic, body) for topic, body in sent[:10])
    stream += control + b"".join(publish_packet(topic, body, 0x01) for topic, body in sent[10:])
    received: list[tuple[str, bytes]] = []
    others: list[bytes] = []
    splitter = PacketSplitter(collect(received), others.append)

    for offset in range(0, len(stream), chunk):
        splitter.feed(stream[offset : offset + chunk])

    assert received == sent
    assert others == [control]
    length_bytes = {len(publish_packet(t, b)) - len(b) - len(t.encode()) - 3 for t, b in sent}
    assert length_bytes == {1, 2, 3}


def test_packet_splitter_hands_qos1_publish_to_paho() -> None:
    packet = bytes([0x32]) + publish_packet("a/b", b"{}")[1:]
    received: list[tuple[str, bytes]] = []
    others: list[bytes] = []

    PacketSplitter(collect(received), others.append).feed(packet)

    assert (received, others) == ([], [packet])

"""Tests for splitting a byte stream from the broker into MQTT packets."""

from __future__ import annotations

import struct

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


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 100_000])
def test_packet_splitter_reassembles_cut_stream(chunk: int) -> None:
    sent = [(TOPIC, payload(index) * (index % 3 + 1) * 40) for index in range(20)]
    control = bytes([0x90, 3, 0, 1, 0])  # a SUBACK between the publishes
    stream = b"".join(publish_packet(topic, body) for topic, body in sent[:10])
    stream += control + b"".join(publish_packet(topic, body, 0x01) for topic, body in sent[10:])
    received: list[tuple[str, bytes]] = []
    others: list[bytes] = []
    splitter = PacketSplitter(lambda topic, body: received.append((topic, body)), others.append)

    for offset in range(0, len(stream), chunk):
        splitter.feed(stream[offset : offset + chunk])

    assert received == sent
    assert others == [control]


def test_packet_splitter_hands_qos1_publish_to_paho() -> None:
    packet = bytes([0x32]) + publish_packet("a/b", b"{}")[1:]
    received: list[tuple[str, bytes]] = []
    others: list[bytes] = []

    PacketSplitter(lambda topic, body: received.append((topic, body)), others.append).feed(packet)

    assert (received, others) == ([], [packet])

"""The fixed synthetic workload: hsl-live simulate's traffic, pre-encoded as MQTT PUBLISH packets.

Generating a few hundred thousand messages takes a while in Python, so a workload
is generated once and cached under bench/results/cache, keyed by its parameters.
"""

from __future__ import annotations

import itertools

import msgspec

from bench.common import CACHE
from hsl_live import simulate

START = 1_760_000_000.0  # a fixed epoch second, so the lake partitions are the same every run


class Workload(msgspec.Struct, frozen=True):
    """A cached workload: PUBLISH packets back to back, and what they hold."""

    path: str
    messages: int
    vehicles: int
    vp: int
    payload_bytes: int
    topic_bytes: int


def publish_packet(topic: str, payload: bytes) -> bytes:
    """Return one MQTT 3.1.1 PUBLISH packet at QoS 0."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + payload
    return b"\x30" + remaining_length(len(body)) + body


def remaining_length(size: int) -> bytes:
    """Return MQTT's variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        size, digit = divmod(size, 128)
        out.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(out)


def load(messages: int, vehicles: int, seed: int = 1) -> Workload:
    """Return the workload of `messages` messages from `vehicles` vehicles, cached on disk."""
    stem = f"workload-{vehicles}v-{messages}m-{seed}s"
    path, meta = CACHE / f"{stem}.bin", CACHE / f"{stem}.json"
    if path.exists() and meta.exists():
        return msgspec.json.decode(meta.read_bytes(), type=Workload)

    CACHE.mkdir(parents=True, exist_ok=True)
    simulation = simulate.Simulation(vehicles=vehicles, seed=seed, start=START)
    vp = payload_bytes = topic_bytes = 0
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        for _, topic, payload in itertools.islice(simulate.generate(simulation), messages):
            out.write(publish_packet(topic, payload))
            vp += payload.startswith(b'{"VP"')
            payload_bytes += len(payload)
            topic_bytes += len(topic.encode())
    partial.rename(path)
    workload = Workload(str(path), messages, vehicles, vp, payload_bytes, topic_bytes)
    meta.write_bytes(msgspec.json.encode(workload))

    return workload

"""Tests for delivering synthetic traffic: to a capture file, or to a real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from brokers import Mosquitto, eventually, free_port
from hsl_live.capture import read_capture
from hsl_live.errors import HslLiveError
from hsl_live.publish import parse_rate_scale, publish, write_capture
from hsl_live.settings import load_settings
from hsl_live.source import MqttSource
from test_simulate import simulated


def test_write_capture_round_trips(tmp_path: Path) -> None:
    messages = simulated(duration=10)
    path = tmp_path / "sim.capture.zst"

    write_capture(iter(messages), path)

    assert [(m.topic, m.payload) for m in read_capture(path)] == [(t, p) for _, t, p in messages]


def test_parse_rate_scale_accepts_max_and_numbers() -> None:
    assert (parse_rate_scale("max"), parse_rate_scale("2.5")) == (None, 2.5)
    with pytest.raises(HslLiveError, match="--rate-scale"):
        parse_rate_scale("fast")


async def test_publish_unreachable_broker_names_the_url() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"

    with pytest.raises(HslLiveError, match=f"cannot publish to {url}: .*refused"):
        await publish(iter(simulated(duration=1)), url)


@pytest.mark.integration
async def test_publish_at_max_rate_delivers_everything(mosquitto: Mosquitto) -> None:
    messages = simulated(duration=30)
    settings = load_settings(environ={}, overrides={"mqtt_url": mosquitto.url, "topics": "/hfp/#"})
    source = MqttSource(settings)
    received: list[tuple[str, bytes]] = []

    async def collect() -> None:
        async for batch in source.batches():
            received.extend((message.topic, message.payload) for message in batch)

    task = asyncio.create_task(collect())
    await eventually(lambda: source.connected)
    sent = await publish(iter(messages), mosquitto.url, rate_scale=None)
    await eventually(lambda: len(received) >= sent)
    source.stop()
    await asyncio.wait_for(task, 20)

    assert received == [(topic, payload) for _, topic, payload in messages]

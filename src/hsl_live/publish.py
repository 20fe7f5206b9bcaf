"""Deliver synthetic traffic: publish it to a broker at a chosen pace, or write a capture."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho

from hsl_live.capture import CaptureWriter, RawMessage
from hsl_live.errors import HslLiveError
from hsl_live.source import Endpoint, tls_context

logger = logging.getLogger(__name__)

PUBLISH_CHUNK = 500


def parse_rate_scale(text: str) -> float | None:
    """Return the speed-up over real time, or None for `max` (as fast as possible)."""
    if text.strip().lower() == "max":
        return None
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not 0 < scale < math.inf:
        raise HslLiveError(f"--rate-scale must be a positive number or 'max', got {text!r}")
    return scale


async def publish(
    messages: Iterator[tuple[float, str, bytes]],
    url: str,
    *,
    ws_path: str = "/",
    ca_file: str | None = None,
    client_id: str = "hsl-live-simulate",
    rate_scale: float | None = 1.0,
) -> int:
    """Publish messages at QoS 0; return how many were sent.

    With `rate_scale` X each message is sent when due at X times real time; with
    None they go as fast as the broker accepts them.
    """
    endpoint = Endpoint.parse(url, ws_path)
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=client_id,
        transport=endpoint.transport,
        websocket_path=endpoint.ws_path if endpoint.transport == "websockets" else None,
        tls_context=tls_context(ca_file) if endpoint.tls else None,
        timeout=10,
    )
    sent = 0
    try:
        async with client:
            logger.info("publishing to %s", url)
            paho_client = client._client  # QoS 0 publish without a per-message wait
            origin: tuple[float, float] | None = None
            for received, topic, payload in messages:
                if rate_scale is not None:
                    origin = origin or (received, time.monotonic())
                    delay = origin[1] + (received - origin[0]) / rate_scale - time.monotonic()
                    if delay > 0.005:
                        await _drain(paho_client)
                        await asyncio.sleep(delay)
                paho_client.publish(topic, payload, qos=0)
                sent += 1
                if sent % PUBLISH_CHUNK == 0:
                    await _drain(paho_client)
            await _drain(paho_client)
    except aiomqtt.MqttError as exc:
        raise HslLiveError(f"cannot publish to {url}: {exc}") from exc
    logger.info("published %d messages", sent)

    return sent


async def _drain(paho_client: paho.Client) -> None:
    """Wait until paho has written everything it queued (QoS 0 has no other backpressure)."""
    async with asyncio.timeout(30):
        while True:
            if not paho_client.want_write():
                return
            await asyncio.sleep(0.0005)


def write_capture(messages: Iterator[tuple[float, str, bytes]], path: Path) -> int:
    """Write messages to a capture file (.gz or .zst compressed by suffix); return how many."""
    count = 0
    with CaptureWriter(path) as writer:
        for received, topic, payload in messages:
            writer.write(RawMessage(datetime.fromtimestamp(received, UTC), topic, payload))
            count += 1

    return count

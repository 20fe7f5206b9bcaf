"""Receive messages from the MQTT broker with aiomqtt, reconnecting forever.

aiomqtt's own message iterator costs a task, a queue hand-off and two wrapper
objects per message, and paho reads each packet with three or four `recv` calls.
At the full HSL feed (delivered several times over) that is most of a core, so
the receive path here keeps aiomqtt for connecting, subscribing and keepalive but
reads the socket through a buffer and turns each PUBLISH straight into a
RawMessage in a bounded list that the pipeline takes in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
import msgspec
import paho.mqtt.client as paho
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hsl_live.capture import RawMessage
from hsl_live.errors import SettingsError
from hsl_live.packets import FastReader
from hsl_live.settings import Settings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 15.0
OPERATION_TIMEOUT_SECONDS = 10.0
KEEPALIVE_SECONDS = 30
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
BATCH = 5000
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}


class Endpoint(msgspec.Struct, frozen=True):
    """Where and how to connect, taken apart from `mqtt_url`."""

    url: str
    host: str
    port: int
    transport: Literal["tcp", "websockets"]
    tls: bool
    ws_path: str

    @classmethod
    def parse(cls, url: str, ws_path: str = "/") -> Endpoint:
        """Split an mqtt://, mqtts://, ws:// or wss:// URL; a path in a ws URL wins."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise SettingsError(f"MQTT URL must be mqtt://, mqtts://, ws:// or wss://, got {url!r}")
        websockets = parts.scheme in ("ws", "wss")
        return cls(
            url=url,
            host=parts.hostname,
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            transport="websockets" if websockets else "tcp",
            tls=parts.scheme in ("mqtts", "wss"),
            ws_path=(parts.path or ws_path) if websockets else ws_path,
        )


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Return a context that verifies the broker: system CAs, or only `ca_file` if given."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"cannot load MQTT CA file {ca_file!r}: {exc}") from exc
    context.sslsocket_class = _ClosingSSLSocket

    return context


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when the handshake fails.

    paho leaves the socket open when a certificate does not verify, which would
    leak one descriptor per retry against a misconfigured broker.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class Backoff:
    """Capped exponential backoff with full jitter; `reset()` after a success."""

    def __init__(self, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS):
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        """Return the next wait in seconds, between a tenth of the base and the cap."""
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return max(self.base / 10, random.uniform(0, ceiling))

    def reset(self) -> None:
        """Start again from the base delay."""
        self.attempt = 0


class SourceStats(msgspec.Struct):
    """Connection and receive counters since start."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    failures: int = 0
    messages: int = 0
    dropped: int = 0
    queued: int = 0


class MqttSource:
    """Subscribe to `settings.topics` and yield what the broker delivers, in batches.

    Connection problems never end the source: it logs each change of state once,
    waits a jittered, growing delay and connects again, resubscribing every time.
    At most `settings.mqtt_queue_size` received messages wait for the pipeline;
    beyond that new ones are dropped and counted in `stats.dropped`.
    """

    def __init__(self, settings: Settings, *, qos: int = 0) -> None:
        self.endpoint = Endpoint.parse(settings.mqtt_url, settings.mqtt_ws_path)
        self.topics = settings.topics
        self.client_id = settings.mqtt_client_id
        self.qos = qos
        self.limit = settings.mqtt_queue_size
        self.stats = SourceStats()
        self._tls = tls_context(settings.mqtt_ca_file) if self.endpoint.tls else None
        self._pending: list[RawMessage] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stamp = datetime.now(UTC)

    @property
    def connected(self) -> bool:
        """Return whether a session with the broker is up and subscribed."""
        return self.stats.connected

    def stop(self) -> None:
        """Disconnect; `batches()` then yields what it already holds and ends."""
        self._stopping.set()
        self._wake.set()

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        """Yield received messages in batches of at most BATCH until stopped."""
        connection = asyncio.create_task(self._connect_forever(), name="mqtt-connection")
        connection.add_done_callback(lambda _: self._wake.set())
        try:
            while True:
                await asyncio.sleep(0)  # let the socket reader run between batches
                if self._pending:
                    yield self._take()
                elif connection.done():
                    connection.result()
                    return
                else:
                    await self._wake.wait()
                    self._wake.clear()
        finally:
            self._stopping.set()
            if not connection.done():
                connection.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection

    def _take(self) -> list[RawMessage]:
        pending = self._pending
        if len(pending) <= BATCH:
            self._pending = []
            return pending
        batch = pending[:BATCH]
        del pending[:BATCH]
        return batch

    def collect(self) -> Iterable[Metric]:
        """Yield the connection and receive counters for /metrics."""
        stats = self.stats
        connected = GaugeMetricFamily(
            "hsl_live_mqtt_connected", "1 while subscribed to the broker, else 0"
        )
        connected.add_metric([], int(stats.connected))
        yield connected

        counters = (
            ("hsl_live_mqtt_connects", "Successful connections to the broker", stats.connects),
            ("hsl_live_mqtt_reconnects", "Connections after the first", stats.reconnects),
            ("hsl_live_mqtt_connect_failures", "Failed or lost connections", stats.failures),
            ("hsl_live_mqtt_messages", "Messages received from the broker", stats.messages),
            ("hsl_live_mqtt_dropped", "Messages dropped because the queue was full", stats.dropped),
        )
        for name, help_text, value in counters:
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], value)
            yield counter

        depth = GaugeMetricFamily("hsl_live_mqtt_queue_depth", "Messages waiting for the pipeline")
        depth.add_metric([], len(self._pending))
        yield depth

    async def _connect_forever(self) -> None:
        backoff = Backoff()
        last_problem = ""
        logger.info("connecting to %s", self.endpoint.url)
        while not self._stopping.is_set():
            try:
                await self._session(backoff)
                problem = "broker closed the connection"
            except aiomqtt.MqttError as exc:
                problem = str(exc) or type(exc).__name__
            except (TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            was_connected = self.stats.connected
            self.stats.connected = False
            if self._stopping.is_set():
                break

            self.stats.failures += 1
            delay = backoff.next_delay()
            if was_connected:
                logger.warning("connection lost: %s; retrying in %.1f s", problem, delay)
            elif problem != last_problem:
                logger.warning("cannot connect: %s; retrying in %.1f s", problem, delay)
            else:
                logger.debug("cannot connect: %s; retrying in %.1f s", problem, delay)
            last_problem = problem
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            if was_connected and not self._stopping.is_set():
                logger.info("connecting to %s", self.endpoint.url)
        logger.info("disconnected from %s", self.endpoint.url)

    async def _session(self, backoff: Backoff) -> None:
        client = self._client()
        reader = FastReader(client, self._accept, self._on_message, self._set_stamp, self._full)
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await stack.enter_async_context(client)
                reader.install()
                for topic in self.topics:
                    await client.subscribe(topic, qos=self.qos)

            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            self.stats.connected = True
            backoff.reset()
            logger.info(
                "connected to %s, subscribed to %s", self.endpoint.url, ", ".join(self.topics)
            )
            await reader.wait_closed(self._stopping)

    def _client(self) -> aiomqtt.Client:
        endpoint = self.endpoint
        return aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=self.client_id,
            transport=endpoint.transport,
            websocket_path=endpoint.ws_path if endpoint.transport == "websockets" else None,
            tls_context=self._tls,
            keepalive=KEEPALIVE_SECONDS,
            timeout=OPERATION_TIMEOUT_SECONDS,
            clean_session=True,
        )

    def _set_stamp(self) -> None:
        self._stamp = datetime.now(UTC)

    def _full(self) -> bool:
        return len(self._pending) >= BATCH

    def _accept(self, topics: list[str], payloads: list[bytes]) -> None:
        count = len(topics)
        self.stats.messages += count
        pending = self._pending
        room = max(self.limit - len(pending), 0)
        if count > room:
            self.stats.dropped += count - room
            del topics[room:], payloads[room:]
        if not topics:
            return
        if not pending:
            self._wake.set()
        pending += map(RawMessage, repeat(self._stamp), topics, payloads)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """Take a QoS 1 or 2 message, which paho decodes and acknowledges."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        self._accept([topic], [bytes(message.payload)])

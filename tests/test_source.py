"""Tests for the MQTT source: URL handling, packet splitting, and real Mosquitto brokers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from brokers import Mosquitto, TlsFiles, eventually, publish
from hsl_live.capture import RawMessage
from hsl_live.clock import Clock
from hsl_live.pipeline import Pipeline
from hsl_live.settings import Settings, load_settings
from hsl_live.source import Backoff, Endpoint, MqttSource

TOPIC = (
    "/hfp/v2/journey/ongoing/vp/bus/0022/01216/1551/1/Matinkylä (M)/18:20/1234567/5/60;24/19/85/93"
)
WAIT_SECONDS = 20.0


def payload(index: int) -> bytes:
    """Return a valid VP payload whose tst differs by index."""
    stamp = (datetime(2026, 1, 5, 8, tzinfo=UTC) + timedelta(seconds=index)).isoformat()
    return b'{"VP":{"desi":"551","dir":"1","oper":22,"veh":1216,"tst":"%s","lat":60.19}}' % (
        stamp.replace("+00:00", "Z").encode()
    )


def traffic(count: int, start: int = 0) -> list[tuple[str, bytes]]:
    """Return `count` distinct VP messages on one topic."""
    return [(TOPIC, payload(index)) for index in range(start, start + count)]


def settings_for(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"mqtt_url": url, "topics": "/hfp/#", **overrides}
    return load_settings(environ={}, overrides=values)


class Collector:
    """Run a source's `batches()` in a task and keep everything it yields."""

    def __init__(self, source: MqttSource) -> None:
        self.source = source
        self.messages: list[RawMessage] = []
        self.batches = 0
        self.release = asyncio.Event()
        self.release.set()
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for batch in self.source.batches():
            self.messages.extend(batch)
            self.batches += 1
            await self.release.wait()

    async def until(self, condition: Callable[[], bool]) -> None:
        await eventually(condition, WAIT_SECONDS)

    async def connected(self) -> None:
        await self.until(lambda: self.source.connected)

    async def count(self, count: int) -> None:
        await self.until(lambda: len(self.messages) >= count)

    async def finish(self) -> None:
        self.release.set()
        self.source.stop()
        async with asyncio.timeout(WAIT_SECONDS):
            await self.task


@pytest.fixture
async def collectors() -> AsyncIterator[list[Collector]]:
    started: list[Collector] = []
    yield started
    for collector in started:
        if not collector.task.done():
            await collector.finish()


async def start(collectors: list[Collector], settings: Settings) -> Collector:
    collector = Collector(MqttSource(settings))
    collectors.append(collector)
    return collector


async def send(broker: Mosquitto, messages: Iterable[tuple[str, bytes]]) -> None:
    await asyncio.to_thread(publish, broker.plain_port, list(messages))


def pairs(messages: list[RawMessage]) -> list[tuple[str, bytes]]:
    return [(message.topic, message.payload) for message in messages]


@pytest.mark.parametrize(
    ("url", "host", "port", "transport", "tls", "path"),
    [
        ("mqtt://broker", "broker", 1883, "tcp", False, "/"),
        ("mqtts://mqtt.hsl.fi:8883", "mqtt.hsl.fi", 8883, "tcp", True, "/"),
        ("ws://broker:9001", "broker", 9001, "websockets", False, "/"),
        ("wss://mqtt.hsl.fi", "mqtt.hsl.fi", 443, "websockets", True, "/"),
        ("ws://broker/mqtt", "broker", 80, "websockets", False, "/mqtt"),
    ],
)
def test_endpoint_parse_schemes(
    url: str, host: str, port: int, transport: str, tls: bool, path: str
) -> None:
    endpoint = Endpoint.parse(url)

    assert (endpoint.host, endpoint.port, endpoint.transport) == (host, port, transport)
    assert (endpoint.tls, endpoint.ws_path) == (tls, path)


def test_backoff_grows_and_stays_under_cap() -> None:
    backoff = Backoff(base=1.0, cap=8.0)

    delays = [backoff.next_delay() for _ in range(200)]

    assert all(0.1 <= delay <= 8.0 for delay in delays)
    assert max(delays[:2]) <= 2.0
    assert max(delays[50:]) > 4.0


def test_backoff_reset_starts_small_again() -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    for _ in range(20):
        backoff.next_delay()

    backoff.reset()

    assert backoff.next_delay() <= 1.0


@pytest.mark.integration
async def test_source_receives_over_tcp(mosquitto: Mosquitto, collectors: list[Collector]) -> None:
    collector = await start(collectors, settings_for(mosquitto.url))
    await collector.connected()
    before = datetime.now(UTC)

    await send(mosquitto, traffic(500))
    await collector.count(500)

    assert pairs(collector.messages) == traffic(500)
    assert all(before <= message.received_at <= datetime.now(UTC) for message in collector.messages)
    assert collector.source.stats.messages == 500


@pytest.mark.integration
async def test_source_connects_with_tls_test_ca(
    mosquitto_factory: Callable[..., Mosquitto], tls_files: TlsFiles, collectors: list[Collector]
) -> None:
    broker = mosquitto_factory(tls=tls_files)
    settings = settings_for(broker.url, mqtt_ca_file=str(tls_files.ca_cert))
    collector = await start(collectors, settings)
    await collector.connected()

    await send(broker, traffic(50))
    await collector.count(50)

    assert broker.url.startswith("mqtts://")
    assert pairs(collector.messages) == traffic(50)


@pytest.mark.integration
async def test_source_refuses_unverified_certificate(
    mosquitto_factory: Callable[..., Mosquitto],
    tls_files: TlsFiles,
    collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(tls=tls_files)
    collector = await start(collectors, settings_for(broker.url))

    with caplog.at_level(logging.WARNING, logger="hsl_live.source"):
        await collector.until(lambda: collector.source.stats.failures >= 2)

    assert not collector.source.connected
    assert collector.source.stats.connects == 0
    assert not collector.task.done()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


@pytest.mark.integration
async def test_source_receives_over_websockets(
    mosquitto_factory: Callable[..., Mosquitto], collectors: list[Collector]
) -> None:
    broker = mosquitto_factory(websockets=True)
    collector = await start(collectors, settings_for(broker.url))
    await collector.connected()

    await send(broker, traffic(200))
    await collector.count(200)

    assert broker.url.startswith("ws://")
    assert pairs(collector.messages) == traffic(200)


@pytest.mark.integration
async def test_source_resumes_after_broker_restart(
    mosquitto: Mosquitto, collectors: list[Collector], caplog: pytest.LogCaptureFixture
) -> None:
    collector = await start(collectors, settings_for(mosquitto.url))
    await collector.connected()
    await send(mosquitto, traffic(100))
    await collector.count(100)

    with caplog.at_level(logging.INFO, logger="hsl_live.source"):
        mosquitto.kill()
        await collector.until(lambda: not collector.source.connected)
        mosquitto.start()
        await collector.until(lambda: collector.source.stats.connects == 2)
        await send(mosquitto, traffic(100, start=100))
        await collector.count(200)

    assert pairs(collector.messages) == traffic(200)
    assert collector.source.stats.reconnects == 1
    assert "connection lost" in caplog.text


@pytest.mark.integration
async def test_source_counts_drops_when_queue_is_full(
    mosquitto: Mosquitto, collectors: list[Collector]
) -> None:
    collector = await start(collectors, settings_for(mosquitto.url, mqtt_queue_size=10))
    await collector.connected()
    collector.release.clear()  # the consumer stalls after its first batch
    await send(mosquitto, traffic(1))
    await collector.count(1)

    await send(mosquitto, traffic(100, start=1))
    await collector.until(lambda: collector.source.stats.messages == 101)
    collector.release.set()
    await collector.count(11)
    await asyncio.sleep(0.2)

    assert pairs(collector.messages) == traffic(11)
    assert collector.source.stats.dropped == 90


@pytest.mark.integration
async def test_source_stop_yields_what_it_holds(
    mosquitto: Mosquitto, collectors: list[Collector]
) -> None:
    collector = await start(collectors, settings_for(mosquitto.url))
    await collector.connected()
    collector.release.clear()
    await send(mosquitto, traffic(1))
    await collector.count(1)
    await send(mosquitto, traffic(30, start=1))
    await collector.until(lambda: collector.source.stats.messages == 31)

    await collector.finish()

    assert pairs(collector.messages) == traffic(31)
    assert not collector.source.connected


@pytest.mark.integration
async def test_source_garbage_payloads_are_rejected_not_fatal(mosquitto: Mosquitto) -> None:
    settings = settings_for(mosquitto.url)
    source = MqttSource(settings)
    pipeline = Pipeline(settings, source, Clock())
    running = asyncio.create_task(pipeline.run())
    await eventually(lambda: source.connected)
    garbage = [(TOPIC, b"\x00\xffnot json"), (TOPIC, b"{"), ("/hfp/v2/nonsense", b"{}")]

    await send(mosquitto, [*traffic(2), *garbage, *traffic(2, start=2)])
    await eventually(lambda: pipeline.ingest.stats.messages >= 7)
    pipeline.request_stop()
    await asyncio.wait_for(running, WAIT_SECONDS)

    assert pipeline.ingest.stats.rejected == 3
    assert pipeline.ingest.stats.events == 4

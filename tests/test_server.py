"""Tests of the live view over a real HTTP server: /events, health, metrics and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from brokers import Mosquitto, eventually, publish
from hsl_live.server import ServeError, WebServer
from hsl_live.settings import Settings
from hsl_live.source import MqttSource
from live_server import SseReader, live_server, vp


async def test_server_streams_snapshot_then_updates() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(1, 0), vp(2, 0)])
        async with http.stream("GET", "/events") as response:
            reader = SseReader(response)
            snapshot = await reader.next()
            await server.fed([vp(1, 1, lat=60.2)])
            update = await reader.next()

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in response.headers
    assert snapshot.event == "snapshot"
    assert sorted(state["id"] for state in snapshot.json()) == ["22/1", "22/2"]
    assert update.event == "update"
    assert [(state["id"], state["lat"]) for state in update.json()] == [("22/1", 60.2)]
    assert snapshot.id is not None
    assert update.id is not None
    assert int(update.id) > int(snapshot.id)


async def test_server_filters_stream_by_mode_route_and_bbox() -> None:
    query = "/events?mode=tram&route=1004&bbox=24.9,60.1,25.0,60.2"
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(1, 0, mode="tram", route="1004"), vp(2, 0, mode="bus")])
        async with http.stream("GET", query) as response:
            reader = SseReader(response)
            snapshot = await reader.next()
            await server.fed(
                [
                    vp(3, 0, mode="tram", route="1009"),
                    vp(4, 0, mode="tram", route="1004", lat=61.0),
                    vp(1, 1, mode="tram", route="1004", lat=60.15),
                ]
            )
            update = await reader.next()
            await server.fed([vp(1, 2, mode="tram", route="1004", lat=60.5)])
            left_box = await reader.next()

    assert [state["id"] for state in snapshot.json()] == ["22/1"]
    assert [state["id"] for state in update.json()] == ["22/1"]
    assert (left_box.event, left_box.json()) == ("remove", ["22/1"])


async def test_server_removes_stale_vehicles() -> None:
    async with (
        live_server(stale_seconds=0.3) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await server.fed([vp(1, 0)])
        async with http.stream("GET", "/events") as response:
            reader = SseReader(response)
            await reader.next()
            removed = await reader.until(lambda event: event.event == "remove")

    assert removed.json() == ["22/1"]
    assert server.store.get("22/1") is None


async def test_server_resume_sends_only_what_was_missed() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(1, 0), vp(2, 0)])
        async with http.stream("GET", "/events") as response:
            last_id = (await SseReader(response).next()).id
        await server.fed([vp(2, 1, lat=60.3)])
        await asyncio.sleep(0.2)
        headers = {"Last-Event-ID": str(last_id)}
        async with http.stream("GET", "/events", headers=headers) as response:
            resumed = await SseReader(response).next()

    assert resumed.event == "update"
    assert [(state["id"], state["lat"]) for state in resumed.json()] == [("22/2", 60.3)]


async def test_server_resume_too_old_gets_a_fresh_snapshot() -> None:
    async with (
        live_server(resume_changes=2) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await server.fed([vp(1, 0)])
        async with http.stream("GET", "/events") as response:
            last_id = (await SseReader(response).next()).id
        await server.fed([vp(2, 0), vp(3, 0), vp(4, 0)])
        await asyncio.sleep(0.2)
        headers = {"Last-Event-ID": str(last_id)}
        async with http.stream("GET", "/events", headers=headers) as response:
            resumed = await SseReader(response).next()

    assert resumed.event == "snapshot"
    assert len(resumed.json()) == 4


async def test_server_pings_a_quiet_stream() -> None:
    async with (
        live_server(ping_seconds=0.2) as server,
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/events") as response,
    ):
        reader = SseReader(response)
        await reader.next()
        comment = await reader.next(2, comments=True)

    assert (comment.event, comment.data) == ("comment", "ping")


def _stalled_client(port: int) -> socket.socket:
    """Open /events with a tiny receive buffer and never read from it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return sock


async def test_server_stalled_client_neither_delays_others_nor_grows() -> None:
    async with (
        live_server(client_timeout_seconds=1.5) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await server.fed([vp(vehicle, 0) for vehicle in range(1, 501)])
        stalled = _stalled_client(server.web.port)
        async with http.stream("GET", "/events") as response:
            reader = SseReader(response)
            await reader.next()
            pending: list[int] = []
            lags: list[float] = []
            for second in range(1, 40):
                fed_at = time.monotonic()
                await server.fed([vp(vehicle, second) for vehicle in range(1, 501)])
                await reader.until(lambda event, s=second: _has_second(event, s))
                lags.append(time.monotonic() - fed_at)
                pending.append(server.web.pending_bytes())
                await asyncio.sleep(0.05)
        stalled.close()

    # A frame here is about 200 KB: what the stalled client's kernel buffers do not take
    # stays in the shared frame, not in a copy in its connection's write buffer.
    assert max(lags) < 1.0
    assert max(pending) == 0
    assert server.broadcaster.stats.slow_disconnects == 1


async def test_server_stream_to_a_reset_peer_ends_and_frees_its_slot() -> None:
    async with live_server() as server:
        await server.fed([vp(vehicle, 0) for vehicle in range(1, 501)])
        stalled = _stalled_client(server.web.port)
        await server.fed([vp(vehicle, 1) for vehicle in range(1, 501)])
        await asyncio.sleep(0.5)  # the server is mid-frame, waiting for the socket
        streams = server.broadcaster.clients
        # Closing with linger 0 resets the connection under the pending send.
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stalled.close()
        await eventually(lambda: not server.broadcaster.clients, 5.0)

        assert (streams, server.broadcaster.clients) == (1, 0)
        assert server.web.pending_bytes() == 0


async def test_server_streams_to_http_1_0_clients_without_chunking() -> None:
    async with live_server() as server:
        await server.fed([vp(1, 0)])
        reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
        writer.write(b"GET /events HTTP/1.0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        opening = await reader.readuntil(b"\n\n")
        snapshot = await reader.readuntil(b"\n\n")
        writer.close()

    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert opening == b"retry: 3000\n\n"
    assert snapshot.startswith(b"event: snapshot\nid: ")
    assert b'"id":"22/1"' in snapshot


def _has_second(event: object, second: int) -> bool:
    states = event.json() if hasattr(event, "json") else []
    return any(state["tst"].startswith(f"2024-02-13T16:00:{second:02d}") for state in states)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("mode=boat", "mode='boat'"),
        ("mode=", "mode=''"),
        ("route=55;drop", "route='55;drop'"),
        ("bbox=1,2,3", "bbox='1,2,3'"),
        ("bbox=25,60,24,61", "bbox='25,60,24,61'"),
        ("colour=red", "'colour'"),
    ],
)
async def test_server_rejects_bad_parameters_naming_them(query: str, named: str) -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/events?{query}")

    assert response.status_code == 400
    assert named in response.text


async def test_server_refuses_streams_beyond_the_limit() -> None:
    async with (
        live_server(max_clients=1) as server,
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/events") as first,
    ):
        await SseReader(first).next()
        second = await http.get("/events")

    assert second.status_code == 503
    assert "limit is 1" in second.text


async def test_server_readyz_waits_for_the_source() -> None:
    async with (
        live_server(connected=False) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        before = await http.get("/readyz")
        server.source.connected = True
        after = await http.get("/readyz")
        alive = await http.get("/healthz")

    assert (before.status_code, before.text.strip()) == (503, "not ready: source not connected")
    assert after.status_code == 200
    assert alive.status_code == 200


@pytest.mark.integration
async def test_server_ready_once_the_broker_is_up(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    source = MqttSource(Settings(mqtt_url=broker.url, mqtt_client_id="readiness-test"))
    try:
        async with (
            live_server(source=source) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            before = await http.get("/readyz")
            broker.start()
            await eventually(lambda: source.connected)
            after = await http.get("/readyz")
            message = vp(5, 0)
            await asyncio.to_thread(publish, broker.port, [(message.topic, message.payload)])
            await eventually(lambda: server.store.get("22/5") is not None)
    finally:
        broker.stop()

    assert (before.status_code, before.text.strip()) == (503, "not ready: source not connected")
    assert (after.status_code, after.text.strip()) == (200, "ready")


async def test_server_metrics_are_present_and_moving() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        before = _samples((await http.get("/metrics")).text)
        async with http.stream("GET", "/events") as response:
            reader = SseReader(response)
            await reader.next()
            await server.fed([vp(1, 0), vp(2, 0)])
            await reader.next()
            during = _samples((await http.get("/metrics")).text)

    assert (
        during["hsl_live_messages_received_total"] - before["hsl_live_messages_received_total"] == 2
    )
    assert during["hsl_live_vehicles"] == 2
    assert during["hsl_live_sse_clients"] == 1
    assert during['hsl_live_sse_frames_encoded_total{event="update"}'] >= 1
    assert during["hsl_live_sse_chunks_sent_total"] >= 2
    assert "hsl_live_sse_slow_disconnects_total" in during
    assert 'hsl_live_rejected_total{reason="invalid_json"}' not in during


def _samples(text: str) -> dict[str, float]:
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in lines}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_signal_closes_streams_and_exits(tmp_path: Path, signum: int) -> None:
    capture = tmp_path / "one.capture"
    message = vp(1, 0)
    capture.write_text(
        f"{message.received_at.isoformat()} {message.topic} {message.payload.decode()}\n"
    )
    env = {
        **os.environ,
        "HSL_LIVE_PORT": "0",
        "HSL_LIVE_LAKE_URL": str(tmp_path / "lake"),
        "HSL_LIVE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    command = [sys.executable, "-m", "hsl_live", "replay", str(capture), "--serve"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        url = _wait_for_url(process)
        with httpx.Client(base_url=url) as http, http.stream("GET", "/events") as response:
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")
            process.send_signal(signum)
            rest = list(lines)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()

    assert ": server shutting down" in rest


def _wait_for_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "serving on " in line:
            return line.rsplit("serving on ", 1)[1].strip()
        if not line and process.poll() is not None:
            break
    raise AssertionError("the server never said where it serves")


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never called")


def test_server_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port}"):
            WebServer(_no_app, "127.0.0.1", port)

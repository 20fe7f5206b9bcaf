"""The HTTP server: uvicorn run inside the pipeline's event loop as the "web" service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator, Iterable

import uvicorn
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from hsl_live.api import create_app
from hsl_live.errors import HslLiveError
from hsl_live.pipeline import Pipeline
from hsl_live.sse import ABORT_EXTENSION, WRITE_EXTENSION, Broadcaster
from hsl_live.store import VehicleStore

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5.0

Peer = tuple[str, int]


class ServeError(HslLiveError):
    """The HTTP server could not start (for example, the port is taken)."""


def attach_web(pipeline: Pipeline, store: VehicleStore) -> WebServer:
    """Add the broadcaster and the web server to a pipeline's services and metrics."""
    settings = pipeline.settings
    broadcaster = Broadcaster(
        store,
        pipeline.clock,
        tick_seconds=settings.tick_seconds,
        ping_seconds=settings.ping_seconds,
    )
    web = WebServer(create_app(pipeline, store, broadcaster), settings.host, settings.port)
    pipeline.services += [broadcaster, web]
    pipeline.metrics.register(broadcaster.collect)
    pipeline.metrics.register(web.collect)

    return web


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the pipeline owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WebServer:
    """Serve an ASGI app on the configured host and port until the pipeline stops.

    Port 0 picks a free port; `port` holds the bound one once `started` is set.
    """

    name = "web"

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.host = host
        # Bind now, so a taken port fails at start-up with a clear error and port 0 is
        # resolved before anything runs.
        self._socket = _listen(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.started = asyncio.Event()
        self._connections: dict[Peer, H11Protocol] = {}
        config = uvicorn.Config(
            self._with_abort(app),
            host=host,
            port=port,
            http=_protocol_class(self._connections),
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS),
        )
        self._server = _Server(config)

    @property
    def url(self) -> str:
        """Return the base URL the server listens on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def pending_bytes(self) -> int:
        """Return the bytes accepted for sending that clients have not taken yet."""
        return sum(
            connection.transport.get_write_buffer_size()
            for connection in self._connections.values()
        )

    def collect(self) -> Iterable[Metric]:
        """Yield the server's gauges for /metrics."""
        connections = GaugeMetricFamily("hsl_live_http_connections", "Open HTTP connections")
        connections.add_metric([], len(self._connections))
        yield connections
        pending = GaugeMetricFamily(
            "hsl_live_http_pending_bytes", "Bytes copied into connections' write buffers, unsent"
        )
        pending.add_metric([], self.pending_bytes())
        yield pending

    async def run(self, stopping: asyncio.Event) -> None:
        """Serve until `stopping` is set, then let open responses finish and exit."""
        server = self._server
        watcher = asyncio.create_task(self._watch(stopping), name="web-watch")
        try:
            await server.serve(sockets=[self._socket])
        except SystemExit:
            # uvicorn reports a failed start by logging it and exiting.
            raise ServeError(f"cannot serve HTTP on {self.host}:{self.port}") from None
        finally:
            self._socket.close()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        logger.info("web server stopped")

    async def _watch(self, stopping: asyncio.Event) -> None:
        server = self._server
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        logger.info("serving on %s", self.url)
        self.started.set()

        await stopping.wait()
        server.should_exit = True

    def _with_abort(self, app: ASGIApp) -> ASGIApp:
        connections = self._connections

        async def with_abort(scope: Scope, receive: Receive, send: Send) -> None:
            connection = connections.get(scope.get("client") or ("", 0))
            writer = None
            if connection is not None:
                extensions = scope.setdefault("extensions", {}) or {}
                extensions[ABORT_EXTENSION] = connection.transport.abort
                if scope.get("http_version") == "1.1" and scope.get("method") == "GET":
                    writer = extensions[WRITE_EXTENSION] = _ChunkWriter(connection)
                scope["extensions"] = extensions
            try:
                await app(scope, receive, send)
            finally:
                if writer is not None:
                    writer.close()

        return with_abort


def _protocol_class(connections: dict[Peer, H11Protocol]) -> type[H11Protocol]:
    """Return uvicorn's HTTP/1.1 protocol, remembering each connection by peer address.

    ASGI gives an app no way to drop a connection whose peer stopped reading (closing
    waits for the unsent bytes), nor to write one buffer to many sockets without a copy
    per socket; the event stream looks its connection up by peer address for both.
    """

    class Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self.client is not None:
                connections[self.client] = self

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client is not None:
                connections.pop(self.client, None)
            super().connection_lost(exc)

    return Protocol


class _ChunkWriter:
    """Writes bytes already framed as HTTP/1.1 chunks straight to a connection's socket.

    Going through ASGI, h11 joins every body piece with its chunk header: a copy of each
    frame per client. And asyncio's transport copies whatever the kernel does not take at
    once into its own buffer: a slow client would hold a private copy of most of a frame.
    Here every client's socket sends from the one buffer the tick encoded, through a
    duplicate of the connection's socket (asyncio sends from a view of the caller's
    bytes there), so a slow client holds a reference to shared bytes, never a copy.
    """

    def __init__(self, connection: H11Protocol) -> None:
        self.transport, self.flow = connection.transport, connection.flow
        self._socket: socket.socket | None = None
        # Under TLS the socket carries ciphertext: only the transport may write to it.
        self._direct = connection.transport.get_extra_info("sslcontext") is None

    async def __call__(self, data: bytes) -> None:
        transport = self.transport
        if self.flow.write_paused:
            await self.flow.drain()
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() or not self._direct:
            # The response head may still be queued there; keep the bytes in order.
            transport.write(data)
            return
        if self._socket is None:
            self._socket = transport.get_extra_info("socket").dup()
        try:
            await asyncio.get_running_loop().sock_sendall(self._socket, data)
        except OSError:
            # The peer is gone; the transport reports the disconnect to the stream.
            transport.abort()

    def close(self) -> None:
        """Close the duplicate socket (the connection stays open through the transport)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock

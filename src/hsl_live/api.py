"""The web app: the map's files, the /events stream, the JSON API, health and metrics."""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import msgspec
import xstatic.pkg.leaflet as leaflet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hsl_live.filters import Filter, FilterError, parse_filter
from hsl_live.metrics import CONTENT_TYPE
from hsl_live.pipeline import Pipeline
from hsl_live.resources import shipped_dir
from hsl_live.sse import Broadcaster, EventStream
from hsl_live.store import TrailPoint, VehicleState, VehicleStore

FRONTEND = shipped_dir("frontend")
API_PARAMETERS = frozenset({"mode", "route", "bbox", "format"})
RATE_WINDOW_SECONDS = 60.0
NO_STORE = {"Cache-Control": "no-store"}

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hsl_live</title></head>
<body><h1>hsl_live</h1><p>The map is not installed (no frontend/index.html).
The live stream is at <a href="/events">/events</a>, vehicles at
<a href="/api/vehicles">/api/vehicles</a>.</p></body></html>
"""

_encode = msgspec.json.Encoder().encode


class Point(msgspec.Struct, tag="Point"):
    """A GeoJSON point, [lon, lat]."""

    coordinates: tuple[float, float]


class Feature(msgspec.Struct, tag="Feature"):
    """A GeoJSON feature for one vehicle."""

    id: str
    geometry: Point
    properties: VehicleState


class FeatureCollection(msgspec.Struct, tag="FeatureCollection"):
    """The vehicles as GeoJSON."""

    features: list[Feature]


class VehicleDetail(msgspec.Struct):
    """One vehicle's state and its recent positions, oldest first."""

    vehicle: VehicleState
    trail: list[TrailPoint]


class MapConfig(msgspec.Struct):
    """What the map needs from the settings."""

    tile_url: str
    tile_attribution: str
    stale_seconds: float
    tick_seconds: float


def content_security_policy(tile_url: str) -> str:
    """Return the CSP for HTML pages: only our own files, plus images from the tile host."""
    tile = urlsplit(tile_url)
    tile_host = f"{tile.scheme}://{tile.netloc.replace('{s}', '*')}" if tile.netloc else ""
    return "; ".join(
        [
            "default-src 'self'",
            f"img-src 'self' data: {tile_host}".rstrip(),
            "style-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


class _Rates:
    """Per-second rates of growing counters over the last minute, sampled when asked."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque([(time.monotonic(), 0, 0)])

    def rates(self, messages: int, rejected: int) -> tuple[float, float]:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, messages, rejected))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW_SECONDS:
            samples.popleft()
        then, old_messages, old_rejected = samples[0]
        elapsed = now - then
        if elapsed <= 0:
            return 0.0, 0.0
        return (messages - old_messages) / elapsed, (rejected - old_rejected) / elapsed


class _Handlers:
    def __init__(self, pipeline: Pipeline, store: VehicleStore, broadcaster: Broadcaster) -> None:
        self.pipeline = pipeline
        self.store = store
        self.broadcaster = broadcaster
        self.rates = _Rates()
        settings = pipeline.settings
        self.config = _encode(
            MapConfig(
                tile_url=settings.tile_url,
                tile_attribution=settings.tile_attribution,
                stale_seconds=settings.stale_seconds,
                tick_seconds=settings.tick_seconds,
            )
        )

    async def index(self, request: Request) -> Response:
        page = FRONTEND / "index.html"
        if page.is_file():
            return FileResponse(page, headers=NO_STORE)
        return HTMLResponse(PLACEHOLDER, headers=NO_STORE)

    async def map_config(self, request: Request) -> Response:
        return _json(self.config)

    async def vehicles(self, request: Request) -> Response:
        try:
            vehicle_filter = parse_filter(request.query_params.multi_items(), API_PARAMETERS)
        except FilterError as exc:
            return PlainTextResponse(str(exc) + "\n", status_code=400, headers=NO_STORE)
        output = request.query_params.get("format", "json")
        if output not in ("json", "geojson"):
            message = f"bad parameter format={output!r}: expected json or geojson\n"
            return PlainTextResponse(message, status_code=400, headers=NO_STORE)

        states = _matching(self.store.states(), vehicle_filter)
        if output == "json":
            return _json(_encode(states))
        features = [
            Feature(id=state.id, geometry=Point((state.lon, state.lat)), properties=state)
            for state in states
            if state.lat is not None and state.lon is not None
        ]
        return _json(_encode(FeatureCollection(features)), "application/geo+json")

    async def vehicle(self, request: Request) -> Response:
        oper, veh = request.path_params["oper"], request.path_params["veh"]
        for name, value in (("oper", oper), ("veh", veh)):
            if not value.isdigit():
                message = f"bad {name} {value!r}: expected a number\n"
                return PlainTextResponse(message, status_code=400, headers=NO_STORE)
        vehicle_id = f"{int(oper)}/{int(veh)}"
        state = self.store.get(vehicle_id)
        if state is None:
            message = f"no vehicle {vehicle_id} on the live view\n"
            return PlainTextResponse(message, status_code=404, headers=NO_STORE)

        return _json(_encode(VehicleDetail(state, self.store.trail(vehicle_id))))

    async def stats(self, request: Request) -> Response:
        return _json(_encode(self._stats()))

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=NO_STORE)

    async def readyz(self, request: Request) -> Response:
        pipeline = self.pipeline
        missing = []
        if not pipeline.source.connected:
            missing.append("source not connected")
        if pipeline.lake is not None and not pipeline.lake.writable:
            missing.append("lake not writable")
        if missing:
            text = "not ready: " + "; ".join(missing) + "\n"
            return PlainTextResponse(text, status_code=503, headers=NO_STORE)
        return PlainTextResponse("ready\n", headers=NO_STORE)

    async def metrics(self, request: Request) -> Response:
        body = self.pipeline.metrics.render()
        return Response(body, headers={**NO_STORE, "Content-Type": CONTENT_TYPE})

    def _stats(self) -> dict[str, Any]:
        pipeline = self.pipeline
        ingest = pipeline.ingest.stats
        messages_rate, rejected_rate = self.rates.rates(ingest.messages, ingest.rejected)
        stats: dict[str, Any] = {
            "time": pipeline.clock.now(),
            "uptime_seconds": time.time() - pipeline.started_at,
            "ready": pipeline.ready,
            "vehicles": len(self.store),
            "messages_per_second": messages_rate,
            "rejected_per_second": rejected_rate,
            "ingest": msgspec.to_builtins(ingest),
            "store": msgspec.to_builtins(self.store.stats),
            "sse": {
                "clients": self.broadcaster.clients,
                **msgspec.to_builtins(self.broadcaster.stats),
            },
            "source": _describe(pipeline.source, ("connected",)),
        }
        if pipeline.lake is not None:
            stats["lake"] = _describe(pipeline.lake, ("writable",))

        return stats


def _describe(part: object, flags: tuple[str, ...]) -> dict[str, Any]:
    """Return what a pipeline part tells about itself: its flags and its `stats`, if any."""
    described: dict[str, Any] = {flag: getattr(part, flag, None) for flag in flags}
    stats = getattr(part, "stats", None)
    if stats is not None:
        try:
            described["stats"] = msgspec.to_builtins(stats)
        except TypeError:
            described["stats"] = repr(stats)
    return described


def _matching(states: list[VehicleState], vehicle_filter: Filter) -> list[VehicleState]:
    if vehicle_filter == Filter():
        return states
    return [state for state in states if vehicle_filter.matches(state)]


def _json(body: bytes, media_type: str = "application/json") -> Response:
    return Response(body, media_type=media_type, headers=NO_STORE)


class _SecurityHeaders:
    """Add the CSP to HTML responses and `nosniff` to all."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.policy = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", self.policy))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(pipeline: Pipeline, store: VehicleStore, broadcaster: Broadcaster) -> ASGIApp:
    """Build the web app over a pipeline, its vehicle store and its broadcaster."""
    settings = pipeline.settings
    handlers = _Handlers(pipeline, store, broadcaster)
    events = EventStream(
        broadcaster,
        max_clients=settings.max_clients,
        client_timeout=settings.client_timeout_seconds,
    )
    routes = [
        Route("/", handlers.index),
        Route("/events", events),
        Route("/api/config", handlers.map_config),
        Route("/api/vehicles", handlers.vehicles),
        Route("/api/vehicles/{oper}/{veh}", handlers.vehicle),
        Route("/api/stats", handlers.stats),
        Route("/healthz", handlers.healthz),
        Route("/readyz", handlers.readyz),
        Route("/metrics", handlers.metrics),
        Mount("/static", StaticFiles(directory=FRONTEND, check_dir=False), name="static"),
        Mount("/vendor/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet"),
    ]
    app = Starlette(routes=routes)

    return _SecurityHeaders(app, content_security_policy(settings.tile_url))

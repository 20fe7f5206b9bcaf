"""Tests of the JSON API, the map's files and the security headers, over a real server."""

from __future__ import annotations

import httpx
import pytest

from hsl_live.api import content_security_policy
from live_server import live_server, vp


async def test_api_vehicles_lists_states_with_filters() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(1, 0, mode="tram", route="1004"), vp(2, 0), vp(3, 0, lat=61.5)])
        everything = await http.get("/api/vehicles")
        trams = await http.get("/api/vehicles?mode=tram")
        boxed = await http.get("/api/vehicles?bbox=24,60,25,61")

    assert everything.headers["cache-control"] == "no-store"
    assert sorted(state["id"] for state in everything.json()) == ["22/1", "22/2", "22/3"]
    assert [state["id"] for state in trams.json()] == ["22/1"]
    assert sorted(state["id"] for state in boxed.json()) == ["22/1", "22/2"]


async def test_api_vehicles_as_geojson() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(1, 0, lat=60.2, lon=24.9)])
        response = await http.get("/api/vehicles?format=geojson")

    collection = response.json()
    assert response.headers["content-type"] == "application/geo+json"
    assert collection["type"] == "FeatureCollection"
    [feature] = collection["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [24.9, 60.2]}
    assert (feature["id"], feature["properties"]["route"]) == ("22/1", "2550")


@pytest.mark.parametrize(
    ("query", "named"), [("format=xml", "format='xml'"), ("mode=plane", "mode='plane'")]
)
async def test_api_vehicles_rejects_bad_parameters(query: str, named: str) -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/api/vehicles?{query}")

    assert response.status_code == 400
    assert named in response.text


async def test_api_vehicle_returns_state_and_trail() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(7, 0, lat=60.1), vp(7, 1, lat=60.2), vp(7, 2, lat=60.3)])
        response = await http.get("/api/vehicles/0022/00007")

    body = response.json()
    assert body["vehicle"]["id"] == "22/7"
    assert [point["lat"] for point in body["trail"]] == [60.1, 60.2, 60.3]


@pytest.mark.parametrize(
    ("path", "status"), [("/api/vehicles/22/99", 404), ("/api/vehicles/x/1", 400)]
)
async def test_api_vehicle_unknown_or_malformed(path: str, status: int) -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(path)

    assert response.status_code == status


async def test_api_stats_reports_the_pipeline() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        await server.fed([vp(1, 0), vp(1, 0), vp(2, 0)])
        stats = (await http.get("/api/stats")).json()

    assert stats["vehicles"] == 2
    assert stats["ingest"]["messages"] == 3
    assert stats["ingest"]["duplicate_messages"] == 1
    assert stats["messages_per_second"] > 0
    assert stats["source"]["connected"] is True
    assert stats["sse"]["clients"] == 0


async def test_api_config_comes_from_settings() -> None:
    async with (
        live_server(tile_url="https://tiles.example.org/{z}/{x}/{y}.png") as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        config = (await http.get("/api/config")).json()

    assert config["tile_url"] == "https://tiles.example.org/{z}/{x}/{y}.png"
    assert set(config) == {"tile_url", "tile_attribution", "stale_seconds", "tick_seconds"}


async def test_api_index_is_html_with_a_strict_policy() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/")

    policy = response.headers["content-security-policy"]
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in policy
    assert "img-src 'self' data: https://tile.openstreetmap.org" in policy


async def test_api_serves_leaflet_from_the_package() -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        script = await http.get("/vendor/leaflet/leaflet.js")
        missing = await http.get("/vendor/leaflet/nothing.js")

    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert missing.status_code == 404


def test_api_policy_allows_tile_subdomains() -> None:
    policy = content_security_policy("https://{s}.tile.example.org/{z}/{x}/{y}.png")

    assert "img-src 'self' data: https://*.tile.example.org;" in policy

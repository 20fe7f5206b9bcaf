"""The live map in a real headless Chromium, against the real server replaying a capture."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from hsl_live.capture import CaptureWriter, RawMessage

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# The smallest valid PNG: every tile request is answered with it, the tests never go online.
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5dd2f"
    "e90000000049454e44ae426082"
)
ORIGIN = datetime(2024, 2, 13, 16, 0, tzinfo=UTC)
CAPTURE_SECONDS = 240
FLEET = (("bus", 40), ("tram", 12), ("train", 6), ("metro", 6), ("ferry", 4), ("ubus", 4))
WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class Vehicle:
    mode: str
    oper: int
    veh: int
    route: str
    desi: str
    headsign: str
    lat: float
    lon: float
    hdg: int
    spd: float
    dl: int
    occu: int

    @property
    def id(self) -> str:
        return f"{self.oper}/{self.veh}"


# A parked bus with known values, for the details test, and a tram on the move to follow.
SUBJECT = Vehicle("bus", 18, 99, "2550", "550", "Itäkeskus", 60.185, 24.95, 90, 0.0, -125, 100)
MOVER = Vehicle("tram", 22, 98, "1015", "15", "Kirurgi", 60.18, 24.93, 45, 9.0, 30, 0)


def make_fleet() -> list[Vehicle]:
    """Return a deterministic fleet around central Helsinki; only SUBJECT and MOVER use <16."""
    rng = random.Random(6)
    fleet = [SUBJECT, MOVER]
    for mode, count in FLEET:
        for _ in range(count):
            number = rng.randrange(16, 99)
            fleet.append(
                Vehicle(
                    mode=mode,
                    oper=22 if mode != "bus" else 18,
                    veh=100 + len(fleet),
                    route=f"10{number:02d}",
                    desi=str(number),
                    headsign="Rautatientori",
                    lat=60.185 + rng.uniform(-0.04, 0.04),
                    lon=24.95 + rng.uniform(-0.1, 0.1),
                    hdg=rng.randrange(360),
                    spd=round(rng.uniform(2.0, 12.0), 2),
                    dl=rng.choice([-240, -90, -20, 0, 30, 95]),
                    occu=rng.choice([0, 0, 100]),
                )
            )
    return fleet


def vp_message(vehicle: Vehicle, second: int) -> RawMessage:
    """Return the VP message a vehicle sends `second` seconds into the capture."""
    metres = vehicle.spd * second
    heading = math.radians(vehicle.hdg)
    lat = vehicle.lat + metres * math.cos(heading) / 111_320
    lon = vehicle.lon + metres * math.sin(heading) / (111_320 * math.cos(math.radians(lat)))
    tst = ORIGIN + timedelta(seconds=second, milliseconds=vehicle.veh % 900)
    topic = (
        f"/hfp/v2/journey/ongoing/vp/{vehicle.mode}/{vehicle.oper:04d}/{vehicle.veh:05d}/"
        f"{vehicle.route}/1/{vehicle.headsign}/16:00/1020201/4/60;24/19/74/39"
    )
    payload = {
        "VP": {
            "desi": vehicle.desi,
            "dir": "1",
            "oper": vehicle.oper,
            "veh": vehicle.veh,
            "tst": tst.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "tsi": int(tst.timestamp()),
            "spd": vehicle.spd,
            "hdg": vehicle.hdg,
            "lat": round(lat, 6),
            "long": round(lon, 6),
            "acc": 0.0,
            "dl": vehicle.dl,
            "odo": int(metres),
            "drst": 0,
            "oday": "2024-02-13",
            "jrn": 1,
            "line": 1,
            "start": "16:00",
            "loc": "GPS",
            "stop": None,
            "route": vehicle.route,
            "occu": vehicle.occu,
        }
    }
    body = json.dumps(payload, ensure_ascii=False).encode()
    return RawMessage(tst + timedelta(milliseconds=40), topic, body)


def write_capture(path: Path) -> None:
    """Write a capture in which every vehicle reports once a second."""
    fleet = make_fleet()
    with CaptureWriter(path) as writer:
        for second in range(CAPTURE_SECONDS):
            for vehicle in sorted(fleet, key=lambda v: v.veh % 900):
                writer.write(vp_message(vehicle, second))


class Server:
    """`hsl-live replay CAPTURE --speed 1 --serve` as a subprocess on a local port."""

    def __init__(self, capture: Path, workdir: Path, port: int = 0) -> None:
        self.capture = capture
        self.workdir = workdir
        self.port = port
        self.log = workdir / f"server-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "HSL_LIVE_LAKE_URL": str(self.workdir / "lake"),
            "HSL_LIVE_SPOOL_DIR": str(self.workdir / "spool"),
        }
        command = [sys.executable, "-m", "hsl_live", "replay", str(self.capture)]
        command += ["--speed", "1", "--serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        self.port = self._bound_port()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.load(response)

    def _bound_port(self) -> int:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = re.search(rb"serving on http://[^:]+:(\d+)", self.log.read_bytes())
            if found:
                return int(found.group(1))
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def live(page: Page, expression: str) -> Any:
    """Evaluate an expression over the page's `window.__hslLive` (null before it starts)."""
    return page.evaluate(f"() => window.__hslLive ? window.__hslLive.{expression} : null")


def settled_point(page: Page, vehicle_id: str) -> dict[str, float]:
    """Return where a parked vehicle is drawn, once two frames agree (the map may still fit)."""
    previous = None
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        current = live(page, f"pointOf('{vehicle_id}')")
        if current is not None and current == previous:
            return dict(current)
        previous = current
        time.sleep(0.2)
    raise AssertionError(f"vehicle {vehicle_id} never held still on the map")


def block_outside(route: Route) -> None:
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.fulfill(status=200, content_type="image/png", body=BLANK_PNG)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "map.capture"
    write_capture(path)
    return path


@pytest.fixture(scope="module")
def server(capture: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(capture, tmp_path_factory.mktemp("server"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def errors() -> list[str]:
    return []


def open_map(browser: Browser, server: Server, errors: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.route("**/*", block_outside)
    page.goto(server.url + "/")
    wait_until(lambda: (live(page, "count") or 0) > 0, "vehicles on the map")
    return page


@pytest.fixture
def page(browser: Browser, server: Server, errors: list[str]) -> Iterator[Page]:
    opened = open_map(browser, server, errors)
    yield opened
    opened.close()


def test_map_draws_every_vehicle_the_api_lists(page: Page, server: Server) -> None:
    listed = server.get_json("/api/vehicles")

    wait_until(lambda: live(page, "count") == len(listed), "the map's count to match the API")
    wait_until(lambda: live(page, "drawn") == len(listed), "every vehicle to be drawn")
    assert page.text_content("#count") == str(len(listed))
    assert sorted(live(page, "ids()")) == sorted(state["id"] for state in listed)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "map.png")


def test_map_page_runs_under_its_content_security_policy(
    page: Page, server: Server, errors: list[str]
) -> None:
    with urllib.request.urlopen(server.url + "/", timeout=5) as response:
        policy = response.headers["Content-Security-Policy"]

    assert "script-src 'self'" in policy
    assert live(page, "status") == "open"
    assert errors == []


def test_map_mode_filter_changes_what_is_drawn(page: Page, server: Server) -> None:
    others = ",".join(mode for mode, _ in FLEET if mode != "bus") + ",robot"
    not_buses = server.get_json(f"/api/vehicles?mode={others}")
    assert 0 < len(not_buses) < len(server.get_json("/api/vehicles"))

    page.uncheck("input[name=mode][value=bus]")

    wanted = sorted(state["id"] for state in not_buses)
    wait_until(lambda: sorted(live(page, "ids()")) == wanted, "only non-buses on the map")
    wait_until(lambda: live(page, "drawn") == len(wanted), "only non-buses drawn")
    assert page.text_content("#count") == str(len(wanted))


def test_map_route_search_keeps_only_that_route(page: Page, server: Server) -> None:
    on_route = server.get_json(f"/api/vehicles?route={SUBJECT.desi}")

    page.fill("#route-search", SUBJECT.desi)

    # The store holds only what the server sent: the search filters on the server too.
    wanted = sorted(state["id"] for state in on_route)
    wait_until(lambda: sorted(live(page, "ids()")) == wanted, "only route 550 received")
    wait_until(lambda: live(page, "drawn") == len(on_route), "only route 550 drawn")
    assert page.text_content("#count") == str(len(on_route))


def test_map_click_on_vehicle_shows_its_details(page: Page) -> None:
    point = settled_point(page, SUBJECT.id)
    box = page.locator("#map").bounding_box()
    assert box is not None

    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])

    details = page.locator("#details")
    details.wait_for(state="visible")
    assert details.get_attribute("data-vehicle") == SUBJECT.id
    assert page.text_content("#details-title") == "550 → Itäkeskus"
    fields = {
        key: page.text_content(f"#details [data-field={key}]")
        for key in ("speed", "delay", "next", "occupancy", "age")
    }
    assert fields["speed"] == "0 km/h"
    assert fields["delay"] == "2:05 late"
    assert fields["next"] == "1020201"
    assert fields["occupancy"] == "full"
    # Age is on the capture's clock: the bus reported within the last second of data.
    assert fields["age"] in ("0 s ago", "1 s ago")


def test_map_shows_banner_while_server_is_down_and_hides_it_after(
    browser: Browser, capture: Path, tmp_path: Path
) -> None:
    server = Server(capture, tmp_path)
    server.start()
    page = open_map(browser, server, [])
    banner = page.locator("#banner")
    try:
        assert banner.is_hidden()

        server.stop()
        banner.wait_for(state="visible", timeout=WAIT_SECONDS * 1000)
        server.start()
        banner.wait_for(state="hidden", timeout=WAIT_SECONDS * 1000)

        assert live(page, "status") == "open"
    finally:
        page.close()
        server.stop()


def test_map_follow_keeps_searched_vehicle_centred(page: Page) -> None:
    page.fill("#route-search", MOVER.desi)
    page.press("#route-search", "Enter")
    page.locator("#details").wait_for(state="visible")
    assert page.get_attribute("#details", "data-vehicle") == MOVER.id

    page.click("#follow")
    start = page.evaluate("() => window.__hslLive.live.map.getCenter()")
    time.sleep(3)

    assert page.get_attribute("#follow", "aria-pressed") == "true"
    centre = page.evaluate("() => window.__hslLive.live.map.getCenter()")
    assert centre != start
    point = live(page, f"pointOf('{MOVER.id}')")
    assert abs(point["x"] - 640) <= 2
    assert abs(point["y"] - 400) <= 2


def test_map_draws_the_selected_vehicles_trail_and_extends_it(
    page: Page, server: Server, errors: list[str]
) -> None:
    wait_until(
        lambda: len(server.get_json(f"/api/vehicles/{MOVER.id}")["trail"]) >= 5,
        "the server to keep a few positions of the tram",
    )
    page.fill("#route-search", MOVER.desi)
    page.press("#route-search", "Enter")
    kept = [(p["lat"], p["lon"]) for p in server.get_json(f"/api/vehicles/{MOVER.id}")["trail"]]
    line = page.locator(".leaflet-overlay-pane path.vehicle-trail")

    wait_until(lambda: len(live(page, "trail()")["points"]) > len(kept), "the trail to grow")
    trail = live(page, "trail()")
    assert trail["id"] == MOVER.id
    times = [point[0] for point in trail["points"]]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    drawn = [(lat, lon) for _, lat, lon in trail["points"]]
    # The page asked a moment before the test did: the server's window may have moved on by
    # a point or two since, but every later position it kept is on the line.
    assert set(kept[2:]) <= set(drawn)
    assert line.count() == 1
    assert (line.get_attribute("d") or "").startswith("M")

    page.click("#close-details")

    wait_until(lambda: line.count() == 0, "the trail to go with the selection")
    assert live(page, "trail()")["id"] is None
    assert errors == []

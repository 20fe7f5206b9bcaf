"""Live view and memory: `hsl-live run` fed live synthetic traffic, with 1,000 SSE clients.

The server runs alone on one core; the broker, the paced publisher and the clients
share the other. Server CPU and RSS come from /proc, frames per tick from /metrics.
The soak repeats the same set-up for many minutes and samples RSS along the way.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from bench.common import (
    PYTHON,
    ROOT,
    TOPIC_FILTER,
    Figure,
    broker,
    cpus,
    free_port,
    median,
    mib,
    process_usage,
    stop,
    wait_listening,
)  # fmt: skip

MEMORY_TARGET_MIB = 300
# Most map users watch everything; a few filter. Each distinct filter is encoded once per tick.
FILTERS = ["", "", "", "", "", "", "", "mode=tram", "mode=bus,tram", "route=1010"]
SETTLE_SECONDS = 8.0


def measure(vehicles: int, clients: int, seconds: float, rss_every: float = 0.0) -> dict[str, Any]:
    """Run one live session; return server, client and metric figures."""
    tested, load_core = cpus()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as scratch:
        root = Path(scratch)
        with broker(root / "broker", load_core) as mqtt_port:
            port = free_port()
            env = {
                **os.environ,
                "HSL_LIVE_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
                "HSL_LIVE_TOPICS": TOPIC_FILTER,
                "HSL_LIVE_LAKE_URL": str(root / "lake"),
                "HSL_LIVE_SPOOL_DIR": str(root / "spool"),
                "HSL_LIVE_PORT": str(port),
                "HSL_LIVE_LOG_LEVEL": "WARNING",
            }
            server = subprocess.Popen(
                ["taskset", "-c", str(tested), str(ROOT / ".venv" / "bin" / "hsl-live"), "run"],
                env=env, cwd=root,
            )  # fmt: skip
            publisher = clients_process = None
            try:
                wait_listening(port, server)
                total = SETTLE_SECONDS + seconds + 5
                publisher = subprocess.Popen(
                    [PYTHON, "-m", "bench.publisher", "paced", "--port", str(mqtt_port),
                     "--vehicles", str(vehicles), "--seconds", str(total), "--cpu", str(load_core)],
                    cwd=ROOT, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                time.sleep(SETTLE_SECONDS)  # the fleet is generated and every vehicle reported
                filters = [arg for f in FILTERS for arg in ("--filter", f)]
                clients_process = subprocess.Popen(
                    [PYTHON, "-m", "bench.sse_clients", "--url", f"http://127.0.0.1:{port}",
                     "--clients", str(clients), "--seconds", str(seconds), "--cpu", str(load_core),
                     *filters],
                    cwd=ROOT, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                time.sleep(min(5.0, seconds / 4))  # clients connected and past their snapshots
                before, metrics_before = process_usage(server.pid), _metrics(port)
                began = time.monotonic()
                deadline = time.monotonic() + seconds + 120
                rss = _sample_rss(server.pid, clients_process, rss_every, deadline)
                out, _ = clients_process.communicate(timeout=max(1.0, deadline - time.monotonic()))
                elapsed = time.monotonic() - began
                after, metrics_after = process_usage(server.pid), _metrics(port)
            finally:
                for process in (clients_process, publisher):
                    if process is not None:
                        stop(process)
                stop(server, 30)
    seen: dict[str, Any] = msgspec.json.decode(out.strip().splitlines()[-1])
    ticks = metrics_after["hsl_live_sse_ticks_total"] - metrics_before["hsl_live_sse_ticks_total"]
    encoded = sum(
        metrics_after.get(f'hsl_live_sse_frames_encoded_total{{event="{e}"}}', 0)
        - metrics_before.get(f'hsl_live_sse_frames_encoded_total{{event="{e}"}}', 0)
        for e in ("update", "remove")
    )
    return {
        "clients": seen,
        "cpu_share": (after.cpu_seconds - before.cpu_seconds) / elapsed,
        "rss_bytes": after.rss_bytes,
        "peak_rss_bytes": after.peak_rss_bytes,
        "rss_samples": rss,
        "ticks": ticks,
        "encoded_per_tick": encoded / max(ticks, 1),
        # The gauge reads 0 once the clients have left, so count what they asked for.
        "filters": len(set(FILTERS)),
        "catch_ups": metrics_after.get("hsl_live_sse_catch_ups_total", 0),
        "vehicles": metrics_after.get("hsl_live_vehicles", 0),
        "dropped": metrics_after.get("hsl_live_mqtt_dropped_total", 0),
        "messages_per_second": (
            metrics_after["hsl_live_messages_received_total"]
            - metrics_before["hsl_live_messages_received_total"]
        )
        / elapsed,
    }


def _sample_rss(
    pid: int, until_done: subprocess.Popen[str], every: float, deadline: float
) -> list[int]:
    samples: list[int] = []
    while every > 0 and until_done.poll() is None and time.monotonic() < deadline:
        samples.append(process_usage(pid).rss_bytes)
        time.sleep(every)
    return samples


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def live_figures(vehicles: int, clients: int, seconds: float, tick: float) -> list[Figure]:
    """Measure the live view with the full feed flowing and `clients` streams."""
    result = measure(vehicles, clients, seconds)
    seen = result["clients"]
    p99_ms = 1000 * seen["delay_p99"]
    limit_ms = 1000 * tick + 100
    cpu = result["cpu_share"]
    per_tick, filters = result["encoded_per_tick"], result["filters"]

    def fig(
        name: str, value: Any, unit: str = "", target: str = "", met: bool | None = None
    ) -> Figure:
        return Figure("live", name, value, unit, target, met)

    return [
        fig("set-up", f"{vehicles} vehicles, {seen['connected']}/{clients} clients "
            f"({seen['failed']} failed), {seconds:.0f} s"),
        fig("server messages/s", round(result["messages_per_second"])),
        fig("delay arrival->client p50", round(1000 * seen["delay_p50"]), "ms"),
        fig("delay arrival->client p99", round(p99_ms), "ms", f"<= {limit_ms:.0f}",
            p99_ms <= limit_ms),
        fig("server CPU", round(cpu, 2), "cores", "< 1", cpu < 1),
        fig("server RSS", mib(result["rss_bytes"]), "MiB"),
        fig("frames encoded per tick", round(per_tick, 2), "",
            f"= distinct filters ({filters:.0f})", per_tick <= filters + 0.5),
        fig("client catch-ups", int(result["catch_ups"])),
        fig("MQTT dropped", int(result["dropped"]), "", "0", result["dropped"] == 0),
        fig("bytes to clients", round(seen["mbytes"]), "MB"),
        # The clients share one core with the broker and publisher; near 1 they lag.
        fig("client process CPU", round(seen["cpu_share"], 2), "cores"),
    ]  # fmt: skip


def memory_figures(vehicles: int, clients: int, seconds: float) -> list[Figure]:
    """Peak server RSS with `vehicles` vehicles and `clients` streams."""
    result = measure(vehicles, clients, seconds)
    peak = mib(result["peak_rss_bytes"])
    connected = result["clients"]["connected"]
    within = peak <= MEMORY_TARGET_MIB
    return [
        Figure("memory", "set-up", f"{vehicles} vehicles, {connected} clients, {seconds:.0f} s"),
        Figure("memory", "peak RSS", peak, "MiB", f"<= {MEMORY_TARGET_MIB}", within),
    ]  # fmt: skip


def soak_figures(vehicles: int, clients: int, minutes: float) -> list[Figure]:
    """Run for `minutes`, sampling RSS every 10 s; flat means no growth in what stays resident.

    RSS saws up and down with every lake flush, so the trend is taken on the median of a
    window (what the process holds between flushes), the last tenth of the run against the
    middle tenth; the highest samples of those windows are shown beside it.
    """
    result = measure(vehicles, clients, minutes * 60, rss_every=10.0)
    samples = result["rss_samples"] or [result["rss_bytes"]]
    tenth = max(1, len(samples) // 10)
    start = max(0, len(samples) // 2 - tenth // 2)
    middle, end = samples[start : start + tenth], samples[-tenth:]
    growth = median(end) / median(middle) - 1
    per_window = -(-len(samples) // 6)
    trend = " ".join(
        str(round(mib(median(samples[i : i + per_window]))))
        for i in range(0, len(samples), per_window)
    )
    peak = mib(result["peak_rss_bytes"])
    return [
        Figure("soak", "set-up", f"{vehicles} vehicles, {clients} clients, {minutes:g} min"),
        Figure("soak", "RSS median, by sixths of the run", trend, "MiB"),
        Figure("soak", "RSS median middle -> end", f"{mib(median(middle))} -> {mib(median(end))}",
               "MiB"),
        Figure("soak", "RSS highest middle -> end", f"{mib(max(middle))} -> {mib(max(end))}",
               "MiB"),
        Figure("soak", "growth over the second half", round(100 * growth, 1), "%", "<= 10",
               growth <= 0.10),
        Figure("soak", "peak RSS", peak, "MiB", f"<= {MEMORY_TARGET_MIB}",
               peak <= MEMORY_TARGET_MIB),
    ]  # fmt: skip

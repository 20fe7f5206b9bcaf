"""Ingest: broker ceiling, a stock aiomqtt loop, and hsl_live end to end, in one run.

A no-drop Mosquitto and a raw-socket publisher run on one core; the consumer under
test runs alone on the other. Every consumer is timed from the publisher's first
byte to its last message done (for hsl_live: the lake's files written), so the
three rates are comparable; ratios are taken within the same round.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.common import PYTHON, ROOT, TOPIC_FILTER, Figure, broker, cpus, median, mib, stop
from bench.consumers import lake_figures
from bench.workload import Workload, load

SETTLE_SECONDS = 1.0
ZONES = ("raw", "processed", "rejected")
# Bytes per zone that the last hsl_live round wrote, for the lake benchmark.
LAST_LAKE_BYTES: dict[str, int] = {}
TIMEOUT_SECONDS = 300.0


def run(messages: int, vehicles: int, rounds: int, profile: Path | None = None) -> list[Figure]:
    """Measure (a), (b) and (c) `rounds` times each, interleaved; return the median figures."""
    workload = load(messages, vehicles)
    tested, load_core = cpus()
    samples: dict[str, list[dict[str, Any]]] = {"ceiling": [], "aiomqtt": [], "hsl_live": []}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        root = Path(scratch)
        for number in range(rounds):
            with broker(root / f"broker-{number}", load_core) as port:
                samples["ceiling"].append(_ceiling(port, workload, tested, load_core))
                samples["aiomqtt"].append(
                    _consumer("aiomqtt", port, workload, tested, load_core, root)
                )
                samples["hsl_live"].append(
                    _consumer("pipeline", port, workload, tested, load_core, root / f"c{number}",
                              profile if number == 0 else None)
                )  # fmt: skip
        last = samples["hsl_live"][-1]["lake"]
        LAST_LAKE_BYTES.update({zone: last[zone]["bytes"] for zone in ZONES})
        compacted = _compact(root / f"c{rounds - 1}")
        LAST_LAKE_BYTES.update({f"{zone} compacted": compacted[zone]["bytes"] for zone in ZONES})
    return _figures(workload, samples)


def _compact(directory: Path) -> dict[str, dict[str, int]]:
    """Compact a round's lake with `hsl-live compact`; return what each zone holds then."""
    lake, spool = directory / "lake", directory / "spool"
    command = [str(ROOT / ".venv" / "bin" / "hsl-live"), "compact",
               "--lake-url", str(lake), "--spool-dir", str(spool)]  # fmt: skip
    subprocess.run(command, cwd=directory, check=True, stdout=subprocess.DEVNULL)
    return lake_figures(lake)


def _publisher(port: int, workload: Workload, core: int) -> subprocess.Popen[str]:
    command = [PYTHON, "-m", "bench.publisher", "blast", "--port", str(port),
               "--file", str(workload.path), "--count", str(workload.messages),
               "--cpu", str(core)]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the publisher did not connect")
    return process


def _go(publisher: subprocess.Popen[str]) -> float:
    assert publisher.stdin is not None
    started = time.monotonic()
    publisher.stdin.write("go\n")
    publisher.stdin.flush()
    return started


def _published(publisher: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = publisher.communicate(timeout=TIMEOUT_SECONDS)
    result: dict[str, Any] = msgspec.json.decode(out.strip().splitlines()[-1])
    return result


def _ceiling(port: int, workload: Workload, core: int, load_core: int) -> dict[str, Any]:
    command = ["taskset", "-c", str(core), "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
               "-t", TOPIC_FILTER, "-C", str(workload.messages)]  # fmt: skip
    sub = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        time.sleep(SETTLE_SECONDS)  # mosquitto_sub cannot say when it has subscribed
        publisher = _publisher(port, workload, load_core)
        started = _go(publisher)
        sub.wait(timeout=TIMEOUT_SECONDS)
        finished = time.monotonic()
        published = _published(publisher)
    finally:
        stop(sub)
    seconds = finished - started
    return {"received": workload.messages, "seconds": seconds, "publish": published}


def _consumer(
    kind: str,
    port: int,
    workload: Workload,
    core: int,
    load_core: int,
    directory: Path,
    profile: Path | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    command = [PYTHON, "-m", "bench.consumers", kind, "--port", str(port), "--count",
               str(workload.messages), "--cpu", str(core), "--dir", str(directory)]  # fmt: skip
    if profile is not None:
        command += ["--profile", str(profile)]
    command += extra
    consumer = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout is not None
        if consumer.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {kind} consumer did not subscribe")
        publisher = _publisher(port, workload, load_core)
        started = _go(publisher)
        out, _ = consumer.communicate(timeout=TIMEOUT_SECONDS)
        published = _published(publisher)
    finally:
        stop(consumer)
    result: dict[str, Any] = msgspec.json.decode(out.strip().splitlines()[-1])
    result["seconds"] = result["finished"] - started
    result["publish"] = published
    return result


def _figures(workload: Workload, samples: dict[str, list[dict[str, Any]]]) -> list[Figure]:
    n = workload.messages
    rates = {kind: [n / s["seconds"] for s in runs] for kind, runs in samples.items()}
    to_ceiling = [c / a for c, a in zip(rates["hsl_live"], rates["ceiling"], strict=True)]
    to_aiomqtt = [c / b for c, b in zip(rates["hsl_live"], rates["aiomqtt"], strict=True)]
    pipeline = samples["hsl_live"]
    dropped = max(s["dropped"] for s in pipeline)
    complete = all(s["received"] == n and s["lake"]["raw"]["rows"] == n for s in pipeline)
    rows_ok = all(
        s["lake"]["processed"]["rows"] == s["events"]
        and s["lake"]["rejected"]["rows"] == s["rejected"]
        for s in pipeline
    )
    publish = [n / (s["publish"]["finished"] - s["publish"]["started"]) for s in pipeline]
    last = pipeline[-1]
    ratio_b = median(to_aiomqtt)
    cpu = median([s["cpu_seconds"] for s in pipeline])

    def fig(
        name: str, value: Any, unit: str = "", target: str = "", met: bool | None = None
    ) -> Figure:
        return Figure("ingest", name, value, unit, target, met)

    return [
        fig("workload", f"{n} msgs, {workload.vehicles} vehicles, "
            f"{100 * workload.vp / n:.0f}% VP, {len(pipeline)} rounds"),
        fig("publisher rate", round(median(publish)), "msg/s"),
        fig("(a) mosquitto_sub ceiling", round(median(rates["ceiling"])), "msg/s"),
        fig("(b) stock aiomqtt count-only", round(median(rates["aiomqtt"])), "msg/s"),
        fig("(c) hsl_live end to end", round(median(rates["hsl_live"])), "msg/s"),
        fig("(c)/(a)", round(median(to_ceiling), 2), "x"),
        fig("(c)/(b)", round(ratio_b, 2), "x", ">= 2 on one core", ratio_b >= 2 and dropped == 0),
        fig("(c)/(b) per round", " ".join(f"{r:.2f}" for r in to_aiomqtt)),
        fig("(c) dropped", dropped, "msgs", "0", dropped == 0),
        fig("(c) all received and in the raw zone", complete, "", "true", complete),
        fig("(c) processed/rejected rows = events/rejections", rows_ok, "", "true", rows_ok),
        fig("(c) CPU", round(median([s["cpu_seconds"] for s in pipeline]), 2), "s"),
        fig("(c) CPU per message", round(1e6 * cpu / n, 1), "us"),
        fig("(c) peak RSS", mib(median([s["peak_rss_bytes"] for s in pipeline])), "MiB"),
        fig("(b) CPU", round(median([s["cpu_seconds"] for s in samples["aiomqtt"]]), 2), "s"),
        fig("(b) peak RSS", mib(median([s["peak_rss_bytes"] for s in samples["aiomqtt"]])), "MiB"),
        fig("(c) lake files raw/processed/rejected",
            "/".join(str(last["lake"][z]["files"]) for z in ("raw", "processed", "rejected"))),
    ]  # fmt: skip

"""What every benchmark shares: a no-drop Mosquitto, process figures, CPU pinning, results."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "cache"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TOPIC_FILTER = "/hfp/v2/journey/ongoing/+/#"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Figure(msgspec.Struct, frozen=True):
    """One measured number of a benchmark, with its unit and, when there is one, its target."""

    bench: str
    name: str
    value: float | int | str | bool
    unit: str = ""
    target: str = ""
    met: bool | None = None


def cpus() -> tuple[int, int]:
    """Return the core for the process under test and the core for the load around it."""
    available = sorted(os.sched_getaffinity(0))
    return available[0], available[-1]


def pin(core: int | None) -> None:
    """Run the calling process on one core (None leaves it free)."""
    if core is not None:
        os.sched_setaffinity(0, {core})


def free_port() -> int:
    """Return a local TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[Any], seconds: float = 15.0) -> None:
    """Wait until something accepts connections on a local port; fail if `process` died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


@contextlib.contextmanager
def broker(directory: Path, core: int | None) -> Iterator[int]:
    """Run a Mosquitto that queues without limit (nothing dropped); yield its port."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        "max_inflight_messages 0",
        "memory_limit 0",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    config.write_text("\n".join(lines) + "\n")
    affinity = ["taskset", "-c", str(core)] if core is not None else []
    with (directory / "mosquitto.log").open("ab") as log:
        process = subprocess.Popen(
            [*affinity, MOSQUITTO, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_listening(port, process)
        yield port
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any], seconds: float = 10.0) -> None:
    """Terminate a child process, killing it if it does not end in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=seconds)


class Usage(msgspec.Struct, frozen=True):
    """CPU seconds (user + system) and resident memory of a process."""

    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def own_usage() -> Usage:
    """Return this process's CPU time so far, current and peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = _status_kib(Path("/proc/self/status"), "VmRSS:") * 1024

    return Usage(usage.ru_utime + usage.ru_stime, rss, usage.ru_maxrss * 1024)


def process_usage(pid: int) -> Usage:
    """Return another process's CPU time so far, current and peak RSS, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    status = Path(f"/proc/{pid}/status")

    return Usage(cpu, _status_kib(status, "VmRSS:") * 1024, _status_kib(status, "VmHWM:") * 1024)


def _status_kib(status: Path, key: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def median(values: Sequence[float]) -> float:
    """Return the median of several runs' figures."""
    return float(statistics.median(values))


def quantile(values: Sequence[float], q: float) -> float:
    """Return the q-quantile (0..1) of values, by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def mib(size: float) -> float:
    """Return bytes in MiB, rounded for a table."""
    return round(size / (1 << 20), 1)

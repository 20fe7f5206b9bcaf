"""A fast MQTT publisher process: PUBLISH packets written straight to a socket at QoS 0.

`blast` sends a cached workload as fast as the broker reads it, after a "go" line
on stdin; `paced` publishes hsl-live simulate's traffic live, each message at its
own receive time. Both print one JSON line of figures when done.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

import msgspec

from bench.common import pin
from bench.workload import publish_packet, remaining_length
from hsl_live import simulate

SLICE = 1 << 20


def connect(port: int, client_id: str) -> socket.socket:
    """Open an MQTT 3.1.1 session (clean, keepalive off) and wait for the broker's CONNACK."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    name = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(name).to_bytes(2, "big") + name
    sock.sendall(b"\x10" + remaining_length(len(body)) + body)
    connack = sock.recv(4)
    if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"broker refused the connection: {connack!r}")
    return sock


def blast(port: int, path: Path, count: int) -> dict[str, float]:
    """Send every packet of a workload file after a "go" line; return timings."""
    data = memoryview(path.read_bytes())
    sock = connect(port, "bench-publisher")
    print("ready", flush=True)
    sys.stdin.readline()

    started = time.monotonic()
    for offset in range(0, len(data), SLICE):
        sock.sendall(data[offset : offset + SLICE])
    sock.sendall(b"\xe0\x00")
    finished = time.monotonic()
    sock.close()

    return {"sent": count, "started": started, "finished": finished}


def paced(port: int, vehicles: int, seed: int, seconds: float) -> dict[str, float]:
    """Publish simulated traffic in real time for `seconds`; return counts and lateness."""
    sock = connect(port, f"bench-paced-{seed}")
    start = time.time() + 2.0
    simulation = simulate.Simulation(vehicles=vehicles, seed=seed, start=start, duration=seconds)
    sent, late, pending = 0, 0.0, bytearray()
    for received, topic, payload in simulate.generate(simulation):
        wait = received - time.time()
        if wait > 0.005:
            if pending:
                sock.sendall(pending)
                pending.clear()
            time.sleep(wait)
        else:
            late = max(late, -wait)
        pending += publish_packet(topic, payload)
        sent += 1
    sock.sendall(bytes(pending) + b"\xe0\x00")
    sock.close()

    return {"sent": sent, "start": start, "max_late_seconds": late}


def main() -> None:
    """Run one publisher mode from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.publisher")
    parser.add_argument("mode", choices=("blast", "paced"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--vehicles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    pin(args.cpu)
    if args.mode == "blast":
        result = blast(args.port, args.file, args.count)
    else:
        result = paced(args.port, args.vehicles, args.seed, args.seconds)
    print(msgspec.json.encode(result).decode(), flush=True)


if __name__ == "__main__":
    main()

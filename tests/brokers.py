"""Start real Mosquitto brokers on free local ports for integration tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT_SECONDS = 10.0


class TlsFiles(msgspec.Struct, frozen=True):
    """A test CA and a server certificate it signed, valid for localhost and 127.0.0.1."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate a throwaway CA and server certificate with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    _openssl("req", "-x509", *curve, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
             "-subj", "/CN=hsl-live test CA")  # fmt: skip
    _openssl("req", *curve, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", extensions)  # fmt: skip

    return TlsFiles(ca_cert=ca_cert, server_cert=cert, server_key=key)


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def free_port() -> int:
    """Return a TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Mosquitto:
    """One broker process listening with plain MQTT, TLS, or websockets.

    A TLS or websockets broker also has a plain listener on `plain_port`, for
    publishing test traffic without going through the transport under test.

    The port stays the same across `kill()` and `start()`, so a client can be
    shown reconnecting to a broker that came back.
    """

    def __init__(
        self,
        directory: Path,
        *,
        tls: TlsFiles | None = None,
        websockets: bool = False,
        port: int | None = None,
    ) -> None:
        self.directory = directory
        self.tls = tls
        self.websockets = websockets
        self.port = port or free_port()
        self.plain_port = free_port() if tls or websockets else self.port
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "mosquitto.conf"
        self.config.write_text(self._config_text())
        self.log = directory / "mosquitto.log"

    @property
    def url(self) -> str:
        """Return the URL a client uses for this listener."""
        scheme = (
            ("wss" if self.tls else "ws") if self.websockets else "mqtts" if self.tls else "mqtt"
        )
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    def _config_text(self) -> str:
        lines = [
            "per_listener_settings true",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "persistence false",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto switches to user "mosquitto", which cannot read pytest's tmp.
            lines.append("user root")
        if self.websockets:
            lines.append("protocol websockets")
        if self.tls:
            lines += [f"certfile {self.tls.server_cert}", f"keyfile {self.tls.server_key}"]
        if self.plain_port != self.port:
            lines += [f"listener {self.plain_port} 127.0.0.1", "allow_anonymous true"]

        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def kill(self) -> None:
        """Kill the broker abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the broker politely, or kill it when it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None


def publish(port: int, messages: Iterable[tuple[str, bytes]], qos: int = 0) -> int:
    """Publish messages in order to a local broker's plain listener; return how many."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-publisher-{port}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    count = 0
    try:
        info = None
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=qos)
            count += 1
        if info is not None:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()

    return count


async def eventually(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait until `condition()` holds, polling; raise TimeoutError after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)

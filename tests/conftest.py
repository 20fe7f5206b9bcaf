"""Shared fixtures: real Mosquitto brokers on free ports (see tests/brokers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brokers import Mosquitto, TlsFiles, make_tls_files


@pytest.fixture(autouse=True)
def _free_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve on any free port, so commands run by tests never collide on 8000.

    Subprocesses inherit it; a test that needs a fixed port sets HSL_LIVE_PORT itself.
    """
    monkeypatch.setenv("HSL_LIVE_PORT", "0")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for localhost, made once per session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start brokers on free ports with `factory(tls=..., websockets=...)`; stop them after."""
    brokers: list[Mosquitto] = []

    def factory(**options: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto-{len(brokers)}", **options)
        brokers.append(broker)
        broker.start()
        return broker

    yield factory
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A plain MQTT broker on a free port."""
    return mosquitto_factory()

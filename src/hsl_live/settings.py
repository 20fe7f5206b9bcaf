"""Typed settings, read once at start-up from a TOML file, the environment and CLI flags."""

from __future__ import annotations

import os
import secrets
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from hsl_live.errors import SettingsError

ENV_PREFIX = "HSL_LIVE_"
MQTT_SCHEMES = ("mqtt", "mqtts", "ws", "wss")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of a running hsl_live; see the configuration table in README.md."""

    mqtt_url: str = "mqtts://mqtt.hsl.fi:8883"
    mqtt_ws_path: str = "/"
    mqtt_client_id: str = ""
    mqtt_queue_size: int = 200_000
    mqtt_ca_file: str | None = None
    topics: tuple[str, ...] = ("/hfp/v2/journey/ongoing/+/#",)
    lake_url: str = "./lake"
    s3_endpoint_url: str | None = None
    flush_rows: int = 50_000
    flush_seconds: float = 60.0
    spool_dir: str = "./spool"
    writer_id: str = ""
    lateness_seconds: float = 3600.0
    compact_interval_seconds: float = 900.0
    compact_memory_mb: int = 256
    dedup_seconds: float = 300.0
    host: str = "127.0.0.1"
    port: int = 8000
    stale_seconds: float = 120.0
    tick_seconds: float = 0.5
    max_clients: int = 2000
    client_timeout_seconds: float = 30.0
    trail_points: int = 30
    resume_changes: int = 200_000
    ping_seconds: float = 15.0
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = "&copy; OpenStreetMap contributors"
    log_level: str = "INFO"

    @property
    def is_s3(self) -> bool:
        """Return whether the lake lives on S3 (or an S3-compatible store)."""
        return self.lake_url.startswith("s3://")


Parser = Callable[[str, Any], Any]


@dataclass(frozen=True)
class _Field:
    parse: Parser
    expected: str


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


def _required_text(name: str, value: Any) -> str:
    text = _text(name, value).strip()
    if not text:
        raise ValueError
    return text


def _optional_text(name: str, value: Any) -> str | None:
    text = _text(name, value).strip()
    return text or None


def _positive_int(name: str, value: Any) -> int:
    number = int(value) if not isinstance(value, bool) else -1
    if isinstance(value, float) and value != number:
        raise ValueError
    if number <= 0:
        raise ValueError
    return number


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError
    return number


def _port(name: str, value: Any) -> int:
    if value == "0" or (type(value) is int and value == 0):
        return 0
    number = _positive_int(name, value)
    if number > 65535:
        raise ValueError
    return number


def _topics(name: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    topics = tuple(str(item).strip() for item in items if str(item).strip())
    if not topics or any(not _valid_filter(topic) for topic in topics):
        raise ValueError
    return topics


def _valid_filter(topic: str) -> bool:
    levels = topic.split("/")
    if "#" in topic and (levels[-1] != "#" or topic.count("#") > 1):
        return False
    return all(level == "+" or "+" not in level for level in levels)


def _mqtt_url(name: str, value: Any) -> str:
    url = urlsplit(_text(name, value))
    if url.scheme not in MQTT_SCHEMES or not url.hostname:
        raise ValueError
    _ = url.port  # raises ValueError on a malformed port
    return url.geturl()


def _lake_url(name: str, value: Any) -> str:
    text = _text(name, value).strip()
    if not text:
        raise ValueError
    if "://" in text:
        url = urlsplit(text)
        if url.scheme != "s3" or not url.netloc:
            raise ValueError
        return f"s3://{url.netloc}/{url.path.strip('/')}".rstrip("/")
    return text


def _http_url(name: str, value: Any) -> str | None:
    text = _optional_text(name, value)
    if text is None:
        return None
    url = urlsplit(text)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError
    return text


def _writer_id(name: str, value: Any) -> str:
    text = _text(name, value).strip()
    if text and not all(char.isalnum() or char in "_." for char in text):
        raise ValueError
    if text.startswith("compact."):  # the compactor's own writer id
        raise ValueError
    return text


def _log_level(name: str, value: Any) -> str:
    level = _text(name, value).strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError
    return level


_FIELDS: dict[str, _Field] = {
    "mqtt_url": _Field(
        _mqtt_url, "a URL with scheme mqtt://, mqtts://, ws:// or wss:// and a host"
    ),
    "mqtt_ws_path": _Field(_text, "a path such as /mqtt"),
    "mqtt_client_id": _Field(_text, "an MQTT client id, or empty for a generated one"),
    "mqtt_queue_size": _Field(_positive_int, "a positive integer"),
    "mqtt_ca_file": _Field(_optional_text, "a PEM file of CA certificates, or empty"),
    "topics": _Field(_topics, "comma-separated MQTT filters with # only as the last level"),
    "lake_url": _Field(_lake_url, "a local path or s3://bucket/prefix"),
    "s3_endpoint_url": _Field(_http_url, "an http:// or https:// URL, or empty"),
    "flush_rows": _Field(_positive_int, "a positive integer"),
    "flush_seconds": _Field(_positive_float, "a positive number of seconds"),
    "spool_dir": _Field(_required_text, "a directory path"),
    "writer_id": _Field(
        _writer_id, "letters, digits, '_' and '.' only (no '-'), not starting with 'compact.'"
    ),
    "lateness_seconds": _Field(_positive_float, "a positive number of seconds"),
    "compact_interval_seconds": _Field(_positive_float, "a positive number of seconds"),
    "compact_memory_mb": _Field(_positive_int, "a positive number of MiB"),
    "dedup_seconds": _Field(_positive_float, "a positive number of seconds"),
    "host": _Field(_required_text, "a host name or IP address"),
    "port": _Field(_port, "a TCP port between 1 and 65535, or 0 for any free port"),
    "stale_seconds": _Field(_positive_float, "a positive number of seconds"),
    "tick_seconds": _Field(_positive_float, "a positive number of seconds"),
    "max_clients": _Field(_positive_int, "a positive integer"),
    "client_timeout_seconds": _Field(_positive_float, "a positive number of seconds"),
    "trail_points": _Field(_positive_int, "a positive integer"),
    "resume_changes": _Field(_positive_int, "a positive integer (changes kept for resume)"),
    "ping_seconds": _Field(_positive_float, "a positive number of seconds"),
    "tile_url": _Field(_text, "a tile URL template with {z}, {x} and {y}"),
    "tile_attribution": _Field(_text, "attribution text (HTML allowed)"),
    "log_level": _Field(_log_level, "one of DEBUG, INFO, WARNING, ERROR"),
}


def env_name(key: str) -> str:
    """Return the environment variable that sets a settings key."""
    return ENV_PREFIX + key.upper()


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: defaults, then the TOML file, then `HSL_LIVE_*`, then CLI flags.

    Raises SettingsError naming the variable, the bad value and what was expected.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    if config_file is not None:
        for key, value in _read_toml(config_file).items():
            values[key] = _parse(key, value, f"{key} in {config_file}")

    for key in _FIELDS:
        raw = environ.get(env_name(key))
        if raw is not None:
            values[key] = _parse(key, raw, env_name(key))

    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _parse(key, value, f"--{key.replace('_', '-')}")

    values.setdefault("writer_id", "")
    if not values["writer_id"]:
        values["writer_id"] = _default_writer_id()
    if not values.get("mqtt_client_id"):
        values["mqtt_client_id"] = f"hsl-live-{values['writer_id']}"

    return Settings(**values)


def _parse(key: str, value: Any, source: str) -> Any:
    field = _FIELDS.get(key)
    if field is None:
        raise SettingsError(f"{source}: unknown setting {key!r}")
    try:
        return field.parse(key, value)
    except (ValueError, TypeError):
        raise SettingsError(f"{source} must be {field.expected}, got {value!r}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc


def _default_writer_id() -> str:
    host = "".join(char for char in socket.gethostname() if char.isalnum())[:16] or "host"
    return f"{host}.{secrets.token_hex(3)}"

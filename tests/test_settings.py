"""Tests for building the settings from defaults, TOML, the environment and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hsl_live import settings as settings_module
from hsl_live.errors import SettingsError
from hsl_live.settings import Settings, env_name, load_settings


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hsl-live.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_defaults_match_design() -> None:
    loaded = load_settings(environ={})

    assert loaded.mqtt_url == "mqtts://mqtt.hsl.fi:8883"
    assert loaded.topics == ("/hfp/v2/journey/ongoing/+/#",)
    assert loaded.lake_url == "./lake"
    assert loaded.s3_endpoint_url is None
    assert loaded.spool_dir == "./spool"
    assert (loaded.host, loaded.port) == ("127.0.0.1", 8000)
    assert loaded.flush_rows > 0
    assert loaded.flush_seconds > 0
    assert loaded.stale_seconds > 0
    assert loaded.is_s3 is False


def test_load_settings_generates_writer_and_client_ids() -> None:
    loaded = load_settings(environ={})

    assert loaded.writer_id
    assert "-" not in loaded.writer_id
    assert loaded.mqtt_client_id == f"hsl-live-{loaded.writer_id}"


def test_load_settings_every_field_has_a_parser() -> None:
    assert set(settings_module._FIELDS) == set(Settings.__struct_fields__)


def test_env_name_upper_case_with_prefix() -> None:
    assert env_name("flush_rows") == "HSL_LIVE_FLUSH_ROWS"


def test_load_settings_from_env() -> None:
    environ = {
        "HSL_LIVE_LAKE_URL": "s3://bucket/prefix/",
        "HSL_LIVE_TOPICS": "/hfp/v2/journey/ongoing/vp/#, /hfp/v2/journey/ongoing/dep/#",
        "HSL_LIVE_PORT": "9000",
        "HSL_LIVE_FLUSH_SECONDS": "2.5",
        "HSL_LIVE_LOG_LEVEL": "debug",
        "HSL_LIVE_S3_ENDPOINT_URL": "",
    }

    loaded = load_settings(environ=environ)

    assert loaded.lake_url == "s3://bucket/prefix"
    assert loaded.is_s3
    assert loaded.topics == ("/hfp/v2/journey/ongoing/vp/#", "/hfp/v2/journey/ongoing/dep/#")
    assert (loaded.port, loaded.flush_seconds, loaded.log_level) == (9000, 2.5, "DEBUG")
    assert loaded.s3_endpoint_url is None


def test_load_settings_from_toml(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, 'lake_url = "/data/lake"\nflush_rows = 1000\ntopics = ["/hfp/v2/#"]\n'
    )

    loaded = load_settings(environ={}, config_file=path)

    assert (loaded.lake_url, loaded.flush_rows, loaded.topics) == (
        "/data/lake",
        1000,
        ("/hfp/v2/#",),
    )


def test_load_settings_precedence(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'host = "toml"\nlake_url = "toml"\nspool_dir = "toml"\n')
    environ = {"HSL_LIVE_LAKE_URL": "env", "HSL_LIVE_SPOOL_DIR": "env"}

    loaded = load_settings(environ=environ, config_file=path, overrides={"spool_dir": "flag"})

    assert (loaded.host, loaded.lake_url, loaded.spool_dir) == ("toml", "env", "flag")


def test_load_settings_override_none_means_unset() -> None:
    loaded = load_settings(environ={"HSL_LIVE_PORT": "9001"}, overrides={"port": None})

    assert loaded.port == 9001


# One bad value per parser; a field whose parser is not listed gets a list from TOML.
BAD_BY_PARSER: dict[str, tuple[str, Any]] = {
    "_mqtt_url": ("env", "http://mqtt.hsl.fi"),
    "_text": ("toml", 5),
    "_required_text": ("env", " "),
    "_optional_text": ("toml", 5),
    "_positive_int": ("env", "0"),
    "_positive_float": ("env", "soon"),
    "_port": ("env", "70000"),
    "_topics": ("env", "/hfp/#/vp"),
    "_lake_url": ("env", "ftp://host/lake"),
    "_http_url": ("env", "minio:9000"),
    "_writer_id": ("env", "host-1"),
    "_log_level": ("env", "LOUD"),
}
BAD_BY_KEY: dict[str, tuple[str, Any]] = {
    "mqtt_queue_size": ("env", "-5"),
    "flush_rows": ("env", "1.5"),
    "tick_seconds": ("env", "nan"),
    "stale_seconds": ("env", "inf"),
    "lake_url": ("env", "s3://"),
}


def bad_value(key: str) -> tuple[str, Any]:
    if key in BAD_BY_KEY:
        return BAD_BY_KEY[key]
    parser = settings_module._FIELDS[key].parse.__name__
    return BAD_BY_PARSER.get(parser, ("toml", []))


@pytest.mark.parametrize("key", sorted(settings_module._FIELDS))
def test_load_settings_bad_value_names_variable_value_and_expectation(
    key: str, tmp_path: Path
) -> None:
    source, value = bad_value(key)
    expected = settings_module._FIELDS[key].expected
    if source == "env":
        environ, config, where = {env_name(key): value}, None, env_name(key)
    else:
        config = tmp_path / "bad.toml"
        config.write_text(f"{key} = {value!r}\n".replace("'", '"'), encoding="utf-8")
        environ, where = {}, f"{key} in {config}"

    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ, config_file=config)

    message = str(caught.value)
    assert message.startswith(where)
    assert repr(value) in message
    assert expected in message


def test_load_settings_bad_override_names_the_flag() -> None:
    with pytest.raises(SettingsError, match=r"--port must be .*, got 'abc'"):
        load_settings(environ={}, overrides={"port": "abc"})


def test_load_settings_unknown_toml_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "lake_uri = 'x'\n")

    with pytest.raises(SettingsError, match="unknown setting 'lake_uri'"):
        load_settings(environ={}, config_file=path)


def test_load_settings_unknown_override_key() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(environ={}, overrides={"colour": "red"})


def test_load_settings_missing_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(SettingsError, match=f"cannot read config file {path}"):
        load_settings(environ={}, config_file=path)


def test_load_settings_toml_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(environ={}, config_file=tmp_path)


def test_load_settings_invalid_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "lake_url = \n")

    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(environ={}, config_file=path)


def test_load_settings_toml_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('host = "kärrynpyörä"\n'.encode("latin-1"))

    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(environ={}, config_file=path)


def test_load_settings_writer_id_cannot_take_the_compactors_name() -> None:
    with pytest.raises(SettingsError, match=r"HSL_LIVE_WRITER_ID must be .* got 'compact\.a1'"):
        load_settings(environ={"HSL_LIVE_WRITER_ID": "compact.a1"})


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")

    missing = [env_name(key) for key in settings_module._FIELDS if env_name(key) not in readme]

    assert missing == []

"""Tests for `hsl-live replay`'s summary and for start-up errors of the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hsl_live.capture import CaptureWriter, RawMessage
from hsl_live.cli import main
from hsl_live.errors import CaptureError

START = datetime(2024, 2, 13, 16, 33, tzinfo=UTC)
TOPIC = "/hfp/v2/journey/ongoing/{event}/bus/0018/0{veh}/5520/1/Martinlaakso/17:35/4150208/0////"


def message(event: str, veh: int, second: int, payload: bytes | None = None) -> RawMessage:
    tst = f"2024-02-13T16:33:{second:02d}.000Z"
    body = payload or b'{"%s":{"veh":%d,"tst":"%s"}}' % (event.upper().encode(), veh, tst.encode())
    return RawMessage(START + timedelta(seconds=second), TOPIC.format(event=event, veh=veh), body)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so the replay's lake and spool land there."""
    monkeypatch.chdir(tmp_path)
    for name in ("HSL_LIVE_LAKE_URL", "HSL_LIVE_SPOOL_DIR", "HSL_LIVE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HSL_LIVE_LOG_LEVEL", "WARNING")
    return tmp_path


@pytest.fixture
def capture(workdir: Path) -> Path:
    path = workdir / "sample.capture"
    messages = [
        message("vp", 1029, 0),
        message("vp", 1029, 0),  # exact copy
        message("vp", 1029, 1),
        message("dep", 1029, 1),
        message("vp", 1047, 2),
        message("vp", 1047, 3, b"{not json"),
        message("vp", 1047, 4, b'{"VP":{"veh":1047}}'),
    ]
    with CaptureWriter(path) as writer:
        for item in messages:
            writer.write(item)
    with path.open("ab") as file:
        file.write(b"\nthis line is broken\n")
    return path


def summary_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in text.splitlines():
        label, _, number = line.strip().rpartition(" ")
        if number.isdigit():
            counts[label.strip()] = int(number)
    return counts


def test_replay_prints_summary_counts(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["replay", str(capture)])

    counts = summary_counts(capsys.readouterr().out)
    assert status == 0
    assert counts["lines"] == 9
    assert (counts["blank"], counts["broken"]) == (1, 1)
    assert counts["messages"] == 7
    assert counts["duplicate messages"] == 1
    assert counts["rejected"] == 2
    assert counts["events"] == 4
    assert (counts["VP"], counts["DEP"]) == (3, 1)
    assert (counts["invalid_json"], counts["missing_tst"]) == (1, 1)
    assert counts["distinct vehicles"] == 2


def test_replay_bad_setting_exits_2_naming_it(
    capture: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HSL_LIVE_FLUSH_SECONDS", "soon")

    status = main(["replay", str(capture)])

    err = capsys.readouterr().err
    assert status == 2
    assert "HSL_LIVE_FLUSH_SECONDS" in err
    assert "'soon'" in err
    assert "positive number of seconds" in err


def test_replay_bad_config_file_exits_2(
    capture: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = workdir / "bad.toml"
    config.write_text("port = 'eighty'\n", encoding="utf-8")

    status = main(["replay", "--config", str(config), str(capture)])

    assert status == 2
    assert f"port in {config} must be" in capsys.readouterr().err


def test_replay_missing_file_exits_2_naming_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = workdir / "absent.capture"

    status = main(["replay", str(missing)])

    assert status == 2
    assert f"no such capture file: {missing}" in capsys.readouterr().err


def test_replay_negative_speed_exits_2(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["replay", "--speed", "-1", str(capture)])

    assert status == 2
    assert "--speed" in capsys.readouterr().err


def test_main_error_raised_inside_the_pipeline_is_one_message(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreadable(path: Path, stats: object = None) -> object:
        raise CaptureError(f"cannot open capture {path}: Permission denied")

    monkeypatch.setattr("hsl_live.replay.read_capture", unreadable)
    (workdir / "locked.capture").write_text("")

    status = main(["replay", "locked.capture"])

    assert status == 2
    assert capsys.readouterr().err.strip() == (
        "hsl-live: cannot open capture locked.capture: Permission denied"
    )

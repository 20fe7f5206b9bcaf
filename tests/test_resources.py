"""Tests for locating the map and the SQL in a checkout and in a regular install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hsl_live import resources

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_dir_in_checkout_is_the_repository_folder() -> None:
    assert resources.shipped_dir("frontend") == ROOT / "frontend"
    assert (resources.shipped_dir("queries") / "athena" / "tables.sql").is_file()


def test_shipped_dir_without_checkout_is_the_installed_share_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(resources, "_CHECKOUT", tmp_path)
    monkeypatch.setattr(resources, "_INSTALLED", tmp_path / "share" / "hsl-live")

    assert resources.shipped_dir("frontend") == tmp_path / "share" / "hsl-live" / "frontend"


@pytest.mark.integration
def test_wheel_ships_every_frontend_and_query_file(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        name.split("/data/share/hsl-live/", 1)[1] for name in names if "/share/hsl-live/" in name
    }

    expected = {
        str(path.relative_to(ROOT))
        for folder in ("frontend", "queries")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
    }
    assert expected <= shipped

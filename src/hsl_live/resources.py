"""Locate the files that ship beside the package: the map (`frontend/`) and the SQL (`queries/`)."""

from __future__ import annotations

import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]
_INSTALLED = Path(sys.prefix) / "share" / "hsl-live"


def shipped_dir(name: str) -> Path:
    """Return the folder `name` of a source checkout, else the one a wheel installed.

    A checkout (and an editable install) keeps `frontend/` and `queries/` at the repository
    root; a regular install puts them under `<prefix>/share/hsl-live/`.
    """
    checkout = _CHECKOUT / name
    return checkout if checkout.is_dir() else _INSTALLED / name

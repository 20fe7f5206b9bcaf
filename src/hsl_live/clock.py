"""The pipeline's clock: wall time when live, the capture's own time in a replay."""

from __future__ import annotations

import time
from datetime import datetime


class Clock:
    """Seconds since the epoch, as the pipeline sees them.

    Live, this is wall time. A replay follows the `received_at` of the messages it
    feeds, so a capture from 2023 ages its vehicles as they aged then instead of
    having them all stale on arrival.
    """

    def __init__(self, *, replay: bool = False) -> None:
        self.replay = replay
        self._capture_now = 0.0

    def now(self) -> float:
        """Return the current time in epoch seconds."""
        return self._capture_now if self.replay else time.time()

    def observe(self, received_at: datetime) -> None:
        """Advance a replay clock to a message's receive time; it never runs backwards."""
        moment = received_at.timestamp()
        if moment > self._capture_now:
            self._capture_now = moment

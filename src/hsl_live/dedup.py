"""Drop repeats of a key seen within a bounded time window."""

from __future__ import annotations

from collections.abc import Hashable


class Deduplicator:
    """Remember keys for at least `window` seconds and at most twice that, in bounded memory.

    HFP duplicates arrive close together (the broker delivers copies back to back,
    HSL's redundant gateways within seconds), so two rotating generations of key
    hashes are enough: a key is new unless the current or previous generation holds
    it. `max_keys` caps a generation so a burst cannot grow memory without limit.
    Keys are stored as 64-bit hashes; a false "duplicate" needs a hash collision
    among a few million keys (odds around 1 in 10^7 per generation).
    """

    def __init__(self, window: float, max_keys: int = 2_000_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self.duplicates = 0
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._rotated_at: float | None = None

    def is_new(self, key: Hashable, now: float) -> bool:
        """Return True the first time a key is seen in the window, then False.

        `now` is the pipeline's clock in seconds: wall time live, capture time in a replay.
        """
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= 2 * self.window:
            # Silent for two windows: everything remembered is too old to matter.
            self._previous, self._current = set(), set()
            self._rotated_at = now
        elif now - self._rotated_at >= self.window or len(self._current) >= self.max_keys:
            self._previous, self._current = self._current, set()
            self._rotated_at = now

        digest = hash(key)
        if digest in self._current or digest in self._previous:
            self.duplicates += 1
            return False
        self._current.add(digest)
        return True

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

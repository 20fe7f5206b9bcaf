"""Drop repeats of a key seen within a bounded time window, in compact memory."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

# Keys first go to a Python set; this many at once are frozen into a sorted array.
FREEZE_KEYS = 1 << 16

_Keys = npt.NDArray[np.int64]
_NO_KEYS: _Keys = np.empty(0, np.int64)


class Deduplicator:
    """Remember keys for at least `window` seconds and at most twice that, in bounded memory.

    HFP duplicates arrive close together (the broker delivers copies back to back,
    HSL's redundant gateways within seconds, vehicles replay what they buffered), so
    two rotating generations of key hashes are enough: a key is new unless the
    current or previous generation holds it. `max_keys` caps a generation so a burst
    cannot grow memory without limit. Keys are stored as 64-bit hashes; a false
    "duplicate" needs a hash collision among a few million keys (odds around 1 in
    10^7 per generation).

    At the full feed a generation holds millions of keys: as a Python set that is
    about 80 bytes each, so only the latest FREEZE_KEYS live in a set, and the rest
    of a generation is one sorted int64 array (8 bytes a key), searched a whole batch
    at a time.
    """

    def __init__(self, window: float, max_keys: int = 2_000_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self.duplicates = 0
        self._recent: set[int] = set()
        self._current = _NO_KEYS
        self._previous = _NO_KEYS
        self._rotated_at: float | None = None

    def is_new(self, key: Hashable, now: float) -> bool:
        """Return True the first time a key is seen in the window, then False."""
        return self.fresh([key], now)[0]

    def fresh(self, keys: Sequence[Hashable], now: float) -> list[bool]:
        """Return, for each key in order, whether it is new; a repeat within `keys` is not.

        `now` is the pipeline's clock in seconds: wall time live, capture time in a replay.
        """
        self._rotate(now)
        digests = [hash(key) for key in keys]
        frozen = self._frozen(digests)
        recent = self._recent
        result: list[bool] = []
        for digest, old in zip(digests, frozen, strict=True):
            if old or digest in recent:
                self.duplicates += 1
                result.append(False)
            else:
                recent.add(digest)
                result.append(True)
        if len(recent) >= FREEZE_KEYS or self._full():
            self._freeze()
            if len(self._current) >= self.max_keys:
                self._previous, self._current = self._current, _NO_KEYS
                self._rotated_at = now
        return result

    def __len__(self) -> int:
        return len(self._recent) + len(self._current) + len(self._previous)

    def _rotate(self, now: float) -> None:
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= 2 * self.window:
            # Silent for two windows: everything remembered is too old to matter.
            self._recent, self._current, self._previous = set(), _NO_KEYS, _NO_KEYS
            self._rotated_at = now
        elif now - self._rotated_at >= self.window:
            self._freeze()
            self._previous, self._current = self._current, _NO_KEYS
            self._rotated_at = now

    def _full(self) -> bool:
        return len(self._recent) + len(self._current) >= self.max_keys

    def _frozen(self, digests: list[int]) -> list[bool]:
        """Return whether each digest is in the current or previous generation's array."""
        if not len(self._current) and not len(self._previous):
            return [False] * len(digests)
        values = np.array(digests, dtype=np.int64)
        found = _member(self._current, values) | _member(self._previous, values)
        return found.tolist()  # type: ignore[no-any-return]

    def _freeze(self) -> None:
        if not self._recent:
            return
        new = np.fromiter(self._recent, np.int64, len(self._recent))
        new.sort()
        current = self._current
        self._current = np.insert(current, current.searchsorted(new), new) if len(current) else new
        self._recent = set()


def _member(sorted_keys: _Keys, values: _Keys) -> npt.NDArray[np.bool_]:
    if not len(sorted_keys):
        return np.zeros(len(values), np.bool_)
    at = sorted_keys.searchsorted(values)
    at[at == len(sorted_keys)] = 0
    found: npt.NDArray[np.bool_] = sorted_keys[at] == values
    return found

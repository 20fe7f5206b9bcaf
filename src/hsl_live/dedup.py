"""Drop repeats of a key seen within a bounded time window, in compact memory."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

# Keys first go to a small sorted array; this many at once are merged into the generation's.
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

    A generation is sorted int64 arrays (8 bytes a key; a Python set takes about 80),
    and a batch of keys is looked up and added with a few array operations instead of
    a Python loop: the latest keys go to a small array that is merged into the
    generation's large one every FREEZE_KEYS keys, so adding a batch stays cheap.
    """

    def __init__(self, window: float, max_keys: int = 2_000_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self.duplicates = 0
        self._recent = _NO_KEYS
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
        digests = np.fromiter(map(hash, keys), np.int64, len(keys))
        # The first of equal digests in the batch is the one that may be new.
        unique, first = np.unique(digests, return_index=True)
        known = _member(self._recent, unique)
        known |= _member(self._current, unique)
        known |= _member(self._previous, unique)
        added = unique[~known]
        result = np.zeros(len(digests), np.bool_)
        result[first[~known]] = True
        self.duplicates += len(digests) - len(added)

        self._recent = _merge(self._recent, added)
        if len(self._recent) >= FREEZE_KEYS or self._full():
            self._freeze()
            if len(self._current) >= self.max_keys:
                self._previous, self._current = self._current, _NO_KEYS
                self._rotated_at = now
        return result.tolist()

    def __len__(self) -> int:
        return len(self._recent) + len(self._current) + len(self._previous)

    def _rotate(self, now: float) -> None:
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= 2 * self.window:
            # Silent for two windows: everything remembered is too old to matter.
            self._recent, self._current, self._previous = _NO_KEYS, _NO_KEYS, _NO_KEYS
            self._rotated_at = now
        elif now - self._rotated_at >= self.window:
            self._freeze()
            self._previous, self._current = self._current, _NO_KEYS
            self._rotated_at = now

    def _full(self) -> bool:
        return len(self._recent) + len(self._current) >= self.max_keys

    def _freeze(self) -> None:
        self._current = _merge(self._current, self._recent)
        self._recent = _NO_KEYS


def _merge(sorted_keys: _Keys, new: _Keys) -> _Keys:
    """Return two sorted arrays of distinct keys, none in both, as one sorted array."""
    if not len(sorted_keys):
        return new
    if not len(new):
        return sorted_keys
    return np.insert(sorted_keys, sorted_keys.searchsorted(new), new)


def _member(sorted_keys: _Keys, values: _Keys) -> npt.NDArray[np.bool_]:
    if not len(sorted_keys):
        return np.zeros(len(values), np.bool_)
    at = sorted_keys.searchsorted(values)
    at[at == len(sorted_keys)] = 0
    found: npt.NDArray[np.bool_] = sorted_keys[at] == values
    return found

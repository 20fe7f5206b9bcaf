"""Tests for the time-windowed deduplicator."""

from __future__ import annotations

import random

from hsl_live.dedup import FREEZE_KEYS, Deduplicator


def test_is_new_first_time_true() -> None:
    assert Deduplicator(window=10).is_new("a", now=0.0)


def test_is_new_repeat_within_window_is_duplicate() -> None:
    dedup = Deduplicator(window=10)
    dedup.is_new("a", now=0.0)

    assert not dedup.is_new("a", now=9.9)


def test_is_new_repeat_just_after_one_window_still_duplicate() -> None:
    dedup = Deduplicator(window=10)
    dedup.is_new("a", now=0.0)
    dedup.is_new("b", now=10.0)

    assert not dedup.is_new("a", now=15.0)


def test_is_new_after_two_windows_new_again() -> None:
    dedup = Deduplicator(window=10)
    dedup.is_new("a", now=0.0)
    dedup.is_new("b", now=10.0)

    assert dedup.is_new("a", now=20.0)


def test_is_new_after_long_silence_new_again() -> None:
    dedup = Deduplicator(window=10)
    dedup.is_new("a", now=0.0)

    assert dedup.is_new("a", now=1000.0)


def test_is_new_distinct_keys_all_new() -> None:
    dedup = Deduplicator(window=10)

    assert all(dedup.is_new(("18/1029", "VP", n), now=0.0) for n in range(100))


def test_is_new_counts_duplicates() -> None:
    dedup = Deduplicator(window=10)
    for _ in range(4):
        dedup.is_new("a", now=1.0)
    dedup.is_new("b", now=1.0)

    assert dedup.duplicates == 3


def test_max_keys_bounds_memory() -> None:
    dedup = Deduplicator(window=1000, max_keys=100)

    for n in range(10_000):
        dedup.is_new(n, now=0.0)

    assert len(dedup) <= 200


def test_max_keys_still_catches_recent_repeats() -> None:
    dedup = Deduplicator(window=1000, max_keys=100)
    for n in range(150):
        dedup.is_new(n, now=0.0)

    assert not dedup.is_new(149, now=0.0)
    assert not dedup.is_new(60, now=0.0)


def test_len_counts_both_generations() -> None:
    dedup = Deduplicator(window=10)
    dedup.is_new("a", now=0.0)
    dedup.is_new("b", now=10.0)

    assert len(dedup) == 2


def test_fresh_marks_repeats_within_one_batch() -> None:
    dedup = Deduplicator(window=10)

    assert dedup.fresh(["a", "b", "a", "c", "b"], now=0.0) == [True, True, False, True, False]
    assert dedup.duplicates == 2


def test_frozen_keys_are_still_duplicates_across_both_generations() -> None:
    dedup = Deduplicator(window=10)
    many = [("18/1029", n) for n in range(FREEZE_KEYS + 10)]  # more than the set holds
    assert all(dedup.fresh(many, now=0.0))
    dedup.fresh(["later"], now=10.0)  # rotates: everything above is the previous generation

    assert dedup.fresh([many[0], many[-1], ("18/1029", -1)], now=15.0) == [False, False, True]
    assert len(dedup) == len(many) + 2


def test_fresh_matches_a_set_over_random_batches() -> None:
    rng = random.Random(7)
    dedup, seen = Deduplicator(window=1000), set()
    for _ in range(200):
        batch = [rng.randrange(3000) for _ in range(rng.randrange(0, 60))]
        expected = []
        for key in batch:
            expected.append(key not in seen)
            seen.add(key)

        assert dedup.fresh(batch, now=0.0) == expected
    assert len(dedup) == len(seen)

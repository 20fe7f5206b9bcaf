"""Tests of the stream filters: parsing query parameters and matching vehicles."""

from __future__ import annotations

import pytest

from hsl_live.filters import Filter, FilterError, parse_filter
from test_store import make_event, make_store


def test_parse_filter_reads_every_parameter() -> None:
    parsed = parse_filter([("mode", "bus,tram"), ("route", "2550, 1069"), ("bbox", "24,60,25,61")])

    assert parsed == Filter(
        modes=frozenset({"bus", "tram"}),
        routes=frozenset({"2550", "1069"}),
        bbox=(24.0, 60.0, 25.0, 61.0),
    )


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("mode", "bus,car")], "mode"),
        ([("route", "")], "route"),
        ([("bbox", "a,b,c,d")], "bbox"),
        ([("bbox", "24,60,25,nan")], "bbox"),
        ([("bbox", "24,95,25,96")], "bbox"),
        ([("limit", "10")], "limit"),
    ],
)
def test_parse_filter_names_the_bad_parameter(
    params: list[tuple[str, str]], parameter: str
) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(params)

    assert caught.value.parameter == parameter
    assert parameter in str(caught.value)


def test_filter_route_matches_route_id_or_desi() -> None:
    store = make_store()
    store.apply(make_event())
    [state] = store.states()

    assert Filter(routes=frozenset({"2550"})).matches(state)
    assert Filter(routes=frozenset({"550"})).matches(state)
    assert not Filter(routes=frozenset({"1069"})).matches(state)

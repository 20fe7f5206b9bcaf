"""Prometheus exposition: components keep plain counters, read only at scrape time.

Counting with plain integers on the hot path and converting at scrape time keeps the
per-message cost at one addition instead of a locked metric update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Callback(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class Metrics:
    """One registry per pipeline, so tests can run several pipelines side by side."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)

    def register(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Add a callable that yields metric families whenever /metrics is scraped."""
        self.registry.register(_Callback(collect))

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every registered metric."""
        return generate_latest(self.registry)


def counter(name: str, help_text: str, value: float) -> Metric:
    """Return a counter family with one unlabelled sample."""
    family = CounterMetricFamily(name, help_text)
    family.add_metric([], value)
    return family


def gauge(name: str, help_text: str, value: float) -> Metric:
    """Return a gauge family with one unlabelled sample."""
    family = GaugeMetricFamily(name, help_text)
    family.add_metric([], value)
    return family


def labelled_counter(
    name: str, help_text: str, label: str, values: Iterable[tuple[str, float]]
) -> Metric:
    """Return a counter family with one sample per (label value, count)."""
    family = CounterMetricFamily(name, help_text, labels=[label])
    for label_value, count in values:
        family.add_metric([label_value], count)
    return family

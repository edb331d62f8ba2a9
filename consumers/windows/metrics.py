"""What a windowed-aggregation processor reports: open windows, late events, restore time.

The processor keeps plain counters (:class:`WindowMetrics`), free on the hot path;
:class:`WindowMetricsCollector` exposes them to Prometheus at scrape time under the
project's names (prefix ``agent_events_``, base units, ``_total`` on counters)::

    agent_events_window_open_windows{consumergroup}            gauge
    agent_events_window_state_entries{consumergroup}           gauge
    agent_events_window_events_total{consumergroup}            counter
    agent_events_window_late_events_total{consumergroup}       counter
    agent_events_window_windows_emitted_total{consumergroup}   counter
    agent_events_window_alerts_total{consumergroup}            counter
    agent_events_window_restore_seconds_total{consumergroup}   counter
    agent_events_window_last_restore_seconds{consumergroup}    gauge
    agent_events_window_restored_records_total{consumergroup}  counter
    agent_events_window_redrives_skipped_total{consumergroup}  counter
    agent_events_window_commits_total{consumergroup}           counter
    agent_events_window_commit_failures_total{consumergroup}   counter
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["WindowMetrics", "WindowMetricsCollector"]


@dataclass(slots=True)
class WindowMetrics:
    """Counters of one processor since start, plus the current state size."""

    events: int = 0
    late_events: int = 0
    dead_lettered: int = 0
    redrives_skipped: int = 0
    """Records re-driven for another consumer group, skipped (that group's work)."""
    windows_emitted: int = 0
    updates_emitted: int = 0
    alerts: int = 0
    commits: int = 0
    commit_failures: int = 0
    restores: int = 0
    restore_seconds_total: float = 0.0
    last_restore_seconds: float = 0.0
    restored_records: int = 0
    open_windows: int = 0
    state_entries: int = 0


class WindowMetricsCollector(Collector):
    """A Prometheus collector reading a processor's :class:`WindowMetrics` at scrape time.

    ``registry.register(WindowMetricsCollector(group, processor.metrics_snapshot))``.
    """

    def __init__(self, consumer_group: str, snapshot: Callable[[], WindowMetrics]) -> None:
        self._group = consumer_group
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self._snapshot()
        labels = ["consumergroup"]
        values = [self._group]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"agent_events_window_{name}", doc, labels=labels)
            family.add_metric(values, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"agent_events_window_{name}", doc, labels=labels)
            family.add_metric(values, value)
            return family

        yield gauge(
            "open_windows", "Windows not yet closed, over assigned partitions.", m.open_windows
        )
        yield gauge("state_entries", "Entries held in window state.", m.state_entries)
        yield counter("events", "Events added to windows or found late.", m.events)
        yield counter("late_events", "Events too late for every window.", m.late_events)
        yield counter(
            "redrives_skipped", "Records re-driven for another group, skipped.", m.redrives_skipped
        )
        yield counter("windows_emitted", "Closed windows emitted.", m.windows_emitted)
        yield counter("alerts", "Threshold alerts fired.", m.alerts)
        yield counter(
            "restore_seconds",
            "Time spent restoring state from changelogs.",
            m.restore_seconds_total,
        )
        yield gauge("last_restore_seconds", "Duration of the last restore.", m.last_restore_seconds)
        yield counter(
            "restored_records", "Changelog records read while restoring.", m.restored_records
        )
        yield counter("commits", "Successful commits (transactions).", m.commits)
        yield counter("commit_failures", "Failed commits (state restored).", m.commit_failures)

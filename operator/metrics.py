"""The operator's Prometheus metrics: reconcile passes, their duration and failures per kind, and the work
queue's depth. Served by prometheus-client on `--metrics-port` (a ServiceMonitor can scrape it: the chart)."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

PASSES = Counter(
    "taskplatform_operator_reconcile_passes",
    "Reconcile passes, by resource kind and outcome (success or error).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
PASS_SECONDS = Histogram(
    "taskplatform_operator_reconcile_duration_seconds",
    "How long one reconcile pass took, by resource kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)


class Queue(Protocol):
    @property
    def pending(self) -> int: ...


class QueueDepth(Collector):
    """Passes scheduled and not yet run, per kind, read at scrape time from the work queues."""

    def __init__(self) -> None:
        self._sources: dict[str, Queue] = {}

    def watch(self, kind: str, queue: Queue) -> None:
        self._sources[kind] = queue

    def collect(self) -> list[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "taskplatform_operator_queue_depth", "Reconcile passes waiting in the work queue.", labels=["kind"]
        )
        for kind, queue in self._sources.items():
            gauge.add_metric([kind], queue.pending)
        return [gauge]


QUEUE_DEPTH = QueueDepth()
REGISTRY.register(QUEUE_DEPTH)


def serve(port: int, address: str) -> None:
    start_http_server(port, addr=address, registry=REGISTRY)

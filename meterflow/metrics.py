"""Counters a monitoring system can scrape (Prometheus text format), one registry per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labelnames=labels, registry=REGISTRY)


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, doc, labelnames=labels, registry=REGISTRY)


def histogram(name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None) -> Histogram:
    if buckets is None:
        return Histogram(name, doc, labelnames=labels, registry=REGISTRY)
    return Histogram(name, doc, labelnames=labels, registry=REGISTRY, buckets=buckets)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on addr:port (port 0 disables it)."""
    if port:
        start_http_server(port, addr=addr, registry=REGISTRY)

"""Counters a monitoring system can scrape (Prometheus text format), one registry per process, and a
/health endpoint beside /metrics for process supervisors (systemd, Kubernetes probes)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

REGISTRY = CollectorRegistry(auto_describe=True)
#: returns None while healthy, else why not
HealthCheck = Callable[[], str | None]


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labelnames=labels, registry=REGISTRY)


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, doc, labelnames=labels, registry=REGISTRY)


def histogram(name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None) -> Histogram:
    if buckets is None:
        return Histogram(name, doc, labelnames=labels, registry=REGISTRY)
    return Histogram(name, doc, labelnames=labels, registry=REGISTRY, buckets=buckets)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_metrics(port: int, addr: str = "127.0.0.1", health: HealthCheck | None = None) -> None:
    """Expose /metrics (and /health: 200 "ok", or 503 with the reason) on addr:port; port 0 disables it."""
    if not port:
        return
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            problem = health() if health is not None else None
            start_response("503 Service Unavailable" if problem else "200 OK", [("Content-Type", "text/plain")])
            return [(f"down: {problem}\n" if problem else "ok\n").encode()]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(addr, port, app, WSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()

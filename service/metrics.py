"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before prometheus_client is
imported: every worker then writes its samples to mmap files in that folder and /metrics
(in any worker) aggregates all of them with a MultiProcessCollector: counters and
histograms are summed over workers (dead workers' counts included, so totals never go
back), the model gauges (info, shows, problem) are per live worker (`pid` label). Without a multiprocess folder
(tests, `flask run`) the metrics live in a per-app registry.
"""
from __future__ import annotations

from pathlib import Path

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, values)
from prometheus_client.multiprocess import MultiProcessCollector

from .serving import Serving

# the `method` label: a client can send any token as a method, and each would be a new series
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiproc_dir: Path | None = None):
        if multiproc_dir is not None and values.ValueClass is values.MutexValue:
            raise RuntimeError("metrics_dir is set but prometheus_client was imported without "
                               "PROMETHEUS_MULTIPROC_DIR: set it before the app is imported")
        self.multiproc_dir = multiproc_dir
        r = self.registry = CollectorRegistry()
        self.requests = Counter("epgembed_http_requests", "HTTP requests by endpoint (the route's /openapi.json path, or "
                                "unmatched), method (RFC 9110's, else other) and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("epgembed_http_request_duration_seconds",
                                 "Request latency inside the app by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.model_info = Gauge("epgembed_model_info", "1 for the model version a worker serves",
                                ["version"], multiprocess_mode="liveall", registry=r)
        self.model_shows = Gauge("epgembed_model_shows", "Shows in the served model",
                                 multiprocess_mode="liveall", registry=r)
        self.model_loaded = Gauge("epgembed_model_loaded_timestamp_seconds",
                                  "When the served model was loaded (unix time)",
                                  multiprocess_mode="liveall", registry=r)
        self.reloads = Counter("epgembed_model_reloads", "Model loads by result (ok | refused), per worker",
                               ["result"], registry=r)
        self.problem = Gauge("epgembed_model_problem",
                             "1 while a worker has the problem: served_folder_missing (its version's folder "
                             "was deleted), version_disagreement (it serves another version than the "
                             "workers' shared decision), current_refused (the version `current` names "
                             "did not load; the decision serves another), served_files_changed (a file of the served "
                             "version changed on disk since it was loaded: service/integrity.py)",
                             ["problem"], multiprocess_mode="liveall", registry=r)
        self.load_seconds = Histogram("epgembed_model_load_duration_seconds",
                                      "Load + validation + search index time of accepted models",
                                      buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=r)

    # ReloadListener
    def loaded(self, serving: Serving, previous: Serving | None) -> None:
        if previous is not None and previous.version != serving.version:
            self.model_info.labels(previous.version).set(0)
        self.model_info.labels(serving.version).set(1)
        self.model_shows.set(len(serving.model))
        self.model_loaded.set(serving.loaded_at)
        self.reloads.labels("ok").inc()
        self.load_seconds.observe(serving.load_seconds)

    def refused(self, name: str, reason: str) -> None:
        self.reloads.labels("refused").inc()

    def problems(self, flags: dict[str, bool]) -> None:
        for name, on in flags.items():
            self.problem.labels(name).set(1 if on else 0)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method if method in METHODS else "other", str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def exposition(self) -> bytes:
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiproc_dir))
        return generate_latest(registry)

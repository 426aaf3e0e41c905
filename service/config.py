"""Service configuration: frozen dataclasses, built by the entry layer (service/settings.py:
the environment of wsgi.py and gunicorn.conf.py, `epgembed serve`'s options) and passed to
`create_app`. Nothing here reads the environment."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from epgembed.query.limits import RequestLimits


@dataclass(frozen=True)
class Limits(RequestLimits):
    """Request limits: the bounds of the request types' fields (RequestLimits) and the web's
    own; all are published in /openapi.json."""
    max_body_bytes: int = 256 * 1024  # request body (413 above): 64 programmes with descriptions
                                      # of 2,000 characters and 10 credits take about 170 kB
    max_query_bytes: int = 8190       # the raw query string (414 above; gunicorn's request line cap)
    request_seconds: float = 10.0     # time budget of one request (504 when a batch runs past it)


@dataclass(frozen=True)
class ServiceConfig:
    models: Path                      # a models root (versions/ + current) or one model directory
    poll_seconds: float = 5.0         # how often a worker checks `current` (root only; 0 = never)
    verify_hashes: bool = True        # sha256 of every file before a model is served
    metrics_dir: Path | None = None   # prometheus_client multiprocess dir (gunicorn); None: in-process
    run_dir: Path | None = None       # the workers' shared version decision (gunicorn); None: in memory
    limits: Limits = field(default_factory=Limits)
    compute_slots: int = 1            # requests of a worker computing answers at once; the others
                                      # wait (within their time budget). The work is Python holding
                                      # the GIL: more slots add no speed, and a worker's 4 threads
                                      # all computing kept its /healthz thread waiting for the GIL
                                      # (16 clients x the largest legal request, through nginx, one
                                      # run: probe p99 222 ms with 4 slots, 59.9 ms with 1; issue 26.9)

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", Path(self.models))
        if self.metrics_dir is not None:
            object.__setattr__(self, "metrics_dir", Path(self.metrics_dir))
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))
        if self.poll_seconds < 0:
            raise ValueError("poll_seconds must be >= 0")
        if self.compute_slots < 1:
            raise ValueError("compute_slots must be >= 1")

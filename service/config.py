"""Service configuration: frozen dataclasses, built by the entry layer (wsgi.py, gunicorn.conf.py,
`epgembed serve`) and passed to `create_app`. Nothing here reads the environment."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from epgembed.text.normalize import MAX_TITLE_CHARS


@dataclass(frozen=True)
class Limits:
    """Request limits; they are also published in /openapi.json."""
    max_k: int = 100                  # answers per query
    default_k: int = 10
    # The work of one request (issue 26.9), counted in answer rows (the entries of an answer:
    # one per series once answers are grouped), enforced by schema.check_work. Measured by
    # bench/work_bounds.py (bench/results/work_bounds.json; shared-data model, one thread, a
    # loaded machine): an unseen title costs 0.9 ms at k + offset = 10, 3.4 ms at 200, 11.6 ms
    # at 1,100; a batch of 64 of them 43 ms at 10 rows each, 71 ms at 15, 127 ms at 100, and
    # 770 ms for 683 kB at 1,100 (the request).
    max_answer_rows: int = 200        # k + offset of one query: ~3x the cost of a query at the default k
    max_batch_rows: int = 1000        # titles x (k + offset) of one batch: the largest (64 x 15) costs
                                      # within 2x of a full batch at the default k (64 x 10), 112 kB
    max_title_chars: int = MAX_TITLE_CHARS   # longer text is cut by normalization anyway
    max_category_chars: int = 100
    max_batch: int = 64               # titles per POST /v1/related
    max_body_bytes: int = 256 * 1024  # request body (413 above): 64 programmes with descriptions
                                      # of 2,000 characters and 10 credits take about 170 kB
    max_search_limit: int = 50        # GET /v1/titles?limit=
    default_search_limit: int = 20
    max_query_chars: int = 200        # GET /v1/titles?q=
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", Path(self.models))
        if self.metrics_dir is not None:
            object.__setattr__(self, "metrics_dir", Path(self.metrics_dir))
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))
        if self.poll_seconds < 0:
            raise ValueError("poll_seconds must be >= 0")

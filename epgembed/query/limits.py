"""The bounds a server puts on requests, by name: the request types (query/requests.py) name
them in their fields' schemas ("x-limit": {"maximum": "max_k"}), a server applies them
(contract.fields(cls, limits)) and publishes them in /openapi.json. No msgspec here: the
service's settings read them without loading the request types."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from epgembed.query.errors import QueryError
from epgembed.text.normalize import MAX_TITLE_CHARS

if TYPE_CHECKING:
    from epgembed.query.requests import Options


@dataclass(frozen=True)
class RequestLimits:
    """The bounds a server puts on requests (service/config.py's Limits adds its own), named
    in the fields they bound ("x-limit") and published in /openapi.json. The library itself
    has none of them: in process, k=1000 is a fine question."""
    max_k: int = 100                  # answers per query
    # The work of one request (issue 26.9), counted in answer rows (the entries of an answer:
    # one per series once answers are grouped), enforced by check_work. Measured by
    # bench/work_bounds.py (bench/results/work_bounds.json; shared-data model, one thread, a
    # loaded machine): an unseen title costs 0.9 ms at k + offset = 10, 3.4 ms at 200, 11.6 ms
    # at 1,100; a batch of 64 of them 43 ms at 10 rows each, 71 ms at 15, 127 ms at 100, and
    # 770 ms for 683 kB at 1,100 (the request).
    max_answer_rows: int = 200        # k + offset of one query: ~3x the cost of a query at the default k
    max_batch_rows: int = 1000        # titles x (k + offset) of one batch: the largest (64 x 15) costs
                                      # within 2x of a full batch at the default k (64 x 10), 112 kB
    max_title_chars: int = MAX_TITLE_CHARS   # longer text is cut by normalization anyway
    max_category_chars: int = 100
    max_batch: int = 64               # titles or programmes per POST /v1/related
    max_search_limit: int = 50        # GET /v1/titles?limit=
    max_query_chars: int = 200        # GET /v1/titles?q=

    @property
    def max_offset(self) -> int:
        return self.max_answer_rows - 1           # k is at least 1

    @property
    def max_series_chars(self) -> int:
        return 3 * self.max_title_chars           # a series key: case folding can triple a title

    def check_work(self, options: "Options", queries: int = 1) -> None:
        """The work of one request, in answer rows (k + offset per query): at most
        max_answer_rows per query and max_batch_rows in all; QueryError past either."""
        rows = options.k + options.offset
        if rows > self.max_answer_rows:
            raise QueryError(f"k + offset is {rows} answer rows: at most {self.max_answer_rows}")
        if queries * rows > self.max_batch_rows:
            raise QueryError(f"{queries} titles x (k + offset = {rows}) is {queries * rows} answer rows: "
                             f"at most {self.max_batch_rows} per request")

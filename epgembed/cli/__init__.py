"""Command line: one library call per subcommand (`epgembed --help`)."""
from __future__ import annotations

import os
import sys

EXIT_ERROR = 2  # bad input or a failed step: nothing was changed
QUERY_COMMANDS = ("related", "info", "inspect")   # a second's work: imports and one model load




def one_blas_thread() -> None:
    """One OpenBLAS thread for a query command, unless the user chose a number: its few
    small products gain nothing from a thread pool, and starting the pool and its threads
    spinning cost `related` 0.3 of its 0.85 s on a busy 2-core machine. Only before numpy
    loads (a process that has it already, e.g. a test calling main(), is left alone)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

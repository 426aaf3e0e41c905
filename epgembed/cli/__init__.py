"""Command line: one library call per subcommand (`epgembed --help`)."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

EXIT_ERROR = 2  # bad input or a failed step: nothing was changed
QUERY_COMMANDS = ("related", "info", "inspect")   # a second's work: imports and one model load


class LazyParser(argparse.ArgumentParser):
    """A subcommand's parser whose options are added when it is used (parsed, or its help
    shown): options derived from the request types (cli/options.py) or the service's
    settings cost imports that `epgembed --help` and the other subcommands do without."""
    _fill: Callable[[argparse.ArgumentParser], None] | None = None

    def defer(self, fill: Callable[[argparse.ArgumentParser], None]) -> None:
        self._fill = fill

    def _filled(self) -> None:
        fill, self._fill = self._fill, None
        if fill is not None:
            fill(self)

    def parse_known_args(self, args=None, namespace=None):
        self._filled()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._filled()
        return super().format_help()


def one_blas_thread() -> None:
    """One OpenBLAS thread for a query command, unless the user chose a number: its few
    small products gain nothing from a thread pool, and starting the pool and its threads
    spinning cost `related` 0.3 of its 0.85 s on a busy 2-core machine. Only before numpy
    loads (a process that has it already, e.g. a test calling main(), is left alone)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

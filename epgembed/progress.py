"""Progress of the command line's long steps (issue 17), one object passed down explicitly.

    progress = Progress.for_stream(sys.stderr, quiet=args.quiet)    # the CLI's edge, only there
    with progress.stage("ingest") as st:
        for item in st.bar(items, total=len(items), unit="file"):  # a tqdm bar on a terminal
            ...
        st.status("3 files, 41,200 programmes")     # the live line on a terminal
        st.note("7 files, 71,234 programmes")       # what the closing line says
    # -> "ingest: 7 files, 71,234 programmes in 6.1 s"

On a terminal every open stage shows a live line (its status and elapsed seconds, redrawn
a few times a second) or a tqdm bar, and ends with its one closing line. In a log (the
stream is no terminal) a stage writes that closing line only, no carriage returns. With
`quiet` (and `Progress()`, what library code gets by default) nothing is written. Only
`for_stream` looks at the terminal; code below the CLI takes the object it is given.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

CLEAR = "\r\x1b[K"   # back to the start of the line, erase it


def stage_line(name: str, detail: str, seconds: float) -> str:
    """The closing line of a stage: "ingest: 7 files, ... in 6.1 s" ("name: 6.1 s" bare)."""
    return f"{name}: {detail} in {seconds:.1f} s" if detail else f"{name}: {seconds:.1f} s"


class Progress:
    """Where stage lines go: `stream` (None: nowhere), `live` when it is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, live: bool = False, columns: int = 80,
                 tick_s: float = 0.25):
        self.stream = stream
        self.live = live and stream is not None
        self.columns, self.tick_s = max(columns, 20), tick_s
        self._lock = threading.Lock()

    @classmethod
    def for_stream(cls, stream: TextIO, *, quiet: bool = False) -> "Progress":
        """Live on a terminal, one line per stage otherwise, nothing when `quiet`."""
        if quiet:
            return cls()
        try:
            live = stream.isatty()
        except (AttributeError, ValueError):   # no isatty, or a closed stream
            live = False
        return cls(stream, live=live, columns=shutil.get_terminal_size().columns if live else 80)

    @property
    def enabled(self) -> bool:
        return self.stream is not None

    @contextmanager
    def stage(self, name: str) -> Iterator["Stage"]:
        """A step that may take a while; its closing line is written when the block ends
        ("NAME: failed after N s" when it raises)."""
        st = Stage(self, name)
        st.start()
        try:
            yield st
        except BaseException as e:
            st.finish("interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
            raise
        st.finish()

    def line(self, text: str) -> None:
        """One finished line (e.g. a stage measured elsewhere: stage_line(...))."""
        if self.stream is None:
            return
        with self._lock:
            self.stream.write((CLEAR if self.live else "") + text + "\n")
            self.stream.flush()

    def draw(self, text: str) -> None:
        """The live line (terminal only), cut to the terminal's width."""
        if not self.live:
            return
        with self._lock:
            self.stream.write(CLEAR + text[: self.columns - 1])
            self.stream.flush()


class Stage:
    """One open stage: `status` (live line), `note` (closing line), `bar` (tqdm)."""

    def __init__(self, progress: Progress, name: str):
        self.progress, self.name = progress, name
        self.detail = ""
        self._status = ""
        self._bar = None
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._t0

    def note(self, detail: str) -> None:
        """What the closing line says before "in N s"."""
        self.detail = detail

    def status(self, text: str) -> None:
        """What the live line shows (a terminal only; cheap to call often)."""
        self._status = text

    def bar(self, iterable: Iterable, *, total: int | None = None, unit: str = "it"):
        """`iterable` with a tqdm bar on a terminal (cleared when the stage ends), as is
        otherwise; either way the result has set_postfix(**figures)."""
        if not self.progress.live:
            return _Plain(iterable)
        from tqdm import tqdm
        self._bar = tqdm(iterable, total=total, unit=unit, desc=self.name, file=self.progress.stream,
                         dynamic_ncols=True, leave=False)
        return self._bar

    def start(self) -> None:
        if self.progress.live:
            self._draw()
            self._ticker = threading.Thread(target=self._tick, name=f"progress {self.name}", daemon=True)
            self._ticker.start()

    def finish(self, failed: str | None = None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.close()
        if failed:
            self.progress.line(f"{self.name}: {failed} after {self.seconds:.1f} s")
        else:
            self.progress.line(stage_line(self.name, self.detail, self.seconds))

    def _tick(self) -> None:
        while not self._stop.wait(self.progress.tick_s):
            self._draw()

    def _draw(self) -> None:
        if self._bar is not None and not self._bar.disable:
            return                                  # an open bar has the line
        status = f"{self._status} " if self._status else ""
        self.progress.draw(f"{self.name}: {status}{self.seconds:.0f} s")


class _Plain:
    """An iterable with the bar's interface and no output."""

    def __init__(self, iterable: Iterable):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable)

    def set_postfix(self, **figures) -> None:
        pass

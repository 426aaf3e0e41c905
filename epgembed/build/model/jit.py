"""The numba decorator of the training kernels (kernels.py, rowgrad.py), in one place.

numba's disk cache is invalidated by the file of a kernel only: a kernel that calls a
kernel of another file keeps running its cached copy of the old callee when only that
file changes. So kernels that call each other live in one file (kernels.py: the forward and
backward passes; rowgrad.py: the row gradients and the Adagrad step), and only Python code
calls across files.
"""
from __future__ import annotations

import logging

import numba as nb

_JIT = dict(nogil=True, fastmath=True, cache=True)
log = logging.getLogger("epgembed.build.model.jit")
_NO_CACHE: list[str] = []   # kernels compiled without a disk cache (then warned about once)


def jit(fn=None, **extra):
    """nb.njit with _JIT's options and `extra`'s (@jit, @jit(inline="always")): compiled
    on first use and cached on disk, in __pycache__ beside the kernel's file, or where that
    is read-only in the user's cache directory (~/.cache/numba), or in NUMBA_CACHE_DIR when
    set (deploy/systemd sets it). Where none is writable numba refuses cache=True with a
    RuntimeError at import: then the kernels compile in every process."""
    if fn is None:
        return lambda f: jit(f, **extra)
    try:
        return nb.njit(**{**_JIT, **extra})(fn)
    except RuntimeError as e:
        if not _NO_CACHE:
            log.warning("numba kernels not cached (%s): each process compiles them (2-5 s); "
                        "set NUMBA_CACHE_DIR to a writable directory", e)
        _NO_CACHE.append(fn.__name__)
        return nb.njit(**{**_JIT, "cache": False, **extra})(fn)

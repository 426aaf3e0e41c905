"""Exit 0 when HOST:PORT can be listened on, else say so (and how to pick another port) and exit 1.

    python tools/port_free.py 127.0.0.1 8000 [WHAT]

`make run` and `make serve` call it before anything else, so that a second `make run` while
one serves changes nothing: no install, no training, no publish into the running service's
models root. Standard library only (it runs before the virtualenv exists). The probe binds
the way gunicorn's master checks (service/gunicorn.conf.py): SO_REUSEADDR but not
SO_REUSEPORT, so a listening service's workers make it fail.
"""
from __future__ import annotations

import socket
import sys


def port_free(host: str, port: int) -> str | None:
    """None when `host:port` is free, else the reason it is not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def main(argv: list[str]) -> int:
    host, port, what = argv[0], int(argv[1]), (argv[2] if len(argv) > 2 else "make run")
    why = port_free(host, port)
    if why is None:
        return 0
    print(f"{what}: cannot serve on {host}:{port}: {why} (another `make run` or service?).\n"
          f"Nothing was installed, trained or published. Pick another port: {what} PORT={port + 1}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

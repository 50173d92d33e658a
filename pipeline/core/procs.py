"""Who wrote a file or opened a run, and whether that process still lives.

A kill -9 leaves no trace of its own, so what a run leaves behind (a temporary file, an MLflow run
left RUNNING) carries its writer's host and pid, and the next start asks this module whether that
writer is gone. Only a process on this host can be asked about: anything from another host, or with
no owner recorded, counts as alive (never removed), unless the caller has an age beyond which no
live write lasts.
"""

from __future__ import annotations

import os
import re
import socket


def this_host() -> str:
    """The short host name, in a form safe inside a file name (letters, digits, dashes)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:63] or "host"


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists on this host (a zombie is not alive: it cannot write)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def writer_gone(host: str | None, pid: int | None) -> bool:
    """True only when the writer was on this host and its process has ended."""
    return host == this_host() and pid is not None and pid != os.getpid() and not pid_alive(pid)

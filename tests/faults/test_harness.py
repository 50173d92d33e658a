"""The fault harness itself: the small disk really fills, and a kill really is a SIGKILL."""

from __future__ import annotations

import errno
import signal
import sys

import pytest
from faults.harness import fill, kill_when, small_disk


def test_small_disk_fills_up():
    with small_disk(1) as disk:
        fill(disk, leave_bytes=0)
        with pytest.raises(OSError) as e:
            (disk / "more").write_bytes(b"x" * 65536)
        assert e.value.errno == errno.ENOSPC


def test_kill_when_kills_with_sigkill():
    k = kill_when([sys.executable, "-c", "import time; time.sleep(30)"], 0.2)
    assert k.returncode == -signal.SIGKILL and not k.finished and k.seconds < 10

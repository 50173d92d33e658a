"""process_map: results from worker processes, and a task that kills its process costs only itself."""

import os

from pipeline.core.pool import process_map


def square_or_die(x: int) -> int:
    if x == 13:
        os._exit(1)  # what a segfaulting C extension looks like from the parent
    return x * x


def test_results_from_workers_and_one_crash_isolated():
    out = sorted(process_map(square_or_die, range(20), 2, on_crash=lambda x: -x))
    assert out == sorted([-13] + [x * x for x in range(20) if x != 13])


_OFFSET = []


def _init(k: int) -> None:
    _OFFSET.append(k)


def add_offset(x: int) -> int:
    return x + _OFFSET[0]


def test_initializer_runs_in_each_worker():
    assert sorted(process_map(add_offset, [1, 2, 3], 2, on_crash=lambda x: None, initializer=_init, initargs=(100,))) == [101, 102, 103]

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


def test_results_come_in_task_order_even_past_a_crash():
    """Order matters to crop's face store (rows are written as results come)."""
    out = list(process_map(square_or_die, range(40), 2, on_crash=lambda x: -x, window=3))
    assert out == [-13 if x == 13 else x * x for x in range(40)]


def test_tasks_are_drawn_in_a_bounded_window():
    """A generator of tasks is not drained up front: at most ``window`` are ahead of the consumer."""
    drawn = []

    def tasks():
        for x in range(50):
            drawn.append(x)
            yield x

    results = process_map(add_offset, tasks(), 2, on_crash=lambda x: None, initializer=_init, initargs=(0,), window=4)
    first = next(results)
    assert first == 0 and len(drawn) <= 5, drawn
    assert [first, *results] == list(range(50))

"""Map a function over tasks in worker processes, surviving a task that kills its process.

Detectors are C extensions (animeface reads Pillow's internals); a file that segfaults one must
cost that file, not the stage, and must not hang it (``multiprocessing.Pool`` waits forever for
a result a dead worker never sends). Tasks caught in a broken pool are rerun one per process, so
the culprit is found and reported through ``on_crash`` while the innocent ones still complete.

Work is submitted in a bounded window (not every task at once: a million pending futures cost
gigabytes) and results come back in task order, so what a caller writes from them (crop's packed
face store) does not depend on which worker finished first.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def _pool(workers: int, initializer, initargs):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: forking a parent that may hold MLflow/Prefect threads and locks is unsafe
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, initargs=initargs)


def _alone(fn, task, on_crash, initializer, initargs):
    """``fn(task)`` in a fresh one-worker pool: a crash there is the task's own."""
    from concurrent.futures.process import BrokenProcessPool

    with _pool(1, initializer, initargs) as ex:
        try:
            return ex.submit(fn, task).result()
        except BrokenProcessPool:
            log.warning("a worker process died on %r; skipping it", task)
            return on_crash(task)


def process_map(fn: Callable[[T], R], tasks: Iterable[T], workers: int, on_crash: Callable[[T], R],
                initializer: Callable | None = None, initargs: tuple = (), window: int | None = None) -> Iterator[R]:
    """Yield ``fn(task)`` for every task, in task order; ``on_crash(task)`` for a task whose process
    died. At most ``window`` tasks (default 4 per worker) are in flight or waiting to be yielded, so
    memory does not grow with the number of tasks. ``fn`` and ``initializer`` must be importable
    module-level functions."""
    from concurrent.futures.process import BrokenProcessPool

    window = max(workers, window or 4 * workers)
    todo = iter(tasks)
    pending: deque = deque()  # (task, future), in task order
    ex = _pool(workers, initializer, initargs)
    try:
        while True:
            for task in todo if len(pending) < window else ():
                try:
                    pending.append((task, ex.submit(fn, task)))
                except BrokenProcessPool:  # the pool died under a task in flight: this one waits with the suspects
                    pending.append((task, None))
                    break
                if len(pending) >= window:
                    break
            if not pending:
                return
            task, future = pending[0]
            try:
                if future is None:
                    raise BrokenProcessPool(task)
                result = future.result()
            except BrokenProcessPool:
                # the pool died under one of the tasks in flight: rerun each alone, in order, then go on
                suspects = [t for t, _ in pending]
                pending.clear()
                ex.shutdown(wait=True, cancel_futures=True)
                for t in suspects:
                    yield _alone(fn, t, on_crash, initializer, initargs)
                ex = _pool(workers, initializer, initargs)
                continue
            pending.popleft()
            yield result
    finally:
        ex.shutdown(wait=True, cancel_futures=True)

"""Map a function over tasks in worker processes, surviving a task that kills its process.

Detectors are C extensions (animeface reads Pillow's internals); a file that segfaults one must
cost that file, not the stage, and must not hang it (``multiprocessing.Pool`` waits forever for
a result a dead worker never sends). Tasks caught in a broken pool are rerun one per process, so
the culprit is found and reported through ``on_crash`` while the innocent ones still complete.
"""

from __future__ import annotations

import logging
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


def process_map(fn: Callable[[T], R], tasks: Iterable[T], workers: int, on_crash: Callable[[T], R],
                initializer: Callable | None = None, initargs: tuple = ()) -> Iterator[R]:
    """Yield ``fn(task)`` for every task, in completion order; ``on_crash(task)`` for a task whose
    process died. ``fn`` and ``initializer`` must be importable module-level functions."""
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    suspects: list[T] = []
    with _pool(workers, initializer, initargs) as ex:
        futures = {ex.submit(fn, t): t for t in tasks}
        for f in as_completed(futures):
            try:
                yield f.result()
            except BrokenProcessPool:
                suspects.append(futures[f])
    for task in suspects:  # alone in a fresh process each: only the culprit fails
        with _pool(1, initializer, initargs) as ex:
            try:
                yield ex.submit(fn, task).result()
            except BrokenProcessPool:
                log.warning("a worker process died on %r; skipping it", task)
                yield on_crash(task)

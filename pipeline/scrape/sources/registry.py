"""Where raw images come from, by ``scrape.source`` name.

A snapshot source (toy, folder) yields ``Candidate`` items that the scrape stage checks, dedupes
and stores, so the folder then holds exactly its images. An accumulating source (danbooru) keeps
what earlier runs stored and runs its own resumable loop with the same file guarantees: it is a
function ``(params, out_dir, result, plan) -> result`` (``plan``: pipeline/scrape/workspace.py).
``check`` refuses bad params of the source before the folder's owners are looked at.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    entry: str            # "module:function", imported only when the source runs
    accumulates: bool     # False: yields Candidates (a snapshot); True: stores into out_dir itself
    checker: str | None = None  # "module:function" (params) -> None, raising StageError; no I/O beyond a stat

    def load(self) -> Callable[..., Any]:
        return _function(self.entry)

    def check(self, params) -> None:
        if self.checker:
            _function(self.checker)(params)


def _function(entry: str) -> Callable[..., Any]:
    module, func = entry.split(":")
    return getattr(importlib.import_module(module), func)


SOURCES: dict[str, Source] = {
    "toy": Source("pipeline.scrape.sources.toy:iter_toy", accumulates=False),
    "folder": Source("pipeline.scrape.sources.folder:iter_folder", accumulates=False,
                     checker="pipeline.scrape.sources.folder:check_folder"),
    "danbooru": Source("pipeline.scrape.sources.danbooru:scrape_danbooru", accumulates=True,
                       checker="pipeline.scrape.sources.danbooru_api:check_params"),
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown scrape.source {name!r}; known: {sorted(SOURCES)}") from None

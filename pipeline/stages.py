"""The pipeline's stages, in order: the one table the CLI, the Prefect flows and the DVC-deps test
read, so a stage is added in one place.

``entry`` is ``module:function`` and imported only when the stage runs (``--help`` stays instant).
Every stage function takes the loaded ``Params`` (and the model's name for per-model stages).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    name: str
    entry: str          # "module:function"
    per_model: bool     # run once per name of train.enabled (DVC foreach, one task each)
    network: bool       # talks to the outside world: the flows retry it with backoff
    help: str

    @property
    def package(self) -> str:
        """The stage's own package (a DVC dep of the stage as a whole)."""
        return self.entry.split(":")[0].rsplit(".", 1)[0]

    def function(self) -> Callable[..., Any]:
        module, func = self.entry.split(":")
        return getattr(importlib.import_module(module), func)

    def run(self, params, model: str | None = None) -> Any:
        fn = self.function()
        return fn(params, model) if self.per_model else fn(params)


STAGES: tuple[Stage, ...] = (
    Stage("scrape", "pipeline.scrape.stage:run_scrape", False, True, "import raw images into data/raw with a manifest"),
    Stage("crop", "pipeline.crop.stage:run_crop", False, False, "crop faces from data/raw into data/faces"),
    Stage("tag", "pipeline.tag.stage:run_tag", False, True, "tag data/faces with illustration2vec into data/tags.parquet"),
    Stage("labels", "pipeline.labels.stage:run_labels", False, False, "merge manual labels and tags into data/labels.parquet"),
    Stage("train", "pipeline.train.stage:run_train", True, False, "train one model of train.models on data/faces"),
    Stage("evaluate", "pipeline.evaluate.stage:run_evaluate", True, False, "score one trained model against the real faces"),
    Stage("report", "pipeline.report.stage:run_report", False, False, "write reports/report.md comparing the enabled models"),
)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}


def summary(result: Any) -> Any:
    """What a stage run reports (its counts): a result object's ``summary()``, else the result."""
    return result.summary() if hasattr(result, "summary") else result

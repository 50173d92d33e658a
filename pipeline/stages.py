"""The pipeline's stages, in order: the one table the CLI, the Prefect flows and dvc.yaml's deps
check read, so a stage is added in one place (one ``Stage`` entry and its function).

Each entry holds its function as a plain Python function whose body imports the stage module: the
import graph (tests/importgraph.py) and editors see the call, and the CLI, which reads this table to
build its parser, stays instant (``--help`` imports no stage, no pydantic). Every stage function
takes the loaded ``Params`` (and the model's name for per-model stages); running it through
:meth:`Stage.execute` gives a :class:`StageResult`: the stage's own value, the plain summary the
flows store, and the line the CLI prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pipeline.params import Params


@dataclass(frozen=True)
class StageResult:
    """What one run of a stage gives back, whatever the stage: ``value`` is the stage function's own
    return (a result object, a dict of metrics, a path), ``summary`` its plain-data form (counts,
    metrics) that Prefect stores, ``line`` the one line (or two) the CLI prints."""

    stage: str
    model: str | None
    value: Any
    summary: Any
    line: str

    @property
    def label(self) -> str:
        return f"{self.stage}@{self.model}" if self.model else self.stage


@dataclass(frozen=True)
class Stage:
    name: str
    call: Callable[..., Any]  # (params[, model], **options) -> the stage's result
    per_model: bool           # run once per name of train.enabled (DVC foreach, one task each)
    network: bool             # talks to the outside world: the flows retry it with backoff
    help: str
    # params sections the stage reads: their settings modules are code deps of its DVC stage
    reads: tuple[str, ...] = ("paths", "tracking")
    # the refresh flow's policy: "always" runs every time (the stage is incremental itself) and is
    # recorded in dvc.lock before the later stages are judged; "changed" runs what dvc status (or,
    # outside DVC, ``outdated``) says changed, or what an earlier stage of this flow run redid
    refresh: Literal["always", "changed"] = "changed"
    # outside a DVC project: (params, models the previous per-model stage ran) -> {model or stage: why}
    outdated: Callable[[Any, set[str]], dict[str, str]] | None = None
    # the flows may split it into shards on Dask (``orchestration.dask_address``) when this says so
    sharded: Callable[[Any], bool] | None = None
    # (value, label, params) -> the CLI's line; default "<label>: <summary>"
    describe: Callable[[Any, str, Any], str] | None = None
    cli_args: Callable[[argparse.ArgumentParser], None] | None = None  # the stage's own command-line options
    cli_options: tuple[str, ...] = ()   # names of those options passed to the function as keywords
    package: str = field(default="")    # its own package; default pipeline.<name>

    def __post_init__(self) -> None:
        if not self.package:
            object.__setattr__(self, "package", f"pipeline.{self.name}")

    def function(self) -> Callable[..., Any]:
        return self.call

    def run(self, params: Params, model: str | None = None, **options: Any) -> Any:
        """The stage function's own return value."""
        return self.call(params, model, **options) if self.per_model else self.call(params, **options)

    def execute(self, params: Params, model: str | None = None, **options: Any) -> StageResult:
        """Run the stage and wrap its value in the common result type."""
        value = self.run(params, model, **options)
        label = f"{self.name}@{model}" if model else self.name
        line = self.describe(value, label, params) if self.describe else f"{label}: {summary(value)}"
        return StageResult(self.name, model, value, _plain(summary(value)), line)


def summary(result: Any) -> Any:
    """What a stage run reports (its counts): a result object's ``summary()``, else the result."""
    return result.summary() if hasattr(result, "summary") else result


def _plain(value: Any) -> Any:
    """Prefect stores results, and JSON has no paths: a path becomes its string."""
    return str(value) if isinstance(value, Path) else value


# --- the stage functions: plain calls, imported when the stage runs ------------------------------

def scrape(params: Params, **options: Any) -> Any:
    from pipeline.scrape.stage import run_scrape

    return run_scrape(params, **options)


def crop(params: Params, **options: Any) -> Any:
    from pipeline.crop.stage import run_crop

    return run_crop(params, **options)


def tag(params: Params, **options: Any) -> Any:
    from pipeline.tag.stage import run_tag

    return run_tag(params, **options)


def labels(params: Params) -> Any:
    from pipeline.labels.stage import run_labels

    return run_labels(params)


def train(params: Params, model: str) -> Any:
    from pipeline.train.stage import run_train

    return run_train(params, model)


def evaluate(params: Params, model: str) -> Any:
    from pipeline.evaluate.stage import run_evaluate

    return run_evaluate(params, model)


def report(params: Params) -> Any:
    from pipeline.report.stage import run_report

    return run_report(params)


# --- what the CLI prints where "<label>: <summary>" is not enough ---------------------------------

def _tag_line(result: Any, label: str, params: Params) -> str:
    state = "" if result.enabled else " (disabled: tag.enabled=false)"
    return f"{label}: {result.summary()}{state}"


def _train_line(summary: dict, label: str, params: Params) -> str:
    if summary.get("skipped"):  # exit 0: the stage did its job (train.json says why), so dvc repro goes on
        return f"{label}: skipped: {summary['skipped']}"
    ddp = ""
    if summary["world_size"] > 1:  # every rank prints: equal weights digests show the ranks stayed in step
        import os

        ddp = f" (rank {os.environ.get('RANK')} of {summary['world_size']}, weights sha256 {summary['weights_sha256']})"
    return f"{label}: {summary['steps']} steps, {summary['images_per_second']} images/s on {summary['device']}{ddp}"


def _evaluate_line(metrics: dict, label: str, params: Params) -> str:
    if metrics.get("skipped"):
        return f"{label}: skipped: {metrics['skipped']}"
    unavailable = metrics.get("unavailable", {})
    shown = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items() if k != "unavailable")
    line = f"{label}: " + ", ".join(shown)
    if unavailable:  # the reasons were logged once (once per pipeline run); the sidecar keeps them
        from pipeline.core.layout import status_path

        model = label.partition("@")[2]
        line += f"\n  unavailable: {', '.join(unavailable)} (why: {status_path(params.paths.metrics, model)})"
    return line


def _scrape_args(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--replace", dest="mode", action="store_const", const="replace", default="own",
                     help="make paths.raw this search's even though it holds another source's or search's images: "
                          "what its manifest lists goes once this run has written its manifest (files no manifest lists stay)")
    how.add_argument("--add", dest="mode", action="store_const", const="add",
                     help="add this Danbooru search to a paths.raw that holds another search or a folder import")


# --- the refresh flow's decisions outside a DVC project (inside one, dvc status decides) ----------

def _train_outdated(params: Params, ran: set[str]) -> dict[str, str]:
    """Enabled models whose run is missing or was trained on other faces -> the reason. Param and
    code changes are DVC's to see; this covers runs outside a DVC project."""
    import json

    from pipeline.core.datasets import load_faces

    digest = load_faces(params.paths.faces).digest
    todo = {}
    for name in params.train.enabled:
        info = Path(params.paths.runs) / name / "train.json"
        if not info.exists() or not (info.parent / "checkpoint.pt").exists():
            todo[name] = "not trained yet"
        elif json.loads(info.read_text()).get("data_hash") != digest:
            todo[name] = "faces changed"
    return todo


def _evaluate_outdated(params: Params, trained: set[str]) -> dict[str, str]:
    return {m: "trained in this run" if m in trained else "no metrics yet" for m in params.train.enabled
            if m in trained or not (Path(params.paths.metrics) / f"{m}.json").exists()}


def _report_outdated(params: Params, ran: set[str]) -> dict[str, str]:
    return {} if (Path(params.paths.reports) / "report.md").exists() else {"report": "no report yet"}


STAGES: tuple[Stage, ...] = (
    Stage("scrape", scrape, False, True, "import raw images into data/raw with a manifest",
          reads=("paths", "scrape", "tracking"), refresh="always", cli_args=_scrape_args, cli_options=("mode",)),
    Stage("crop", crop, False, False, "crop faces from data/raw into data/faces",
          reads=("paths", "crop", "tracking"), refresh="always", sharded=lambda params: True),
    Stage("tag", tag, False, True, "tag data/faces with illustration2vec into data/tags.parquet",
          reads=("paths", "tag", "tracking"), refresh="always", sharded=lambda params: params.tag.enabled,
          describe=_tag_line),
    Stage("labels", labels, False, False, "merge manual labels and tags into data/labels.parquet",
          reads=("paths", "labels", "tag", "tracking"), refresh="always"),
    Stage("train", train, True, False, "train one model of train.models on data/faces",
          reads=("paths", "train", "evaluate", "tracking"), outdated=_train_outdated, describe=_train_line),
    Stage("evaluate", evaluate, True, False, "score one trained model against the real faces",
          reads=("paths", "evaluate", "scrape", "tag", "train", "tracking"), outdated=_evaluate_outdated,
          describe=_evaluate_line),
    Stage("report", report, False, False, "write reports/report.md comparing the enabled models",
          reads=("paths", "report", "train", "tracking"), outdated=_report_outdated),
)


def get(name: str) -> Stage:
    """The entry named ``name`` (looked up at call time, so a test may swap ``STAGES``)."""
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(name)

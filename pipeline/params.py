"""Typed, validated view of ``params.yaml``: composes every stage's settings model and loads them.

Each stage package owns its settings (``pipeline/<stage>/params.py``; ``paths`` and ``tracking`` are in
pipeline/core/settings.py): this module only puts them together, reads the file, applies ``-S``
overrides and turns a bad value into a message that names the key, the value, what is allowed and
the nearest known name.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError

from pipeline.core.settings import (
    BATCH_WHY,
    IMAGE_EXTENSIONS,
    IMAGES_WHY,
    MAX_IMAGES_SHOWN,
    MAX_STEPS,
    STEPS_WHY,
    ParamsError,
    PathsParams,
    Strict,
    Switch,
    TrackingParams,
    did_you_mean,
)
from pipeline.crop.params import CropParams
from pipeline.evaluate.params import C2STParams, DiversityParams, EvaluateParams, FeatureNetParams, InceptionParams, MetricName
from pipeline.labels.params import LabelsParams, LabelUIParams
from pipeline.play.params import PlayParams
from pipeline.report.params import ReportParams
from pipeline.scrape.params import DANBOORU_EXTENSIONS, DANBOORU_RATINGS, DanbooruSource, ScrapeParams, ToySource
from pipeline.tag.params import TagParams, VocabularyParams
from pipeline.train.params import ModelSpec, SketchParams, TrainBudget, TrainParams

__all__ = [  # the names importers used before the split; new code imports the stage's own module
    "BATCH_WHY", "C2STParams", "CropParams", "DANBOORU_EXTENSIONS", "DANBOORU_RATINGS", "DanbooruSource",
    "DiversityParams", "EvaluateParams", "FeatureNetParams", "IMAGES_WHY", "IMAGE_EXTENSIONS", "InceptionParams",
    "LabelUIParams", "LabelsParams", "MAX_IMAGES_SHOWN", "MAX_STEPS", "MetricName", "ModelSpec",
    "OrchestrationParams", "Params", "ParamsError", "PathsParams", "PlayParams", "ReportParams", "STEPS_WHY",
    "ScrapeParams", "SketchParams", "Strict", "Switch", "TagParams", "ToySource", "TrackingParams", "TrainBudget",
    "TrainParams", "VocabularyParams", "load_params", "parse_override", "apply_override", "format_validation_error",
]


class OrchestrationParams(Strict):
    """How the Prefect flows run the stages (flows/): where crop and tag shards go, and overlaps."""

    dask_address: str | None = Field(None, description="tcp://host:8786 of an existing Dask scheduler: crop and tag "
                                     "run as shards on it (prefect-dask); null runs them locally")
    shards: int = Field(0, ge=0, description="shards per sharded stage; 0 = one per Dask worker thread")
    overlap: Literal["wait", "skip"] = Field("wait", description="a flow run that finds another running: wait for it, or skip")
    lock_timeout: float = Field(21600.0, gt=0, description="s a waiting flow run waits for the running one before failing")
    dvc_commit: bool = Field(True, description="in a DVC project run without overrides, record the stages a flow "
                             "ran in dvc.lock (dvc commit) so dvc status is clean afterwards")


class Params(Strict):
    paths: PathsParams = Field(default_factory=PathsParams)
    scrape: ScrapeParams = Field(default_factory=ScrapeParams)
    crop: CropParams = Field(default_factory=CropParams)
    tag: TagParams = Field(default_factory=TagParams)
    labels: LabelsParams = Field(default_factory=LabelsParams)
    label: LabelUIParams = Field(default_factory=LabelUIParams)
    play: PlayParams = Field(default_factory=PlayParams)
    train: TrainParams = Field(default_factory=TrainParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    report: ReportParams = Field(default_factory=ReportParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    orchestration: OrchestrationParams = Field(default_factory=OrchestrationParams)

    def model(self, name: str) -> ModelSpec:
        try:
            return self.train.models[name]
        except KeyError:
            raise ParamsError(f"no model {name!r} in train.models{did_you_mean(name, self.train.models)}; "
                              f"defined: {sorted(self.train.models)}") from None


# ---------------------------------------------------------------------------------------------
# loading and overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value), the value parsed as YAML (so 3, 1e-3, true, [a, b])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override -S {text!r} is not of the form key.sub=value "
                          f"(e.g. -S train.models.dcgan.lr=1e-4)")
    keys = key.strip().split(".")
    if not all(k.strip() for k in keys):
        raise ParamsError(f"override -S {text!r}: the key {key.strip()!r} has an empty part; "
                          "spell it as section.knob, e.g. train.models.dcgan.lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        why = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ParamsError(f"override -S {text!r}: the value {raw!r} is not valid YAML ({why}); write a number, "
                          "a word, [a, b] or {key: value} with its brackets and quotes closed, e.g. "
                          "-S 'train.enabled=[dcgan, acgan]'") from None
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string; the command line means a number
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return [k.strip() for k in keys], value


def apply_override(tree: dict, keys: list[str], value: Any) -> None:
    node = tree
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ParamsError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[:i + 1])} is {nxt!r}, not a mapping")
        node = nxt
    node[keys[-1]] = value


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names allowed at the location of an error (keys of a mapping such as a model's name
    stepped over), for 'did you mean' messages."""
    cls = Params if len(loc) <= 1 else _field_at(loc[:-1])[1]
    return sorted(getattr(cls, "model_fields", {}) if cls is not None else ())


def _field_at(loc: tuple) -> tuple[Any, Any]:
    """(the pydantic FieldInfo at ``loc``, the params class expected there or None); keys of a dict
    field, such as a model's name, are stepped over."""
    from typing import get_origin

    cls: Any = Params
    info = None
    parts = list(loc)
    while parts:
        fields = getattr(cls, "model_fields", None)
        if not fields or parts[0] not in fields:
            return None, None
        info = fields[parts.pop(0)]
        ann = info.annotation
        if get_origin(ann) is dict and parts:
            parts.pop(0)
            ann = get_args(ann)[1]
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if cls is None and parts:
            return None, None
    return info, cls


BOUND_ERRORS = ("less_than_equal", "less_than", "greater_than_equal", "greater_than", "too_long", "too_short")


def _set_by(key: str, overrides: tuple[str, ...]) -> str | None:
    """The override that set ``key`` (or a mapping above it), for the message."""
    found = None
    for text in overrides:
        k = text.partition("=")[0].strip()
        if key == k or key.startswith(k + ".") or k.startswith(key + "."):
            found = text
    return found


def format_validation_error(err: ValidationError, source: str, overrides: tuple[str, ...] = ()) -> str:
    lines = [f"invalid params in {source}:"]
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        key = ".".join(loc) or "<root>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            hint = difflib.get_close_matches(loc[-1], allowed, n=1)
            msg = f"unknown key {key!r}"
            if hint:
                msg += f" (did you mean {'.'.join(loc[:-1] + (hint[0],))!r}?)"
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        elif e["type"] in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"{key} = {e.get('input')!r}: must be a mapping of knobs (key: value), not {type(e.get('input')).__name__}"
            if (cls := _field_at(loc)[1]) is not None:
                msg += f"; its knobs: {', '.join(cls.model_fields)}"
        else:
            msg = f"{key} = {e.get('input')!r}: {e['msg']}"
            if e["type"] == "literal_error" and isinstance(e.get("input"), str):
                msg += did_you_mean(e["input"], re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", ""))))
            info = _field_at(loc)[0] if e["type"] in BOUND_ERRORS else None
            if info is not None and info.description:
                msg += f"; {info.description}"
        if by := _set_by(key, tuple(overrides)):
            msg += f" [from -S {by}]"
        lines.append(f"  - {msg}")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read, override (``-S`` style) and validate; raise ParamsError with a readable message."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file {path} does not exist (run from the project folder, pass --params, or write "
                          "the starter with `boorugan init`)")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path} is not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ParamsError(f"params file {path} cannot be read ({why}); pass a YAML file with --params") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path} must hold a mapping of sections (scrape:, crop:, ...), got {type(tree).__name__}")
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(tree, keys, value)
    try:
        return Params.model_validate(tree)
    except ValidationError as e:
        source = str(path) + (" with overrides " + " ".join(overrides) if overrides else "")
        raise ParamsError(format_validation_error(e, source, tuple(overrides))) from None

"""What every stage's settings share: the strict base model, the error type, YAML's on/off words,
the bounds' reasons, and the two shared sections (``paths``, ``tracking``).

Each stage package owns its own settings model (``pipeline/<stage>/params.py``) built on these, so
a change to one stage's settings re-runs that stage (and what reads it), not every stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp")
# Upper bounds no real run reaches: they stop a typo (1e12 for 1e4) before it allocates or runs for ages.
# Their reasons go into the fields' descriptions, which a bound's error message quotes.
BATCH_WHY = "BigGAN's 2048 is the largest GAN batch published; 16,384 64 px faces take 200 MB per tensor"
MAX_STEPS = 100_000_000
STEPS_WHY = ("at most 1e8: 100x the longest published GAN trainings (about 1e6 steps); at 330 steps/s, DCGAN at batch "
             "128 with the fast path on an H200, 1e8 steps take 3.5 days")
MAX_IMAGES_SHOWN = 10_000_000_000
IMAGES_WHY = ("at most 1e10: 400x the 25 million of StyleGAN2-ADA's longest runs; 42 hours at the fastest rate measured "
              "here, 66,000 images/s")



class ParamsError(ValueError):
    """A params file or override that cannot be used; the message says what to fix."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _yaml_switch(value: Any) -> Any:
    """YAML 1.1 reads on/off/yes/no/true/false as booleans, in params.yaml and in ``-S`` values alike:
    a knob spelled with the words ``on``/``off`` takes them back however YAML read them."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


_T = TypeVar("_T")
Switch = Annotated[_T, BeforeValidator(_yaml_switch)]  # Switch[Literal["auto", "off"]]: YAML's booleans taken back


class PathsParams(Strict):
    """Where stages read and write, relative to the repository root."""

    raw: str = Field("data/raw", description="scrape: images named by content md5 + manifest.parquet")
    faces: str = Field("data/faces", description="crop: face crops + index.parquet")
    tags: str = Field("data/tags.parquet", description="tag: probabilities per face")
    labels: str = Field("data/labels.parquet", description="labels: one row per face, a value per attribute")
    labels_vocab: str = Field("data/labels_vocab.json", description="labels: the vocabulary the table was made with")
    label_conflicts: str = Field("data/label_conflicts.csv", description="labels: manual values a confident tagger "
                                 "disagrees with (in data/: the report stage owns reports/)")
    runs: str = Field("runs", description="train: runs/<model>/ checkpoint, samples, losses")
    metrics: str = Field("metrics", description="evaluate: metrics/<model>.json")
    reports: str = Field("reports", description="report: report.md, index.html")


class TrackingParams(Strict):
    enabled: bool = Field(True, description="log every stage run to MLflow")
    experiment: str = Field("boorugan", description="the MLflow experiment of every run")
    tracking_uri: str | None = Field(None, description="default sqlite:///<repo>/mlflow.db; env MLFLOW_TRACKING_URI wins")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, else ""."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

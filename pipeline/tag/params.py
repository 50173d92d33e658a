"""Settings of the ``tag`` stage (``tag:`` in params.yaml), with the attribute vocabulary labels are made of."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.core.settings import Strict


def _make_girls_moe_groups() -> dict[str, dict[str, str]]:
    """make.girls.moe's exclusive groups (Jin et al. 2017) as value -> i2v tag name."""
    hair = "blonde brown black blue pink purple green red silver white orange aqua grey".split()
    eyes = "blue red brown green purple yellow pink aqua black orange".split()
    return {
        "hair_color": {c: f"{c} hair" for c in hair},
        "hair_style": {"long": "long hair", "short": "short hair", "twin_tail": "twintails",
                       "drill": "drill hair", "ponytail": "ponytail"},
        "eye_color": {c: f"{c} eyes" for c in eyes},
    }


def _make_girls_moe_binary() -> dict[str, str]:
    return {"blush": "blush", "smile": "smile", "open_mouth": "open mouth", "hat": "hat",
            "ribbon": "ribbon", "glasses": "glasses"}


_NAME_RE = r"^[a-z][a-z0-9_]*$"
_RESERVED = {"face_id", "multi_hot", "known", "content"}


class VocabularyParams(Strict):
    """The attributes labels are made of: exclusive groups (attribute -> {value: tag}) and
    independent binary attributes (attribute -> tag). Tag names are the tagger's own ("grey hair");
    whether they exist is checked against the tagger's tag list when it loads (pipeline.core.vocab)."""

    groups: dict[str, dict[str, str]] = Field(
        default_factory=_make_girls_moe_groups, description="exclusive attributes, attribute -> {value: tagger tag}; default: "
                                                            "make.girls.moe's hair colour, hair style, eye colour")
    binary: dict[str, str] = Field(
        default_factory=_make_girls_moe_binary, description="yes/no attributes, attribute -> tagger tag; default: blush, smile, "
                                                            "open mouth, hat, ribbon, glasses")

    @model_validator(mode="after")
    def _well_formed(self) -> VocabularyParams:
        import re

        names = list(self.groups) + list(self.binary)
        for n in names:
            if not re.match(_NAME_RE, n) or n in _RESERVED or n.startswith("source_"):
                raise ValueError(f"attribute name {n!r} must match {_NAME_RE} and not be one of "
                                 f"{sorted(_RESERVED)} or start with 'source_' (it becomes a column name)")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"attribute(s) {dup} are both a group and a binary attribute")
        for g, values in self.groups.items():
            if len(values) < 2:
                raise ValueError(f"group {g!r} needs at least 2 values, got {list(values)}")
            bad = [v for v in values if not v.strip() or v in ("unknown", "yes", "no")]
            if bad:
                raise ValueError(f"group {g!r}: value name(s) {bad} are reserved or empty")
        tags = [t for vs in self.groups.values() for t in vs.values()] + list(self.binary.values())
        reused = sorted({t for t in tags if tags.count(t) > 1})
        if reused:
            raise ValueError(f"tag(s) {reused} are used by more than one attribute value")
        return self

    def tags(self) -> list[str]:
        """Every tag the vocabulary uses, in vocabulary order (groups, then binary)."""
        return [t for vs in self.groups.values() for t in vs.values()] + list(self.binary.values())


class TagParams(Strict):
    """Stage ``tag``: a tagger (illustration2vec) over the face crops -> ``paths.tags``."""

    enabled: bool = Field(False, description="off: the stage writes an empty table and says how to turn it on")
    tagger: Literal["i2v"] = Field("i2v", description="i2v: illustration2vec v2.0.0")
    weights_dir: str | None = Field(None, description="folder with the caffemodel and tag list; default $BOORUGAN_CACHE/i2v")
    download: bool = Field(True, description="download missing weights from the release URLs")
    checksums: dict[str, str] = Field(default_factory=dict, description="file name -> sha256, checked after download")
    threshold: float = Field(0.25, ge=0.0, le=1.0, description="general tags with p > threshold are listed")
    batch_size: int = Field(32, ge=1, le=4096, description="faces per forward pass of the 224 px tagger (at most "
                            "4096: 2.4 GB of input alone)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when torch sees it (fp16 there when tag.half)")
    half: bool = Field(True, description="fp16 on the GPU (never on CPU)")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's)")
    vocabulary: VocabularyParams = Field(default_factory=VocabularyParams)

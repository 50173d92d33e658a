"""Settings of the ``labels`` stage (``labels:``) and of the labelling page ``boorugan label`` (``label:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipeline.core.settings import Strict


class LabelsParams(Strict):
    """Stage ``labels``: manual labels merged with the tagger's into one table per face."""

    manual: str = Field("labels/manual.csv", description="CSV keyed by face_id, md5 or file; absent file = no manual labels")
    precedence: list[Literal["manual", "folder", "danbooru", "i2v"]] = Field(
        ["manual", "folder", "danbooru", "i2v"], min_length=1, description="label sources, the first that knows an attribute "
        "wins; a source left out is not used (folder: a labelled scrape.folder; danbooru: the post's own tags, for faces "
        "alone on a Danbooru post)")

    @field_validator("precedence")
    @classmethod
    def _unique_sources(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each source at most once, got {v}")
        return v
    threshold: float = Field(0.25, ge=0.0, le=1.0, description="tagger probability needed for a value")
    conflict_confidence: float = Field(0.75, ge=0.0, le=1.0,
                                       description="tagger probability that makes a disagreement a conflict")
    min_known: int = Field(0, ge=0, description="drop faces with fewer known attributes (0 keeps all)")


class LabelUIParams(Strict):
    """``boorugan label``: the local labelling page that writes ``labels.manual``."""

    host: str = Field("127.0.0.1", description="bind address; anything but loopback exposes the page to the network")
    port: int = Field(8765, ge=0, le=65535, description="0 = any free port")
    page_size: int = Field(48, ge=1, le=1000, description="faces per page")
    low_confidence: float = Field(0.6, ge=0.0, le=1.0, description="a tagged attribute less sure than this "
                                  "(best group value's p, or max(p, 1-p) for yes/no) puts the face in the "
                                  "'low confidence' filter")

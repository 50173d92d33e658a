"""The attribute vocabulary (``tag.vocabulary``): tag-name spelling, checks against a tagger's tag
list, and the fixed order of the multi-hot vector the conditional GANs learn from."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from pipeline.core.errors import StageError

if TYPE_CHECKING:
    from pipeline.tag.params import VocabularyParams

UNKNOWN = "unknown"
_SPELLING = {"gray": "grey", "twin tails": "twintails", "twin tail": "twintails", "blond": "blonde"}


def normalise_tag(text: str) -> str:
    """How people write a tag -> i2v's spelling: case, underscores/dashes vs spaces, grey/gray."""
    t = re.sub(r"[\s_]+", " ", text.strip().lower())
    words = " ".join(_SPELLING.get(w, w) for w in t.split(" "))
    return _SPELLING.get(words, words)


def check_tags(vocab: VocabularyParams, known: list[str], where: str) -> None:
    """Every vocabulary tag must be one the tagger outputs; suggest the closest names otherwise."""
    known_set = set(known)
    problems = []
    for attr, tag in attribute_tags(vocab):
        if tag not in known_set:
            close = difflib.get_close_matches(tag, known, n=3, cutoff=0.6)
            hint = f" (closest: {', '.join(repr(c) for c in close)})" if close else ""
            problems.append(f"  - {attr}: {tag!r}{hint}")
    if problems:
        raise StageError(f"tag.vocabulary names tags that {where} does not know:\n" + "\n".join(problems))


def attribute_tags(vocab: VocabularyParams) -> list[tuple[str, str]]:
    """(``attr`` or ``attr=value``, tag) for every tag, in vocabulary order."""
    out = [(f"{g}={v}", t) for g, vs in vocab.groups.items() for v, t in vs.items()]
    return out + [(b, t) for b, t in vocab.binary.items()]


def multi_hot_names(vocab: VocabularyParams) -> list[str]:
    """Slot names of the multi-hot vector: one per group value, one per binary attribute."""
    return [name for name, _ in attribute_tags(vocab)]


def attributes(vocab: VocabularyParams) -> list[str]:
    return list(vocab.groups) + list(vocab.binary)


def to_json(vocab: VocabularyParams) -> dict:
    """What ``data/labels_vocab.json`` holds: enough to decode labels.parquet without params.yaml."""
    return {"groups": {g: list(vs) for g, vs in vocab.groups.items()},
            "binary": list(vocab.binary),
            "binary_values": ["yes", "no", UNKNOWN],
            "unknown": UNKNOWN,
            "multi_hot": multi_hot_names(vocab),
            "tags": dict(attribute_tags(vocab))}

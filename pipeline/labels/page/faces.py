"""What the labelling page shows per face, and its filters: pure functions over the face index,
the tagger's probabilities and the manual labels, using the ``labels`` stage's own rules
(threshold, which source wins, what counts as a conflict) so the page agrees with the stage."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.vocab import UNKNOWN, attributes
from pipeline.labels.params import LabelsParams
from pipeline.labels.stage import is_conflict, known_tagged, merge_face, tagger_values
from pipeline.tag.params import VocabularyParams

FILTERS = {"all": "all faces", "unlabelled": "no manual label yet", "labelled": "with a manual label",
           "low_confidence": "tagger unsure", "conflicts": "manual disagrees with a confident tagger"}


def load_predictions(tags_path: str | Path, vocab: VocabularyParams, threshold: float) -> dict[str, dict[str, tuple[str, float]]]:
    """face id -> attribute -> (tagger value, p); empty when the tag stage has not run or was off."""
    from pipeline.core.layout import PROB_PREFIX
    from pipeline.labels.stage import read_tags

    if not Path(tags_path).exists():
        return {}
    table = read_tags(Path(tags_path), vocab)
    cols = [PROB_PREFIX + t for t in vocab.tags()]
    out = {}
    for fid, *probs in zip(table["face_id"], *(table[c] for c in cols)):
        out[str(fid)] = tagger_values(dict(zip(vocab.tags(), map(float, probs))), vocab, threshold)
    return out


def confidence(attr: str, p: float, vocab: VocabularyParams) -> float:
    """How sure the tagger is of its answer: the best value's p, or max(p, 1-p) for yes/no."""
    return max(p, 1.0 - p) if attr in vocab.binary else p


def face_view(fid: str, manual: dict[str, str], predicted: dict[str, tuple[str, float]] | None,
              vocab: VocabularyParams, labels: LabelsParams, low_confidence: float,
              danbooru: dict[str, str] | None = None, folder: dict[str, str] | None = None) -> dict:
    """One face as the page draws it: per attribute the value the labels stage would keep, its
    source, the manual value and the tagger's value with its probability."""
    values, sources = merge_face({"manual": manual, "folder": folder or {}, "danbooru": danbooru or {},
                                  "i2v": known_tagged(predicted)}, labels.precedence, vocab)
    attrs, conflict, low = {}, False, False
    for a in attributes(vocab):
        t, p = predicted[a] if predicted else (None, None)
        c = bool(predicted) and a in manual and is_conflict(a, manual[a], t, p, vocab, labels.conflict_confidence)
        conflict |= c
        low |= p is not None and confidence(a, p, vocab) < low_confidence
        attrs[a] = {"value": values[a], "source": sources[a], "manual": manual.get(a),
                    "i2v": None if t in (None, UNKNOWN) else t, "p": None if p is None else round(p, 3),
                    "conflict": c}
    return {"face_id": fid, "labelled": bool(manual), "conflict": conflict, "low_confidence": low, "attrs": attrs}


def matches(view: dict, flt: str, attr: str | None, value: str | None) -> bool:
    ok = {"all": True, "unlabelled": not view["labelled"], "labelled": view["labelled"],
          "low_confidence": view["low_confidence"], "conflicts": view["conflict"]}[flt]
    if ok and attr:
        ok = view["attrs"][attr]["value"] == (value or UNKNOWN)
    return ok

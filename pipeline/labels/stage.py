"""Stage ``labels``: manual labels, Danbooru's own tags and the tagger's merged into ``data/labels.parquet``.

One row per face (faces with fewer than ``labels.min_known`` known attributes dropped):
- ``face_id`` (str);
- one string column per attribute: an exclusive group holds one of its values or ``"unknown"``
  (``hair_color``: ``"blonde"``...); a binary attribute holds ``"yes"``, ``"no"`` or ``"unknown"``
  (strings rather than bools so "not known" is representable, as in the groups);
- ``multi_hot``: list of 0/1 ints in the order of ``labels_vocab.json["multi_hot"]`` (a slot per
  group value, then one per binary attribute; an unknown group is all zeros, unknown binary 0);
- ``source_<attribute>``: ``"manual"``, ``"folder"``, ``"danbooru"``, ``"i2v"`` or ``"none"``.

From a labelled folder (``scrape.source: folder``, pipeline/scrape/sources/folder.py): the values its
``<attribute>=<value>`` subfolders, class folders or CSV gave the source image, for every face cut
from it; checked against the vocabulary here, each problem named with its folder or CSV line.

From Danbooru (faces cropped from a Danbooru post): the post's general tags, which people tagged
by hand. A group takes its value when exactly one of its tags is on the post (two hair colours on a
post with one face may be two-tone hair: unknown); a binary attribute is yes when its tag is there,
else no, because Danbooru's common visual tags are gardened to completeness. Only for posts with one
face: on a post with several, the tags say nothing about which face has them.

From the tagger: a group takes its most likely value when p > ``labels.threshold``, else unknown;
a binary attribute is yes when p > threshold, else no (make.girls.moe's rule). ``labels.precedence``
says which source wins where several have a value (by default manual, folder, danbooru, then i2v).
Disagreements between a manual value and a
confident tagger (p >= ``labels.conflict_confidence`` for its value, or <= 1 - that for a binary
"no") go to ``paths.label_conflicts``; that file sits in data/, not reports/, because the report stage
owns and replaces the whole reports/ folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.core.settings import PathsParams
from pipeline.core.vocab import UNKNOWN, attributes, to_json
from pipeline.labels.params import LabelsParams
from pipeline.tag.params import VocabularyParams

log = logging.getLogger(__name__)
CONFLICT_COLUMNS = ["face_id", "attribute", "manual", "i2v", "i2v_prob", "line"]


@dataclass
class LabelsResult:
    faces: int = 0
    dropped: int = 0
    manual_faces: int = 0
    tagged_faces: int = 0
    danbooru_faces: int = 0
    folder_faces: int = 0
    conflicts: int = 0
    balance: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {"faces": self.faces, "dropped": self.dropped, "manual_faces": self.manual_faces,
                "tagged_faces": self.tagged_faces, "danbooru_faces": self.danbooru_faces, "folder_faces": self.folder_faces,
                "conflicts": self.conflicts}


def tagger_values(probs: dict[str, float], vocab: VocabularyParams, threshold: float) -> dict[str, tuple[str, float]]:
    """attribute -> (value, probability of that value) from one face's tag probabilities."""
    out = {}
    for g, values in vocab.groups.items():
        best = max(values, key=lambda v: probs[values[v]])
        p = float(probs[values[best]])
        out[g] = (best if p > threshold else UNKNOWN, p)
    for b, t in vocab.binary.items():
        p = float(probs[t])
        out[b] = ("yes" if p > threshold else "no", p)
    return out


def is_conflict(attr: str, manual: str, tagged: str, p: float, vocab: VocabularyParams, confidence: float) -> bool:
    if attr in vocab.binary:
        confident = "yes" if p >= confidence else "no" if p <= 1 - confidence else None
    else:
        confident = tagged if tagged != UNKNOWN and p >= confidence else None
    return confident is not None and confident != manual


def danbooru_values(general_tags: str, vocab: VocabularyParams) -> dict[str, str]:
    """attribute -> value from a post's space-separated general tags (see the module docstring)."""
    from pipeline.core.vocab import normalise_tag

    have = {normalise_tag(t) for t in general_tags.split()}
    out = {}
    for g, values in vocab.groups.items():
        hits = [v for v, tag in values.items() if normalise_tag(tag) in have]
        if len(hits) == 1:
            out[g] = hits[0]
    for b, tag in vocab.binary.items():
        out[b] = "yes" if normalise_tag(tag) in have else "no"
    return out


def danbooru_labels(index, manifest, vocab: VocabularyParams) -> dict[str, dict[str, str]]:
    """face_id -> values from its post's tags, for faces that are the only face of a Danbooru post."""
    if manifest is None or "tags_general" not in manifest.columns:
        return {}
    tags = manifest.dropna(subset=["tags_general"]).drop_duplicates("md5").set_index("md5")["tags_general"]
    alone = index.groupby("md5")["face_id"].transform("size") == 1
    return {fid: danbooru_values(tags[md5], vocab)
            for fid, md5 in zip(index.loc[alone, "face_id"], index.loc[alone, "md5"]) if md5 in tags.index}


def folder_values(raw: dict[str, str], lookup, vocab: VocabularyParams) -> tuple[dict[str, str], list[str]]:
    """(attribute -> value, problems) from one image's raw folder labels (attribute or ``tags`` -> text),
    checked as labels/manual.csv's cells are (pipeline/labels/manual.py)."""
    import re

    from pipeline.labels.manual import _suggest

    values, problems = {}, []
    attrs = attributes(vocab)

    def put(attr: str, value: str) -> None:
        if values.get(attr, value) != value:
            problems.append(f"{attr} given as both {values[attr]!r} and {value!r}")
        values[attr] = value

    for col, text in raw.items():
        attr = re.sub(r"[\s-]+", "_", col.strip().lower())
        if attr == "tags":
            found, unknown = lookup.tag_values(text)
            problems += unknown
            for a, value in found:
                put(a, value)
            continue
        if attr not in attrs:
            problems.append(f"unknown attribute {col!r}{_suggest(attr, attrs)}; tag.vocabulary has {', '.join(attrs)}")
            continue
        try:
            v = lookup.column_value(attr, text)
        except ValueError as e:
            problems.append(str(e))
            continue
        if v is not None:
            put(attr, v)
    return values, problems


def folder_labels(index, manifest, vocab: VocabularyParams) -> dict[str, dict[str, str]]:
    """face_id -> values a labelled ``scrape.folder`` gave its source image (every face cropped from it).
    Every problem, with the folder or the CSV line it came from, is reported at once."""
    from pipeline.core.layout import FOLDER_LABEL, FOLDER_LABEL_ORIGIN
    from pipeline.labels.manual import _Lookup

    cols = [c for c in (manifest.columns if manifest is not None else []) if c.startswith(FOLDER_LABEL)]
    if not cols:
        return {}
    lookup = _Lookup(vocab)
    by_md5: dict[str, dict[str, str]] = {}
    problems: dict[str, None] = {}  # ordered set: a folder's problem once, not once per image
    for row in manifest.drop_duplicates("md5").to_dict("records"):
        raw = {c[len(FOLDER_LABEL):]: str(row[c]) for c in cols if isinstance(row[c], str) and row[c].strip()}
        if not raw:
            continue
        values, bad = folder_values(raw, lookup, vocab)
        problems.update((f"{row.get(FOLDER_LABEL_ORIGIN) or row.get('origin')}: {b}", None) for b in bad)
        by_md5[row["md5"]] = values
    if problems:
        shown = list(problems)[:50]
        raise StageError(f"the labelled scrape.folder has {len(problems)} problem(s); nothing was written:\n"
                         + "\n".join(f"  {p}" for p in shown) + "\nrename the folders or fix the CSV, then run the scrape "
                         "stage again (python -m pipeline scrape, or dvc repro)")
    return {fid: by_md5[md5] for fid, md5 in zip(index["face_id"], index["md5"]) if md5 in by_md5}


def merge_face(by_source: dict[str, dict[str, str]], precedence: list[str],
               vocab: VocabularyParams) -> tuple[dict[str, str], dict[str, str]]:
    """(values, sources) for one face: per attribute the first source in ``precedence`` that knows it."""
    values, sources = {}, {}
    for attr in attributes(vocab):
        known = ((by_source.get(s, {}).get(attr), s) for s in precedence)
        values[attr], sources[attr] = next(((v, s) for v, s in known if v not in (None, UNKNOWN)), (UNKNOWN, "none"))
    return values, sources


def known_tagged(tagged: dict[str, tuple[str, float]] | None) -> dict[str, str]:
    return {a: v for a, (v, _) in (tagged or {}).items() if v != UNKNOWN}


def multi_hot(values: dict[str, str], vocab: VocabularyParams) -> list[int]:
    slots = [int(values[g] == v) for g, vs in vocab.groups.items() for v in vs]
    return slots + [int(values[b] == "yes") for b in vocab.binary]


def read_tags(path: Path, vocab: VocabularyParams):
    from pipeline.core.inputs import read_parquet
    from pipeline.core.layout import PROB_PREFIX

    table = read_parquet(path, made_by="tag")
    missing = [t for t in vocab.tags() if PROB_PREFIX + t not in table.columns]
    if missing:
        raise StageError(f"{path} has no probabilities for {missing}: the vocabulary changed since it was "
                         "tagged; run the tag stage again")
    return table


def labels(params: LabelsParams, vocab: VocabularyParams, paths: PathsParams) -> LabelsResult:
    """Merge the label sources of every face of ``paths.faces`` into ``paths.labels`` (with its
    vocabulary and the conflicts beside it)."""
    import pandas as pd

    from pipeline.core.atomic import atomic_open, write_json, write_parquet
    from pipeline.core.layout import INDEX, MANIFEST, PROB_PREFIX
    from pipeline.labels.manual import read_manual

    faces_dir, tags_path, raw_dir = paths.faces, paths.tags, paths.raw
    from pipeline.core.inputs import read_parquet

    index = read_parquet(Path(faces_dir) / INDEX, made_by="crop")
    manifest_path = Path(raw_dir) / MANIFEST if raw_dir else None
    manifest = read_parquet(manifest_path, made_by="scrape") if manifest_path and manifest_path.exists() else None
    manual = read_manual(params.manual, vocab, index, manifest)  # raises before anything is written
    tags = read_tags(Path(tags_path), vocab)
    probs_by_face = {r["face_id"]: {t: r[PROB_PREFIX + t] for t in vocab.tags()}
                     for r in tags.to_dict("records")}

    booru = danbooru_labels(index, manifest, vocab) if "danbooru" in params.precedence else {}
    folder = folder_labels(index, manifest, vocab) if "folder" in params.precedence else {}
    result = LabelsResult(manual_faces=len(manual), tagged_faces=sum(f in probs_by_face for f in index["face_id"]),
                          danbooru_faces=len(booru), folder_faces=len(folder))
    rows, conflicts = [], []
    attrs = attributes(vocab)
    for fid in index["face_id"]:
        label = manual.get(fid)
        mvals = label.values if label else {}
        probs = probs_by_face.get(fid)
        tagged = tagger_values(probs, vocab, params.threshold) if probs is not None else None
        values, sources = merge_face({"manual": mvals, "folder": folder.get(fid, {}), "danbooru": booru.get(fid, {}),
                                      "i2v": known_tagged(tagged)},
                                     params.precedence, vocab)
        if tagged is not None:
            for attr, m in mvals.items():
                t, p = tagged[attr]
                if is_conflict(attr, m, t, p, vocab, params.conflict_confidence):
                    conflicts.append({"face_id": fid, "attribute": attr, "manual": m, "i2v": t,
                                      "i2v_prob": round(p, 4), "line": label.line})
        if sum(v != UNKNOWN for v in values.values()) < params.min_known:
            result.dropped += 1
            continue
        rows.append({"face_id": str(fid), **values, "multi_hot": multi_hot(values, vocab),
                     **{f"source_{a}": sources[a] for a in attrs}})
    columns = ["face_id", *attrs, "multi_hot", *(f"source_{a}" for a in attrs)]
    table = pd.DataFrame(rows, columns=columns)
    result.faces, result.conflicts = len(table), len(conflicts)
    result.balance = {a: {str(k): int(v) for k, v in table[a].value_counts().items()} for a in attrs}

    write_parquet(paths.labels, table)
    write_json(paths.labels_vocab, to_json(vocab))
    with atomic_open(paths.label_conflicts, "w") as f:
        pd.DataFrame(conflicts, columns=CONFLICT_COLUMNS).to_csv(f, index=False)
    return result


def balance_text(balance: dict[str, dict[str, int]]) -> str:
    return "\n".join(f"  {a}: " + ", ".join(f"{v}={n}" for v, n in counts.items()) for a, counts in balance.items())


def run_labels(params) -> LabelsResult:
    """The stage as the CLI, DVC and Prefect run it: merge, print the class balance, log it to MLflow."""
    from pipeline.core.atomic import sweep_outputs
    from pipeline.core.tracking import stage_run

    paths = params.paths
    sweep_outputs(paths.labels, paths.labels_vocab, paths.label_conflicts)  # temporaries a killed run left
    with stage_run("labels", params, params.labels.model_dump()) as mlflow:
        result = labels(params.labels, params.tag.vocabulary, params.paths)
        print(f"labels: class balance over {result.faces} faces\n{balance_text(result.balance)}")
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
            mlflow.log_metrics({f"balance.{a}.{v}": float(n) for a, c in result.balance.items() for v, n in c.items()})
    return result

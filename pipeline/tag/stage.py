"""Stage ``tag``: tag probabilities for every face crop -> ``paths.tags`` (``data/tags.parquet``).

One row per face: ``face_id``, ``content`` (sha1 of the crop file), ``tagged_with`` (the tagger's
fingerprint with the threshold and vocabulary), ``p:<tag>`` (float32) for every vocabulary tag,
and ``tags`` / ``tag_probs``: the tagger's general tags with p > ``tag.threshold``, most likely first.

Incremental: a face whose (id, content, tagged_with) is already in the table is not run again, so
re-cropping or adding faces only tags what changed. With ``tag.enabled: false`` the stage writes
the same table with no rows (the labels stage then uses manual labels and Danbooru tags only) and says how to enable it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.device import resolve_device
from pipeline.core.errors import StageError
from pipeline.core.layout import PROB_PREFIX
from pipeline.tag.params import TagParams

log = logging.getLogger(__name__)


@dataclass
class TagResult:
    faces: int = 0
    tagged: int = 0
    reused: int = 0
    enabled: bool = True
    device: str = "cpu"

    def summary(self) -> dict[str, int]:
        return {"faces": self.faces, "tagged": self.tagged, "reused": self.reused}


def run_key(fingerprint: str, params: TagParams) -> str:
    """What a row was computed with; rows with another key are computed again."""
    blob = json.dumps([fingerprint, params.threshold, params.vocabulary.tags()])
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def empty_table(params: TagParams):
    import pandas as pd

    cols = {"face_id": pd.Series(dtype=str), "content": pd.Series(dtype=str), "tagged_with": pd.Series(dtype=str)}
    cols.update({PROB_PREFIX + t: pd.Series(dtype="float32") for t in params.vocabulary.tags()})
    cols.update({"tags": pd.Series(dtype=object), "tag_probs": pd.Series(dtype=object)})
    return pd.DataFrame(cols)


def rows_for(tagger, probs, face_ids, contents, key: str, params: TagParams) -> list[dict]:
    import numpy as np

    index = {t: i for i, t in enumerate(tagger.tags)}
    vocab_idx = [index[t] for t in params.vocabulary.tags()]
    general = np.asarray(tagger.general)
    rows = []
    for fid, content, p in zip(face_ids, contents, probs):
        g = p[general]
        order = np.argsort(-g, kind="stable")
        keep = order[g[order] > params.threshold]
        row = {"face_id": fid, "content": content, "tagged_with": key}
        row.update({PROB_PREFIX + t: np.float32(p[i]) for t, i in zip(params.vocabulary.tags(), vocab_idx)})
        row.update({"tags": [tagger.tags[general[k]] for k in keep], "tag_probs": [float(g[k]) for k in keep]})
        rows.append(row)
    return rows


def predict_rows(tagger, params: TagParams, key: str, items: list[tuple[str, str, str]], desc: str = "tag") -> list[dict]:
    """Table rows for (face_id, file, content) items, in batches of ``tag.batch_size``."""
    from PIL import Image
    from tqdm import tqdm

    rows: list[dict] = []
    bs = params.batch_size
    for start in tqdm(range(0, len(items), bs), desc=desc, unit="batch", disable=not items):
        batch = items[start:start + bs]
        images = []
        for _, path, _ in batch:
            with Image.open(path) as im:
                im.load()
                images.append(im.copy())
        probs = tagger.predict(images)
        rows += rows_for(tagger, probs, [b[0] for b in batch], [b[2] for b in batch], key, params)
    return rows


def tag_shard(params: dict, device: str, items: list[tuple[str, str, str]]) -> list[dict]:
    """Rows for one shard of faces (a Dask task): loads the tagger where it runs."""
    from pipeline.tag.taggers import load_tagger

    p = TagParams.model_validate(params)
    tagger = load_tagger(p, device)
    return predict_rows(tagger, p, run_key(tagger.fingerprint, p), items, f"tag shard ({len(items)} faces)")


def tag(params: TagParams, faces_dir: str | Path, out_path: str | Path, map_shards=None, shards: int = 1) -> TagResult:
    """Tag the faces listed in ``faces_dir/index.parquet`` with ``tag.tagger``; with ``map_shards``
    the faces to tag go out as ``shards`` shards of whole batches (same rows as one process)."""
    import pandas as pd

    from pipeline.core.atomic import write_parquet
    from pipeline.core.inputs import read_parquet
    from pipeline.core.layout import INDEX
    from pipeline.core.vocab import check_tags

    faces = Path(faces_dir)
    index = read_parquet(faces / INDEX, made_by="crop")
    result = TagResult(faces=len(index), enabled=params.enabled)
    if not params.enabled:
        log.warning("tag: disabled (tag.enabled=false): writing an empty %s; labels come from manual labels "
                    "and Danbooru tags only. Enable with -S tag.enabled=true "
                    "(weights: tag.weights_dir or $BOORUGAN_CACHE/i2v)", out_path)
        write_parquet(out_path, empty_table(params))
        return result
    if (index["path"].fillna("").astype(str) == "").any():
        raise StageError(f"the tagger reads face files, and {faces / INDEX} lists faces cropped without them "
                         "(crop.pngs: false); set -S crop.pngs=true and run crop again, or leave tag.enabled off")
    import torch

    from pipeline.tag.taggers import load_tagger

    if params.num_threads:
        torch.set_num_threads(params.num_threads)
    result.device = resolve_device(params.device, "tag.device").type
    tagger = load_tagger(params, result.device)
    check_tags(params.vocabulary, tagger.tags, f"tagger {params.tagger!r}")
    key = run_key(tagger.fingerprint, params)

    contents = [hashlib.sha1((faces / p).read_bytes()).hexdigest() for p in index["path"]]
    old = pd.read_parquet(out_path) if Path(out_path).exists() else empty_table(params)
    current = set(zip(index["face_id"], contents))
    same_schema = set(old.columns) >= set(empty_table(params).columns)
    reusable = {(r.face_id, r.content) for r in old[["face_id", "content", "tagged_with"]].itertuples()
                if r.tagged_with == key and (r.face_id, r.content) in current} if same_schema else set()
    todo = [i for i, (fid, c) in enumerate(zip(index["face_id"], contents)) if (fid, c) not in reusable]
    items = [(index["face_id"].iloc[i], str(faces / index["path"].iloc[i]), contents[i]) for i in todo]
    if map_shards and items:
        from pipeline.core.shards import split

        args = [(params.model_dump(), result.device, chunk) for chunk in split(items, shards, align=params.batch_size)]
        rows = [r for shard_rows in map_shards(tag_shard, args) for r in shard_rows]
    else:
        rows = predict_rows(tagger, params, key, items, f"tag ({params.tagger}, {result.device})")
    kept_old = old[[(f, c) in reusable for f, c in zip(old["face_id"], old["content"])]] if len(old) else old
    table = pd.concat([kept_old, pd.DataFrame(rows, columns=empty_table(params).columns)], ignore_index=True)
    order = {f: i for i, f in enumerate(index["face_id"])}
    table = table.sort_values("face_id", key=lambda s: s.map(order)).reset_index(drop=True)
    for c in table.columns:
        if c.startswith(PROB_PREFIX):
            table[c] = table[c].astype("float32")
    write_parquet(out_path, table)
    result.tagged, result.reused = len(rows), len(kept_old)
    return result


def run_tag(params, map_shards=None, shards: int = 1) -> TagResult:
    """The stage as the CLI, DVC and Prefect run it: tag, then record the counts in MLflow."""
    from pipeline.core.atomic import sweep_outputs
    from pipeline.core.tracking import stage_run

    sweep_outputs(params.paths.tags)  # temporaries a killed run left
    logged = params.tag.model_dump(exclude={"vocabulary", "checksums"})
    with stage_run("tag", params, logged) as mlflow:
        result = tag(params.tag, params.paths.faces, params.paths.tags, map_shards, shards)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
            mlflow.set_tag("tag_device", result.device)
    return result

"""Face datasets (mapped from crop's packed store, or uint8 in memory: 10,000 64x64 faces are
123 MB), and the labels that conditional models train on.

Labels are integer codes per attribute (``-1`` = unknown), with the vocabulary kept beside them so
a checkpoint can turn "blue hair" back into a code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNKNOWN = ("unknown", "", "none", "nan")


@dataclass
class Faces:
    images: np.ndarray  # N x H x W x 3 uint8: in memory, or a facestore.StoreView over the mapped store
    ids: list[str]
    contents: list[str] | None = None  # per-face content ids (the crop index's ``content``), when known

    @property
    def digest(self) -> str:
        """Content id of the faces, in order: identifies the dataset for caches and MLflow tags. Built
        from per-face content ids (the crop index has them: no face is read), so faces in memory and
        the same faces in the store get the same id."""
        from pipeline.core.facestore import dataset_id, face_content

        contents = self.contents
        if contents is None:
            contents = [face_content(np.asarray(self.images[i])) for i in range(len(self.images))]
        return dataset_id(self.images.shape, contents)

    def subset(self, keep: np.ndarray) -> Faces:
        """The faces where ``keep`` is True; over the packed store a view of those rows (nothing read)."""
        from pipeline.core.facestore import StoreView

        rows = np.flatnonzero(keep)
        images = StoreView(self.images.store, self.images.rows[rows]) if isinstance(self.images, StoreView) else self.images[rows]
        contents = None if self.contents is None else [self.contents[i] for i in rows]
        return Faces(images, [self.ids[i] for i in rows], contents)


def holdout_mask(ids: list[str], fraction: float) -> np.ndarray:
    """True for the faces evaluation keeps from training (``evaluate.holdout``), chosen by a hash of
    each face id: a face stays on its side as the set grows, so a rerun after a scrape adds faces
    never trains on a face an earlier run held out, and no seed is involved."""
    if fraction <= 0:
        return np.zeros(len(ids), bool)
    draws = np.array([int(hashlib.md5(f"holdout:{i}".encode()).hexdigest()[:8], 16) for i in ids], dtype=np.float64)
    return draws / 2**32 < fraction


@dataclass
class Labels:
    codes: np.ndarray              # N x A int64; -1 where the attribute is unknown
    vocab: dict[str, list[str]]    # attribute -> its values, in code order

    @property
    def dim(self) -> int:
        """Length of the one-hot vector the conditional nets take."""
        return sum(len(v) for v in self.vocab.values())


def load_faces(faces_dir: str | Path, limit: int | None = None) -> Faces:
    """The faces of the crop index, in its order. From the packed store (faces.u8) they are a
    mapped view (nothing decoded, memory does not grow with N); a folder cropped before there was
    a store is read from its face files."""
    import pandas as pd

    from pipeline.core import facestore
    from pipeline.core.layout import INDEX

    faces_dir = Path(faces_dir)
    index_path = faces_dir / INDEX
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path} does not exist; run the crop stage first (python -m pipeline crop)")
    store = facestore.committed_store(faces_dir)
    columns = ["face_id", "path", *(("row", "content") if store else ())]
    index = pd.read_parquet(index_path, columns=columns)
    if limit is not None:
        index = index.iloc[:limit]
    ids = index["face_id"].astype(str).tolist()
    if store is not None:
        view = facestore.StoreView(facestore.open_store(*store), index["row"].to_numpy())
        return Faces(view, ids, index["content"].astype(str).tolist())
    return Faces(_decode(faces_dir, index["path"]), ids)


def _decode(faces_dir: Path, paths) -> np.ndarray:
    """Face files into one preallocated array (no list of arrays, then a stacked copy)."""
    from PIL import Image

    out = None
    for i, p in enumerate(paths):
        with Image.open(faces_dir / p) as im:
            a = np.asarray(im.convert("RGB"))
        if out is None:
            out = np.empty((len(paths), *a.shape), np.uint8)
        elif a.shape != out.shape[1:]:
            raise ValueError(f"faces in {faces_dir} have mixed sizes {sorted({a.shape, out.shape[1:]})}; "
                             "re-run crop with one crop.size")
        out[i] = a
    return out if out is not None else np.zeros((0, 0, 0, 3), np.uint8)


def load_image_folder(folder: str | Path, size: int, extensions=("jpg", "jpeg", "png", "webp", "bmp")) -> Faces:
    """Every image under ``folder`` (sorted), centre-cropped square and resized: any folder of faces."""
    from PIL import Image

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower().lstrip(".") in extensions)
    if not paths:
        raise FileNotFoundError(f"no images with extensions {extensions} under {folder}")
    arrays = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            arrays.append(np.asarray(im.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.LANCZOS)))
    return Faces(np.stack(arrays), [str(p.relative_to(folder)) for p in paths])


def encode_labels(frame, attrs: list[str]) -> Labels:
    """String attribute columns -> codes; the vocabulary is the sorted known values of each."""
    codes, vocab = [], {}
    for a in attrs:
        col = frame[a].fillna("unknown").astype(str)
        known = col.str.lower().isin(UNKNOWN)
        vocab[a] = sorted(col[~known].unique())
        lookup = {v: i for i, v in enumerate(vocab[a])}
        codes.append(np.where(known, -1, col.map(lookup).fillna(-1)).astype(np.int64))
    return Labels(np.stack(codes, 1), vocab)


def _manifest_labels(faces_dir: str | Path, raw_dir: str | Path):
    """The raw manifest's columns (the toy source writes hair_color and eye_color there) per face_id,
    joined through the crop index's md5; None when there is no manifest."""
    import pandas as pd

    from pipeline.core.layout import INDEX, MANIFEST

    manifest = Path(raw_dir) / MANIFEST
    if not manifest.exists():
        return None
    index = pd.read_parquet(Path(faces_dir) / INDEX)[["face_id", "md5"]]
    return index.merge(pd.read_parquet(manifest), on="md5", how="left").drop_duplicates("face_id").set_index("face_id")


def load_labels(faces: Faces, attrs: list[str], labels_path: str | Path, faces_dir: str | Path, raw_dir: str | Path) -> Labels:
    """Labels of ``faces`` for ``attrs``, in the faces' order.

    Per face and attribute: the value in ``labels_path`` (data/labels.parquet from the labels stage:
    face_id + one string column per attribute) where it is known; else the raw manifest's column of
    that name (the toy source knows every face's hair and eye colour, which an offline pipeline with
    tagging off and no manual labels would otherwise leave all unknown); else unknown (-1).
    """
    import pandas as pd

    sources = []
    labels_path = Path(labels_path)
    if labels_path.exists():
        sources.append((str(labels_path), pd.read_parquet(labels_path).drop_duplicates("face_id").set_index("face_id")))
    manifest = _manifest_labels(faces_dir, raw_dir)
    if manifest is not None:
        sources.append((f"{Path(raw_dir)} manifest", manifest))
    if not sources:
        raise FileNotFoundError(f"conditioning on {attrs} needs {labels_path} (python -m pipeline labels) "
                                f"or a raw manifest with those columns in {raw_dir}")
    missing = [a for a in attrs if not any(a in f.columns for _, f in sources)]
    if missing:
        have = sorted({c for _, f in sources for c in f.columns})
        raise ValueError(f"conditioning attributes {missing} are columns of none of {[w for w, _ in sources]}; they have {have}")
    merged = pd.DataFrame(index=pd.Index(faces.ids, name="face_id"))
    for a in attrs:
        col = pd.Series("unknown", index=merged.index, dtype=object)
        for _, frame in reversed(sources):  # the first source wins where it knows the value
            if a in frame.columns:
                vals = frame[a].reindex(merged.index)
                known = vals.notna() & ~vals.astype(str).str.lower().isin(UNKNOWN)
                col[known] = vals[known].astype(str)
        if not (col != "unknown").any():
            raise ValueError(f"no face has a known {a!r} in {[w for w, _ in sources]}: label faces "
                             f"(labels/manual.csv, or -S tag.enabled=true) or drop {a!r} from the model's conditioning")
        merged[a] = col
    return encode_labels(merged.reset_index(), attrs)


def toy_labelled_faces(n: int, size: int = 32, seed: int = 0) -> tuple[Faces, Labels]:
    """Procedural faces with known hair/eye colours, in memory: conditional models checked with no data."""
    import pandas as pd

    from pipeline.core.toyfaces import draw_face, sample_labels

    rng = np.random.default_rng(seed)
    hairs, eyes = sample_labels(rng, n)
    images = np.stack([np.asarray(draw_face(rng, size, h, e)) for h, e in zip(hairs, eyes)])
    faces = Faces(images, [f"toy{i}" for i in range(n)])
    return faces, encode_labels(pd.DataFrame({"hair_color": hairs, "eye_color": eyes}), ["hair_color", "eye_color"])


def sketches_of(images: np.ndarray, params=None, chunk: int = 512) -> np.ndarray:
    """XDoG sketches (N x H x W uint8) of faces, the inputs of sketch2image; chunked to bound memory."""
    from pipeline.core.sketch import xdog

    return np.concatenate([xdog(images[i:i + chunk], params) for i in range(0, len(images), chunk)])

"""Face datasets, loaded once into memory as uint8 (10,000 64x64 faces are 123 MB)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Faces:
    images: np.ndarray  # N x H x W x 3, uint8
    ids: list[str]

    @property
    def digest(self) -> str:
        """Content hash of the pixels: identifies the dataset for caches and MLflow tags."""
        h = hashlib.md5(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).data)
        return h.hexdigest()


def load_faces(faces_dir: str | Path, limit: int | None = None) -> Faces:
    import pandas as pd
    from PIL import Image

    from pipeline.crop import INDEX

    faces_dir = Path(faces_dir)
    index_path = faces_dir / INDEX
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path} does not exist; run the crop stage first (python -m pipeline crop)")
    index = pd.read_parquet(index_path)
    if limit is not None:
        index = index.iloc[:limit]
    arrays = []
    for p in index["path"]:
        with Image.open(faces_dir / p) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"faces in {faces_dir} have mixed sizes {sorted(sizes)}; re-run crop with one crop.size")
    return Faces(np.stack(arrays), index["face_id"].astype(str).tolist())

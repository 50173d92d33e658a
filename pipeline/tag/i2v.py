"""illustration2vec v2.0.0 as a tagger: files found or downloaded, the caffemodel converted once to a
cached ``state_dict``, batched inference (fp16 on the GPU).

The weights folder (``tag.weights_dir``, default ``$BOORUGAN_CACHE/i2v``) holds the release files
``illust2vec_tag_ver200.caffemodel`` and ``tag_list.json.gz`` (or an unpacked ``tag_list.json``).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.core.errors import StageError

log = logging.getLogger(__name__)
RELEASE = "https://github.com/rezoo/illustration2vec/releases/download/v2.0.0/"
CAFFEMODEL = "illust2vec_tag_ver200.caffemodel"
TAG_LIST = "tag_list.json.gz"
PREPROCESS_VERSION = "caffe-resize-v1"  # part of the fingerprint: change it when preprocessing changes
GENERAL = 512  # the first 512 outputs are general tags (then character, copyright, rating)


def weights_dir(params) -> Path:
    from pipeline.core.cache import cache_dir

    return Path(params.weights_dir) if params.weights_dir else cache_dir() / "i2v"


def missing_files_message(folder: Path, why: str) -> str:
    return (f"illustration2vec weights are not available ({why}). Download\n"
            f"  {RELEASE}{CAFFEMODEL}\n  {RELEASE}{TAG_LIST}\n"
            f"into {folder} (or set tag.weights_dir to the folder that has them), "
            "or turn the stage off with -S tag.enabled=false.")


def ensure_files(params) -> tuple[Path, Path]:
    """(caffemodel, tag list), downloading what is missing when tag.download allows it."""
    from pipeline.core.download import DownloadError, download

    folder = weights_dir(params)
    model = folder / CAFFEMODEL
    tags = next((p for p in (folder / TAG_LIST, folder / "tag_list.json") if p.exists()), folder / TAG_LIST)
    for path in (model, tags):
        if path.exists():
            continue
        if not params.download:
            raise StageError(missing_files_message(folder, f"{path.name} is missing and tag.download is false"))
        try:
            download(RELEASE + path.name, path, sha256=params.checksums.get(path.name))
        except DownloadError as e:
            raise StageError(missing_files_message(folder, str(e))) from None
    return model, tags


def read_tag_list(path: Path) -> list[str]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    tags = json.loads(raw.decode("utf-8"))
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise StageError(f"{path} is not a JSON list of tag names")
    return tags


def converted_state(model: Path):
    """The caffemodel as a torch state_dict, converted once and cached by the file's sha256."""
    import torch

    from pipeline.core.atomic import atomic_path
    from pipeline.core.cache import cache_dir
    from pipeline.core.download import sha256_of
    from pipeline.tag.caffemodel import read_caffemodel
    from pipeline.tag.i2v_net import state_dict_from_layers

    digest = sha256_of(model)
    cached = cache_dir() / "i2v" / "converted" / f"{model.stem}-{digest[:16]}.pt"
    if cached.exists():
        return torch.load(cached, weights_only=True), digest
    log.info("converting %s to a torch state_dict (once)", model)
    try:
        state = state_dict_from_layers(read_caffemodel(model))
    except ValueError as e:
        raise StageError(f"{model}: {e}") from None
    with atomic_path(cached) as tmp:
        torch.save(state, tmp)
    return state, digest


class I2VTagger:
    def __init__(self, net, tags: list[str], fingerprint: str, device: str, half: bool, batch_size: int):
        self.net, self.tags, self.fingerprint = net, tags, fingerprint
        self.general = list(range(min(GENERAL, len(tags))))
        self.device, self.batch_size = device, batch_size
        self.dtype = None
        if half and device.startswith("cuda"):
            import torch

            self.dtype = torch.float16
            self.net.half()

    def predict(self, images: Sequence) -> np.ndarray:
        import torch

        from pipeline.tag.i2v_preprocess import preprocess

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = torch.from_numpy(preprocess(images[i:i + self.batch_size])).to(self.device)
                if self.dtype is not None:
                    x = x.to(self.dtype)
                out.append(self.net(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.tags)), np.float32)


def load(params, device: str) -> I2VTagger:
    from pipeline.tag.i2v_net import I2VTagNet

    model, tag_path = ensure_files(params)
    tags = read_tag_list(tag_path)
    state, digest = converted_state(model)
    net = I2VTagNet.from_state_dict(state).eval().to(device)
    if net.outputs != len(tags):
        raise StageError(f"{model} has {net.outputs} outputs but {tag_path} names {len(tags)} tags")
    return I2VTagger(net, tags, f"i2v:{digest[:16]}:{PREPROCESS_VERSION}", device, params.half, params.batch_size)

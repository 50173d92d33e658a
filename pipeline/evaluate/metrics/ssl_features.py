"""A feature space for offline metrics: a small CNN trained to predict image rotation (Gidaris et
al. 2018) on the real faces themselves.

Inception weights cannot be downloaded here, and random CNN features are useless; features learnt
to tell which way up a face is capture eyes, hair and layout. The network is trained with a fixed
seed and budget and cached per (dataset, config), so every model is measured in the same space.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import torch
from torch import nn

from pipeline.core.cache import cache_dir
from pipeline.evaluate.params import FeatureNetParams

log = logging.getLogger(__name__)


class RotationNet(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 8 * w, 4, 2, 1), nn.BatchNorm2d(8 * w), nn.LeakyReLU(0.2, True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8 * w, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(images)
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1)


def rotate_batch(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate each image x[i] by k[i] quarter turns."""
    out = torch.empty_like(x)
    for r in range(4):
        sel = k == r
        if sel.any():
            out[sel] = torch.rot90(x[sel], r, dims=(2, 3))
    return out


def train_rotation_net(images: np.ndarray, cfg: FeatureNetParams, device: str = "cpu") -> RotationNet:
    from tqdm import tqdm

    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    pick = torch.randperm(len(images), generator=g)[: cfg.max_images].numpy()
    data = _to_float(images[np.sort(pick)])
    net = RotationNet(cfg.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    n = len(data)
    bs = min(cfg.batch_size, n)
    net.train()
    for _ in tqdm(range(cfg.epochs), desc="feature net (rotation)", unit="epoch"):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - bs + 1, bs):
            x = data[perm[i:i + bs]]
            k = torch.randint(0, 4, (len(x),), generator=g)
            x, k = rotate_batch(x, k).to(device), k.to(device)
            loss = loss_fn(net(x), k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def cache_key(dataset_digest: str, cfg: FeatureNetParams) -> str:
    blob = json.dumps({"data": dataset_digest, "cfg": cfg.model_dump(), "v": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_or_train(images: np.ndarray, dataset_digest: str, cfg: FeatureNetParams, device: str = "cpu") -> RotationNet:
    from pipeline.core.atomic import atomic_path

    path = cache_dir() / "feature_nets" / f"rotation-{cache_key(dataset_digest, cfg)}.pt"
    net = RotationNet(cfg.width)
    if path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        log.info("feature net from cache %s", path)
        return net.to(device).eval()
    net = train_rotation_net(images, cfg, device)
    with atomic_path(path) as tmp:
        torch.save(net.state_dict(), tmp)
    return net


def noise_distance(net: RotationNet, real_features: np.ndarray, dataset_digest: str, cfg: FeatureNetParams,
                   shape: tuple[int, ...], batch_size: int = 256, device: str = "cpu") -> float:
    """ssl_fd of uniform noise images (as many, and as large, as the generated ones; seed 0) against
    the real faces: the top of the scale. The same for every model of a dataset, so it is computed
    once and cached beside the feature net it was measured with."""
    import json

    from pipeline.core.atomic import write_json
    from pipeline.evaluate.metrics.frechet import frechet_between

    shape = tuple(int(s) for s in shape)
    key = cache_key(dataset_digest, cfg)
    path = cache_dir() / "feature_nets" / f"noise-{key}-{'x'.join(map(str, shape))}.json"
    if path.exists():
        return float(json.loads(path.read_text())["ssl_fd_noise"])
    noise = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    value = frechet_between(real_features, extract(net, noise, batch_size, device))
    write_json(path, {"ssl_fd_noise": value, "shape": shape})
    return value


@torch.no_grad()
def extract(net: RotationNet, images: np.ndarray | torch.Tensor, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Penultimate-layer features (8 x width dims) of NHWC uint8 images."""
    net = net.to(device).eval()
    out = [net.features(_to_float(images[i:i + batch_size]).to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float64)

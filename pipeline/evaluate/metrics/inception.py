"""FID, KID, Inception Score and precision/recall on Inception-v3 features, computed by torch-fidelity.

Conventions are torch-fidelity's (which match the original TensorFlow FID/IS code): uint8 images
resized to 299x299 with TF1-compatible bilinear interpolation, scaled (x - 128) / 128; pool3 2048-d
features for FID, KID and PR; the 1008-way logits (unbiased) for IS. Generated samples are quantised
to uint8 before this, as when saved to PNG. The real set's features are cached per dataset digest
and weights file, so every model is compared against one reference.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from pipeline.evaluate.params import InceptionParams

log = logging.getLogger(__name__)
FEATURES = ("2048", "logits_unbiased")


def load_extractor(weights: Path, device: str = "cpu"):
    """torch-fidelity's network on ``weights``. torch-fidelity unpickles the file with
    ``weights_only=False``; loading it with ``weights_only=True`` first refuses a file that would run code."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise ValueError(f"{weights} holds no Inception state_dict (no fc.weight)")
    del state

    return FeatureExtractorInceptionV3("inception-v3-compat", list(FEATURES),
                                       feature_extractor_weights_path=str(weights)).to(device)


def extract(net, images: np.ndarray, batch_size: int = 64, device: str = "cpu") -> dict[str, np.ndarray]:
    """NHWC uint8 -> {"2048": pool features, "logits_unbiased": logits} as float64 arrays."""
    import torch
    from tqdm import tqdm

    outs: dict[str, list] = {k: [] for k in FEATURES}
    with torch.no_grad():
        for i in tqdm(range(0, len(images), batch_size), desc="inception features", unit="batch", leave=False):
            x = torch.as_tensor(images[i:i + batch_size]).permute(0, 3, 1, 2).contiguous().to(device)
            for k, v in zip(FEATURES, net(x)):
                outs[k].append(v.double().cpu())
    return {k: torch.cat(v).numpy() for k, v in outs.items()}


def real_features_cached(net, real: np.ndarray, digest: str, weights: Path, batch_size: int, device: str,
                         cache: Path) -> dict[str, np.ndarray]:
    from pipeline.core.atomic import atomic_path

    key = hashlib.sha256(f"{digest}|{weights.stat().st_size}|{weights.name}|v1".encode()).hexdigest()[:24]
    path = cache / f"real-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in FEATURES}
    feats = extract(net, real, batch_size, device)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **feats)
    return feats


def scores(real: dict[str, np.ndarray], fake: dict[str, np.ndarray], cfg: InceptionParams, seed: int = 0) -> dict[str, float]:
    """torch-fidelity's math on precomputed features."""
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    r, f = torch.from_numpy(real["2048"]), torch.from_numpy(fake["2048"])
    fid = fid_statistics_to_metric(fid_features_to_statistics(r), fid_features_to_statistics(f), False)
    size = min(cfg.kid_subset_size, len(r), len(f))
    kid = kid_features_to_metric(r, f, kid_subsets=cfg.kid_subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    isc = isc_features_to_metric(torch.from_numpy(fake["logits_unbiased"]), splits=min(cfg.isc_splits, len(f)),
                                 rng_seed=seed)
    prc = prc_features_to_metric(f, r, prc_neighborhood=min(cfg.prc_neighborhood, len(r) - 1, len(f) - 1),
                                 save_cpu_ram=False, verbose=False)
    return {"fid": fid["frechet_inception_distance"], "kid": kid["kernel_inception_distance_mean"],
            "kid_std": kid["kernel_inception_distance_std"], "is": isc["inception_score_mean"],
            "is_std": isc["inception_score_std"], "precision": float(prc["precision"]), "recall": float(prc["recall"])}

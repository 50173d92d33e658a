"""How long does evaluating N generated 64x64 faces take, per metric, including generation?

Torch only (no mlflow, no prefect: the GPU machine has neither). Real faces are procedural toy faces
(pipeline.core.toyfaces), generated ones come from an untrained DCGAN (speed does not depend on training).
The Inception metrics run when --inception-weights points at torch-fidelity's weights file; the
rotation feature net is trained with the evaluate params (its cache is bypassed: --feature-epochs).

    python bench/eval_speed.py --n 10000 --device cuda [--inception-weights weights-inception-2015-12-05-6726825d.pth]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="generated (and real) faces")
    ap.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--feature-epochs", type=int, default=5)
    ap.add_argument("--inception-weights", default=None)
    args = ap.parse_args()

    import numpy as np
    import torch

    from models.zoo import build
    from pipeline.core.images import to_uint8
    from pipeline.core.toyfaces import HAIR_COLOURS, draw_face
    from pipeline.evaluate.metrics.c2st import c2st_accuracy
    from pipeline.evaluate.metrics.diversity import diversity
    from pipeline.evaluate.metrics.frechet import frechet_between
    from pipeline.evaluate.metrics.kid import kid
    from pipeline.evaluate.metrics.ssl_features import extract, train_rotation_net
    from pipeline.params import EvaluateParams, FeatureNetParams

    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    times: dict[str, float] = {}

    def timed(name, fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times[name] = time.perf_counter() - t
        return out

    rng = np.random.default_rng(0)
    hairs = list(HAIR_COLOURS)
    t = time.perf_counter()
    real = np.stack([np.asarray(draw_face(rng, 64, hairs[i % len(hairs)], "blue").convert("RGB")) for i in range(args.n)])
    print(f"{args.n} real toy faces drawn in {time.perf_counter() - t:.2f} s (not counted)")
    G, _ = build("dcgan", {"nz": 100, "ngf": 64, "ndf": 64}, 64, 3)
    G = G.to(dev)

    def generate():
        z = torch.randn(args.n, 100, device=dev, generator=torch.Generator(device=dev).manual_seed(0))
        with torch.no_grad():
            return to_uint8(torch.cat([G(c) for c in z.split(args.batch_size)]))

    fake = timed("generate", generate)
    cfg = EvaluateParams()
    net = timed("feature net training (once per dataset, cached)",
                lambda: train_rotation_net(real, FeatureNetParams(epochs=args.feature_epochs), dev))
    fr, ff = timed("ssl features", lambda: (extract(net, real, args.batch_size, dev), extract(net, fake, args.batch_size, dev)))
    timed("ssl_fd", lambda: frechet_between(fr, ff))
    timed("ssl_kid", lambda: kid(fr, ff, cfg.inception.kid_subsets, cfg.inception.kid_subset_size, device=dev))
    timed("c2st", lambda: c2st_accuracy(fr, ff, seeds=cfg.c2st.seeds, max_per_class=cfg.c2st.max_per_class,
                                        steps=cfg.c2st.steps, device=dev))
    timed("diversity", lambda: diversity(fr, ff, cfg.diversity.near_duplicate_quantile, cfg.diversity.max_samples))
    if args.inception_weights:
        from pipeline.evaluate.metrics import inception as inc

        ext = timed("inception load", lambda: inc.load_extractor(Path(args.inception_weights), dev))
        feats = timed("inception features (real+fake)",
                      lambda: (inc.extract(ext, real, 250, dev), inc.extract(ext, fake, 250, dev)))
        timed("fid+kid+is+pr", lambda: inc.scores(feats[0], feats[1], cfg.inception))
    total = sum(v for k, v in times.items() if "once per dataset" not in k)
    print(f"\nn={args.n} on {dev} ({torch.cuda.get_device_name() if dev.startswith('cuda') else os.cpu_count()} "
          f"{'' if dev.startswith('cuda') else 'CPU threads'}), torch {torch.__version__}")
    for k, v in times.items():
        print(f"  {k:48s} {v:8.2f} s")
    print(f"  {'total, excluding the cached feature net':48s} {total:8.2f} s")


if __name__ == "__main__":
    main()

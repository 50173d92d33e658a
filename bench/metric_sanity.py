"""Does the offline metric order things as it should? ssl_fd of known-quality sets vs real faces.

Real vs real (two halves) must be near 0, mild blur small, heavy blur larger, noise huge; a trained
generator lands between. Uses the same cached feature net as `evaluate` (same params, same data).

    python bench/metric_sanity.py --faces data/faces [--checkpoint runs/dcgan/checkpoint.pt] [-S key=value ...]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--checkpoint", action="append", default=[], help="generator checkpoints to score (repeatable)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("-S", dest="overrides", action="append", default=[])
    args = ap.parse_args()

    import numpy as np
    from PIL import Image, ImageFilter

    from pipeline.core.datasets import load_faces
    from pipeline.core.images import to_uint8
    from pipeline.evaluate.metrics.frechet import frechet_between
    from pipeline.evaluate.metrics.ssl_features import extract, load_or_train
    from pipeline.params import load_params
    from pipeline.train.checkpoint import load_generator

    params = load_params(args.params, args.overrides).evaluate
    faces = load_faces(args.faces)
    real = faces.images
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(real))
    a, b = real[perm[: len(real) // 2]], real[perm[len(real) // 2:]]
    t0 = time.perf_counter()
    net = load_or_train(real, faces.digest, params.feature_net)
    print(f"feature net ready in {time.perf_counter() - t0:.1f} s ({len(real)} real faces)")
    feats_a = extract(net, a)

    def blur(x, r):
        return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(r))) for im in x])

    sets = {"real (other half)": b, "real, blur r=1": blur(b, 1), "real, blur r=2": blur(b, 2),
            "uniform noise": rng.integers(0, 256, b.shape, dtype=np.uint8)}
    for ck in args.checkpoint:
        G, _ = load_generator(ck)
        sets[f"generator {ck}"] = to_uint8(G.sample(len(b), seed=0))
    print(f"{'set':60s} ssl_fd vs half of the real faces")
    for name, x in sets.items():
        print(f"{name:60s} {frechet_between(feats_a, extract(net, x)):10.3f}")


if __name__ == "__main__":
    main()

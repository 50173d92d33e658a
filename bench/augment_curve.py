"""DiffAugment on a small scrape: the same DCGAN with and without it, at equal steps, scored by
ssl_fd against real faces it never saw, every ``--every`` steps.

A user's ``make run`` gives about a thousand faces; this reproduces that from the shared faces:
``--train-faces`` drawn at random (seed 0) train the GAN, a disjoint ``--reference`` set of the
others is what ssl_fd compares samples with (so memorising the training faces does not score) and
what the feature net is trained on (fixed seed and budget, cached like evaluate's). Training runs
in segments of ``--every`` steps through the trainer's exact resume, so both runs see the same
batches and noise; only D's view differs.

    python bench/augment_curve.py --faces ../shared/data/anime-faces-64 --train-faces 1000 --steps 3000
    python bench/augment_curve.py --train-faces 10000 --reference 0 ...   # all faces, reference = all

torch, numpy, pillow, pydantic, pyyaml only (no MLflow, Prefect or DVC): runs on the GPU machine too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", default="../shared/data/anime-faces-64", help="a folder of face images")
    ap.add_argument("--size", type=int, default=32, help="train and score at this side (px)")
    ap.add_argument("--train-faces", type=int, default=1000)
    ap.add_argument("--reference", type=int, default=5000,
                    help="held-out faces ssl_fd compares with (0: the training faces themselves)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="DCGAN ngf = ndf")
    ap.add_argument("--policies", default="none,color+translation+cutout",
                    help="comma-separated; ops joined by + (none: no augmentation)")
    ap.add_argument("--eval-samples", type=int, default=1000)
    ap.add_argument("--feature-epochs", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench/out/augment", help="runs, grids and results.json go here")
    args = ap.parse_args()

    import numpy as np

    from pipeline.core.datasets import load_image_folder
    from pipeline.core.images import grid, save_png, to_uint8
    from pipeline.evaluate.metrics.frechet import frechet_between
    from pipeline.evaluate.metrics.ssl_features import extract, load_or_train
    from pipeline.params import FeatureNetParams, ModelSpec
    from pipeline.train.checkpoint import load_generator
    from pipeline.train.loop import train

    faces = load_image_folder(args.faces, args.size)
    perm = np.random.default_rng(0).permutation(len(faces.images))
    train_idx = perm[: args.train_faces]
    ref_idx = perm[args.train_faces: args.train_faces + args.reference] if args.reference else train_idx
    if len(ref_idx) < 2:
        raise SystemExit(f"{args.faces} has {len(faces.images)} images: too few for {args.train_faces} + a reference set")
    images, reference = faces.images[train_idx], faces.images[ref_idx]
    t0 = time.perf_counter()
    net = load_or_train(reference, f"augment-bench-{args.faces}-{args.size}-{len(ref_idx)}",
                        FeatureNetParams(epochs=args.feature_epochs), args.device)
    ref_feats = extract(net, reference, 256, args.device)
    noise = np.random.default_rng(1).integers(0, 256, (args.eval_samples, args.size, args.size, 3), dtype=np.uint8)
    noise_fd = frechet_between(ref_feats, extract(net, noise, 256, args.device))
    half = len(reference) // 2
    floor = frechet_between(extract(net, reference[:half], 256, args.device), extract(net, reference[half:], 256, args.device))
    print(f"{len(images)} training faces, {len(reference)} reference faces at {args.size} px; feature net "
          f"ready in {time.perf_counter() - t0:.0f} s; ssl_fd of uniform noise {noise_fd:.1f}, real halves {floor:.2f}")

    out = Path(args.out)
    curves: dict[str, list[tuple[int, float]]] = {}
    for policy in args.policies.split(","):
        ops = [] if policy == "none" else policy.split("+")
        run = out / f"train{len(images)}_{policy}"
        curves[policy] = []
        t0 = time.perf_counter()
        for step in range(args.every, args.steps + 1, args.every):
            spec = ModelSpec(arch="dcgan", steps=step, batch_size=args.batch_size, log_every=50, augment=ops,
                             net={"nz": 100, "ngf": args.width, "ndf": args.width})
            train(images, spec, run, seed=0, device=args.device, resume="auto")
            G, _ = load_generator(run / "checkpoint.pt", args.device)
            fake = to_uint8(G.sample(args.eval_samples, seed=0))
            fd = frechet_between(ref_feats, extract(net, fake, 256, args.device))
            curves[policy].append((step, fd))
            save_png(grid(fake[:64]), out / f"grid_train{len(images)}_{policy}_{step:05d}.png")
            print(f"  {policy:28s} step {step:6d}  ssl_fd {fd:8.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    names = list(curves)
    print(f"\n| step | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for i, (step, _) in enumerate(curves[names[0]]):
        print(f"| {step} | " + " | ".join(f"{curves[n][i][1]:.2f}" for n in names) + " |")
    for n in names:
        best_step, best = min(curves[n], key=lambda p: p[1])
        last = curves[n][-1][1]
        print(f"{n}: best {best:.2f} at step {best_step}, last {last:.2f} ({(last / best - 1) * 100:+.0f}% from best)")
    if len(names) == 2:
        a, b = (min(fd for _, fd in curves[n]) for n in names)
        print(f"best ssl_fd of {names[1]} vs {names[0]}: {abs(1 - b / a) * 100:.0f}% {'lower' if b < a else 'higher'}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_train{len(images)}.json").write_text(json.dumps(
        {"args": vars(args), "noise": noise_fd, "real_halves": floor, "curves": curves}, indent=1))


if __name__ == "__main__":
    main()

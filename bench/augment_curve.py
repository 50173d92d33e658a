"""Training choices on a small scrape, at equal steps (equal images shown), scored every ``--every``
steps by ssl_fd against real faces the model never saw and by the memorisation share (samples
closer to a training face than 99% of those unseen faces are; ~0.01 for a model drawing new faces).

``--variants`` names rows of ``VARIANTS``: plain DCGAN, fixed DiffAugment, adaptive augmentation
(ADA's p), DCGAN v3, R3GAN with the pairing loss and R1/R2 (with and without ADA). ``--init-from``
starts every variant from a checkpoint (transfer; ``--freeze-d`` layers of D kept).

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
    ap.add_argument("--variants", default="plain,diffaug,ada", help=f"comma-separated names of {sorted(VARIANTS)}")
    ap.add_argument("--gamma", type=float, default=0.05, help="R1 = R2 gamma of the r3gan variants")
    ap.add_argument("--ada-kimg", type=float, default=100.0, help="ADA: thousands of images for p to go 0 -> 1")
    ap.add_argument("--init-from", default=None, help="a checkpoint every variant starts from (transfer)")
    ap.add_argument("--freeze-d", type=int, default=0, help="with --init-from: D's first layers kept (FreezeD)")
    ap.add_argument("--train-offset", type=int, default=0,
                    help="skip this many faces of the seed-0 order before the training faces (a disjoint set "
                         "from another run's, e.g. the transfer source's)")
    ap.add_argument("--eval-samples", type=int, default=1000)
    ap.add_argument("--feature-epochs", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench/out/augment", help="runs, grids and results.json go here")
    args = ap.parse_args()

    import numpy as np

    from pipeline.core.datasets import load_image_folder
    from pipeline.core.images import grid, save_png, to_uint8
    from pipeline.evaluate.metrics.frechet import frechet_between
    from pipeline.evaluate.metrics.memorization import memorization
    from pipeline.evaluate.metrics.ssl_features import extract, load_or_train
    from pipeline.evaluate.params import FeatureNetParams
    from pipeline.train.checkpoint import load_generator
    from pipeline.train.loop import train
    from pipeline.train.params import ModelSpec

    faces = load_image_folder(args.faces, args.size)
    perm = np.random.default_rng(0).permutation(len(faces.images))
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    start = args.train_offset
    train_idx = perm[start: start + args.train_faces]
    rest = np.concatenate([perm[:start], perm[start + args.train_faces:]])
    ref_idx = rest[: args.reference] if args.reference else train_idx
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

    train_feats = extract(net, images, 256, args.device)
    out = Path(args.out)
    tag = f"train{len(images)}" + (f"_from_{Path(args.init_from).parent.name}" if args.init_from else "")
    curves: dict[str, list[tuple[int, float, float, float]]] = {}  # (step, ssl_fd, memorisation share, p)
    seconds: dict[str, float] = {}
    for name in args.variants.split(","):
        run = out / f"{tag}_{name}"
        curves[name] = []
        t0 = time.perf_counter()
        for step in range(args.every, args.steps + 1, args.every):
            spec = ModelSpec(**VARIANTS[name](args), steps=step, batch_size=args.batch_size, log_every=50,
                             init_from=args.init_from, freeze_d=args.freeze_d)
            summary = train(images, spec, run, seed=0, device=args.device, resume="auto", init_from=args.init_from)
            G, _ = load_generator(run / "checkpoint.pt", args.device)
            fake = to_uint8(G.sample(args.eval_samples, seed=0))
            fake_feats = extract(net, fake, 256, args.device)
            fd = frechet_between(ref_feats, fake_feats)
            copies = memorization(train_feats, ref_feats, fake_feats, quantile=0.01)[0]["memorization_share"]
            p = summary.get("final_augment_p", 0.0)
            curves[name].append((step, fd, copies, p))
            save_png(grid(fake[:64]), out / f"grid_{tag}_{name}_{step:05d}.png")
            print(f"  {name:10s} step {step:6d}  ssl_fd {fd:8.2f}  copies {copies:.3f}  p {p:.2f}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        seconds[name] = time.perf_counter() - t0

    names = list(curves)
    print(f"\nssl_fd (memorisation share) per step\n\n| step | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for i, (step, *_) in enumerate(curves[names[0]]):
        print(f"| {step} | " + " | ".join(f"{curves[n][i][1]:.2f} ({curves[n][i][2]:.3f})" for n in names) + " |")
    for n in names:
        best_step, best, copies, _ = min(curves[n], key=lambda r: r[1])
        last = curves[n][-1][1]
        print(f"{n}: best {best:.2f} at step {best_step} (copies {copies:.3f}), last {last:.2f} "
              f"({(last / best - 1) * 100:+.0f}% from best); {seconds[n]:.0f} s with scoring")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{tag}.json").write_text(json.dumps(
        {"args": vars(args), "noise": noise_fd, "real_halves": floor, "curves": curves, "seconds": seconds}, indent=1))


OPS = ["color", "translation", "cutout"]


def _dcgan(a, **kw) -> dict:
    return {"arch": "dcgan", "net": {"nz": 100, "ngf": a.width, "ndf": a.width, **kw.pop("net", {})}, **kw}


def _r3gan(a, **kw) -> dict:
    return {"arch": "r3gan", "loss": "rpgan", "r1": a.gamma, "r2": a.gamma, "beta1": 0.0, "beta2": 0.9,
            "net": {"nz": 64, "width": 2 * a.width, "blocks": 1, "expansion": 2, "group_width": 16}, **kw}


VARIANTS = {  # name -> ModelSpec fields, from the command line's sizes
    "plain": lambda a: _dcgan(a),
    "diffaug": lambda a: _dcgan(a, augment=OPS),
    "ada": lambda a: _dcgan(a, augment=OPS, augment_p="auto", ada={"kimg": a.ada_kimg}),
    "dcgan_v3": lambda a: _dcgan(a, d_threshold=0.2, net={"d_bn_first": True, "g_act": "leaky"}),
    "r3gan": lambda a: _r3gan(a),
    "r3gan_ada": lambda a: _r3gan(a, augment=OPS, augment_p="auto", ada={"kimg": a.ada_kimg}),
}


if __name__ == "__main__":
    main()

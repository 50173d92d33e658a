"""Do the conditional families obey the labels? Train each on toy faces (known hair colours) and
measure, every ``--check-every`` steps, the share of samples whose hair ``pipeline.core.toyfaces.hair_colour_of``
reads as the colour asked for; stop a family at ``--target`` or ``--max-steps``.

Training goes through the project's trainer (resuming its own checkpoint between checks, so the
result is one continuous run) and sampling through ``pipeline.train.sampling.Sampler`` (EMA G), as the
``sample`` command does. Prints one markdown row per check and a summary table.

    python bench/zoo_toy.py [--families dcgan_tags,acgan,cgan] [--faces 2048] [--size 32] [--out /tmp/zoo_toy]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline/, not an installed one

# small nets for a 2-core CPU; the families are those of params.yaml, only narrower
NETS = {"dcgan_tags": {"nz": 32, "ngf": 32, "ndf": 32}, "acgan": {"nz": 32, "ngf": 32, "ndf": 32},
        "cgan": {"nz": 32, "hidden": 128, "layers": 2, "dropout": 0.3, "d_labels": "projection"}}
EXTRA = {"acgan": {"aux_fake": False, "dragan": 0.0}}  # as params.yaml's acgan entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="dcgan_tags,acgan,cgan")
    ap.add_argument("--faces", type=int, default=2048, help="toy faces to train on")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--check-every", type=int, default=100)
    ap.add_argument("--max-steps", type=int, default=1500)
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--samples", type=int, default=64, help="samples per hair colour per check")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--from-step", type=int, default=0, help="continue the checkpoints in --out from this step")
    ap.add_argument("--out", default="/tmp/zoo_toy")
    ap.add_argument("--spec", action="append", default=[],
                    help="family:key=value of the training spec, e.g. acgan:aux_fake=false")
    ap.add_argument("--net", action="append", default=[], help="family:key=value, e.g. cgan:d_labels=projection")
    args = ap.parse_args()

    import numpy as np
    import torch

    from pipeline.core.datasets import toy_labelled_faces
    from pipeline.core.toyfaces import hair_colour_of
    from pipeline.evaluate.sample import toy_hair_accuracy
    from pipeline.params import ModelSpec
    from pipeline.train.checkpoint import load_generator
    from pipeline.train.loop import train

    torch.set_num_threads(args.threads)
    for table, items in ((NETS, args.net), (EXTRA, args.spec)):
        for item in items:
            fam, kv = item.split(":", 1)
            key, value = kv.split("=", 1)
            table.setdefault(fam, {})[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    faces, labels = toy_labelled_faces(args.faces, args.size, seed=0)
    hair = [labels.vocab["hair_color"][c] for c in labels.codes[:, 0]]
    truth = float(np.mean([hair_colour_of(im) == h for im, h in zip(faces.images, hair)]))
    print(f"toy faces: {args.faces} at {args.size}px; hair_colour_of on the real faces agrees with their label: {truth:.3f}")
    results = {"real_faces_agreement": truth}
    print("| family | step | seconds | mean hair accuracy | worst colour |")
    print("|---|---|---|---|---|")
    for fam in args.families.split(","):
        out = Path(args.out) / fam
        started, step, acc = time.perf_counter(), args.from_step, {"mean": 0.0}
        while step < args.max_steps and acc["mean"] < args.target:
            step += args.check_every
            spec = ModelSpec(arch=fam, steps=step, batch_size=args.batch_size, log_every=args.check_every,
                             conditioning=["hair_color", "eye_color"], net=NETS[fam], **EXTRA.get(fam, {}))
            resume = "auto" if step > args.check_every or args.from_step else "never"
            train(faces.images, spec, out, labels=labels, seed=0, device="cpu", resume=resume)
            sampler, _ = load_generator(out / "checkpoint.pt", "cpu", ema=True)
            acc = toy_hair_accuracy(sampler, n=args.samples, seed=1)
            worst = min((k for k in acc if k != "mean"), key=acc.get)
            seconds = time.perf_counter() - started
            print(f"| {fam} | {step} | {seconds:.0f} | {acc['mean']:.3f} | {worst} {acc[worst]:.2f} |", flush=True)
        results[fam] = {"steps": step, "seconds": round(time.perf_counter() - started, 1), "accuracy": acc}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Tagging throughput (images/s) of the full-size illustration2vec tag network with random weights:
preprocessing alone, the network alone, and both (what the tag stage pays per face).

Random weights cost the same as the real ones; only a few batches are timed (after one warm-up
batch), so the CPU numbers come in a minute on 2 cores.

    python bench/tag_speed.py [--device cpu|cuda] [--batch-size 8] [--batches 3] [--threads N] [--no-half]
"""

from __future__ import annotations

import argparse
import time


def timed(fn, repeats: int) -> float:
    """Seconds per call, averaged over ``repeats`` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=3, help="timed batches (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--face-size", type=int, default=64, help="side of the synthetic face crops (resized to 224)")
    ap.add_argument("--no-half", action="store_true", help="fp32 on the GPU too")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from pipeline.tag.i2v_net import FULL_WIDTHS, I2VTagNet
    from pipeline.tag.i2v_preprocess import preprocess

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = I2VTagNet(FULL_WIDTHS).eval().to(args.device)
    half = args.device.startswith("cuda") and not args.no_half
    if half:
        net.half()
    rng = np.random.default_rng(0)
    faces = [Image.fromarray(rng.integers(0, 256, (args.face_size, args.face_size, 3), dtype=np.uint8))
             for _ in range(args.batch_size)]
    x = torch.from_numpy(preprocess(faces)).to(args.device)
    if half:
        x = x.half()

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def forward():
        with torch.inference_mode():
            net(x)
        sync()

    def both():
        batch = torch.from_numpy(preprocess(faces)).to(args.device)
        with torch.inference_mode():
            net(batch.half() if half else batch).cpu()
        sync()

    bs = args.batch_size
    t_pre = timed(lambda: preprocess(faces), args.batches)
    t_net = timed(forward, args.batches)
    t_all = timed(both, args.batches)
    params = sum(p.numel() for p in net.parameters())
    print(f"i2v tag net: {params / 1e6:.1f} M params, {net.outputs} outputs; device {args.device}"
          f"{' fp16' if half else ' fp32'}, torch threads {torch.get_num_threads()}, batch {bs}, "
          f"{args.batches} timed batches, faces {args.face_size}px")
    print(f"preprocess : {bs / t_pre:8.1f} images/s")
    print(f"network    : {bs / t_net:8.1f} images/s")
    print(f"both       : {bs / t_all:8.1f} images/s  (network share {t_net / t_all:.0%})")


if __name__ == "__main__":
    main()

"""How fast ``boorugan play`` answers: a grid of 64 faces from a DCGAN-size G (the reference's
nz=100, ngf=64, 64 px) on this machine's CPU, drawn alone (``Models.grid``) and as the page gets it
(POST /api/generate through the real uvicorn server: draw, 65 PNGs with text chunks, JSON).

The G is trained for one step on random pictures: its speed does not depend on what it learned.

    python bench/play_speed.py [--repeats 10] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="play-speed-") as tmp:
        run(Path(tmp), args)


def run(tmp: Path, args) -> None:
    import numpy as np
    import requests
    import torch

    from pipeline.params import load_params
    from pipeline.play.models import Models
    from pipeline.train.loop import train

    params = load_params(ROOT / "params.yaml", [f"paths.runs={tmp / 'runs'}", "tracking.enabled=false", "play.device=cpu"])
    spec = params.model("dcgan").model_copy(update={"steps": 1, "batch_size": 64})
    images = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    train(images, spec, tmp / "runs" / "dcgan", device="cpu", resume="never")
    models = Models(params.paths.runs, "cpu")
    models.grid("dcgan", 0, args.count)  # load once: the page keeps models loaded
    draw = []
    for seed in range(args.repeats):
        t = time.perf_counter()
        models.grid("dcgan", seed, args.count)
        draw.append(time.perf_counter() - t)

    from pipeline.play.server import bind, make_server, url_of

    sock = bind("127.0.0.1", 0)
    server = make_server(params, models)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = url_of(sock)
    page = []
    try:
        for seed in range(args.repeats):
            t = time.perf_counter()
            r = requests.post(url + "api/generate", json={"model": "dcgan", "seed": seed, "count": args.count}, timeout=60)
            r.raise_for_status()
            page.append(time.perf_counter() - t)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    n = sum(p.numel() for p in models.load("dcgan").sampler.G.parameters())
    print(f"DCGAN G ({n / 1e6:.2f} M params, nz={spec.net['nz']}, ngf={spec.net['ngf']}, 64 px), {args.count} faces, "
          f"CPU, {torch.get_num_threads()} torch threads, {args.repeats} repeats:")
    print(f"  draw alone (Models.grid):   median {statistics.median(draw) * 1000:.0f} ms, max {max(draw) * 1000:.0f} ms")
    print(f"  POST /api/generate (HTTP):  median {statistics.median(page) * 1000:.0f} ms, max {max(page) * 1000:.0f} ms "
          f"({len(r.content) / 1024:.0f} KiB JSON)")


if __name__ == "__main__":
    main()

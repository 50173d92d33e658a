"""Training speed: the pytorch/examples DCGAN setup against the project's trainer, then every family.

1. The reference, written out here as pytorch/examples ``dcgan/main.py`` runs it: PNG files on disk
   read by an ImageFolder (torchvision's, with Resize/CenterCrop/ToTensor/Normalize; a plain PIL
   dataset when torchvision is absent), a DataLoader with 2 workers, fp32 eager, D ending in
   Sigmoid + BCELoss, nz 100, ngf = ndf = 64, Adam 2e-4 (0.5, 0.999), the losses read with
   ``.item()`` every step. Against it, ``pipeline.train.loop.train`` on the same geometry and batch
   size with its fast path (``train.fast: auto``; on CUDA: data on the GPU, bf16 autocast,
   channels_last, fused Adam, one CUDA graph per step). Images/s of both, the ratio, and the model
   FLOPs utilisation: FLOPs per image per step counted by ``torch.utils.flop_counter`` on one
   fp32 training step (2.48 GFLOP for the 64 px DCGAN), times images/s, over the bf16 dense
   tensor peak of the GPU (table below; ``--peak-tflops`` for another).
2. Every model of ``train.enabled`` in params.yaml (one of each family and a threshold variant) at
   its own batch size: the trainer with ``train.fast: off`` (fp32 eager) against the fast path.

The trainer is timed between its own log points (one host sync each), after ``--warmup`` steps
(cuDNN autotuning, CUDA graph capture); its dataset is the faces repeated to one epoch longer than
the run, so no epoch-end grid or checkpoint falls inside the timed window. Needs torch, numpy,
pillow, pyyaml and pydantic (pipeline/params.py); not MLflow, Prefect or DVC.

    python bench/train_speed.py                                  # GPU: batch 128 and 1024, 200 steps
    python bench/train_speed.py --device cpu --steps 8 --warmup 2 --batch-sizes 16 --faces 256
    python bench/train_speed.py --data ../shared/data/anime-faces-64 --markdown /tmp/train_speed.md
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline/, not an installed one

try:
    import numpy as np
    import torch
    from torch import nn

    from pipeline.core.datasets import Labels, sketches_of, toy_labelled_faces
    from pipeline.train.fastpath import FastOptions
    from pipeline.params import load_params
    from pipeline.core.device import resolve_device
    from pipeline.train.loop import Batch, gan_step, make_gan, train
except ModuleNotFoundError as e:  # the GPU machine has torch but maybe not pydantic: carry its wheels
    sys.exit(f"bench/train_speed.py needs {e.name}: pip install it, or on a machine without internet carry wheels "
             f"(pydantic, pydantic-core, annotated-types, typing-inspection) and put them on PYTHONPATH")

ROOT = Path(__file__).resolve().parents[1]
# bf16 dense tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name() (vendor datasheets)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10": 125.0, "RTX 4090": 165.0}


# --------------------------------------------------------------------------------------------
# (a) the reference


class RefGenerator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        chans = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            layers += [nn.ConvTranspose2d(a, b, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
                       nn.BatchNorm2d(b), nn.ReLU(True)]
        self.main = nn.Sequential(*layers, nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for m in (1, 2, 4):
            layers += [nn.Conv2d(ndf * m, ndf * m * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * m * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.main = nn.Sequential(*layers, nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1)


def ref_init(m: nn.Module) -> None:
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class PngFolder(torch.utils.data.Dataset):
    """ImageFolder's job without torchvision: decode, scale to [-1, 1]."""

    def __init__(self, root: Path):
        self.files = sorted(root.glob("*/*.png"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
        return x.div(255).sub(0.5).div(0.5), 0


def png_dataset(images: np.ndarray, root: Path):
    from PIL import Image

    (root / "faces").mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(root / "faces" / f"{i:06d}.png")
    size = images.shape[1]
    try:
        import torchvision.datasets as dset
        import torchvision.transforms as T
    except ImportError:
        return PngFolder(root), "PIL dataset"
    tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return dset.ImageFolder(root=str(root), transform=tf), "torchvision ImageFolder"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reference(dataset, batch: int, steps: int, warmup: int, dev: torch.device, workers: int) -> float:
    """images/s of the reference loop over ``steps`` steps after ``warmup``."""
    torch.manual_seed(0)
    netG, netD = RefGenerator().to(dev), RefDiscriminator().to(dev)
    netG.apply(ref_init)
    netD.apply(ref_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    done, started = 0, None
    while done < warmup + steps:
        for real, _ in loader:
            if done == warmup:
                sync(dev)
                started = time.perf_counter()
            real = real.to(dev)
            netD.zero_grad()
            out = netD(real)
            err_real = criterion(out, torch.full((real.shape[0],), 1.0, device=dev))
            err_real.backward()
            d_x = out.mean().item()
            fake = netG(torch.randn(real.shape[0], 100, 1, 1, device=dev))
            out = netD(fake.detach())
            err_fake = criterion(out, torch.full((real.shape[0],), 0.0, device=dev))
            err_fake.backward()
            d_g_z1 = out.mean().item()
            optD.step()
            netG.zero_grad()
            out = netD(fake)
            err_g = criterion(out, torch.full((real.shape[0],), 1.0, device=dev))
            err_g.backward()
            d_g_z2 = out.mean().item()
            optG.step()
            _ = (err_real + err_fake).item(), err_g.item(), d_x, d_g_z1, d_g_z2  # the reference prints these
            done += 1
            if done == warmup + steps:
                break
    sync(dev)
    return steps * batch / (time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# (b) the project's trainer


class Clock:
    """Trainer callback: when each log point (a host sync) was reached."""

    def __init__(self):
        self.marks: list[tuple[int, float]] = []

    def on_start(self, *a):
        pass

    def on_log(self, step, stats):
        self.marks.append((step, time.perf_counter()))

    def on_epoch_end(self, *a):
        pass

    def on_end(self, *a):
        pass


def project(spec, data: dict, batch: int, steps: int, warmup: int, device: str, fast: FastOptions) -> tuple[float, dict]:
    """images/s of ``pipeline.train.loop.train`` between the log point after ``warmup`` and the last one."""
    every = max(1, min(10, steps // 4))
    warmup = -(-warmup // every) * every
    total = warmup + steps - steps % every
    n = batch * (total + 1)  # one epoch longer than the run: no epoch end inside the timed window
    pick = np.arange(n) % len(data["images"])
    spec = spec.model_copy(update=dict(steps=total, batch_size=batch, log_every=every, checkpoint_every=None, ema=True))
    labels = Labels(data["codes"][pick], data["vocab"]) if spec.conditioning else None
    sketches = data["sketches"][pick] if spec.family == "sketch" else None
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        summary = train(data["images"][pick], spec, out, labels=labels, sketches=sketches, device=device,
                        resume="never", fast=fast, callbacks=(clock,))
    (s0, t0), (s1, t1) = next(m for m in clock.marks if m[0] >= warmup), clock.marks[-1]
    return (s1 - s0) * batch / (t1 - t0), summary


def flops_per_image(spec, size: int) -> float:
    """FLOPs of one fp32 training step (D on real and fake, D's update, G's update) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    gan = make_gan(spec, size, 3, torch.device("cpu"), seed=0)
    b = Batch(torch.rand(4, 3, size, size) * 2 - 1, z=torch.randn(4, gan.nz))
    with FlopCounterMode(display=False) as counter:
        gan_step(gan, b)
    return counter.get_total_flops() / 4


def peak_tflops(dev: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, f"{override:g} TFLOP/s (--peak-tflops)"
    if dev.type != "cuda":
        return None, "n/a (no tensor peak for a CPU)"
    name = torch.cuda.get_device_name(dev)
    for key, peak in PEAK_BF16_TFLOPS.items():
        if key in name:
            return peak, f"{peak:g} TFLOP/s bf16 dense ({key})"
    return None, f"n/a ({name} not in the table; pass --peak-tflops)"


def toy_data(n: int, size: int) -> dict:
    faces, labels = toy_labelled_faces(n, size, seed=0)
    return {"images": faces.images, "codes": labels.codes, "vocab": labels.vocab}


def folder_data(folder: str, n: int, size: int) -> dict:
    """Real faces; conditional families get random toy labels (their speed does not depend on them)."""
    from pipeline.core.datasets import load_image_folder

    images = load_image_folder(folder, size).images[:n]
    _, labels = toy_labelled_faces(64, 16, seed=0)
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, len(v), len(images)) for v in labels.vocab.values()], 1).astype(labels.codes.dtype)
    return {"images": images, "codes": codes, "vocab": labels.vocab}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (autotuning, graph capture)")
    ap.add_argument("--batch-sizes", default="128,1024", help="DCGAN vs reference at each of these")
    ap.add_argument("--data", help="folder of face images (default: procedural toy faces)")
    ap.add_argument("--faces", type=int, default=10_000, help="distinct faces (PNG files for the reference)")
    ap.add_argument("--workers", type=int, default=2, help="the reference's DataLoader workers")
    ap.add_argument("--models", help="comma-separated train.models entries (default: train.enabled); '' to skip")
    ap.add_argument("--fast", default="auto", choices=["auto", "on"], help="on: also on a CPU (autocast, channels_last)")
    ap.add_argument("--peak-tflops", type=float, help="the device's peak for MFU, if not in the table")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--markdown", help="also write the tables here, as a RESULTS.md section")
    args = ap.parse_args()
    args.size = 64  # the reference's geometry (its nets have exactly 64 px worth of layers)
    logging.basicConfig(level=logging.WARNING)

    dev = resolve_device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    params = load_params(args.params)
    data = folder_data(args.data, args.faces, args.size) if args.data else toy_data(args.faces, args.size)
    dcgan = params.model("dcgan").model_copy(update=dict(net={"nz": 100, "ngf": 64, "ndf": 64}))
    flops = flops_per_image(dcgan, args.size)
    peak, peak_note = peak_tflops(dev, args.peak_tflops)
    fast = FastOptions(fast=args.fast)

    def mfu(ips: float) -> str:
        return f"{100 * ips * flops / (peak * 1e12):.1f}%" if peak else "n/a"

    lines = [f"Device: {name}; torch {torch.__version__}; {len(data['images'])} {'faces from ' + args.data if args.data else 'toy faces'} "
             f"at {args.size} px; {args.steps} timed steps after {args.warmup}. DCGAN: {flops / 1e9:.3g} GFLOP per image "
             f"per step (torch.utils.flop_counter, fp32 step); MFU against {peak_note}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        dataset, how = png_dataset(data["images"], Path(tmp))
        lines += [f"DCGAN, reference ({how} of PNG files, DataLoader {args.workers} workers, fp32 eager, Sigmoid + "
                  f"BCELoss) vs the project's trainer (train.fast: {args.fast}):", "",
                  "| batch | reference images/s | trainer images/s | ratio | reference MFU | trainer MFU | trainer path |",
                  "|---|---|---|---|---|---|---|"]
        print("\n".join(lines), flush=True)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            ref = reference(dataset, batch, args.steps, args.warmup, dev, args.workers)
            ips, summary = project(dcgan, data, batch, args.steps, args.warmup, str(dev), fast)
            row = (f"| {batch} | {ref:,.0f} | {ips:,.0f} | {ips / ref:.2f}x | {mfu(ref)} | {mfu(ips)} | "
                   f"{summary['fast_path']} |")
            print(row, flush=True)
            lines.append(row)

    names = params.train.enabled if args.models is None else [m for m in args.models.split(",") if m]
    if names:
        head = ["", "Every family at its params.yaml batch size: fp32 eager (train.fast: off) vs the fast path:", "",
                "| model | family | batch | fp32 eager images/s | fast images/s | ratio | fast path |", "|---|---|---|---|---|---|---|"]
        print("\n".join(head), flush=True)
        lines += head
        if any(params.model(m).family == "sketch" for m in names):
            data["sketches"] = sketches_of(data["images"])
        for m in names:
            spec = params.model(m)
            eager, _ = project(spec, data, spec.batch_size, args.steps, args.warmup, str(dev), FastOptions(fast="off"))
            quick, summary = project(spec, data, spec.batch_size, args.steps, args.warmup, str(dev), fast)
            row = (f"| {m} | {spec.family} | {spec.batch_size} | {eager:,.0f} | {quick:,.0f} | {quick / eager:.2f}x | "
                   f"{summary['fast_path']} |")
            print(row, flush=True)
            lines.append(row)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
        print(f"\nwrote {args.markdown}")


if __name__ == "__main__":
    main()

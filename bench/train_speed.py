"""Training speed: the pytorch/examples DCGAN setup against the project's trainer, then every family.

1. The reference, written out here as pytorch/examples ``dcgan/main.py`` runs it: PNG files on disk
   read by an ImageFolder (torchvision's, with Resize/CenterCrop/ToTensor/Normalize; a plain PIL
   dataset when torchvision is absent), a DataLoader with 2 workers, ``cudnn.benchmark = True``,
   fp32 eager, D ending in Sigmoid + BCELoss, nz 100, ngf = ndf = 64, Adam 2e-4 (0.5, 0.999), the
   losses read with ``.item()`` every step. Its workers persist across epochs, so none is forked
   inside the timed window (10,000 faces at batch 1024 end an epoch every 9 steps). Beside it the
   same fp32 loop on batches indexed from a tensor already on the device (what the PNG decoding
   costs), and ``pipeline.train.loop.train`` on the same geometry and batch size with its fast path
   (``train.fast: auto``; on CUDA: data on the GPU, bf16 autocast, channels_last, fused Adam, one
   CUDA graph per step). Images/s, the ratios, and the model FLOPs utilisation: FLOPs per image per
   step counted by ``torch.utils.flop_counter`` on one fp32 training step (2.48 GFLOP for the 64 px
   DCGAN), times images/s, over the dense tensor peak of the GPU for the run's data type: TF32 for
   the fp32 loops (cuDNN convolves fp32 in TF32 by default), bf16 for the fast path (table below;
   ``--peak-tflops`` for another GPU). Global backend flags are put back after every row.
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

    from pipeline.core.datasets import Labels, sketches_of
    from pipeline.core.device import resolve_device
    from pipeline.params import load_params
    from pipeline.train.families import FAMILIES, Batch
    from pipeline.train.fastpath import FastOptions
    from pipeline.train.loop import gan_step, make_gan, train
except ModuleNotFoundError as e:  # the GPU machine has torch but maybe not pydantic: carry its wheels
    sys.exit(f"bench/train_speed.py needs {e.name}: pip install it, or on a machine without internet carry wheels "
             f"(pydantic, pydantic-core, annotated-types, typing-inspection) and put them on PYTHONPATH")

ROOT = Path(__file__).resolve().parents[1]
# dense tensor-core peaks, TFLOP/s (bf16, tf32), from the vendor datasheets (their sparsity figures
# halved), by the model's name as a whole word in torch.cuda.get_device_name(); the longest name
# that matches wins ("H100 PCIe" before "H100", "L40S" before "L40" before "L4", "A100" is not "A10")
PEAK_TFLOPS = {"H200 NVL": (835.0, 417.5), "H200": (989.0, 494.5), "H100 NVL": (835.0, 417.5),
               "H100 PCIe": (756.0, 378.0), "H100": (989.0, 494.5), "A100": (312.0, 156.0), "L40S": (362.0, 183.0),
               "L40": (181.0, 90.5), "L4": (121.0, 60.0), "A10": (125.0, 62.5), "RTX 4090": (165.2, 82.6)}


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
    """images/s of the reference loop over ``steps`` steps after ``warmup``, PNG files through a DataLoader."""
    if len(dataset) < batch:
        sys.exit(f"the reference needs at least one batch of PNG files: --faces {len(dataset)} < batch {batch}")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)

    def batches():
        while True:
            for real, _ in loader:
                yield real

    return _reference_loop(batches(), batch, steps, warmup, dev)


def reference_resident(images: np.ndarray, batch: int, steps: int, warmup: int, dev: torch.device) -> float:
    """The same fp32 loop on batches indexed from the faces already on the device (no decoding, no loader)."""
    images = images[np.arange(max(len(images), batch)) % len(images)]  # at least one batch
    data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)

    def batches():
        while True:
            for idx in torch.randperm(len(data), device=dev, generator=gen).split(batch)[:len(data) // batch]:
                yield data.index_select(0, idx).float().div_(127.5).sub_(1)

    return _reference_loop(batches(), batch, steps, warmup, dev)


def _reference_loop(batches, batch: int, steps: int, warmup: int, dev: torch.device) -> float:
    """pytorch/examples' training step, ``cudnn.benchmark`` on as it sets it (put back afterwards)."""
    torch.manual_seed(0)
    netG, netD = RefGenerator().to(dev), RefDiscriminator().to(dev)
    netG.apply(ref_init)
    netD.apply(ref_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    done, started = 0, None
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        for real in batches:
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
    finally:
        torch.backends.cudnn.benchmark = saved
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
    sketches = data["sketches"][pick] if FAMILIES[spec.family].sketches else None
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


def gpu_model(name: str) -> str | None:
    """The PEAK_TFLOPS key naming this GPU: the longest that appears in its name as whole words."""
    import re

    hits = [k for k in PEAK_TFLOPS if re.search(rf"(?<![A-Za-z0-9]){re.escape(k)}(?![A-Za-z0-9])", name)]
    return max(hits, key=len) if hits else None


def peak_tflops(dev: torch.device, override: float | None) -> tuple[dict[str, float], str]:
    """{"bf16": peak, "tf32": peak} of the device (empty: unknown), and a note saying where they come from."""
    if override:
        return {"bf16": override, "tf32": override}, f"{override:g} TFLOP/s for every data type (--peak-tflops)"
    if dev.type != "cuda":
        return {}, "n/a (no tensor peak for a CPU)"
    name = torch.cuda.get_device_name(dev)
    key = gpu_model(name)
    if key is None:
        return {}, f"n/a ({name} not in the table; pass --peak-tflops)"
    bf16, tf32 = PEAK_TFLOPS[key]
    return {"bf16": bf16, "tf32": tf32}, f"{key}: {bf16:g} TFLOP/s bf16, {tf32:g} TFLOP/s tf32, dense"


def fp32_kind() -> str:
    """The peak an fp32 convolutional loop is held to: cuDNN runs fp32 convolutions as TF32 unless told not to."""
    return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"


def mfu(ips: float, flops: float, peaks: dict[str, float], kind: str) -> float | None:
    """Model FLOPs utilisation in %, against the peak of ``kind`` (bf16 | tf32); None when there is none."""
    return round(100 * ips * flops / (peaks[kind] * 1e12), 2) if kind in peaks else None


def toy_data(n: int, size: int) -> dict:
    """Procedural faces with hair and eye colours (pipeline/core/toyfaces.py), coded as datasets.encode_labels
    codes them, without pandas (the GPU machine has none)."""
    from pipeline.core.toyfaces import draw_face, sample_labels

    rng = np.random.default_rng(0)
    hairs, eyes = sample_labels(rng, n)
    images = np.stack([np.asarray(draw_face(rng, size, h, e)) for h, e in zip(hairs, eyes)])
    vocab = {"hair_color": sorted(set(hairs)), "eye_color": sorted(set(eyes))}
    codes = np.stack([[vocab["hair_color"].index(h) for h in hairs], [vocab["eye_color"].index(e) for e in eyes]], 1)
    return {"images": images, "codes": codes.astype(np.int64), "vocab": vocab}


def folder_data(folder: str, n: int, size: int) -> dict:
    """Real faces; conditional families get random toy labels (their speed does not depend on them)."""
    from pipeline.core.datasets import load_image_folder

    images = load_image_folder(folder, size).images[:n]
    vocab = toy_data(64, 16)["vocab"]
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, len(v), len(images)) for v in vocab.values()], 1).astype(np.int64)
    return {"images": images, "codes": codes, "vocab": vocab}


def dcgan_row(dataset, data: dict, spec, batch: int, steps: int, warmup: int, dev: torch.device, workers: int,
              fast: FastOptions, flops: float, peaks: dict[str, float]) -> dict:
    """The reference as it ships, the same fp32 nets on device-resident batches, and the trainer's fast path."""
    ref = reference(dataset, batch, steps, warmup, dev, workers)
    resident = reference_resident(data["images"], batch, steps, warmup, dev)
    ips, summary = project(spec, data, batch, steps, warmup, str(dev), fast)
    fast_kind = "bf16" if "bf16 autocast" in summary["fast_path"] else fp32_kind()
    return {"batch": batch, "reference_ips": round(ref, 1), "resident_fp32_ips": round(resident, 1), "trainer_ips": round(ips, 1),
            "trainer_vs_reference": round(ips / ref, 2), "trainer_vs_resident_fp32": round(ips / resident, 2),
            "reference_mfu_pct": mfu(ref, flops, peaks, fp32_kind()),
            "resident_fp32_mfu_pct": mfu(resident, flops, peaks, fp32_kind()),
            "trainer_mfu_pct": mfu(ips, flops, peaks, fast_kind), "trainer_mfu_against": fast_kind,
            "trainer_path": summary["fast_path"], "cuda_graph": summary["cuda_graph"]}


def family_row(name: str, spec, data: dict, steps: int, warmup: int, dev: torch.device, fast: FastOptions) -> dict:
    """One model at its own batch size: fp32 eager (train.fast: off) against the fast path."""
    eager, _ = project(spec, data, spec.batch_size, steps, warmup, str(dev), FastOptions(fast="off"))
    quick, summary = project(spec, data, spec.batch_size, steps, warmup, str(dev), fast)
    return {"model": name, "family": spec.family, "batch": spec.batch_size, "eager_fp32_ips": round(eager, 1),
            "fast_ips": round(quick, 1), "ratio": round(quick / eager, 2), "fast_path": summary["fast_path"],
            "cuda_graph": summary["cuda_graph"]}


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}%"


DCGAN_TABLE = ["| batch | reference images/s | fp32 on-device images/s | trainer images/s | vs reference | vs fp32 on-device | "
               "reference MFU | fp32 on-device MFU | trainer MFU | trainer path |", "|---|---|---|---|---|---|---|---|---|---|"]
FAMILY_TABLE = ["| model | family | batch | fp32 eager images/s | fast images/s | ratio | fast path |",
                "|---|---|---|---|---|---|---|"]


def dcgan_line(r: dict) -> str:
    return (f"| {r['batch']} | {r['reference_ips']:,.0f} | {r['resident_fp32_ips']:,.0f} | {r['trainer_ips']:,.0f} | "
            f"{r['trainer_vs_reference']:.2f}x | {r['trainer_vs_resident_fp32']:.2f}x | {pct(r['reference_mfu_pct'])} | "
            f"{pct(r['resident_fp32_mfu_pct'])} | {pct(r['trainer_mfu_pct'])} ({r['trainer_mfu_against']}) | "
            f"{r['trainer_path']} |")


def family_line(r: dict) -> str:
    return (f"| {r['model']} | {r['family']} | {r['batch']} | {r['eager_fp32_ips']:,.0f} | {r['fast_ips']:,.0f} | "
            f"{r['ratio']:.2f}x | {r['fast_path']} |")


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
    peaks, peak_note = peak_tflops(dev, args.peak_tflops)
    fast = FastOptions(fast=args.fast)

    faces = f"{len(data['images'])} {'faces from ' + args.data if args.data else 'toy faces'}"
    lines = [f"Device: {name}; torch {torch.__version__}; {faces} at {args.size} px; {args.steps} timed steps after "
             f"{args.warmup}. DCGAN: {flops / 1e9:.3g} GFLOP per image per step (torch.utils.flop_counter, fp32 step); "
             f"MFU against {peak_note}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        dataset, how = png_dataset(data["images"], Path(tmp))
        lines += [f"DCGAN, reference ({how} of PNG files, DataLoader {args.workers} persistent workers, cudnn.benchmark, "
                  f"fp32 eager, Sigmoid + BCELoss), the same fp32 loop on faces already on the device, and the project's "
                  f"trainer (train.fast: {args.fast}):", "", *DCGAN_TABLE]
        print("\n".join(lines), flush=True)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            r = dcgan_row(dataset, data, dcgan, batch, args.steps, args.warmup, dev, args.workers, fast, flops, peaks)
            row = dcgan_line(r)
            print(row, flush=True)
            lines.append(row)

    names = params.train.enabled if args.models is None else [m for m in args.models.split(",") if m]
    if names:
        head = ["", "Every family at its params.yaml batch size: fp32 eager (train.fast: off) vs the fast path:", "",
                *FAMILY_TABLE]
        print("\n".join(head), flush=True)
        lines += head
        if any(FAMILIES[params.model(m).family].sketches for m in names):
            data["sketches"] = sketches_of(data["images"])
        for m in names:
            row = family_line(family_row(m, params.model(m), data, args.steps, args.warmup, dev, fast))
            print(row, flush=True)
            lines.append(row)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
        print(f"\nwrote {args.markdown}")


if __name__ == "__main__":
    main()

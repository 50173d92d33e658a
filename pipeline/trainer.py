"""The GAN training loop. Needs torch and numpy only: tracking comes in through callbacks, so the
same loop runs on a machine with no MLflow/Prefect/DVC (the GPU box) and under every caller.

Losses are summed on the device and read back every ``log_every`` steps: no host sync per step.
"""

from __future__ import annotations

import copy
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import StageError
from pipeline.images import grid, save_png, to_uint8
from pipeline.params import ModelSpec

STATS = ("loss_d", "loss_g", "d_real", "d_fake")


class Callback(Protocol):
    def on_log(self, step: int, stats: dict[str, float]) -> None: ...
    def on_epoch_end(self, epoch: int, step: int, grid_path: Path) -> None: ...
    def on_end(self, summary: dict[str, Any], checkpoint: Path) -> None: ...


class TrainingDiverged(StageError):
    """Losses became NaN/inf; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("train.device is 'cuda' but torch sees no CUDA device; use -S train.device=auto or cpu")
    return torch.device(name)


@dataclass
class GAN:
    """Networks, optimisers and the bookkeeping a checkpoint must restore."""

    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    nz: int
    step: int = 0
    epoch: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def make_gan(spec: ModelSpec, image_size: int, channels: int, device: torch.device) -> GAN:
    from models.registry import build

    G, D = build(spec.arch, spec.net, image_size, channels)
    G, D = G.to(device), D.to(device)
    betas = (spec.beta1, spec.beta2)
    return GAN(G, D, torch.optim.Adam(G.parameters(), lr=spec.lr, betas=betas),
               torch.optim.Adam(D.parameters(), lr=spec.lr, betas=betas), nz=spec.net["nz"],
               meta={"arch": spec.arch, "net": dict(spec.net), "image_size": image_size, "channels": channels})


def gan_step(gan: GAN, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """One D update then one G update (non-saturating loss, on logits); returns the STATS on device."""
    d_real = gan.D(real)
    fake = gan.G(z)
    d_fake = gan.D(fake.detach())
    loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    gan.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    gan.opt_d.step()

    d_gen = gan.D(fake)
    loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    gan.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gan.opt_g.step()
    return torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(d_real).mean().detach(),
                        torch.sigmoid(d_fake).mean().detach()])


@torch.no_grad()
def generate(G: torch.nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Samples with batch statistics, as the reference DCGAN draws them, on a copy so the
    running BatchNorm statistics of the trained G are not touched."""
    g = copy.deepcopy(G).train()
    return torch.cat([g(chunk) for chunk in z.split(batch_size)])


def save_checkpoint(gan: GAN, path: Path) -> None:
    from pipeline.atomic import atomic_path

    state = {"G": gan.G.state_dict(), "D": gan.D.state_dict(), "opt_g": gan.opt_g.state_dict(),
             "opt_d": gan.opt_d.state_dict(), "step": gan.step, "epoch": gan.epoch, "meta": gan.meta,
             "torch_rng": torch.get_rng_state()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """G from a checkpoint. ``weights_only=True``: a checkpoint from elsewhere cannot run code."""
    from models.registry import build

    state = torch.load(path, map_location=device, weights_only=True)
    meta = state["meta"]
    G, _ = build(meta["arch"], meta["net"], meta["image_size"], meta["channels"])
    G.load_state_dict(state["G"])
    return G.to(device), meta


def train(images: np.ndarray, spec: ModelSpec, out_dir: str | Path, *, seed: int = 0,
          device: str = "auto", callbacks: tuple[Callback, ...] = ()) -> dict[str, Any]:
    """Train ``spec`` on NHWC uint8 ``images``; write samples, losses.csv and checkpoint.pt to ``out_dir``."""
    out = Path(out_dir)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(dev)
    n, channels, size, _ = data.shape
    gan = make_gan(spec, size, channels, dev)
    batch = min(spec.batch_size, n)
    per_epoch = n // batch
    total = spec.steps if spec.steps is not None else spec.epochs * per_epoch
    gen = torch.Generator(device=dev).manual_seed(seed)
    fixed_z = torch.randn(64, gan.nz, generator=gen, device=dev)

    sums = torch.zeros(len(STATS), device=dev)
    pending = 0
    started = time.perf_counter()
    ckpt = out / "checkpoint.pt"
    last: dict[str, float] = {}
    with open(out / "losses.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("step", "epoch", *STATS))
        while gan.step < total:
            perm = torch.randperm(n, generator=gen, device=dev)
            for i in range(per_epoch):
                real = data[perm[i * batch:(i + 1) * batch]].float().div_(127.5).sub_(1)
                z = torch.randn(batch, gan.nz, generator=gen, device=dev)
                sums += gan_step(gan, real, z)
                gan.step += 1
                pending += 1
                if pending == spec.log_every or gan.step == total:
                    last = dict(zip(STATS, (sums / pending).tolist()))  # the one sync per log_every steps
                    sums.zero_()
                    pending = 0
                    if not all(np.isfinite(v) for v in last.values()):
                        raise TrainingDiverged(f"losses became {last} at step {gan.step}; the last good checkpoint "
                                               f"({ckpt}) is kept. Lower the learning rate or change the seed.")
                    writer.writerow((gan.step, gan.epoch + 1, *(f"{last[k]:.6g}" for k in STATS)))
                    f.flush()
                    for cb in callbacks:
                        cb.on_log(gan.step, last)
                if gan.step >= total:
                    break
            gan.epoch += 1
            grid_path = save_png(grid(to_uint8(generate(gan.G, fixed_z, batch))), out / "samples" / f"epoch_{gan.epoch:03d}.png")
            save_checkpoint(gan, ckpt)
            for cb in callbacks:
                cb.on_epoch_end(gan.epoch, gan.step, grid_path)
    seconds = time.perf_counter() - started
    summary = {"steps": gan.step, "epochs": gan.epoch, "images": n, "batch_size": batch, "seconds": round(seconds, 3),
               "images_per_second": round(gan.step * batch / seconds, 2), "device": str(dev), **{f"final_{k}": v for k, v in last.items()}}
    for cb in callbacks:
        cb.on_end(summary, ckpt)
    return summary

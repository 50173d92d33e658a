"""The GAN training loop, one for every family of the zoo. Needs torch and numpy only: tracking
comes in through callbacks, so the same loop runs on a machine with no MLflow/Prefect/DVC (the GPU
box) and under every caller.

A family (models/registry.py) only changes how a batch becomes D's and G's losses (``FAMILIES``);
the update rules, thresholds, EMA, checkpoints and guards are shared. No host sync per step:
losses are summed on the device and read every ``log_every`` steps, a threshold skip is decided on
the device (``update``), and all randomness comes from one device generator whose state is saved.
On CUDA the same step runs through the fast path (pipeline/train/fastpath.py: bf16 autocast,
channels_last, fused Adam, one CUDA graph per step); under torchrun it runs data-parallel
(pipeline/train/distributed.py).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from models.sampler import Sampler, one_hot
from pipeline.train.distributed import Dist
from pipeline.core.device import resolve_device
from pipeline.core.errors import StageError
from pipeline.train.fastpath import FastOptions, GraphedStep, Plan, choose
from pipeline.core.images import grid, save_png, to_uint8
from pipeline.params import ModelSpec

log = logging.getLogger(__name__)
STATS = ("loss_d", "loss_g", "d_real", "d_fake", "d_updated", "g_updated")
RESUMABLE_CHANGES = ("epochs", "steps", "log_every", "checkpoint_every")  # spec keys that may differ on resume


class Callback(Protocol):
    def on_start(self, total_steps: int, done_steps: int) -> None: ...
    def on_log(self, step: int, stats: dict[str, float]) -> None: ...
    def on_epoch_end(self, epoch: int, step: int, grid_path: Path) -> None: ...
    def on_end(self, summary: dict[str, Any], checkpoint: Path) -> None: ...


class TrainingDiverged(StageError):
    """Losses became NaN/inf or G collapsed; the last good checkpoint is kept."""


@dataclass
class GAN:
    """Networks, optimisers and the bookkeeping a checkpoint must restore."""

    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    spec: ModelSpec
    gen: torch.Generator                     # every random draw of training (batches' z, labels, penalties)
    G_ema: torch.nn.Module | None = None
    sizes: list[int] = field(default_factory=list)  # label vocabulary size per attribute
    step: int = 0
    epoch: int = 0                           # epochs begun (a checkpoint mid-epoch counts it)
    meta: dict[str, Any] = field(default_factory=dict)
    dist: Dist = field(default_factory=Dist)
    G_run: torch.nn.Module | None = None     # G / D as the step calls them (DDP-wrapped); None: G / D
    D_run: torch.nn.Module | None = None

    @property
    def nz(self) -> int:
        return getattr(self.G, "nz", 0)

    @property
    def g(self) -> torch.nn.Module:
        return self.G if self.G_run is None else self.G_run

    @property
    def d(self) -> torch.nn.Module:
        return self.D if self.D_run is None else self.D_run

    def d_no_sync(self) -> contextlib.AbstractContextManager:
        """G's update runs D too; under DDP its gradients for D are thrown away, so not averaged."""
        return self.D_run.no_sync() if hasattr(self.D_run, "no_sync") else contextlib.nullcontext()


@dataclass
class Batch:
    real: torch.Tensor                       # N x C x H x W in [-1, 1]
    z: torch.Tensor | None = None
    codes: torch.Tensor | None = None        # N x A, -1 unknown
    c: torch.Tensor | None = None            # one-hot of codes
    sketch: torch.Tensor | None = None       # N x 1 x H x W in [-1, 1]


def init_adam_state(opt: torch.optim.Optimizer) -> None:
    """Create Adam's state now (one step with zero gradients moves nothing; its count is reset), so a
    threshold skip can restore it and the step stays capturable in a CUDA graph later."""
    params = [p for g in opt.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    for p in params:
        opt.state[p]["step"].zero_()
    opt.zero_grad(set_to_none=True)


def adam_flags(opt: torch.optim.Optimizer, device: torch.device, fused: bool = False) -> None:
    """Capturable on CUDA (step count on the device), fused when the fast path asks. Applied again
    after loading a checkpoint, which brings the flags of the machine that wrote it."""
    on_device = device.type == "cuda"
    for group in opt.param_groups:
        group["capturable"], group["fused"] = on_device, fused or None  # as the constructor leaves them
        group["foreach"] = False if fused else None
        for p in group["params"]:
            if "step" in opt.state.get(p, {}):
                step = opt.state[p]["step"]
                opt.state[p]["step"] = step.to(p.device if on_device or fused else "cpu", torch.float32)


def make_gan(spec: ModelSpec, image_size: int, channels: int, device: torch.device, seed: int,
             vocab: dict[str, list[str]] | None = None, fused: bool = False) -> GAN:
    from models.registry import build

    sizes = [len(v) for v in (vocab or {}).values()]
    G, D = build(spec.arch, spec.net, image_size, channels, sum(sizes))
    G, D = G.to(device), D.to(device)
    kw = dict(lr=spec.lr, betas=(spec.beta1, spec.beta2), capturable=device.type == "cuda", fused=fused or None)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), **kw), torch.optim.Adam(D.parameters(), **kw)
    init_adam_state(opt_g)
    init_adam_state(opt_d)
    meta = {"arch": spec.arch, "family": spec.family, "net": dict(spec.net), "image_size": image_size,
            "channels": channels, "vocab": vocab or {}, "spec": spec.model_dump(), "seed": seed}
    return GAN(G, D, opt_g, opt_d, spec, torch.Generator(device=device).manual_seed(seed),
               G_ema=copy.deepcopy(G).requires_grad_(False) if spec.ema else None, sizes=sizes, meta=meta)


# ---------------------------------------------------------------------------------------------
# losses per family: (gan, batch) -> fake; (gan, batch, fake.detach()) -> (loss_d, real logits,
# fake logits); (gan, batch, fake) -> loss_g. D returns logits everywhere (stable under autocast).


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """In fp32 whatever autocast gave the logits (a bf16 target of 0.9 would be 0.898)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def grouped_ce(logits: torch.Tensor, codes: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Cross-entropy per attribute (its slice of the logits), unknown codes ignored; NaN-free when a
    batch has no known value (the count is clamped on the device, not checked on the host)."""
    total = logits.new_zeros(())
    for k, chunk in enumerate(logits.float().split(sizes, 1)):
        y = codes[:, k]
        total = total + F.cross_entropy(chunk, y, ignore_index=-1, reduction="sum") / (y >= 0).sum().clamp_min(1)
    return total


def dragan_penalty(D: Callable, real: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DRAGAN (Kodali et al. 2017): unit gradient norm of D around perturbed real images."""
    noise = torch.rand(real.shape, generator=gen, device=real.device)
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=real.device)
    x = (real + alpha * 0.5 * real.std() * noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x)[0].sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _fake(gan: GAN, b: Batch) -> torch.Tensor:
    if b.sketch is not None:
        return gan.g(b.sketch)
    return gan.g(b.z) if b.c is None else gan.g(b.z, b.c)


def _adv_d(gan: GAN, b: Batch, fake: torch.Tensor):
    real_t = 1.0 - gan.spec.label_smoothing
    if gan.spec.family == "sketch":
        r, f = gan.d(b.sketch, b.real), gan.d(b.sketch, fake)
    elif gan.spec.family == "conditional":
        r, f = gan.d(b.real, b.c), gan.d(fake, b.c)
    else:
        r, f = gan.d(b.real), gan.d(fake)
    if gan.spec.family != "acgan":
        return bce(r, real_t) + bce(f, 0.0), r, f
    (r, rc), (f, fc) = r, f
    aux = grouped_ce(rc, b.codes, gan.sizes)
    if gan.spec.aux_fake:
        aux = aux + grouped_ce(fc, b.codes, gan.sizes)
    loss = bce(r, real_t) + bce(f, 0.0) + gan.spec.aux_weight * aux
    if gan.spec.dragan:  # the bare D: its parameters' gradients still reach DDP's hooks in the one backward
        loss = loss + gan.spec.dragan * dragan_penalty(gan.D, b.real, gan.gen)
    return loss, r, f


def _adv_g(gan: GAN, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    fam = gan.spec.family
    if fam == "sketch":
        return bce(gan.d(b.sketch, fake), 1.0) + gan.spec.l1_weight * F.l1_loss(fake.float(), b.real)
    if fam == "conditional":
        return bce(gan.d(fake, b.c), 1.0)
    if fam == "acgan":
        f, fc = gan.d(fake)
        return bce(f, 1.0) + gan.spec.aux_weight * grouped_ce(fc, b.codes, gan.sizes)
    return bce(gan.d(fake), 1.0)


def update(opt: torch.optim.Optimizer, loss: torch.Tensor, threshold: float | None,
           mean: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Backward and step; with a threshold, keep the step only where loss > threshold.

    The decision stays on the device: the step is taken, then parameters and Adam state are put
    back with ``torch.where`` when it is skipped (zeroing the gradients instead would still move
    Adam's momentum). Costs a copy of both, only for threshold variants. Returns 1.0 / 0.0.
    ``mean`` averages the loss over DDP ranks first, so all ranks decide alike.
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if threshold is None:
        opt.step()
        return loss.new_ones(())
    decided_on = loss.detach().float() if mean is None else mean(loss.detach().float().clone())
    keep = decided_on > threshold
    tensors = [t for g in opt.param_groups for p in g["params"] for t in (p, *opt.state[p].values())]
    saved = [t.detach().clone() for t in tensors]
    opt.step()
    with torch.no_grad():
        for t, s in zip(tensors, saved):
            t.copy_(torch.where(keep.to(t.device), t, s))
    return keep.float()


def gan_step(gan: GAN, b: Batch, autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> torch.Tensor:
    """One D update then one G update (non-saturating loss); returns the STATS (fp32) on the device.
    ``autocast``: context for the forward passes (the fast path's bf16); backward runs outside it."""
    mean = gan.dist.mean_ if gan.dist.active else None
    with autocast():
        fake = _fake(gan, b)
        loss_d, r, f = _adv_d(gan, b, fake.detach())
    d_ok = update(gan.opt_d, loss_d, gan.spec.d_threshold, mean)
    with autocast(), gan.d_no_sync():
        loss_g = _adv_g(gan, b, fake)
    g_ok = update(gan.opt_g, loss_g, gan.spec.g_threshold, mean)
    return torch.stack([loss_d.detach().float(), loss_g.detach().float(), torch.sigmoid(r.detach().float()).mean(),
                        torch.sigmoid(f.detach().float()).mean(), d_ok, g_ok])


@torch.no_grad()
def ema_update(gan: GAN) -> None:
    """EMA of G's weights; the decay ramps up from 0 so a short run's EMA is not the initial G."""
    if gan.G_ema is None:
        return
    decay = min(gan.spec.ema_decay, (1 + gan.step) / (10 + gan.step))
    torch._foreach_lerp_(list(gan.G_ema.parameters()), list(gan.G.parameters()), 1.0 - decay)
    if buffers := list(gan.G.buffers()):  # BatchNorm statistics, copied (InstanceNorm nets have none)
        torch._foreach_copy_(list(gan.G_ema.buffers()), buffers)


@torch.no_grad()
def generate(G: torch.nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Samples with batch statistics, as the reference DCGAN draws them, on a copy so the
    running BatchNorm statistics of the trained G are not touched."""
    g = copy.deepcopy(G).train()
    return torch.cat([g(chunk) for chunk in z.split(batch_size)])


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_snapshot(gan: GAN, path: Path) -> None:
    """G (and its EMA) at this step, without D or optimiser state: what evaluating an earlier epoch
    needs, at a fraction of a full checkpoint's size."""
    from pipeline.core.atomic import atomic_path

    state = {"G": gan.G.state_dict(), "G_ema": gan.G_ema.state_dict() if gan.G_ema is not None else None,
             "step": gan.step, "epoch": gan.epoch, "meta": gan.meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_checkpoint(gan: GAN, path: Path) -> None:
    from pipeline.core.atomic import atomic_path

    state = {"G": gan.G.state_dict(), "D": gan.D.state_dict(), "opt_g": gan.opt_g.state_dict(),
             "opt_d": gan.opt_d.state_dict(), "G_ema": gan.G_ema.state_dict() if gan.G_ema is not None else None,
             "step": gan.step, "epoch": gan.epoch, "meta": gan.meta, "gen": gan.gen.get_state(), "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state() if gan.gen.device.type == "cuda" else None}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """``weights_only=True``: a checkpoint from elsewhere cannot run code."""
    return torch.load(path, map_location=device, weights_only=True)


def restore(gan: GAN, state: dict) -> None:
    gan.G.load_state_dict(state["G"])
    gan.D.load_state_dict(state["D"])
    gan.opt_g.load_state_dict(state["opt_g"])
    gan.opt_d.load_state_dict(state["opt_d"])
    if gan.G_ema is not None and state["G_ema"] is not None:
        gan.G_ema.load_state_dict(state["G_ema"])
    gan.gen.set_state(state["gen"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and gan.gen.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"])
    gan.step = state["step"]
    gan.epoch = state.get("epoch", 0)


def load_generator(path: str | Path, device: torch.device | str = "cpu", ema: bool = True) -> tuple[Sampler, dict]:
    """A ``Sampler`` (G plus how to feed it) from a checkpoint; the EMA copy of G when there is one."""
    from models.registry import build

    state = load_state(path, device)
    meta = state["meta"]
    vocab = meta.get("vocab") or {}
    G, _ = build(meta["arch"], meta["net"], meta["image_size"], meta["channels"], sum(len(v) for v in vocab.values()))
    try:
        G.load_state_dict(state["G_ema"] if ema and state.get("G_ema") is not None else state["G"])
    except RuntimeError as e:
        raise StageError(f"{path} does not fit the current models/ code for arch {meta['arch']!r} (written by an "
                         f"older version?); train it again. {str(e).splitlines()[0]}") from None
    return Sampler(G.to(device), meta), meta


def _why_not_resume(old: dict, new: dict) -> str | None:
    for key in ("arch", "net", "image_size", "channels", "vocab", "seed", "data_id"):
        if old.get(key) != new.get(key):
            return f"{key} changed ({old.get(key)!r} -> {new.get(key)!r})"
    a = {k: v for k, v in old["spec"].items() if k not in RESUMABLE_CHANGES}
    b = {k: v for k, v in new["spec"].items() if k not in RESUMABLE_CHANGES}
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return f"training params changed: {diff}" if diff else None


def _layers_differ(gan: GAN, state: dict) -> str | None:
    """Same params but other tensors: the model code changed since the checkpoint (DVC reruns
    train when models/ changes, and the persisted checkpoint must not crash it)."""
    for name, net in (("G", gan.G), ("D", gan.D)):
        mine = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        if mine != {k: tuple(v.shape) for k, v in state[name].items()}:
            return f"{name}'s layers differ from the checkpoint's (the model code changed)"
    return None


# ---------------------------------------------------------------------------------------------
# the loop


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(127.5).sub_(1)


def weights_digest(gan: GAN) -> str:
    """sha256 of G's and D's weights and buffers (memory layout aside): equal on every DDP rank."""
    h = hashlib.sha256()
    for net in (gan.G, gan.D):
        for k, v in net.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def train(images: np.ndarray, spec: ModelSpec, out_dir: str | Path, *, labels=None, sketches: np.ndarray | None = None,
          seed: int = 0, device: str = "auto", resume: str = "auto", data_id: str = "",
          snapshot_every: int | None = None, callbacks: tuple[Callback, ...] = (),
          fast: FastOptions = FastOptions(), dist: Dist = Dist()) -> dict[str, Any]:
    """Train ``spec`` on NHWC uint8 ``images`` (+ ``labels``: datasets.Labels, + N x H x W uint8
    ``sketches``); write samples/, losses.csv and checkpoint.pt to ``out_dir``, and G of every
    ``snapshot_every``-th epoch to checkpoints/epoch_NNN.pt (for metric-vs-step curves).
    ``fast``: the fast path's knobs (pipeline/train/fastpath.py). ``dist``: this process's DDP rank
    (pipeline/train/distributed.py); every rank calls this, rank 0 alone writes."""
    out = Path(out_dir)
    if dist.main:
        (out / "samples").mkdir(parents=True, exist_ok=True)
    dev = dist.device(resolve_device(device))
    torch.manual_seed(seed)
    plan = choose(fast, device=dev, dragan=bool(spec.dragan), world=dist.world)
    data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(dev)
    n, channels, size, _ = data.shape
    codes = torch.from_numpy(labels.codes).to(dev) if labels is not None else None
    sk = torch.from_numpy(np.ascontiguousarray(sketches))[:, None].to(dev) if sketches is not None else None
    if (spec.family == "sketch") != (sk is not None) or (codes is None) != (spec.family not in ("conditional", "acgan")):
        raise StageError(f"family {spec.family!r} got labels={labels is not None}, sketches={sketches is not None}")
    shard = n // dist.world  # this rank's share of each epoch
    if shard < 1:
        raise StageError(f"{n} images cannot be shared among {dist.world} processes")
    gan = make_gan(spec, size, channels, dev, seed, labels.vocab if labels is not None else None, fused=plan.fused_adam)
    plan.prepare(*[net for net in (gan.G, gan.D, gan.G_ema) if net is not None])
    log.info("%s: %s", out.name, plan.describe())
    gan.meta["data_id"] = data_id
    batch = min(spec.batch_size, shard)
    per_epoch = shard // batch
    total = spec.steps if spec.steps is not None else spec.epochs * per_epoch
    ckpt = out / "checkpoint.pt"

    resumed_from = 0
    if resume == "auto" and ckpt.exists():
        state = load_state(ckpt, dev)
        why = _why_not_resume(state["meta"], gan.meta) or _layers_differ(gan, state)
        if why is None:
            restore(gan, state)
            for opt in (gan.opt_g, gan.opt_d):
                adam_flags(opt, dev, plan.fused_adam)
            resumed_from = gan.step
            log.info("resuming %s from step %d", out, gan.step)
        else:
            log.info("not resuming from %s: %s; training from scratch", ckpt, why)
    if not resumed_from and dist.main:
        for stale in [*(out / "samples").glob("epoch_*.png"), *(out / "checkpoints").glob("epoch_*.pt")]:
            stale.unlink()
    if dist.active:
        gan.dist, gan.G_run, gan.D_run = dist, dist.wrap(gan.G, dev), dist.wrap(gan.D, dev)

    # fixed inputs for the per-epoch grids, from their own generator: grids do not depend on resuming
    fixed_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    fixed = Batch(_to_unit(data[:64]))
    if sk is not None:
        fixed.sketch = _to_unit(sk[:32])
    else:
        fixed.z = torch.randn(64, gan.nz, generator=fixed_gen, device=dev)
    if gan.sizes:  # row r asks for value r of the first attribute (cycling), the rest at random
        fixed.codes = Sampler(gan.G, gan.meta).random_codes(64, fixed_gen)
        fixed.codes[:, 0] = torch.arange(64, device=dev) // 8 % gan.sizes[0]
        fixed.c = one_hot(fixed.codes, gan.sizes)

    def sample_grid(step: int) -> Path | None:
        """Grid of the sampling G (EMA; eval mode if conditional); the collapse check looks at the
        live G with batch statistics, which early in training is the meaningful one. Every rank
        checks (their Gs are equal, so they stop together); rank 0 draws the grid."""
        with torch.no_grad():
            probe = _fake(_train_copy(gan), fixed)
            if not torch.isfinite(probe).all() or probe.std(0).mean() < spec.collapse_std:
                raise TrainingDiverged(f"G collapsed at step {step}: its samples of fixed inputs are "
                                       f"{'not finite' if not torch.isfinite(probe).all() else 'all alike'}; the last good "
                                       f"checkpoint ({ckpt}) is kept. Lower the learning rate, or change the seed.")
            if not dist.main:
                return None
            sampler = Sampler(gan.G_ema if gan.G_ema is not None else gan.G, gan.meta)
            if fixed.sketch is not None:
                fake = sampler.sample(32, sketches=fixed.sketch)
                pics = torch.stack([fixed.sketch.expand(-1, channels, -1, -1), fake], 1).flatten(0, 1)  # sketch, output
            elif fixed.c is not None:
                pics = copy.deepcopy(sampler.G).eval()(fixed.z, fixed.c)
            else:
                pics = generate(sampler.G, fixed.z, batch)
        return save_png(grid(to_uint8(pics)), out / "samples" / f"epoch_{-(-step // per_epoch):03d}.png")

    def draw(idx: torch.Tensor, z: torch.Tensor | None) -> Batch:
        """The batch of images ``idx`` (uint8 on the device, normalised here) and noise ``z``."""
        b = Batch(plan.images(_to_unit(data.index_select(0, idx))))
        if sk is not None:
            b.sketch = plan.images(_to_unit(sk.index_select(0, idx)))
        else:
            b.z = z
        if codes is not None:
            b.codes = codes.index_select(0, idx)
            b.c = one_hot(b.codes, gan.sizes)
        return b

    def one_step(idx: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return gan_step(gan, draw(idx, z), plan.autocast)

    def zero_grads() -> None:
        gan.opt_d.zero_grad(set_to_none=True)
        gan.opt_g.zero_grad(set_to_none=True)

    step_fn = GraphedStep(one_step, zero_grads) if plan.graph else one_step

    csv_path = out / "losses.csv"
    rows = []
    if resumed_from and csv_path.exists() and dist.main:
        with open(csv_path) as f:
            rows = [r for r in csv.reader(f)][1:]
        rows = [r for r in rows if int(r[0]) <= resumed_from]  # drop steps logged after the checkpoint
    for cb in callbacks:
        cb.on_start(total, gan.step)
    recent = torch.zeros(spec.log_every, len(STATS), device=dev)  # per-step stats since the last log
    bad = torch.zeros((), device=dev)  # non-finite steps since the last checkpoint, read at checkpoints only
    pending = 0
    last: dict[str, float] = {}
    perm = None
    started = time.perf_counter()
    with contextlib.ExitStack() as files:
        writer = None
        if dist.main:
            f = files.enter_context(open(csv_path, "w", newline=""))
            writer = csv.writer(f)
            writer.writerow(("step", "epoch", *STATS))
            writer.writerows(rows)
        while gan.step < total:
            epoch, i = divmod(gan.step, per_epoch)
            if perm is None or i == 0:  # each epoch's order comes from (seed, epoch) alone: exact resume mid-epoch
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
                perm = perm[dist.rank * shard:(dist.rank + 1) * shard].to(dev)  # this rank's shard
            idx = perm[i * batch:(i + 1) * batch]
            z = None  # every rank draws the noise of all ranks and takes its own: one generator state for all
            if sk is None:
                z = torch.randn(dist.world * batch, gan.nz, generator=gan.gen, device=dev)[dist.rank * batch:(dist.rank + 1) * batch]
            stats = step_fn(idx, z)
            ema_update(gan)
            gan.step += 1
            gan.epoch = -(-gan.step // per_epoch)
            recent[pending] = stats
            bad += (~torch.isfinite(stats)).any()
            pending += 1
            if pending == spec.log_every or gan.step == total:
                per_step = dist.mean_(recent[:pending]).tolist()  # the one host sync per log_every steps
                last = dict(zip(STATS, np.mean(per_step, axis=0).tolist()))
                if not np.isfinite(per_step).all():
                    raise TrainingDiverged(f"losses became {last} at step {gan.step}; the last good checkpoint "
                                           f"({ckpt}) is kept. Lower the learning rate or change the seed.")
                first = gan.step - pending + 1
                pending = 0
                if writer is not None:
                    writer.writerows((first + k, -(-(first + k) // per_epoch), *(f"{v:.6g}" for v in row))
                                     for k, row in enumerate(per_step))
                    f.flush()
                for cb in callbacks:
                    cb.on_log(gan.step, last)
            epoch_end = (i + 1 == per_epoch) or gan.step == total
            if epoch_end or (spec.checkpoint_every and gan.step % spec.checkpoint_every == 0):
                if dist.sum_(bad.clone()).item():
                    raise TrainingDiverged(f"losses became non-finite before step {gan.step}; the last good checkpoint "
                                           f"({ckpt}) is kept. Lower the learning rate or change the seed.")
                grid_path = sample_grid(gan.step) if epoch_end else None
                if not dist.main:
                    continue
                if epoch_end and snapshot_every and gan.epoch % snapshot_every == 0:
                    save_snapshot(gan, out / "checkpoints" / f"epoch_{gan.epoch:03d}.pt")
                save_checkpoint(gan, ckpt)
                if grid_path is not None:
                    for cb in callbacks:
                        cb.on_epoch_end(epoch + 1, gan.step, grid_path)
    seconds = time.perf_counter() - started
    dist.sync_buffers(*[net for net in (gan.G, gan.D, gan.G_ema) if net is not None])
    done = gan.step - resumed_from
    fast_path = plan.describe()
    if isinstance(step_fn, GraphedStep) and step_fn.failed:
        fast_path += f"; CUDA graph capture failed, eager instead: {step_fn.failed}"
    summary = {"steps": gan.step, "epochs": -(-gan.step // per_epoch), "images": n, "batch_size": batch,
               "world_size": dist.world, "resumed_from": resumed_from, "seconds": round(seconds, 3),
               "seconds_per_step": round(seconds / max(done, 1), 4),
               "images_per_second": round(done * batch * dist.world / seconds, 2) if done else 0.0, "device": str(dev),
               "fast_path": fast_path, "weights_sha256": weights_digest(gan),
               **{f"final_{k}": v for k, v in last.items()}}
    for cb in callbacks:
        cb.on_end(summary, ckpt)
    return summary


def _train_copy(gan: GAN) -> GAN:
    """The GAN with a train-mode copy of G (BatchNorm on batch statistics, running stats untouched)."""
    return GAN(copy.deepcopy(gan.G).train(), gan.D, gan.opt_g, gan.opt_d, gan.spec, gan.gen)

"""The GAN training loop, one for every family of the zoo. Needs torch, numpy and the train stage's
settings (pipeline/train/params.py: pydantic, no YAML): tracking comes in through callbacks, so the
same loop runs on a machine with no MLflow/Prefect/DVC (the GPU box) and under every caller.

A family (pipeline/train/families.py) only changes what a batch carries and how it becomes D's and
G's losses; the update rules, thresholds, EMA, checkpoints (pipeline/train/checkpoint.py) and guards
are shared. No host sync per step: losses are summed on the device and read every ``log_every``
steps and before each checkpoint (appended to losses.csv by pipeline/train/losslog.py), a threshold
skip is decided on the device (``update``), and all randomness of training comes from one device
generator whose state is saved. A run folder's files are kept consistent by
pipeline/train/rundir.py (a run that starts over never loses the earlier one). On CUDA the same step runs through the fast path
(pipeline/train/fastpath.py: bf16 autocast, channels_last, fused Adam, one CUDA graph per step);
under torchrun it runs data-parallel (pipeline/train/distributed.py).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.core.device import resolve_device
from pipeline.core.errors import StageError
from pipeline.core.images import save_png
from pipeline.core.layout import CHECKPOINT
from pipeline.train import rundir
from pipeline.train.ada import AdaptiveP
from pipeline.train.checkpoint import (
    DamagedCheckpoint,
    layers_differ,
    load_state,
    restore,
    save_checkpoint,
    save_snapshot,
    why_not_resume,
)
from pipeline.train.distributed import Dist
from pipeline.train.families import FAMILIES, Batch, one_hot
from pipeline.train.fastpath import FastOptions, GraphedStep, Plan, choose
from pipeline.train.losslog import LossLog
from pipeline.train.params import ModelSpec
from pipeline.train.sampling import Sampler, epoch_inputs, outputs, sheet

log = logging.getLogger(__name__)
STATS = ("loss_d", "loss_g", "d_real", "d_fake", "d_updated", "g_updated", "augment_p")
HEADER = ("step", "epoch", *STATS)  # losses.csv


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
    ada: AdaptiveP | None = None             # augment_p: auto
    fixed_p: torch.Tensor | None = None      # augment_p: a number below 1

    @property
    def augment_p(self) -> torch.Tensor | None:
        """The probability each augment op reaches an image (a 0-d tensor on the device); None: always."""
        return self.ada.p if self.ada is not None else self.fixed_p

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


def init_adam_state(opt: torch.optim.Optimizer) -> None:
    """Create Adam's state now (one step with zero gradients moves nothing; its count is reset), so a
    threshold skip can restore it and the step stays capturable in a CUDA graph later. The state
    takes each parameter's layout (``zeros_like``): make the layout final before this."""
    params = [p for g in opt.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    for p in params:
        opt.state[p]["step"].zero_()
    opt.zero_grad(set_to_none=True)


def adam_flags(opt: torch.optim.Optimizer, fused: bool = False, capturable: bool = False) -> None:
    """Fused when the fast path asks, capturable (step count on the device) only when a CUDA graph
    will capture the step. Applied again after loading a checkpoint, which brings the flags of the
    machine that wrote it."""
    for group in opt.param_groups:
        group["capturable"], group["fused"] = capturable, fused or None  # as the constructor leaves them
        group["foreach"] = False if fused else None
        for p in group["params"]:
            if "step" in opt.state.get(p, {}):
                step = opt.state[p]["step"]
                opt.state[p]["step"] = step.to(p.device if capturable or fused else "cpu", torch.float32)


def make_gan(spec: ModelSpec, image_size: int, channels: int, device: torch.device, seed: int,
             vocab: dict[str, list[str]] | None = None, plan: Plan | None = None) -> GAN:
    """G, D (and the EMA of G) in their final memory layout (``plan.prepare``), then their optimisers,
    whose state so takes the parameters' layout."""
    from models.zoo import build

    sizes = [len(v) for v in (vocab or {}).values()]
    G, D = build(spec.arch, spec.net, image_size, channels, sum(sizes))
    G, D = G.to(device), D.to(device)
    if plan is not None:
        plan.prepare(G, D)
    frozen = freeze_first_layers(D, spec.freeze_d)
    fused, capturable = bool(plan and plan.fused_adam), bool(plan and plan.graph)
    kw = dict(lr=spec.lr, betas=(spec.beta1, spec.beta2), capturable=capturable, fused=fused or None)
    opt_g = torch.optim.Adam(G.parameters(), **kw)
    opt_d = torch.optim.Adam([p for p in D.parameters() if not any(p is q for q in frozen)], **kw)
    init_adam_state(opt_g)
    init_adam_state(opt_d)
    meta = {"arch": spec.arch, "family": spec.family, "net": dict(spec.net), "image_size": image_size,
            "channels": channels, "vocab": vocab or {}, "spec": spec.model_dump(), "seed": seed}
    ada = (AdaptiveP(device, target=spec.ada.target, interval=spec.ada.interval, speed_kimg=spec.ada.kimg,
                     start=spec.ada.start) if spec.augment and spec.augment_p == "auto" else None)
    fixed_p = (torch.full((), float(spec.augment_p), device=device)
               if spec.augment and spec.augment_p not in ("auto", 1.0) else None)
    return GAN(G, D, opt_g, opt_d, spec, torch.Generator(device=device).manual_seed(seed),
               G_ema=copy.deepcopy(G).requires_grad_(False) if spec.ema else None, sizes=sizes, meta=meta,
               ada=ada, fixed_p=fixed_p)


def freeze_first_layers(D: torch.nn.Module, n: int) -> list[torch.nn.Parameter]:
    """FreezeD (Mo, Cho and Shin 2020): D's first ``n`` weight layers (convolutions and linear maps in
    the order the nets build them, which in every D of the zoo runs from the image side) keep the
    weights they were started from; fine-tuning moves only the layers nearer the logit."""
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))][:n]
    frozen = [p for m in layers for p in m.parameters(recurse=False)]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


# ---------------------------------------------------------------------------------------------
# one step


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


def gan_step(gan: GAN, b: Batch,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> torch.Tensor:
    """One D update then one G update (non-saturating loss); returns the STATS (fp32) on the device.
    ``autocast``: context for the forward passes (the fast path's bf16); backward runs outside it."""
    fam = FAMILIES[gan.spec.family]
    mean = gan.dist.mean_ if gan.dist.active else None
    with autocast():
        fake = fam.fake(gan.g, b)
        loss_d, r, f = fam.d_loss(gan, b, fake.detach())
    d_ok = update(gan.opt_d, loss_d, gan.spec.d_threshold, mean)
    with autocast(), gan.d_no_sync():
        loss_g = fam.g_loss(gan, b, fake)
    g_ok = update(gan.opt_g, loss_g, gan.spec.g_threshold, mean)
    p = gan.augment_p if gan.augment_p is not None else d_ok.new_tensor(1.0 if gan.spec.augment else 0.0)
    r, f = (x[0] if isinstance(x, tuple) else x for x in (r, f))
    return torch.stack([loss_d.detach().float(), loss_g.detach().float(), torch.sigmoid(r.detach().float()).mean(),
                        torch.sigmoid(f.detach().float()).mean(), d_ok, g_ok, p.detach().float()])


@torch.no_grad()
def ema_update(gan: GAN) -> None:
    """EMA of G's weights; the decay ramps up from 0 so a short run's EMA is not the initial G."""
    if gan.G_ema is None:
        return
    decay = min(gan.spec.ema_decay, (1 + gan.step) / (10 + gan.step))
    torch._foreach_lerp_(list(gan.G_ema.parameters()), list(gan.G.parameters()), 1.0 - decay)
    if buffers := list(gan.G.buffers()):  # BatchNorm statistics, copied (InstanceNorm nets have none)
        torch._foreach_copy_(list(gan.G_ema.buffers()), buffers)


def weights_digest(gan: GAN) -> str:
    """sha256 of G's and D's weights and buffers (memory layout aside): equal on every DDP rank."""
    h = hashlib.sha256()
    for net in (gan.G, gan.D):
        for k, v in net.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# the pieces of a run


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(127.5).sub_(1)


class _Faces:
    """The training set on the device as uint8 (normalised a batch at a time) and how a batch of
    this family is made from it."""

    def __init__(self, images: np.ndarray, labels, sketches: np.ndarray | None, dev: torch.device, spec: ModelSpec,
                 cache_bytes: int | None = None):
        self.fam = FAMILIES[spec.family]
        self.dev = dev
        # resident: every face on the device once (fast); else streamed: each batch's rows read from
        # ``images`` (crop's mapped store) and copied over, so memory does not grow with the faces
        self.resident = cache_bytes is None or images.nbytes <= cache_bytes
        self.host = None if self.resident else images
        if self.resident:
            self.data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(dev)
            self.n, self.channels, self.size, _ = self.data.shape
        else:
            self.n, self.size, _, self.channels = images.shape
        self.codes = torch.from_numpy(labels.codes).to(dev) if labels is not None else None
        self.sk = torch.from_numpy(np.ascontiguousarray(sketches))[:, None].to(dev) if sketches is not None else None
        if self.fam.sketches != (self.sk is not None) or self.fam.labels != (self.codes is not None):
            raise StageError(f"family {spec.family!r} got labels={labels is not None}, sketches={sketches is not None}")

    def batch(self, idx: torch.Tensor, z: torch.Tensor | None, sizes: list[int], layout: Callable = lambda x: x) -> Batch:
        """The batch of images ``idx`` (uint8 on the device, normalised here) and noise ``z``;
        ``layout``: the fast path's memory format for image tensors."""
        b = Batch(layout(_to_unit(self.pixels(idx))))
        if self.fam.sketches:
            b.sketch = layout(_to_unit(self.sk.index_select(0, idx)))
        else:
            b.z = z
        if self.fam.labels:
            b.codes = self.codes.index_select(0, idx)
            b.c = one_hot(b.codes, sizes)
        return b

    def pixels(self, idx: torch.Tensor) -> torch.Tensor:
        """N x C x H x W uint8 faces ``idx`` on the device: the same values resident or streamed."""
        if self.resident:
            return self.data.index_select(0, idx)
        x = torch.from_numpy(self.host[idx.cpu().numpy()])
        if self.dev.type == "cuda":
            x = x.pin_memory().to(self.dev, non_blocking=True)
        return x.permute(0, 3, 1, 2).contiguous()

    def fixed(self, gan: GAN, seed: int) -> Batch:
        """The per-epoch grids' inputs (pipeline/train/sampling.py ``epoch_inputs``): grids do not
        depend on resuming; sketch2image draws from the first training faces' sketches."""
        b = epoch_inputs(Sampler(gan.G, gan.meta), seed, _to_unit(self.sk[:32]) if self.fam.sketches else None)
        b.real = _to_unit(self.pixels(torch.arange(min(64, self.n), device=self.dev)))
        return b


def _resume(gan: GAN, ckpt: Path, resume: str, plan: Plan, dist: Dist, on_damaged: str) -> int:
    """Continue from ``ckpt`` when it fits this run (checkpoint.why_not_resume); the step resumed from, or 0.
    A checkpoint that does not load is set aside and training starts from scratch, or the run
    stops, as ``on_damaged`` says."""
    if resume != "auto" or not ckpt.exists():
        return 0
    try:
        state = load_state(ckpt)
    except DamagedCheckpoint as e:
        if on_damaged == "stop":
            raise StageError(f"{e.path} cannot be loaded: {e.problem}. train.on_damaged is stop, so it is left where "
                             f"it is and nothing was trained: put a good checkpoint there, or run with "
                             f"-S train.on_damaged=restart to set it aside and train from scratch.") from None
        if dist.main:
            aside = rundir.set_aside(ckpt)
            log.warning("%s cannot be loaded: %s. Set aside as %s; training from scratch (train.on_damaged: restart).",
                        e.path, e.problem, aside.name)
        return 0
    why = why_not_resume(state, gan.meta, gan.gen.device.type) or layers_differ(gan, state)
    if why is not None:
        log.info("not resuming from %s: %s; training from scratch", ckpt, why)
        return 0
    restore(gan, state, dist.rank)
    for opt in (gan.opt_g, gan.opt_d):
        adam_flags(opt, plan.fused_adam, plan.graph)
    log.info("resuming %s from step %d", ckpt.parent, gan.step)
    return gan.step


def _start_from(gan: GAN, source: Path) -> dict[str, Any]:
    """Transfer: G, D and the EMA of G start from ``source``'s weights (optimisers, step and generator
    start fresh); the nets must be the same arch and sizes. Returns what the run records of it."""
    try:
        state = load_state(source)
    except DamagedCheckpoint as e:
        raise StageError(f"init_from: {e.path} cannot be loaded: {e.problem}. Train the source model again or "
                         f"point init_from at another checkpoint.") from None
    old = state["meta"]
    for key in ("arch", "net", "image_size", "channels"):
        if old.get(key) != gan.meta.get(key):
            raise StageError(f"init_from: {source} has {key} {old.get(key)!r}, this model {gan.meta.get(key)!r}; a "
                             f"transfer starts from a model of the same arch, net and image size.")
    if (why := layers_differ(gan, state)) is not None:
        raise StageError(f"init_from: {source}: {why}; a conditional model needs the source's label vocabulary.")
    gan.G.load_state_dict(state["G"])
    gan.D.load_state_dict(state["D"])
    if gan.G_ema is not None:
        gan.G_ema.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
    return {"init_from": str(source), "init_step": int(state["step"]), "init_data_id": old.get("data_id", "")}


def _rank_rng(dist: Dist, dev: torch.device) -> list | None:
    """Under DDP, every rank's global RNG states (CPU, CUDA) for the checkpoint; a collective, so every rank calls it."""
    if not dist.active:
        return None
    cpu = dist.gather(torch.get_rng_state(), dev)
    cuda = dist.gather(torch.cuda.get_rng_state(dev), dev) if dev.type == "cuda" else [None] * dist.world
    return [list(pair) for pair in zip(cpu, cuda)]


def train(images: np.ndarray, spec: ModelSpec, out_dir: str | Path, *, labels=None, sketches: np.ndarray | None = None,
          seed: int = 0, device: str = "auto", resume: str = "auto", data_id: str = "",
          snapshot_every: int | None = None, callbacks: tuple[Callback, ...] = (),
          fast: FastOptions = FastOptions(), dist: Dist = Dist(), on_damaged: str = "restart",
          init_from: str | Path | None = None, cache_bytes: int | None = None) -> dict[str, Any]:
    """Train ``spec`` on NHWC uint8 ``images`` (+ ``labels``: datasets.Labels, + N x H x W uint8
    ``sketches``); write samples/, losses.csv and checkpoint.pt to ``out_dir``, and G of every
    ``snapshot_every``-th epoch to checkpoints/epoch_NNN.pt (for metric-vs-step curves). A run
    that starts over keeps the earlier run's files until its first checkpoint, then sets them aside
    in previous/ (pipeline/train/rundir.py). ``on_damaged``: restart | stop, for a checkpoint that
    does not load. ``init_from``: a checkpoint whose G, D and EMA a fresh run starts from (transfer; a
    resumed run continues its own). ``fast``: the fast path's knobs (pipeline/train/fastpath.py). ``dist``: this
    process's DDP rank (pipeline/train/distributed.py); every rank calls this, rank 0 alone writes.
    ``cache_bytes``: faces larger than this are streamed from ``images`` (a mapped store) a batch at a
    time instead of copied onto the device (None: always copied); the weights are the same either way."""
    dev = dist.device(resolve_device(device))
    plan = choose(fast, device=dev, dragan=bool(spec.dragan), penalties=bool(spec.r1 or spec.r2), world=dist.world)
    with plan.backend():
        return _run(images, spec, Path(out_dir), labels, sketches, seed, dev, resume, data_id, snapshot_every,
                    callbacks, plan, dist, on_damaged, init_from, cache_bytes)


def _run(images, spec: ModelSpec, out: Path, labels, sketches, seed: int, dev: torch.device, resume: str, data_id: str,
         snapshot_every: int | None, callbacks: tuple[Callback, ...], plan: Plan, dist: Dist,
         on_damaged: str = "restart", init_from: str | Path | None = None, cache_bytes: int | None = None) -> dict[str, Any]:
    # 1. data on the device, nets in their final layout, then the optimisers
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        rundir.recover(out)  # what a killed run left: a half-done start-over, temporary files
    torch.manual_seed(seed)  # the same initial weights on every rank
    faces = _Faces(images, labels, sketches, dev, spec, cache_bytes)
    if not faces.resident:
        log.info("%s: %.1f GB of faces stream from the store a batch at a time (train.cache_gb)", out.name, images.nbytes / 1e9)
        if plan.graph:  # a CUDA graph cannot hold the host read of each batch
            plan = dataclasses.replace(plan, graph=False, notes=[*plan.notes, "no CUDA graph: faces are streamed"])
    shard = faces.n // dist.world  # this rank's share of each epoch
    if shard < 1:
        raise StageError(f"{faces.n} images cannot be shared among {dist.world} processes")
    gan = make_gan(spec, faces.size, faces.channels, dev, seed, labels.vocab if labels is not None else None, plan=plan)
    if dist.active:  # dropout masks must differ between ranks (z and penalties differ by construction)
        torch.manual_seed(seed + 7919 * dist.rank)
    log.info("%s: %s", out.name, plan.describe())
    gan.meta["data_id"] = data_id
    batch = min(spec.batch_size, shard)
    per_epoch = shard // batch
    total = spec.steps if spec.steps is not None else spec.epochs * per_epoch
    ckpt = out / CHECKPOINT

    # 2. resume, or start over in .next/ beside the earlier run, which is set aside at the first checkpoint
    dist.sum_(torch.zeros((), device=dev))  # every rank waits for rank 0's recovery before reading the checkpoint
    resumed_from = _resume(gan, ckpt, resume, plan, dist, on_damaged)
    transfer = {"init_from": str(init_from)} if init_from is not None else {}
    if init_from is not None and not resumed_from:  # every rank loads the same weights
        transfer = _start_from(gan, Path(init_from))
    where = out  # where this run writes: .next/ until a run that starts over has its first checkpoint
    if dist.main:
        where = out if resumed_from else rundir.stage(out)
        (where / rundir.SAMPLES).mkdir(parents=True, exist_ok=True)
    if dist.active:
        gan.dist, gan.G_run, gan.D_run = dist, dist.wrap(gan.G, dev), dist.wrap(gan.D, dev)

    # 3. the step (as a CUDA graph when planned) and the epoch-end grid with its collapse check
    fixed = faces.fixed(gan, seed)

    def one_step(idx: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return gan_step(gan, faces.batch(idx, z, gan.sizes, plan.images), plan.autocast)

    def zero_grads() -> None:
        gan.opt_d.zero_grad(set_to_none=True)
        gan.opt_g.zero_grad(set_to_none=True)

    step_fn = GraphedStep(one_step, zero_grads, generators=(gan.gen,)) if plan.graph else one_step

    def sample_grid(step: int) -> Path | None:
        """Grid of the sampling G (EMA); the collapse check looks at the live G with batch statistics,
        which early in training is the meaningful one. Every rank checks (their Gs are equal, so they
        stop together); rank 0 draws the grid."""
        probe = outputs(gan.G, faces.fam, fixed, batch_size=64, batch_stats=True)
        if not torch.isfinite(probe).all() or probe.std(0).mean() < spec.collapse_std:
            raise TrainingDiverged(f"G collapsed at step {step}: its samples of fixed inputs are "
                                   f"{'not finite' if not torch.isfinite(probe).all() else 'all alike'}; the last good "
                                   f"checkpoint ({ckpt}) is kept. Lower the learning rate, or change the seed.")
        if not dist.main:
            return None
        pics = outputs(gan.G_ema if gan.G_ema is not None else gan.G, faces.fam, fixed, batch_size=batch)
        return save_png(sheet(pics, fixed.sketch), where / rundir.SAMPLES / f"epoch_{-(-step // per_epoch):03d}.png")

    # 4. the loop: a step, the EMA, stats kept on the device; losses read every log_every steps and
    # before every checkpoint (so losses.csv holds every step a checkpoint has); at each epoch end (or
    # checkpoint_every) the non-finite check, a grid and a checkpoint
    for cb in callbacks:
        cb.on_start(total, gan.step)
    recent = torch.zeros(spec.log_every, len(STATS), device=dev)  # per-step stats since the last log
    bad = torch.zeros((), device=dev)  # non-finite steps since the last checkpoint, read at checkpoints only
    pending = 0
    last: dict[str, float] = {}
    perm = None
    losses: LossLog | None = None

    def log_pending() -> None:
        """The host sync of a log point (every log_every steps, and before a checkpoint): the stats since
        the last one, to losses.csv and the callbacks."""
        nonlocal pending, last
        per_step = dist.mean_(recent[:pending]).tolist()
        last = dict(zip(STATS, np.mean(per_step, axis=0).tolist()))
        if not np.isfinite(per_step).all():
            raise TrainingDiverged(f"losses became {last} at step {gan.step}; the last good checkpoint "
                                   f"({ckpt}) is kept. Lower the learning rate or change the seed.")
        first = gan.step - pending + 1
        pending = 0
        if losses is not None:
            losses.write((first + k, -(-(first + k) // per_epoch), *(f"{v:.6g}" for v in row))
                         for k, row in enumerate(per_step))
        for cb in callbacks:
            cb.on_log(gan.step, last)

    started = time.perf_counter()
    try:
        if dist.main:
            losses = (LossLog.resume(out / rundir.LOSSES, HEADER, resumed_from) if resumed_from
                      else LossLog.start(where / rundir.LOSSES, HEADER))
        while gan.step < total:
            epoch, i = divmod(gan.step, per_epoch)
            if perm is None or i == 0:  # each epoch's order comes from (seed, epoch) alone: exact resume mid-epoch
                perm = torch.randperm(faces.n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
                perm = perm[dist.rank * shard:(dist.rank + 1) * shard].to(dev)  # this rank's shard
            idx = perm[i * batch:(i + 1) * batch]
            z = None  # every rank draws the noise of all ranks and takes its own: one generator state for all
            if not faces.fam.sketches:
                z = torch.randn(dist.world * batch, gan.nz, generator=gan.gen, device=dev)
                z = z[dist.rank * batch:(dist.rank + 1) * batch]
            stats = step_fn(idx, z)
            ema_update(gan)
            gan.step += 1
            if gan.ada is not None:
                gan.ada.step(gan.step, batch * dist.world, dist.sum_ if dist.active else None)
            gan.epoch = -(-gan.step // per_epoch)
            recent[pending] = stats
            bad += (~torch.isfinite(stats)).any()
            pending += 1
            epoch_end = (i + 1 == per_epoch) or gan.step == total
            checkpoint = epoch_end or bool(spec.checkpoint_every and gan.step % spec.checkpoint_every == 0)
            if pending == spec.log_every or gan.step == total or checkpoint:
                log_pending()
            if checkpoint:
                if dist.sum_(bad.clone()).item():
                    raise TrainingDiverged(f"losses became non-finite before step {gan.step}; the last good checkpoint "
                                           f"({ckpt}) is kept. Lower the learning rate or change the seed.")
                grid_path = sample_grid(gan.step) if epoch_end else None
                rank_rng = _rank_rng(dist, dev)
                if not dist.main:
                    continue
                if epoch_end and snapshot_every and gan.epoch % snapshot_every == 0:
                    save_snapshot(gan, where / rundir.SNAPSHOTS / f"epoch_{gan.epoch:03d}.pt")
                losses.sync()  # every row up to this step is on disk before the checkpoint that counts on it
                save_checkpoint(gan, where / CHECKPOINT, rank_rng)
                if where != out:  # a run that started over has its first checkpoint: it takes over the folder
                    rundir.promote(out)
                    grid_path = grid_path and out / grid_path.relative_to(where)
                    where = out
                if grid_path is not None:
                    for cb in callbacks:
                        cb.on_epoch_end(epoch + 1, gan.step, grid_path)
    except BaseException:
        if dist.main and where != out:
            rundir.abandon(out)  # no checkpoint of its own yet: the earlier run stays as it was
        raise
    finally:
        if losses is not None:
            losses.close()
    seconds = time.perf_counter() - started

    # 5. the summary train.json holds
    dist.sync_buffers(*[net for net in (gan.G, gan.D, gan.G_ema) if net is not None])
    done = gan.step - resumed_from
    fast_path = plan.describe()
    graph = step_fn.status if isinstance(step_fn, GraphedStep) else "off"
    if isinstance(step_fn, GraphedStep) and step_fn.failed:
        fast_path += f"; CUDA graph capture failed, eager instead: {step_fn.failed}"
    summary = {"steps": gan.step, "epochs": -(-gan.step // per_epoch), "images": faces.n, "batch_size": batch,
               "world_size": dist.world, "resumed_from": resumed_from, "seconds": round(seconds, 3),
               "seconds_per_step": round(seconds / max(done, 1), 4),
               "images_per_second": round(done * batch * dist.world / seconds, 2) if done else 0.0, "device": str(dev),
               "fast_path": fast_path, "cuda_graph": graph, "deterministic": plan.deterministic,
               "weights_sha256": weights_digest(gan), **transfer, **{f"final_{k}": v for k, v in last.items()}}
    for cb in callbacks:
        cb.on_end(summary, ckpt)
    return summary

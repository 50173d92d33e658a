"""Checkpoints: what a run saves, whether a new run may resume from it, and G out of it for
sampling. Evaluation and ``sample`` load a generator from here without the training loop.

Rules, so a checkpoint moves between machines safely:
- Always loaded to the CPU first (``weights_only``: a checkpoint from elsewhere cannot run code);
  ``load_state_dict`` then copies each tensor to where the live one lives, and the RNG states,
  which torch takes as CPU byte tensors on every device, are restored from there.
- The random generators' states are per device type (a CPU generator's state is 5,056 bytes, a
  CUDA one's 16), so a checkpoint written on one device type is not resumed on another: the run
  logs why and trains from scratch. Weights themselves are portable: ``load_generator`` and
  evaluation take a checkpoint from any device.
- After an optimiser's ``load_state_dict`` its state tensors take their parameter's memory layout
  again (channels_last weights), as CUDA's fused Adam requires.
- Every load goes through ``load_state``: a file that does not load (truncated, not ours, a pickle
  that would run code) is a ``DamagedCheckpoint`` naming the file, what is wrong
  (pipeline/train/damage.py) and what to do, never torch's traceback and its advice to load it
  unsafely.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import StageError
from pipeline.core.layout import CHECKPOINT
from pipeline.train.sampling import Sampler

RESUMABLE_CHANGES = ("epochs", "steps", "log_every", "checkpoint_every")  # spec keys that may differ on resume


def device_type_of(state: dict) -> str:
    """The device type whose generator wrote ``state`` (older checkpoints: a CUDA one saved its CUDA RNG)."""
    return state.get("device_type") or ("cuda" if state.get("cuda_rng") is not None else "cpu")


def save_snapshot(gan: Any, path: Path) -> None:
    """G (and its EMA) at this step, without D or optimiser state: what evaluating an earlier epoch
    needs, at a fraction of a full checkpoint's size."""
    from pipeline.core.atomic import atomic_path

    state = {"G": gan.G.state_dict(), "G_ema": gan.G_ema.state_dict() if gan.G_ema is not None else None,
             "step": gan.step, "epoch": gan.epoch, "meta": gan.meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_checkpoint(gan: Any, path: Path, rank_rng: list | None = None) -> None:
    """Everything resume needs. ``rank_rng``: under DDP, every rank's (CPU, CUDA) global RNG states
    (dropout draws from them, and ranks draw differently), gathered by the caller."""
    from pipeline.core.atomic import atomic_path

    cuda = gan.gen.device.type == "cuda"
    state = {"G": gan.G.state_dict(), "D": gan.D.state_dict(), "opt_g": gan.opt_g.state_dict(),
             "opt_d": gan.opt_d.state_dict(), "G_ema": gan.G_ema.state_dict() if gan.G_ema is not None else None,
             "step": gan.step, "epoch": gan.epoch, "meta": gan.meta, "gen": gan.gen.get_state(),
             "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(gan.gen.device) if cuda else None,
             "device_type": gan.gen.device.type,
             "ada": gan.ada.state_dict() if getattr(gan, "ada", None) is not None else None}
    if rank_rng is not None:
        state["rank_rng"] = rank_rng
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class DamagedCheckpoint(StageError):
    """A checkpoint file that does not load. ``problem`` says what is wrong (pipeline/train/damage.py);
    the message adds what to do, by default training the model again."""

    def __init__(self, path: str | Path, problem: str, todo: str | None = None):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path} cannot be loaded: {problem}. {todo or retrain_hint(path)}")


def retrain_hint(path: str | Path) -> str:
    """What to do about a damaged ``runs/<model>/checkpoint.pt`` or ``runs/<model>/checkpoints/epoch_N.pt``."""
    path = Path(path)
    model = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
    if path.name != CHECKPOINT and path.parent.name != "checkpoints":
        return "Replace it with a good copy, or delete it."
    return (f"Train the model again: python -m pipeline train {model} (with train.on_damaged: restart, the default, "
            f"train sets a damaged {CHECKPOINT} aside and starts over).")


def load_state(path: str | Path, mmap: bool = False) -> dict:
    """The checkpoint's tensors on the CPU, whatever device wrote it or will use it; ``mmap``: map
    the file instead of reading it (what is never touched is never read). Raises ``DamagedCheckpoint``
    for a file that does not load or is not a checkpoint of this project."""
    from pipeline.train.damage import diagnose, not_ours

    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except (OSError, MemoryError):  # missing, unreadable, out of memory: not a damaged file
        raise
    except Exception as e:  # noqa: BLE001 - anything else torch raises means the file is not what it should be
        raise DamagedCheckpoint(path, diagnose(path, e)) from None
    problem = not_ours(state)
    if problem:
        raise DamagedCheckpoint(path, problem)
    return state


def match_layout(opt: torch.optim.Optimizer) -> None:
    """Give every state tensor shaped like its parameter the parameter's strides (channels_last or
    not): the layout CUDA's fused Adam checks, whatever layout the state was created or saved in."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, t in opt.state.get(p, {}).items():
                if isinstance(t, torch.Tensor) and t.shape == p.shape and t.stride() != p.stride():
                    opt.state[p][k] = torch.empty_like(p, dtype=t.dtype).copy_(t)


def restore(gan: Any, state: dict, rank: int = 0) -> None:
    """Load ``state`` (from ``load_state``) into ``gan``; ``rank``: this process's DDP rank."""
    gan.G.load_state_dict(state["G"])
    gan.D.load_state_dict(state["D"])
    gan.opt_g.load_state_dict(state["opt_g"])
    gan.opt_d.load_state_dict(state["opt_d"])
    for opt in (gan.opt_g, gan.opt_d):
        match_layout(opt)
    if gan.G_ema is not None and state["G_ema"] is not None:
        gan.G_ema.load_state_dict(state["G_ema"])
    if getattr(gan, "ada", None) is not None and state.get("ada") is not None:
        gan.ada.load_state_dict(state["ada"])
    gan.gen.set_state(state["gen"])
    cpu_rng, cuda_rng = state["torch_rng"], state.get("cuda_rng")
    if state.get("rank_rng") and rank < len(state["rank_rng"]):
        cpu_rng, cuda_rng = state["rank_rng"][rank]
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None and gan.gen.device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng, gan.gen.device)
    gan.step = state["step"]
    gan.epoch = state.get("epoch", 0)


def spec_defaults() -> dict:
    """Every training setting's default, dumped as checkpoints store them: a checkpoint written before a
    setting existed trained with its default, so it resumes under a spec that leaves it there."""
    from pipeline.params import ModelSpec

    return {k: v for k, v in ModelSpec.model_construct().model_dump().items() if k not in RESUMABLE_CHANGES + ("arch",)}


def why_not_resume(state: dict, meta: dict, device_type: str) -> str | None:
    """Why a run of ``meta`` on ``device_type`` must not continue from ``state``; None: it may."""
    old = state["meta"]
    for key in ("arch", "net", "image_size", "channels", "vocab", "seed", "data_id"):
        if old.get(key) != meta.get(key):
            return f"{key} changed ({old.get(key)!r} -> {meta.get(key)!r})"
    a = {**spec_defaults(), **{k: v for k, v in old["spec"].items() if k not in RESUMABLE_CHANGES}}
    b = {**spec_defaults(), **{k: v for k, v in meta["spec"].items() if k not in RESUMABLE_CHANGES}}
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if diff:
        return f"training params changed: {diff}"
    if device_type_of(state) != device_type:
        return (f"it was written on {device_type_of(state)} and this run is on {device_type} (random generator states "
                f"do not carry across device types, so the resumed run would not be the uninterrupted one)")
    return None


def layers_differ(gan: Any, state: dict) -> str | None:
    """Same params but other tensors: the model code changed since the checkpoint (DVC reruns
    train when models/ changes, and the persisted checkpoint must not crash it)."""
    for name, net in (("G", gan.G), ("D", gan.D)):
        mine = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        if mine != {k: tuple(v.shape) for k, v in state[name].items()}:
            return f"{name}'s layers differ from the checkpoint's (the model code changed)"
    return None


def load_generator(path: str | Path, device: torch.device | str = "cpu", ema: bool = True) -> tuple[Sampler, dict]:
    """A ``Sampler`` (G plus how to feed it) from a checkpoint of any device; the EMA copy of G when there is one."""
    from models.zoo import build

    state = load_state(path)
    meta = state["meta"]
    vocab = meta.get("vocab") or {}
    G, _ = build(meta["arch"], meta["net"], meta["image_size"], meta["channels"], sum(len(v) for v in vocab.values()))
    try:
        G.load_state_dict(state["G_ema"] if ema and state.get("G_ema") is not None else state["G"])
    except RuntimeError as e:
        raise StageError(f"{path} does not fit the current models/ code for arch {meta['arch']!r} (written by an "
                         f"older version?); train it again. {str(e).splitlines()[0]}") from None
    return Sampler(G.to(device), meta), meta

"""``python -m pipeline sample <model>``: a grid from the latest checkpoint (EMA G by default).

Conditional models take ``--tags "blue hair,green eyes"`` (attributes not named are drawn at
random); sketch2image takes ``--sketch path`` (a line drawing, dark on light) or, without it,
draws the XDoG sketches of the first training faces. Inputs, their random order and the layout
come from pipeline/train/sampling.py, as for evaluation, the epoch grids and ``boorugan play``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.params import Params


def drawn_faces(ckpt: str | Path, n: int, device, *, seed: int = 0, batch_size: int = 256, ema: bool = True,
                real: np.ndarray | None = None, tags: list[str] | None = None
                ) -> tuple[np.ndarray, dict[str, list[str]] | None]:
    """(n faces as N x H x W x 3 uint8, the attribute values each was asked for or None): what
    ``evaluate`` scores, and the one entry point for code that wants faces from a checkpoint.

    Unconditional: noise of ``seed``; conditional: ``tags`` fixed, every other attribute drawn
    uniformly; sketch2image: the XDoG sketches of ``real[:n]`` (it cannot draw from nothing).
    """
    from pipeline.core.images import to_uint8
    from pipeline.train.checkpoint import load_generator
    from pipeline.train.sampling import sketch_tensor

    G, _ = load_generator(ckpt, device, ema=ema)
    sketches = None
    if G.fam.sketches:
        if real is None:
            raise ValueError(f"{ckpt} is a sketch2image model: it needs real faces to take sketches of")
        sketches = sketch_tensor(G.sketches_of(real[:n]))
    images, codes = G.draw(n, seed=seed, batch_size=batch_size, tags=tags, sketches=sketches)
    return to_uint8(images), (None if codes is None else G.requested(codes))


def sample(params: Params, name: str, n: int = 64, tags: list[str] | None = None, seed: int = 0,
           sketch: str | None = None, ema: bool = True, out: str | Path | None = None) -> Path:
    """Write a grid of ``n`` samples of model ``name`` (sketch2image: sketch beside face) and return its path."""
    from pipeline.core.device import resolve_device
    from pipeline.core.images import save_png
    from pipeline.train.checkpoint import load_generator
    from pipeline.train.sampling import read_sketch, sheet, sketch_tensor

    ckpt = Path(params.paths.runs) / name / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} does not exist; train the model first (python -m pipeline train {name})")
    G, meta = load_generator(ckpt, resolve_device(params.train.device), ema=ema)
    if G.fam.sketches:
        if tags:
            raise ValueError("sketch2image takes a sketch (--sketch path), not tags")
        if sketch:
            sk = read_sketch(sketch, meta["image_size"], what=f"--sketch {sketch}")[None]
        else:
            from pipeline.core.datasets import load_faces

            sk = G.sketches_of(load_faces(params.paths.faces, limit=n).images)
        sketches = sketch_tensor(sk)
        picture = sheet(G.sample(len(sketches), seed=seed, sketches=sketches), sketches)
    elif sketch:
        raise ValueError(f"{name} is not a sketch model; --sketch applies to sketch2image")
    else:
        picture = sheet(G.sample(n, seed=seed, tags=tags))
    label = "_".join(t.strip().replace(" ", "-") for t in tags or []) or "random"
    out = Path(out) if out else Path("sampled") / name / f"{label}_seed{seed}.png"  # not in runs/: a DVC output
    return save_png(picture, out)


def toy_hair_accuracy(sampler, n: int = 64, seed: int = 0) -> dict[str, float]:
    """Per hair colour: the share of n samples asked for it whose hair ``pipeline.core.toyfaces.hair_colour_of``
    reads as that colour. Measures a conditional model's obedience on toy faces."""
    from pipeline.core.images import to_uint8
    from pipeline.core.toyfaces import hair_colour_of

    acc = {}
    for colour in sampler.vocab["hair_color"]:
        images = to_uint8(sampler.sample(n, seed=seed, tags=[f"{colour} hair"]))
        acc[colour] = float(np.mean([hair_colour_of(im) == colour for im in images]))
    acc["mean"] = float(np.mean(list(acc.values())))
    return acc

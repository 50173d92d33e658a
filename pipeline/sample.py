"""``python -m pipeline sample <model>``: a grid from the latest checkpoint (EMA G by default).

Conditional models take ``--tags "blue hair,green eyes"`` (attributes not named are drawn at
random); sketch2image takes ``--sketch path`` (a line drawing, dark on light) or, without it,
draws the XDoG sketches of the first training faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.params import Params


def load_sketch(path: str | Path, size: int) -> np.ndarray:
    """A user's sketch as 1 x H x W uint8, grey and resized to the model's size."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((size, size), Image.Resampling.LANCZOS))[None]


def sample(params: Params, name: str, n: int = 64, tags: list[str] | None = None, seed: int = 0,
           sketch: str | None = None, ema: bool = True, out: str | Path | None = None) -> Path:
    import torch

    from pipeline.images import grid, save_png, to_uint8
    from pipeline.trainer import load_generator, resolve_device

    ckpt = Path(params.paths.runs) / name / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} does not exist; train the model first (python -m pipeline train {name})")
    device = resolve_device(params.train.device)
    G, meta = load_generator(ckpt, device, ema=ema)
    sketches = None
    if meta["family"] == "sketch":
        if tags:
            raise ValueError("sketch2image takes a sketch, not tags")
        if sketch:
            sk = load_sketch(sketch, meta["image_size"])
        else:
            from pipeline.datasets import load_faces, sketches_of
            from pipeline.params import ModelSpec

            sk = sketches_of(load_faces(params.paths.faces, limit=n).images, ModelSpec(**meta["spec"]).sketch)
        sketches = torch.from_numpy(sk)[:, None].float().div(127.5).sub(1)
        fake = G.sample(len(sketches), seed=seed, sketches=sketches)
        pics = torch.stack([sketches.to(fake.device).expand(-1, 3, -1, -1), fake], 1).flatten(0, 1)  # sketch, face
    elif sketch:
        raise ValueError(f"{name} is not a sketch model; --sketch applies to sketch2image")
    else:
        pics = G.sample(n, seed=seed, tags=tags)
    label = "_".join(t.strip().replace(" ", "-") for t in tags or []) or "random"
    out = Path(out) if out else Path("sampled") / name / f"{label}_seed{seed}.png"  # not in runs/: a DVC output
    return save_png(grid(to_uint8(pics)), out)


def toy_hair_accuracy(sampler, n: int = 64, seed: int = 0) -> dict[str, float]:
    """Per hair colour: the share of n samples asked for it whose hair ``pipeline.toy.hair_colour_of``
    reads as that colour. Measures a conditional model's obedience on toy faces."""
    from pipeline.images import to_uint8
    from pipeline.toy import hair_colour_of

    acc = {}
    for colour in sampler.vocab["hair_color"]:
        images = to_uint8(sampler.sample(n, seed=seed, tags=[f"{colour} hair"]))
        acc[colour] = float(np.mean([hair_colour_of(im) == colour for im in images]))
    acc["mean"] = float(np.mean(list(acc.values())))
    return acc

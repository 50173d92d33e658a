"""``python -m pipeline sample <model>``: a grid from the latest checkpoint (EMA G by default).

Conditional models take ``--tags "blue hair,green eyes"`` (attributes not named are drawn at
random); sketch2image takes ``--sketch path`` (a line drawing, dark on light) or, without it,
draws the XDoG sketches of the first training faces.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.params import Params


def load_sketch(path: str | Path, size: int) -> np.ndarray:
    """A user's sketch as 1 x H x W uint8, grey and resized to the model's size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L").resize((size, size), Image.Resampling.LANCZOS))[None]
    except Image.DecompressionBombError as e:
        raise ValueError(f"--sketch {path}: {e}; draw or export the sketch smaller (it becomes {size} px)") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"--sketch {path} cannot be read as a picture ({e}); pass a PNG, JPEG or WebP") from None


def sketch_tensor(sketches: np.ndarray):
    """N x H x W uint8 sketches -> N x 1 x H x W float in [-1, 1], what sketch2image's G takes."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(sketches))[:, None].float().div(127.5).sub(1)


def sketches_for(meta: dict, faces: np.ndarray) -> np.ndarray:
    """XDoG sketches of ``faces`` with the extractor settings the checkpoint was trained with."""
    from pipeline.core.datasets import sketches_of
    from pipeline.train.params import ModelSpec

    return sketches_of(faces, ModelSpec(**meta["spec"]).sketch)


def generated_faces(ckpt: str | Path, n: int, device, *, seed: int = 0, batch_size: int = 256, ema: bool = True,
                    real: np.ndarray | None = None, tags: list[str] | None = None) -> np.ndarray:
    """n faces (N x H x W x 3 uint8) from a checkpoint of any family (see ``drawn_faces``)."""
    return drawn_faces(ckpt, n, device, seed=seed, batch_size=batch_size, ema=ema, real=real, tags=tags)[0]


def drawn_faces(ckpt: str | Path, n: int, device, *, seed: int = 0, batch_size: int = 256, ema: bool = True,
                real: np.ndarray | None = None, tags: list[str] | None = None
                ) -> tuple[np.ndarray, dict[str, list[str]] | None]:
    """(n faces as N x H x W x 3 uint8, the attribute values each was asked for or None): what
    ``evaluate`` scores.

    Unconditional: noise of ``seed``; conditional: ``tags`` fixed, every other attribute drawn
    uniformly; sketch2image: the XDoG sketches of ``real[:n]`` (it cannot draw from nothing).
    """
    from pipeline.core.images import to_uint8
    from pipeline.train.checkpoint import load_generator

    G, meta = load_generator(ckpt, device, ema=ema)
    sketches = None
    if G.fam.sketches:
        if real is None:
            raise ValueError(f"{ckpt} is a sketch2image model: it needs real faces to take sketches of")
        sketches = sketch_tensor(sketches_for(meta, real[:n]))
    images, codes = G.draw(n, seed=seed, batch_size=batch_size, tags=tags, sketches=sketches)
    return to_uint8(images), (None if codes is None else G.requested(codes))


def sample(params: Params, name: str, n: int = 64, tags: list[str] | None = None, seed: int = 0,
           sketch: str | None = None, ema: bool = True, out: str | Path | None = None) -> Path:
    """Write a grid of ``n`` samples of model ``name`` (sketch2image: sketch beside face) and return its path."""
    from pipeline.core.device import resolve_device
    from pipeline.core.images import grid, save_png, to_uint8
    from pipeline.train.checkpoint import load_generator

    ckpt = Path(params.paths.runs) / name / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} does not exist; train the model first (python -m pipeline train {name})")
    device = resolve_device(params.train.device)
    G, meta = load_generator(ckpt, device, ema=ema)
    if G.fam.sketches:
        if tags:
            raise ValueError("sketch2image takes a sketch (--sketch path), not tags")
        if sketch:
            sk = load_sketch(sketch, meta["image_size"])
        else:
            from pipeline.core.datasets import load_faces

            sk = sketches_for(meta, load_faces(params.paths.faces, limit=n).images)
        sketches = sketch_tensor(sk)
        fake = G.sample(len(sketches), seed=seed, sketches=sketches)
        pics = torch_pairs(sketches.to(fake.device), fake)
    elif sketch:
        raise ValueError(f"{name} is not a sketch model; --sketch applies to sketch2image")
    else:
        pics = G.sample(n, seed=seed, tags=tags)
    label = "_".join(t.strip().replace(" ", "-") for t in tags or []) or "random"
    out = Path(out) if out else Path("sampled") / name / f"{label}_seed{seed}.png"  # not in runs/: a DVC output
    return save_png(grid(to_uint8(pics)), out)


def torch_pairs(sketches, faces):
    """Interleave each sketch (as grey RGB) with the face drawn from it, for a grid."""
    import torch

    return torch.stack([sketches.expand(-1, faces.shape[1], -1, -1), faces], 1).flatten(0, 1)


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

"""The one way to draw faces from a G. Every caller (the trainer's epoch grids, evaluation, the
``sample`` command, both panels of ``boorugan play``) gets its inputs, their random order and its
picture layout here, so "same seed, same face" holds across them by construction, not by copies.

- Inputs: ``Sampler.inputs`` draws z, then one code per attribute, from one generator seeded with
  the seed (face i of a grid of n is row i; ``Sampler.face`` picks it out for walks);
  sketch2image takes sketches instead (``read_sketch`` for a user's drawing, ``Sampler.sketches_of``
  for XDoG sketches of faces, with the settings the checkpoint was trained with).
- Outputs: ``outputs`` runs G on any inputs, the family's way (pipeline/train/families.py).
- Layout: ``sheet`` tiles faces into a grid, each sketch beside the face drawn from it.

It lives in pipeline/train, not pipeline/core, because it needs the families and the trainer's grids
need it; it imports torch and numpy only (PIL lazily), so the trainer still runs on a torch-only box.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.train.families import FAMILIES, Batch, Family, one_hot


@torch.no_grad()
def outputs(G: nn.Module, fam: Family, inputs: Batch, batch_size: int = 256, batch_stats: bool | None = None) -> torch.Tensor:
    """G's images in [-1, 1] for ``inputs`` (z, c or sketch), ``batch_size`` at a time, on a copy of
    G so the trained G's running BatchNorm statistics are untouched. ``batch_stats``: train mode
    (BatchNorm on each chunk) or eval mode; by default the family's way of sampling. Nets with no tanh
    at G's end (R3GAN, as its paper) are clamped to the image range here, where every drawing passes."""
    g = copy.deepcopy(G).train(fam.batch_stats if batch_stats is None else batch_stats)
    lead = inputs.sketch if fam.sketches else inputs.z
    chunks = [Batch(inputs.real, z=None if inputs.z is None else inputs.z[i:i + batch_size],
                    c=None if inputs.c is None else inputs.c[i:i + batch_size],
                    sketch=None if inputs.sketch is None else inputs.sketch[i:i + batch_size])
              for i in range(0, len(lead), batch_size)]
    return torch.cat([fam.fake(g, b) for b in chunks]).clamp_(-1, 1)


class Sampler(nn.Module):
    """A trained G with its checkpoint's meta (family, label vocabulary)."""

    def __init__(self, G: nn.Module, meta: dict):
        super().__init__()
        self.G, self.meta = G, meta
        self.family = meta["family"]
        self.fam = FAMILIES[self.family]
        self.vocab: dict[str, list[str]] = meta.get("vocab") or {}
        self.sizes = [len(v) for v in self.vocab.values()]
        self.nz = getattr(G, "nz", 0)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z) if c is None else self.G(z, c)

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    # ---- labels

    def random_codes(self, n: int, gen: torch.Generator, fixed: dict[str, int] | None = None) -> torch.Tensor:
        """Uniform codes per attribute, except the ones ``fixed`` (attribute -> code)."""
        dev = gen.device
        cols = [torch.full((n,), fixed[a], device=dev) if fixed and a in fixed
                else torch.randint(0, s, (n,), generator=gen, device=dev) for a, s in zip(self.vocab, self.sizes)]
        return torch.stack(cols, 1)

    def codes_of_tags(self, tags: list[str]) -> dict[str, int]:
        """"blue hair", "hair_color=blue", or a value unique to one attribute -> {attribute: code}."""
        phrases: dict[str, tuple[str, int]] = {}
        for a, values in self.vocab.items():
            noun = a.split("_")[0]
            for i, v in enumerate(values):
                for p in (f"{a}={v}", f"{v} {noun}", f"{v} {noun}s", v, v.replace("_", " ")):
                    phrases.setdefault(p.lower(), (a, i))
            for truthy in ("yes", "true", "1", a):
                if truthy in values:
                    phrases.setdefault(a.replace("_", " ").lower(), (a, values.index(truthy)))
        out: dict[str, int] = {}
        for t in (t.strip().lower() for t in tags if t.strip()):
            if t not in phrases:
                known = sorted(f"{v} {a.split('_')[0]}" for a, vs in self.vocab.items() for v in vs)
                raise ValueError(f"tag {t!r} is not one this model was conditioned on; known: {', '.join(known)}")
            a, i = phrases[t]
            if a in out and out[a] != i:
                raise ValueError(f"tags ask for two values of {a}: {self.vocab[a][out[a]]} and {self.vocab[a][i]}")
            out[a] = i
        return out

    def requested(self, codes: torch.Tensor) -> dict[str, list[str]]:
        """Codes -> the attribute values each sample was asked for (what attribute accuracy checks)."""
        return {a: [values[int(k)] for k in codes[:, j].tolist()] for j, (a, values) in enumerate(self.vocab.items())}

    # ---- inputs

    def inputs(self, n: int, seed: int = 0, tags: list[str] | None = None) -> Batch:
        """G's inputs for n faces of ``seed``: one generator on G's device draws z (n x nz), then, with
        labels, a code per attribute (``tags`` fixed, the others uniform). This order is the contract
        that makes face i of a grid the same face wherever it is drawn."""
        if self.fam.sketches:
            raise ValueError("sketch2image draws from sketches, not from a seed: pass sketches (N x 1 x H x W in [-1, 1])")
        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(seed)
        b = Batch(None, z=torch.randn(n, self.nz, generator=gen, device=dev))
        if not self.fam.labels:
            if tags:
                raise ValueError("this model is unconditional: it takes no tags")
            return b
        b.codes = self.random_codes(n, gen, self.codes_of_tags(tags or []))
        b.c = one_hot(b.codes, self.sizes)
        return b

    def face(self, seed: int, index: int, count: int, tags: list[str] | None = None) -> Batch:
        """The inputs (one row) of face ``index`` of the grid of ``count`` faces of ``seed``: where a
        walk or "more like this" starts from the face that was clicked."""
        if not 0 <= index < count:
            raise ValueError(f"face index {index} is outside a grid of {count}")
        b = self.inputs(count, seed, tags)
        return _rows(b, index, index + 1)

    def walk(self, start: Batch, end: Batch, steps: int, mode: str = "slerp") -> Batch:
        """``steps`` inputs from ``start`` to ``end`` (one row each), linear or spherical in z; the
        start's codes all along."""
        t = torch.linspace(0, 1, steps, device=start.z.device)[:, None]
        z = lerp(start.z, end.z, t) if mode == "lerp" else slerp(start.z, end.z, t)
        return self._with_codes(z, start.codes)

    def near(self, start: Batch, count: int, strength: float, variation_seed: int) -> Batch:
        """"More like this": ``start``, then ``count - 1`` random moves of its z of size ``strength``
        from their own generator (``variation_seed``); the start's codes all along."""
        z0 = start.z
        gen = torch.Generator(device=z0.device).manual_seed(variation_seed)
        moves = torch.randn(count - 1, z0.shape[1], generator=gen, device=z0.device) * strength
        return self._with_codes(torch.cat([z0, z0 + moves]), start.codes)

    def _with_codes(self, z: torch.Tensor, codes: torch.Tensor | None) -> Batch:
        codes = None if codes is None else codes.expand(len(z), -1)
        return Batch(None, z=z, codes=codes, c=None if codes is None else one_hot(codes, self.sizes))

    def sketches_of(self, faces: np.ndarray) -> np.ndarray:
        """XDoG sketches (N x H x W uint8) of faces (N x H x W x 3 uint8) with the extractor settings
        this checkpoint was trained with: what sketch2image draws from when no drawing is given."""
        from pipeline.core.datasets import sketches_of
        from pipeline.train.params import ModelSpec

        return sketches_of(faces, ModelSpec(**self.meta["spec"]).sketch)

    # ---- drawing

    def render(self, inputs: Batch, batch_size: int = 256) -> torch.Tensor:
        """G's images in [-1, 1] for inputs made here (``inputs``, ``walk``, ``near``, sketches)."""
        return outputs(self.G, self.fam, inputs, batch_size)

    def sample(self, n: int, seed: int = 0, batch_size: int = 256, tags: list[str] | None = None,
               sketches: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [-1, 1] (see ``draw``)."""
        return self.draw(n, seed, batch_size, tags, sketches)[0]

    @torch.no_grad()
    def draw(self, n: int, seed: int = 0, batch_size: int = 256, tags: list[str] | None = None,
             sketches: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n images in [-1, 1], the N x A attribute codes used or None): ``inputs(n, seed, tags)``,
        or for sketch2image the first n ``sketches``."""
        if self.fam.sketches:
            if sketches is None:
                raise ValueError("sketch2image samples from sketches: pass sketches (N x 1 x H x W in [-1, 1])")
            return self.render(Batch(None, sketch=sketches[:n].to(self.device)), batch_size), None
        inputs = self.inputs(n, seed, tags)
        return self.render(inputs, batch_size), inputs.codes


def _rows(b: Batch, start: int, stop: int) -> Batch:
    return Batch(b.real, z=None if b.z is None else b.z[start:stop], codes=None if b.codes is None else b.codes[start:stop],
                 c=None if b.c is None else b.c[start:stop], sketch=None if b.sketch is None else b.sketch[start:stop])


def epoch_inputs(sampler: Sampler, seed: int, sketches: torch.Tensor | None = None) -> Batch:
    """The trainer's per-epoch grid inputs: 64 faces of ``seed + 1`` (a generator of their own, so a
    resumed run draws the same grids); with labels, row r asks for value r of the first attribute
    (cycling), the rest at random; sketch2image: the given sketches (the first training faces')."""
    if sampler.fam.sketches:
        return Batch(None, sketch=sketches)
    b = sampler.inputs(64, seed + 1)
    if b.codes is not None:
        b.codes[:, 0] = torch.arange(64, device=b.codes.device) // 8 % sampler.sizes[0]
        b.c = one_hot(b.codes, sampler.sizes)
    return b


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the rows ``a`` and ``b`` (1 x nz) at the fractions ``t`` (k x 1):
    Gaussian latents live near a sphere, so this keeps the norm that linear steps shrink midway."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.arccos((an * bn).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if float(so) < 1e-6:  # the same direction: nothing to curve around
        return lerp(a, b, t)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


# ---- sketches and layout


def read_sketch(source: str | Path | bytes, size: int, what: str = "the sketch", max_pixels: int | None = None) -> np.ndarray:
    """A drawing (a file or PNG/JPEG/WebP bytes; dark lines on light, transparent counts as paper) as
    the model's size x size grey (H x W uint8). ``what`` names it in errors (ValueError);
    ``max_pixels`` refuses larger pictures before decoding them."""
    import io

    from PIL import Image, UnidentifiedImageError

    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ValueError(f"{what} does not exist (or is not a file); pass the path of a PNG, JPEG or WebP drawing")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise ValueError(f"{what} is {im.width}x{im.height}; at most {max_pixels} pixels")
            if im.mode in ("RGBA", "LA", "P"):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return np.asarray(im.convert("L").resize((size, size), Image.Resampling.LANCZOS))
    except Image.DecompressionBombError as e:  # a header that declares more pixels than any drawing has
        raise ValueError(f"{what} declares too many pixels ({e}); draw or export it smaller "
                         f"(it becomes {size} px)") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{what} is not a picture PIL can read ({e}); pass a PNG, JPEG or WebP") from None


def sketch_tensor(sketches: np.ndarray) -> torch.Tensor:
    """N x H x W uint8 sketches -> N x 1 x H x W float in [-1, 1], what sketch2image's G takes."""
    return torch.from_numpy(np.array(sketches, copy=True))[:, None].float().div(127.5).sub(1)


def sheet(faces: torch.Tensor, sketches: torch.Tensor | None = None, nrow: int = 8) -> np.ndarray:
    """Faces in [-1, 1] (N x C x H x W) as one uint8 grid picture, ``nrow`` per row; with ``sketches``
    (N x 1 x H x W), each sketch (as grey) just before the face drawn from it."""
    from pipeline.core.images import grid, to_uint8

    if sketches is not None:
        sketches = sketches.to(faces.device).expand(-1, faces.shape[1], -1, -1)
        faces = torch.stack([sketches, faces], 1).flatten(0, 1)
    return grid(to_uint8(faces), nrow)

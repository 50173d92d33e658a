"""The one way to draw samples from a G: the trainer's epoch grids, evaluation's drawn faces and
the ``sample`` command all end in ``outputs``; ``Sampler`` turns "n faces, this seed, maybe these
tags or sketches" into G's inputs for any family (pipeline/train/families.py says which inputs).
"""

from __future__ import annotations

import copy

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

    def sample(self, n: int, seed: int = 0, batch_size: int = 256, tags: list[str] | None = None,
               sketches: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [-1, 1] (see ``draw``)."""
        return self.draw(n, seed, batch_size, tags, sketches)[0]

    @torch.no_grad()
    def draw(self, n: int, seed: int = 0, batch_size: int = 256, tags: list[str] | None = None,
             sketches: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n images in [-1, 1], the N x A attribute codes used or None): noise of ``seed``; labels
        with ``tags`` fixed and every other attribute uniform; or the first n ``sketches``."""
        dev = next(self.G.parameters()).device
        gen = torch.Generator(device=dev).manual_seed(seed)
        if self.fam.sketches:
            if sketches is None:
                raise ValueError("sketch2image samples from sketches: pass sketches (N x 1 x H x W in [-1, 1])")
            return outputs(self.G, self.fam, Batch(None, sketch=sketches[:n].to(dev)), batch_size), None
        inputs = Batch(None, z=torch.randn(n, self.nz, generator=gen, device=dev))
        if not self.fam.labels:
            if tags:
                raise ValueError("this model is unconditional: it takes no tags")
            return outputs(self.G, self.fam, inputs, batch_size), None
        inputs.codes = self.random_codes(n, gen, self.codes_of_tags(tags or []))
        inputs.c = one_hot(inputs.codes, self.sizes)
        return outputs(self.G, self.fam, inputs, batch_size), inputs.codes

"""A trained G with what it takes to draw from it: noise, labels or sketches by family.

Evaluation and the ``sample`` command only ever say "n faces, this seed, maybe these tags";
this is the one place that knows how each family turns that into G's inputs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def one_hot(codes: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """N x A integer codes (-1 unknown) -> N x sum(sizes) concatenated one-hots (unknown: all zeros)."""
    parts = [nn.functional.one_hot(codes[:, k].clamp_min(0), s).float() * (codes[:, k:k + 1] >= 0)
             for k, s in enumerate(sizes)]
    return torch.cat(parts, 1)


class Sampler(nn.Module):
    def __init__(self, G: nn.Module, meta: dict):
        super().__init__()
        self.G, self.meta = G, meta
        self.family = meta["family"]
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
        """(n images in [-1, 1], the N x A attribute codes used or None). Unconditional G samples with
        batch statistics (as the reference DCGAN); conditional G in eval mode, since a batch that all
        shares one label would have BatchNorm subtract the label's effect away."""
        dev = next(self.G.parameters()).device
        gen = torch.Generator(device=dev).manual_seed(seed)
        g = copy.deepcopy(self.G)
        if self.family == "sketch":
            if sketches is None:
                raise ValueError("sketch2image samples from sketches: pass sketches (N x 1 x H x W in [-1, 1])")
            g.eval()
            return torch.cat([g(s.to(dev)) for s in sketches[:n].split(batch_size)]), None
        z = torch.randn(n, self.nz, generator=gen, device=dev)
        if not self.vocab:
            if tags:
                raise ValueError("this model is unconditional: it takes no tags")
            g.train()
            return torch.cat([g(chunk) for chunk in z.split(batch_size)]), None
        g.eval()
        codes = self.random_codes(n, gen, self.codes_of_tags(tags or []))
        c = one_hot(codes, self.sizes)
        return torch.cat([g(zc, cc) for zc, cc in zip(z.split(batch_size), c.split(batch_size))]), codes

"""Draw evaluation samples from whatever ``load_generator`` returns, and say what was asked for.

Two generator shapes exist: a bare unconditional G (z -> image), and a ``Sampler`` (models/sampler.py:
G plus its attribute vocabulary) for conditional families. For the latter we draw the attribute
codes ourselves so the attribute-accuracy metric knows what each sample was conditioned on.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def draw(G, n: int, seed: int, batch_size: int, device) -> tuple[np.ndarray, dict[str, list[str]] | None]:
    """(n NHWC uint8 samples, requested attribute values per sample or None when unconditional)."""
    from pipeline.images import to_uint8

    gen = torch.Generator(device=device).manual_seed(seed)
    vocab = getattr(G, "vocab", None) or {}
    if vocab and hasattr(G, "random_codes"):
        from models.sampler import one_hot  # only conditional checkpoints (GAN zoo) get here

        z = torch.randn(n, G.nz, generator=gen, device=device)
        codes = G.random_codes(n, gen)
        c = one_hot(codes, G.sizes)
        g = copy.deepcopy(G.G).eval()  # eval: a batch sharing labels must not be normalised away
        with torch.no_grad():
            x = torch.cat([g(zc, cc) for zc, cc in zip(z.split(batch_size), c.split(batch_size))])
        requested = {a: [values[int(k)] for k in codes[:, j].tolist()] for j, (a, values) in enumerate(vocab.items())}
        return to_uint8(x), requested
    if hasattr(G, "sample"):
        return to_uint8(G.sample(n, seed=seed, batch_size=batch_size)), None
    from pipeline.trainer import generate

    z = torch.randn(n, G.nz, generator=gen, device=device)
    return to_uint8(generate(G, z, batch_size)), None

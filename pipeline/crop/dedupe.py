"""Near-duplicate faces by perceptual hash: the same art is often posted several times (rescaled,
recompressed, cropped differently), and repeated faces make a GAN memorise them.

A 64-bit difference hash (dHash) survives resizing and JPEG noise; faces whose hashes differ in at
most ``distance`` bits are one face. The winner per group is chosen by a fixed order (score, then
resolution, then id), so the result depends on the set of faces, not on which run saw them first.
"""

from __future__ import annotations

from collections import defaultdict

HASH_BITS = 64


def dhash(face) -> int:
    """Sign of horizontal brightness steps on a 9x8 grey thumbnail, as 64 bits."""
    import numpy as np
    from PIL import Image

    g = np.asarray(face.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def bands(h: int, n: int) -> list[tuple[int, int]]:
    """``h`` cut into ``n`` bit ranges: two hashes within n-1 bits agree exactly on at least one."""
    edges = [round(i * HASH_BITS / n) for i in range(n + 1)]
    return [(i, (h >> lo) & ((1 << (hi - lo)) - 1)) for i, (lo, hi) in enumerate(zip(edges, edges[1:]))]


def near_duplicates(hashes: list[int], distance: int) -> list[int | None]:
    """For each hash, in priority order (best first), the index of the earlier kept hash it
    duplicates (at most ``distance`` differing bits), or None when it is kept."""
    n_bands = distance + 1  # pigeonhole: only compare hashes that share one band exactly
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    out: list[int | None] = []
    for i, h in enumerate(hashes):
        keys = bands(h, n_bands)
        dup = next((j for k in keys for j in buckets[k] if (h ^ hashes[j]).bit_count() <= distance), None)
        out.append(dup)
        if dup is None:
            for k in keys:
                buckets[k].append(i)
    return out

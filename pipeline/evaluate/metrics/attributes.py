"""Conditional models: do the samples show the attributes they were asked for?

A reader maps a batch of generated images to the value of one attribute each: on toy faces the
toy generator's own hair-colour check; on real faces the illustration2vec tagger (``tag.*``
params, weights as for the tag stage), taking the most likely value of each exclusive group as
make.girls.moe did. Accuracy is per attribute, plus the mean over the attributes that have a reader.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.evaluate.metrics.errors import MetricUnavailable

Reader = Callable[[np.ndarray], list[str]]  # N x H x W x 3 uint8 -> one value per image


def toy_readers() -> dict[str, Reader]:
    from pipeline.core.toyfaces import hair_colour_of

    return {"hair_color": lambda images: [hair_colour_of(im) for im in images]}


class TaggerReaders:
    """One reader per vocabulary group, sharing one tagger pass over the images (loaded on first use)."""

    def __init__(self, tag_params, device: str = "cpu"):
        self.params, self.device = tag_params, device
        self.tagger = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def _probs(self, images: np.ndarray) -> np.ndarray:
        if self._last is None or self._last[0] is not images:
            if self.tagger is None:
                from pipeline.core.errors import StageError
                from pipeline.tag.i2v import load

                try:
                    self.tagger = load(self.params, self.device)
                except StageError as e:
                    raise MetricUnavailable(f"attribute accuracy needs the tagger: {e}") from None
            from PIL import Image

            self._last = (images, self.tagger.predict([Image.fromarray(im) for im in images]))
        return self._last[1]

    def read_group(self, group: str, images: np.ndarray) -> list[str]:
        from pipeline.core.vocab import normalise_tag

        probs = self._probs(images)
        index = {normalise_tag(t): i for i, t in enumerate(self.tagger.tags)}
        values = list(self.params.vocabulary.groups[group])
        try:
            cols = [index[normalise_tag(self.params.vocabulary.groups[group][v])] for v in values]
        except KeyError as e:
            raise MetricUnavailable(f"the tagger has no output for {e.args[0]!r} (tag.vocabulary.groups.{group})") from None
        return [values[i] for i in probs[:, cols].argmax(1)]

    def readers(self) -> dict[str, Reader]:
        return {g: (lambda images, g=g: self.read_group(g, images)) for g in self.params.vocabulary.groups}


def attribute_accuracy(fake: np.ndarray, requested: dict[str, list[str | None]], readers: dict[str, Reader]) -> dict[str, float]:
    """``requested[attr][i]`` is the value sample ``i`` was conditioned on (None: not requested)."""
    out: dict[str, float] = {}
    for attr, wanted in requested.items():
        if attr not in readers:
            continue
        if len(wanted) != len(fake):
            raise ValueError(f"{len(wanted)} requested {attr} values for {len(fake)} samples")
        idx = [i for i, w in enumerate(wanted) if w is not None]
        if idx:
            got = readers[attr](fake[idx])
            out[f"attr_acc_{attr}"] = float(np.mean([g == wanted[i] for g, i in zip(got, idx)]))
    if not out:
        raise MetricUnavailable(f"no attribute reader for the conditioned attributes {sorted(requested)} "
                                f"(readers exist for {sorted(readers)})")
    out["attr_acc"] = float(np.mean(list(out.values())))
    return out

"""Training on crop's packed store, streamed a batch at a time (``train.cache_gb`` exceeded), ends on
the same weights as today's path with every face in memory, for the same faces and seed."""

from __future__ import annotations

import numpy as np
import pytest
from test_trainer import FACES, LABELS, assert_same, spec_for, state_of

from pipeline.core import facestore
from pipeline.train.loop import train


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    """FACES in a store file, its rows in another order than the faces' (as after appends), mapped."""
    path = tmp_path_factory.mktemp("store") / "faces.u8"
    order = np.random.default_rng(3).permutation(len(FACES.images))
    writer = facestore.StoreWriter(path, 32, 32)
    rows = np.empty(len(order), np.int64)
    for i in order:
        rows[i] = writer.append(FACES.images[i])
    writer.close()
    v = facestore.StoreView(facestore.open_store(path), rows)
    np.testing.assert_array_equal(np.asarray(v), FACES.images)
    return v


@pytest.mark.parametrize("arch", ["dcgan", "acgan"])
def test_streamed_from_the_store_gives_the_in_memory_weights(arch, view, tmp_path):
    spec = spec_for(arch, steps=5)
    labels = LABELS if spec.conditioning else None
    a = train(FACES.images, spec, tmp_path / "memory", labels=labels, seed=0, device="cpu")
    b = train(view, spec, tmp_path / "store", labels=labels, seed=0, device="cpu", cache_bytes=0)
    assert a["steps"] == b["steps"] == 5
    assert_same(state_of(tmp_path / "memory" / "checkpoint.pt"), state_of(tmp_path / "store" / "checkpoint.pt"))
    assert (tmp_path / "memory" / "losses.csv").read_text() == (tmp_path / "store" / "losses.csv").read_text()


def test_the_cache_budget_decides_resident_or_streamed(view):
    import torch

    from pipeline.train.loop import _Faces

    spec = spec_for("dcgan")
    resident = _Faces(view, None, None, torch.device("cpu"), spec, cache_bytes=view.nbytes)
    streamed = _Faces(view, None, None, torch.device("cpu"), spec, cache_bytes=view.nbytes - 1)
    assert resident.resident and not streamed.resident and not hasattr(streamed, "data")
    idx = torch.tensor([5, 0, 47, 5])
    assert torch.equal(resident.pixels(idx), streamed.pixels(idx))

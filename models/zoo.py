"""Build (G, D) for an arch: the one module that imports the architectures (and torch), apart from
the torch-free registry (models/registry.py) that params validation reads. The builders are plain
imports here, so the import graph (tests/importgraph.py) sees that whoever builds a model runs
every architecture's code, and DVC reruns train and evaluate when any of them changes. Whoever
imports this module imports torch: the trainer and the checkpoint loader do it inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models import acgan, dcgan, mlp, r3gan, sketch2image
from models.registry import ARCHS

BUILDERS: dict[str, Callable[..., Any]] = {  # Arch.module -> its builder
    "dcgan": dcgan.build, "acgan": acgan.build, "mlp": mlp.build, "sketch2image": sketch2image.build,
    "r3gan": r3gan.build}


def build(arch: str, net: dict[str, Any], image_size: int, channels: int = 3, cond_dim: int = 0):
    """Construct (G, D) for ``arch``; imports torch. ``cond_dim``: length of the one-hot label vector."""
    params = ARCHS[arch].net.model_validate(net)
    return BUILDERS[ARCHS[arch].module](params, image_size, channels, cond_dim)

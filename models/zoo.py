"""Build (G, D) for an arch: the one module that imports the architectures (and torch), apart from
the torch-free registry (models/registry.py) that params validation reads. The builders are named
in full here, so the import graph (tests/importgraph.py) sees that whoever builds a model runs
every architecture's code, and DVC reruns train and evaluate when any of them changes.
"""

from __future__ import annotations

import importlib
from typing import Any

from models.registry import ARCHS

BUILDERS = {"dcgan": "models.dcgan:build", "acgan": "models.acgan:build", "mlp": "models.mlp:build",
            "sketch2image": "models.sketch2image:build", "r3gan": "models.r3gan:build"}  # Arch.module -> its builder


def build(arch: str, net: dict[str, Any], image_size: int, channels: int = 3, cond_dim: int = 0):
    """Construct (G, D) for ``arch``; imports torch. ``cond_dim``: length of the one-hot label vector."""
    params = ARCHS[arch].net.model_validate(net)
    module, func = BUILDERS[ARCHS[arch].module].split(":")
    return getattr(importlib.import_module(module), func)(params, image_size, channels, cond_dim)

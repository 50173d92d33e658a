"""Build small illustration2vec-format weights for tests: a caffemodel in the official protobuf
layout (the reference's layer names and kinds, narrow channels, random weights) and a tag list."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from pipeline.tag.caffemodel import Layer
from pipeline.tag.i2v_net import CONVS, LAYOUT

from fakes.caffe_writer import net_bytes


def tiny_widths(outputs: int, width: int = 4) -> dict[str, int]:
    w = {c: width * (1 + i // 4) for i, c in enumerate(CONVS)}
    w["conv6_4"] = outputs
    return w


def tiny_layers(outputs: int, seed: int = 0, width: int = 4) -> list[Layer]:
    """Data, conv/relu/pool/dropout, pool6, sigmoid: the layer sequence the official file has."""
    rng = np.random.default_rng(seed)
    widths = tiny_widths(outputs, width)
    layers, cin = [Layer("data", "Input")], 3
    for name in LAYOUT:
        if name.startswith("conv"):
            cout = widths[name]
            w = rng.normal(0, np.sqrt(2.0 / (9 * cin)), (cout, cin, 3, 3)).astype(np.float32) * 0.02
            layers.append(Layer(name, "Convolution", [w, rng.normal(0, 0.1, cout).astype(np.float32)]))
            if name != "conv6_4":
                layers.append(Layer("relu" + name[4:], "ReLU"))
            if name == "conv6_3":
                layers.append(Layer("drop6_3", "Dropout"))
            cin = cout
        else:
            layers.append(Layer(name, "Pooling"))
    layers.append(Layer("prob", "Sigmoid"))
    return layers


def tag_names(vocab_tags: list[str], general: int = 8, other: int = 3) -> list[str]:
    """Vocabulary tags first among the general tags, some filler, then non-general outputs."""
    filler = [f"tag {i}" for i in range(general)]
    names = list(vocab_tags) + filler
    return names + [f"character {i}" for i in range(other)]


def write_weights(folder: Path, tags: list[str], seed: int = 0, width: int = 4, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "illust2vec_tag_ver200.caffemodel").write_bytes(net_bytes(tiny_layers(len(tags), seed, width), "illust2vec_tag"))
    data = json.dumps(tags).encode()
    if gz:
        (folder / "tag_list.json.gz").write_bytes(gzip.compress(data))
    else:
        (folder / "tag_list.json").write_bytes(data)
    return folder

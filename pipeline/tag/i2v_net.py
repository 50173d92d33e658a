"""The illustration2vec tag network (v2.0.0, ``illust2vec_tag.prototxt``) as a torch module.

VGG-style 3x3 convolutions with the reference's layer names, so the caffemodel's blobs map onto
``<layer>.weight`` / ``<layer>.bias`` one to one; channel widths are read from the weights, so a
narrow test network with the same layer kinds runs through the same code as the real one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# the reference's layer order: a conv is followed by ReLU except the tag head conv6_4
LAYOUT = ("conv1_1", "pool1", "conv2_1", "pool2", "conv3_1", "conv3_2", "pool3", "conv4_1", "conv4_2", "pool4",
          "conv5_1", "conv5_2", "pool5", "conv6_1", "conv6_2", "conv6_3", "conv6_4", "pool6")
CONVS = tuple(n for n in LAYOUT if n.startswith("conv"))
HEAD = "conv6_4"
FULL_WIDTHS = {"conv1_1": 64, "conv2_1": 128, "conv3_1": 256, "conv3_2": 256, "conv4_1": 512, "conv4_2": 512,
               "conv5_1": 512, "conv5_2": 512, "conv6_1": 1024, "conv6_2": 1024, "conv6_3": 1024, "conv6_4": 1539}
INPUT_SIZE = 224


class I2VTagNet(nn.Module):
    """Image (N, 3, 224, 224), BGR, mean subtracted -> tag probabilities (N, outputs)."""

    def __init__(self, widths: dict[str, int] | None = None):
        super().__init__()
        widths = widths or FULL_WIDTHS
        missing = [c for c in CONVS if c not in widths]
        if missing:
            raise ValueError(f"no width for layer(s) {missing}")
        cin = 3
        for name in CONVS:
            setattr(self, name, nn.Conv2d(cin, widths[name], 3, padding=1))
            cin = widths[name]

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> I2VTagNet:
        missing = [c for c in CONVS if f"{c}.weight" not in state]
        if missing:
            raise ValueError(f"weights lack layer(s) {missing}")
        net = cls({c: state[f"{c}.weight"].shape[0] for c in CONVS})
        net.load_state_dict(state)
        return net

    @property
    def outputs(self) -> int:
        return getattr(self, HEAD).out_channels

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        for name in LAYOUT:
            if name.startswith("conv"):
                x = getattr(self, name)(x)
                if name != HEAD:
                    x = F.relu(x)
            elif name == "pool6":
                x = F.avg_pool2d(x, 7, stride=1)
            else:  # Caffe pools round up; at 224 every map is even, the same as flooring
                x = F.max_pool2d(x, 2, stride=2, ceil_mode=True)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x).float())


def state_dict_from_layers(layers) -> dict[str, torch.Tensor]:
    """Caffe layers (pipeline.tag.caffemodel.Layer) -> this module's state_dict, by layer name."""
    by_name = {layer.name: layer for layer in layers}
    state: dict[str, torch.Tensor] = {}
    cin = 3
    for name in CONVS:
        layer = by_name.get(name)
        if layer is None or len(layer.blobs) != 2:
            found = "absent" if layer is None else f"{len(layer.blobs)} blob(s)"
            raise ValueError(f"caffemodel layer {name!r}: expected a Convolution with weight and bias, got {found}")
        w, b = layer.blobs
        cout = w.shape[0]
        if w.size != cout * cin * 9 or b.size != cout:
            raise ValueError(f"caffemodel layer {name!r}: weight {w.shape} / bias {b.shape} do not fit "
                             f"a 3x3 conv from {cin} channels")
        state[f"{name}.weight"] = torch.from_numpy(w.reshape(cout, cin, 3, 3).copy())
        state[f"{name}.bias"] = torch.from_numpy(b.reshape(cout).copy())
        cin = cout
    return state

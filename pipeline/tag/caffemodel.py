"""Read (and, for tests, write) Caffe ``.caffemodel`` files: a binary ``NetParameter`` protobuf.

Only the fields weights live in are decoded (caffe.proto field numbers):

    NetParameter   name = 1, layer = 100 (LayerParameter), layers = 2 (legacy V1LayerParameter)
    LayerParameter name = 1, type = 2 (string), blobs = 7 (BlobProto)
    V1LayerParameter name = 4, type = 5 (enum), blobs = 6
    BlobProto      shape = 7 (BlobShape: dim = 1, packed int64), data = 5 (packed float),
                   double_data = 8 (packed double), legacy num/channels/height/width = 1..4

Everything else (prototxt settings, learning rates) is skipped, so the reader does not care which
Caffe version wrote the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.tag import protobuf as pb

# V1LayerParameter.LayerType values of the layer kinds a VGG-style net uses
V1_TYPES = {4: "Convolution", 5: "Data", 6: "Dropout", 14: "InnerProduct", 17: "Pooling", 18: "ReLU",
            19: "Sigmoid", 20: "Softmax", 22: "Split", 33: "Slice"}


@dataclass
class Layer:
    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _floats(wire: int, value, dtype: str) -> np.ndarray:
    if wire == pb.LENGTH:  # packed (what Caffe writes)
        return np.frombuffer(value, dtype=dtype)
    return np.frombuffer(value, dtype=dtype, count=1)  # one unpacked element


def parse_blob(buf: memoryview) -> np.ndarray:
    dims: list[int] = []
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    chunks: list[np.ndarray] = []
    for f, wire, value in pb.iter_fields(buf):
        if f == 7 and wire == pb.LENGTH:
            for sf, swire, sval in pb.iter_fields(value):
                if sf == 1:
                    dims.extend(pb.packed_varints(sval) if swire == pb.LENGTH else [pb.zigzag_free_int(sval)])
        elif f == 5:
            chunks.append(_floats(wire, value, "<f4"))
        elif f == 8:
            chunks.append(_floats(wire, value, "<f8").astype(np.float32))
        elif f in legacy and wire == pb.VARINT:
            legacy[f] = pb.zigzag_free_int(value)
    data = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if not dims and any(legacy.values()):
        dims = [legacy[1], legacy[2], legacy[3], legacy[4]]
    if not dims:
        dims = [data.size]
    if int(np.prod(dims)) != data.size:
        raise pb.WireError(f"blob of shape {dims} holds {data.size} values")
    return data.reshape(dims)


def _parse_layer(buf: memoryview, v1: bool) -> Layer:
    name_f, type_f, blobs_f = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, blobs = "", "", []
    for f, wire, value in pb.iter_fields(buf):
        if f == name_f and wire == pb.LENGTH:
            name = bytes(value).decode("utf-8")
        elif f == type_f:
            kind = V1_TYPES.get(value, f"V1:{value}") if v1 else bytes(value).decode("utf-8")
        elif f == blobs_f and wire == pb.LENGTH:
            blobs.append(parse_blob(value))
    return Layer(name, kind, blobs)


def parse_net(data: bytes | memoryview) -> list[Layer]:
    """The layers of a NetParameter, in file order (``layer`` and legacy ``layers`` entries)."""
    layers = []
    for f, wire, value in pb.iter_fields(data):
        if f in (100, 2) and wire == pb.LENGTH:
            layers.append(_parse_layer(value, v1=f == 2))
    return layers


def read_caffemodel(path: str | Path) -> list[Layer]:
    try:
        return parse_net(Path(path).read_bytes())
    except (pb.WireError, UnicodeDecodeError) as e:
        raise pb.WireError(f"{path} is not a readable caffemodel: {e}") from None


# ---------------------------------------------------------------------------------------------
# writing, in the same layout Caffe uses (packed floats, BlobShape), for tests

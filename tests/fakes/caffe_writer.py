"""Writes small caffemodels (protobuf wire format) for the tests: the reader's mirror image.

Only tests build caffemodels; production code only reads them (pipeline/tag/caffemodel.py).
"""

from __future__ import annotations

import struct

import numpy as np

from pipeline.tag.caffemodel import V1_TYPES, Layer
from pipeline.tag.protobuf import FIXED32, LENGTH, VARINT


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def length_field(field: int, payload: bytes) -> bytes:
    return key(field, LENGTH) + varint(len(payload)) + payload


def varint_field(field: int, value: int) -> bytes:
    return key(field, VARINT) + varint(value)


def float_field(field: int, value: float) -> bytes:
    return key(field, FIXED32) + struct.pack("<f", value)


def blob_bytes(array: np.ndarray) -> bytes:
    shape = b"".join(varint(d) for d in array.shape)
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return length_field(7, length_field(1, shape)) + length_field(5, data)


def layer_bytes(layer: Layer, v1: bool = False) -> bytes:
    if v1:
        code = {v: k for k, v in V1_TYPES.items()}[layer.type]
        head = length_field(4, layer.name.encode()) + varint_field(5, code)
        return head + b"".join(length_field(6, blob_bytes(b)) for b in layer.blobs)
    head = length_field(1, layer.name.encode()) + length_field(2, layer.type.encode())
    return head + b"".join(length_field(7, blob_bytes(b)) for b in layer.blobs)


def net_bytes(layers: list[Layer], name: str = "net", v1: bool = False) -> bytes:
    return length_field(1, name.encode()) + b"".join(length_field(2 if v1 else 100, layer_bytes(layer, v1)) for layer in layers)

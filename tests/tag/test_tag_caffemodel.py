"""The caffemodel reader against files built in the official layout, and the torch network against
an independent NumPy computation of the same layers."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from pipeline.core.errors import StageError
from pipeline.tag.caffemodel import Layer, parse_net, read_caffemodel
from pipeline.tag.i2v import converted_state
from pipeline.tag.i2v_net import I2VTagNet, state_dict_from_layers
from pipeline.tag.protobuf import WireError

from fakes import caffe_writer as pb
from fakes.caffe_writer import blob_bytes, net_bytes
from fakes.i2v_tiny import tiny_layers, write_weights


def test_roundtrip_new_and_legacy_layouts():
    rng = np.random.default_rng(1)
    layers = [Layer("data", "Data"), Layer("conv1_1", "Convolution", [rng.normal(size=(5, 3, 3, 3)).astype(np.float32),
                                                                       rng.normal(size=5).astype(np.float32)]),
              Layer("relu1_1", "ReLU"), Layer("pool1", "Pooling"), Layer("prob", "Sigmoid")]
    for v1 in (False, True):
        back = parse_net(net_bytes(layers, v1=v1))
        assert [(x.name, x.type) for x in back] == [(x.name, x.type) for x in layers]
        for a, b in zip(layers, back):
            assert len(a.blobs) == len(b.blobs)
            for x, y in zip(a.blobs, b.blobs):
                assert x.shape == y.shape and np.array_equal(x, y)


def test_legacy_blob_dims_unpacked_floats_and_unknown_fields_are_read():
    values = [1.5, -2.0, 3.25, 0.0, 7.0, 8.5]
    blob = b"".join(pb.varint_field(f, v) for f, v in ((1, 1), (2, 2), (3, 1), (4, 3)))
    blob += b"".join(pb.float_field(5, v) for v in values)  # unpacked, one float per field
    layer = (pb.length_field(1, b"conv") + pb.length_field(2, b"Convolution") + pb.float_field(5, 1.0)  # loss_weight
             + pb.length_field(106, pb.varint_field(1, 2))  # convolution_param, skipped
             + pb.length_field(7, blob))
    doubles = pb.length_field(7, pb.length_field(1, pb.varint(2)) + pb.length_field(8, struct.pack("<2d", 0.5, -1.0)))
    net = pb.length_field(1, b"n") + pb.length_field(100, layer) + pb.length_field(100, pb.length_field(1, b"b") + doubles)
    conv, b = parse_net(net)
    assert conv.blobs[0].shape == (1, 2, 1, 3) and conv.blobs[0].ravel().tolist() == values
    assert b.blobs[0].tolist() == [0.5, -1.0]


def test_truncated_or_inconsistent_files_are_rejected(tmp_path):
    data = net_bytes(tiny_layers(6))
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WireError, match="cut.caffemodel"):
        read_caffemodel(path)
    bad_blob = pb.length_field(7, pb.length_field(1, pb.varint(4))) + pb.length_field(5, np.zeros(3, "<f4").tobytes())
    with pytest.raises(WireError, match="shape"):
        parse_net(pb.length_field(100, pb.length_field(1, b"x") + pb.length_field(7, bad_blob)))
    assert blob_bytes(np.zeros((2, 2), np.float32))  # the writer's own output parses back
    layers = [x for x in tiny_layers(6) if x.name != "conv4_2"]
    with pytest.raises(ValueError, match="conv4_2"):
        state_dict_from_layers(layers)


def numpy_forward(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """The network computed straight from the caffemodel's layer list, in float64 NumPy."""
    x = x.astype(np.float64)
    for layer in layers:
        if layer.type == "Convolution":
            w, b = (blob.astype(np.float64) for blob in layer.blobs)
            padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            win = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # N C H W 3 3
            x = np.einsum("nchwij,ocij->nohw", win, w, optimize=True) + b[None, :, None, None]
        elif layer.type == "ReLU":
            x = np.maximum(x, 0)
        elif layer.type == "Pooling" and layer.name == "pool6":
            x = x.mean(axis=(2, 3))
        elif layer.type == "Pooling":
            n, c, h, w_ = x.shape
            x = x.reshape(n, c, h // 2, 2, w_ // 2, 2).max(axis=(3, 5))
        elif layer.type == "Sigmoid":
            x = 1 / (1 + np.exp(-x))
    return x.reshape(x.shape[0], -1)


def test_loaded_network_matches_independent_numpy_forward(tmp_path):
    tags = [f"t{i}" for i in range(10)]
    folder = write_weights(tmp_path / "w", tags, seed=3, width=4)
    layers = read_caffemodel(folder / "illust2vec_tag_ver200.caffemodel")
    state, digest = converted_state(folder / "illust2vec_tag_ver200.caffemodel")
    net = I2VTagNet.from_state_dict(state).eval()
    assert net.outputs == 10 and net.conv6_1.out_channels == 12
    x = np.random.default_rng(0).normal(0, 60, (2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    ref = numpy_forward(layers, x)
    assert ours.shape == (2, 10)
    assert ref.std() > 1e-3  # the outputs vary, so the comparison means something
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # converted once: the cached state_dict is what a second load returns
    again, digest2 = converted_state(folder / "illust2vec_tag_ver200.caffemodel")
    assert digest2 == digest and all(torch.equal(state[k], again[k]) for k in state)


def test_caffemodel_without_the_expected_layers_is_a_clear_error(tmp_path):
    path = tmp_path / "illust2vec_tag_ver200.caffemodel"
    path.write_bytes(net_bytes([Layer("fc", "InnerProduct", [np.zeros((2, 2), np.float32)])]))
    with pytest.raises(StageError, match="conv1_1"):
        converted_state(path)

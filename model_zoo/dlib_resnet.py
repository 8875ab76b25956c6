"""dlib's face ResNet (dlib_face_recognition_resnet_model_v1) rebuilt in torch, weights read from dlib's own file.

Why: the dlib-bin wheel runs its network without BLAS; the same network in torch is an order of magnitude
faster, which is what keeps a verify of two photos with mirror averaging quick
(docs/experiments/inference-runtimes.md). The outputs match dlib's `compute_face_descriptor` to float
rounding (a test checks it on real faces), so the calibrated threshold carries over unchanged.

The architecture is dlib's `anet_type` (dnn_face_recognition_ex.cpp): a 7x7/2 stem, max pool, then
residual blocks of 32, 64, 128 and 256 filters, global average pool and a 128-d linear layer without
bias. dlib quirks kept on purpose: stride-2 layers have no padding, and a residual sum of tensors of
different sizes zero-pads the smaller one at the bottom and right (and in the missing channels).

The .dat file is dlib's serialization: layers from the input upwards, each named by a string, with
parameters as flat float32 tensors. Only the pieces the network needs are read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 150


class DlibFormatError(ValueError):
    """The file is not the dlib face network this module knows how to read."""


@dataclass
class _Conv:
    weight: np.ndarray  # [out, in, kh, kw]
    bias: np.ndarray
    stride: int
    padding: int


class _Reader:
    """dlib's serialization primitives: packed integers, strings, float_details and tensors."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        if size > 8 or len(raw) != size:
            raise DlibFormatError(f"bad integer at byte {self.pos}")
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        size = self.int()
        text = self.data[self.pos : self.pos + size]
        self.pos += size
        return text.decode("ascii", "replace")

    def real(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(np.ldexp(mantissa, exponent))

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise DlibFormatError(f"unknown tensor version at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise DlibFormatError("file ends inside a tensor")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos = end
        return values

    def seek_layer(self, name: str) -> bool:
        """Move just past the next serialized string `name`; False when there is none."""
        marker = struct.pack("BB", 1, len(name)) + name.encode()
        found = self.data.find(marker, self.pos)
        if found < 0:
            return False
        self.pos = found + len(marker)
        return True


def read_dlib_network(path: str | os.PathLike) -> tuple[tuple[float, float, float], list[_Conv], np.ndarray]:
    """(input channel means, convolutions with their affine layers folded in, fc weight [128, 256])."""
    with open(path, "rb") as handle:
        reader = _Reader(handle.read())
    if not reader.seek_layer("input_rgb_image_sized"):
        raise DlibFormatError(f"{path} holds no dlib input_rgb_image_sized layer")
    means = (reader.real(), reader.real(), reader.real())
    convs: list[_Conv] = []
    while True:
        start = reader.pos
        if not reader.seek_layer("con_4"):
            break
        params = reader.tensor().reshape(-1)
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(7))
        if stride_y != stride_x or pad_y != pad_x or rows != cols:
            raise DlibFormatError(f"unexpected convolution geometry at byte {start}")
        inputs = (params.size - filters) // (filters * rows * cols)
        weight = params[: filters * inputs * rows * cols].reshape(filters, inputs, rows, cols)
        bias = params[filters * inputs * rows * cols :]
        if not reader.seek_layer("affine_"):
            raise DlibFormatError(f"convolution at byte {start} has no affine layer after it")
        gamma, beta = reader.tensor().reshape(2, filters)
        # affine(conv(x)) = gamma * (w * x + b) + beta: one convolution with scaled weights
        convs.append(_Conv(weight * gamma[:, None, None, None], gamma * bias + beta, stride_y, pad_y))
    if not reader.seek_layer("fc_2"):
        raise DlibFormatError(f"{path} holds no dlib fc layer")
    outputs, inputs = reader.int(), reader.int()
    fc = reader.tensor().reshape(inputs, outputs).T
    return means, convs, np.ascontiguousarray(fc)


def _residual_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the smaller tensor is zero-padded (channels, bottom rows, right columns)."""
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return grow(a) + grow(b)


class _Block(nn.Module):
    def __init__(self, first: _Conv, second: _Conv) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(first), _conv(second)
        self.downsample = first.stride == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(_residual_sum(shortcut, y))


def _conv(spec: _Conv) -> nn.Conv2d:
    out_channels, in_channels, size, _ = spec.weight.shape
    conv = nn.Conv2d(in_channels, out_channels, size, spec.stride, spec.padding)
    conv.weight.data = torch.from_numpy(spec.weight.copy())
    conv.bias.data = torch.from_numpy(spec.bias.copy())
    return conv


class DlibFaceNet(nn.Module):
    """uint8 RGB chips [N, 150, 150, 3] -> dlib's 128-d descriptors."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        means, convs, fc = read_dlib_network(path)
        if len(convs) % 2 != 1:
            raise DlibFormatError(f"{path}: expected a stem and pairs of convolutions, found {len(convs)}")
        self.register_buffer("mean", torch.tensor(means).view(1, 3, 1, 1))
        self.stem = _conv(convs[0])
        self.blocks = nn.Sequential(*[_Block(convs[i], convs[i + 1]) for i in range(1, len(convs), 2)])
        self.fc = nn.Linear(fc.shape[1], fc.shape[0], bias=False)
        self.fc.weight.data = torch.from_numpy(fc)
        self.eval()

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256.0  # dlib's input_rgb_image scaling
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        return self.fc(self.blocks(x).mean(dim=(2, 3)))

"""MTCNN's three networks in onnxruntime: exported from facenet-pytorch's torch networks once (cached, checked
against torch on a probe) and swapped in where all three match (`face_detection.FaceDetector`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model_zoo.cache import cache_dir
from model_zoo.onnx_export import onnx_twin
from model_zoo.onnx_runtime import OnnxSession


class _OnnxStage(nn.Module):
    """One of MTCNN's networks run by onnxruntime, called the way facenet-pytorch calls the torch one."""

    def __init__(self, session: OnnxSession) -> None:
        super().__init__()
        self.session = session
        self.marker = nn.Parameter(torch.zeros(0), requires_grad=False)  # facenet-pytorch reads its dtype

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(output) for output in self.session.run_all(pixels.numpy()))


def onnx_stages(mtcnn: nn.Module) -> None:
    """Swap MTCNN's three networks for their ONNX twins where all three export and match torch."""
    import facenet_pytorch

    key = {"facenet_pytorch": getattr(facenet_pytorch, "__version__", "2.5.3")}
    seeded = torch.Generator().manual_seed(0)
    twins = {
        name: onnx_twin(
            getattr(mtcnn, name).eval(), f"mtcnn_{name}", {**key, "size": size}, cache_dir() / "onnx",
            example=torch.zeros(2, 3, size, size), probe=torch.rand(3, 3, *probe, generator=seeded) * 2 - 1,
            matches=lambda expected, found: all(
                np.allclose(e, f, atol=1e-4) for e, f in zip(expected, found, strict=True)
            ),
            dynamic=dynamic, threads=1,  # small networks called many times: threads cost more than they give
        )
        for name, size, probe, dynamic in (
            ("pnet", 24, (37, 53), (0, 2, 3)), ("rnet", 24, (24, 24), (0,)), ("onet", 48, (48, 48), (0,))
        )
    }
    if all(twins.values()):
        for name, session in twins.items():
            setattr(mtcnn, name, _OnnxStage(session))

"""INT8 twins of ONNX networks: onnxruntime static quantization, calibrated on real inputs, made once and cached.

A query embeds one photo at a time, where the fp32 network is most of a query's time. On this project's CPU
(AVX-512 VNNI) an INT8 EfficientNet-Lite1 at 240 px ran a batch of one 2-2.6x faster than fp32 (issue 37,
docs/experiments/query-speed.md). Making a twin costs about 11 CPU seconds, once per network and calibration set.
The settings: QDQ format, weights INT8 per output channel, activations UINT8
with ranges from the calibration inputs' min and max, the first and the last convolution left in fp32 (the
photo's pixels and the pooled features: the twin's vectors were closer to fp32's without them quantized).
The face network (MobileFaceNet, opset 11, converted to 13) was slower in INT8 than in fp32 here: not used.
Percentile calibration and 256 calibration photos read the same (GroceryStore val); min/max over 64 is kept.

The twin is keyed by the fp32 file (path, size, mtime) and a digest of the calibration inputs, and checked once
made: its vectors of the calibration inputs must keep cosine >= MIN_COSINE with the fp32 network's, else None
(the caller keeps fp32).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
#: The mean cosine, over the calibration inputs, between the twin's vectors and fp32's that a twin must keep.
MIN_COSINE = 0.97
#: How activation ranges are read from the calibration inputs: "minmax" or "percentile" (PERCENTILE of |values|).
METHOD = "minmax"
PERCENTILE = 99.99
VERSION = 1  # bump when the quantization settings change: a new key


def _key(source: Path, calibration: np.ndarray) -> str:
    stat = source.stat()
    settings = f"v{VERSION} {METHOD} {PERCENTILE if METHOD == 'percentile' else ''}"
    digest = hashlib.sha256(f"{source.resolve()} {stat.st_size} {stat.st_mtime_ns} {settings}".encode())
    digest.update(np.ascontiguousarray(calibration, np.float32).tobytes())
    return digest.hexdigest()[:16]


def int8_path(source: Path, calibration: np.ndarray, folder: Path) -> Path:
    """Where the INT8 twin of `source` calibrated on `calibration` is kept."""
    return folder / f"{source.stem}-int8-{_key(source, calibration)}.onnx"


def quantize(
    source: Path, calibration: np.ndarray, folder: Path, run_fp32: Callable[[np.ndarray], np.ndarray],
    run_int8: Callable[[Path, np.ndarray], np.ndarray],
) -> Path | None:
    """The INT8 twin of the ONNX network `source` (one input), calibrated on `calibration` (its input rows),
    made once into `folder`; None when onnxruntime's quantizer is missing or the twin strays from fp32.
    `run_fp32(rows)` and `run_int8(path, rows)` give the two networks' outputs (compared as vectors)."""
    path = int8_path(source, calibration, folder)
    if path.is_file():
        return path
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.tmp"
    pre, tmp = path.with_name(f".{path.stem}.pre.{tag}"), path.with_name(f".{path.name}.{tag}")
    try:
        quant_pre_process(str(source), str(pre))
        model = onnx.load(str(pre))
        name = model.graph.input[0].name
        convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
        rows = iter(np.ascontiguousarray(calibration, np.float32))

        class Reader(CalibrationDataReader):
            def get_next(self) -> dict | None:
                row = next(rows, None)
                return None if row is None else {name: row[None]}

        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=[convs[0], convs[-1]] if len(convs) > 1 else [],
                        calibrate_method=CalibrationMethod.Percentile if METHOD == "percentile" else
                        CalibrationMethod.MinMax, extra_options={"CalibPercentile": PERCENTILE})
        expected, found = run_fp32(calibration), run_int8(tmp, calibration)
        cosine = float(np.mean((expected * found).sum(1) / np.maximum(
            np.linalg.norm(expected, axis=1) * np.linalg.norm(found, axis=1), 1e-12)))
        if cosine < MIN_COSINE:
            log.warning("the INT8 twin of %s strays from fp32 (mean cosine %.4f): fp32 kept", source.name, cosine)
            return None
        os.replace(tmp, path)
        return path
    except Exception as exc:  # the quantizer raises many types on a graph it cannot handle: fp32 stays
        log.warning("cannot quantize %s (%s): fp32 kept", source.name, str(exc).splitlines()[0] if str(exc) else exc)
        return None
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)

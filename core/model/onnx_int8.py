"""int8 weights for the ONNX scoring graph: ONNX Runtime's dynamic quantization, made at load.

Why: on a cold API request (new sessions, so no cache hit) the encoder is about half the CPU,
and int8 MatMuls cut a 1,000-line HDFS request from 60-63 to 38-45 ms on one core
(``python -m benchmarks.int8``), which with a third scoring slot brings the API's cold p99 under
load to about a second on a 2-core machine (README, "REST API").

Why it is opt-in (``runtime='onnx-int8'``, ``serve --int8``): dynamic quantization scales each
activation tensor by its own range, and a tensor holds a whole batch, so a session's scores move
in their last digits with the sessions it is batched with, and by up to ~0.16 against the float
graph (HDFS_heldout: median 0.006, no flag changed). The default graphs are bit-identical in any
batch, which ``score --stream``'s byte-identical files rely on.

Made at load, not shipped: the quantized graph is a pure function of the verified ``model.onnx``,
so a checkpoint carries nothing more and its manifest covers what the int8 graph comes from.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path


def quantized_graph(path: str | Path) -> bytes:
    """The serialised int8 graph of the ONNX model at ``path`` (weights of MatMul/Gemm in int8,
    activations quantized per tensor at run time); the model's metadata is kept."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # The quantizer advises its pre-processing pass on the root logger at every call (a
    # warning in a server's log at each start); the graph is already ONNX Runtime-optimised.
    root.setLevel(max(level, logging.ERROR))
    try:
        with tempfile.TemporaryDirectory(prefix="tinylogbert-int8-") as tmp:
            out = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
            return out.read_bytes()
    finally:
        root.setLevel(level)

"""Scoring without torch: the network as an ONNX graph, run by ONNX Runtime.

Why: a scoring process (CLI, API worker, Ray actor) needs the forward pass only, yet importing
torch + transformers costs seconds and hundreds of MB. The graph is exported once from the
checkpoint's weights (``export_onnx``, needs torch) and saved beside them as ``model.onnx``,
covered by the checkpoint manifest; ``OnnxTinyLogBERT`` runs it with numpy + onnxruntime only.

The graph is the part of ``score_sequences`` that is arithmetic: it takes the rows of the line
table a batch uses (the unique/inverse is done in numpy, not in the graph), the batch as indices
into those rows, the non-padding positions, the causal rows, which rows get next-line outputs and
their targets; it returns the ``[CLS]`` vector and head per row and, per position of the chosen
rows, nll / most likely class / its probability / entropy. The batching and the bookkeeping are
``sequence_scores``'s, shared with the torch path, so the two give the same scores (tested to
1e-4; fp32, no quantisation).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from tinylogbert.errors import CheckpointError
from tinylogbert.io.atomic_output import atomic_file
from tinylogbert.model.checkpoint import MANIFEST_FILE, ONNX_FILE
from tinylogbert.model.configs import PAD_LINE
from tinylogbert.model.sequence_scores import (
    SequenceScores,
    empty_scores,
    length_batches,
    write_positions,
)
from tinylogbert.model.session_corpus import SessionCorpus, next_line_targets, pad_batch

if TYPE_CHECKING:
    from tinylogbert.model.tinylogbert_model import TinyLogBERT

RUNTIMES = ("auto", "onnx", "onnx-int8", "torch")
INPUTS = ("line_tokens", "inverse", "valid", "causal", "lm_rows", "targets")
OUTPUTS = ("cls", "head", "nll", "top", "top_prob", "entropy")
OPSET = 18
GRAPH_FORMAT = "tinylogbert-scoring-1"  # bump when the inputs or outputs above change


def _installed(*modules: str) -> bool:
    """Whether all ``modules`` can be imported (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def onnxruntime_available() -> bool:
    return _installed("onnxruntime")


def exporter_available() -> bool:
    """torch's ONNX exporter needs onnx and onnxscript (the ``onnx`` extra)."""
    return _installed("torch", "onnx", "onnxscript")


def choose_runtime(folder: Path, runtime: str) -> str:
    """'torch' or 'onnx' for a checked checkpoint folder. 'auto' is onnx when onnxruntime is
    installed and the folder has a ``model.onnx`` its manifest covers (``check_folder`` has then
    verified it), else torch; 'onnx' says why it cannot be had."""
    if runtime not in RUNTIMES:
        raise CheckpointError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    has_graph = (folder / ONNX_FILE).exists() and (folder / MANIFEST_FILE).exists()
    if runtime == "auto":
        return "onnx" if has_graph and onnxruntime_available() else "torch"
    if runtime in ("onnx", "onnx-int8"):
        if not onnxruntime_available():
            raise CheckpointError(f"runtime {runtime!r} needs ONNX Runtime: "
                                  "pip install onnxruntime")
        if runtime == "onnx-int8" and not _installed("onnx"):
            raise CheckpointError("runtime 'onnx-int8' needs the onnx package to quantize the "
                                  "graph: pip install onnx")
        if not (folder / ONNX_FILE).exists():
            raise CheckpointError(f"{folder}: no {ONNX_FILE}; export it with "
                                  f"tinylogbert export-onnx --model {folder}")
        if not has_graph:
            raise CheckpointError(f"{folder / ONNX_FILE}: cannot be verified (no {MANIFEST_FILE}); "
                                  f"re-export with tinylogbert export-onnx --model {folder}")
    return runtime


def load_onnx(folder: Path, weights_sha256: str, n_line_classes: int,
              num_threads: int | None = None, int8: bool = False) -> OnnxTinyLogBERT:
    """The checkpoint's verified ``model.onnx``, refused if exported from other weights;
    ``int8``: its weights quantized (``onnx_int8.py``)."""
    model = OnnxTinyLogBERT(folder / ONNX_FILE, num_threads, int8=int8)
    if model.weights_sha256 != weights_sha256 or model.n_line_classes != n_line_classes:
        raise CheckpointError(f"{folder / ONNX_FILE}: exported from other weights than this "
                              f"checkpoint's; re-export with tinylogbert export-onnx --model {folder}")
    return model


def write_checkpoint_onnx(
    model: TinyLogBERT, folder: Path, weights_sha256: str, export: bool | None = None
) -> Path | None:
    """``save``'s part: a fresh ``model.onnx`` beside the weights (``export`` None: when the
    exporter is installed), and never a stale one from earlier weights."""
    path = folder / ONNX_FILE
    if export is None:
        export = exporter_available()
    if not export:
        path.unlink(missing_ok=True)
        return None
    if not exporter_available():
        raise CheckpointError("exporting model.onnx needs onnx and onnxscript: "
                              "pip install 'tinylogbert[onnx]'")
    with atomic_file(path, durable=True) as partial:  # never a half-written graph at model.onnx
        export_onnx(model, partial, weights_sha256)
    return path


def export_checkpoint(folder: str | Path) -> Path:
    """(Re-)export a saved checkpoint's ``model.onnx`` and rewrite its manifest (``tinylogbert
    export-onnx``): for checkpoints saved without one, or after replacing the weights. Every other
    file is verified first (against the manifest, or the weights against ``detector.json``)."""
    from tinylogbert.model.checkpoint import (
        DETECTOR_FILE,
        LINE_VOCAB_FILE,
        check_folder,
        fsync_file,
        load_weights,
        manifest_text,
        manifest_update,
        read_json,
    )
    from tinylogbert.model.configs import FIRST_LINE_CLASS

    folder = check_folder(folder, optional_files=False)
    meta, vocab = read_json(folder / DETECTOR_FILE), read_json(folder / LINE_VOCAB_FILE)
    try:
        sha, head_hidden = meta["weights_sha256"], int(meta["model"]["head_hidden"])
        n_classes = len(vocab["lines"]) + FIRST_LINE_CLASS
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder}: incomplete detector.json / line_vocab.json ({exc})") from None
    model = load_weights(folder, sha, n_classes, head_hidden)
    if not exporter_available():
        raise CheckpointError("exporting model.onnx needs onnx and onnxscript: "
                              "pip install 'tinylogbert[onnx]'")
    # model.onnx and the manifest change together (``manifest_update``): a kill leaves the
    # earlier pair, or the new one.
    path = folder / ONNX_FILE
    with manifest_update(folder) as manifest, atomic_file(path, durable=True) as partial:
        export_onnx(model, partial, sha)
        manifest.write_text(manifest_text(folder, {ONNX_FILE: partial}))
        fsync_file(manifest)
    return path


def export_onnx(model: TinyLogBERT, path: str | Path, weights_sha256: str) -> Path:
    """Write the scoring graph of ``model`` to ``path`` (fp32, dynamic batch / length / table
    axes). ``weights_sha256`` is stored in the graph's metadata, so that loading can tell a graph
    exported from other weights. Needs torch, onnx and onnxscript (the dynamo exporter, torch's
    default since 2.9); scoring then needs neither."""
    import logging
    import warnings

    import onnx
    import torch
    from torch.export import Dim

    graph = _scoring_graph_class()(model).eval()
    # Example sizes other than 0 and 1 (the exporter specialises those) and all distinct.
    n_rows, width, batch, length, lm_rows = 5, 6, 4, 7, 2
    example = (
        torch.randint(0, model.config.vocab_size, (n_rows, width)),
        torch.randint(0, n_rows, (batch, length)),
        torch.ones(batch, length, dtype=torch.bool),
        torch.tensor([False, False, True, True]),
        torch.tensor([2, 3]),
        torch.zeros(lm_rows, length, dtype=torch.int64),
    )
    rows, tokens, b, seq, r = Dim("rows"), Dim("tokens"), Dim("batch"), Dim("length"), Dim("lm_rows")
    shapes = {"line_tokens": {0: rows, 1: tokens}, "inverse": {0: b, 1: seq},
              "valid": {0: b, 1: seq}, "causal": {0: b}, "lm_rows": {0: r},
              "targets": {0: r, 1: seq}}
    path = Path(path)
    exporter_log = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on axis names, deprecations
            program = torch.onnx.export(
                graph, example, dynamo=True, input_names=list(INPUTS), output_names=list(OUTPUTS),
                dynamic_shapes=shapes, opset_version=OPSET, external_data=False, verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    meta = {
        "tinylogbert_graph": GRAPH_FORMAT,
        "weights_sha256": weights_sha256,
        "hidden_size": str(model.config.hidden_size),
        "n_line_classes": str(model.n_line_classes),
        "n_parameters": str(sum(p.numel() for p in model.parameters())),
        "config": model.config.to_json_string(),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, str(path))
    return path


def _scoring_graph_class():
    """The exported module, defined on first use so that this file imports without torch."""
    from torch import nn

    class ScoringGraph(nn.Module):
        def __init__(self, model: TinyLogBERT) -> None:
            super().__init__()
            self.model = model

        def forward(self, line_tokens, inverse, valid, causal, lm_rows, targets):
            model = self.model
            hidden = model.encode_vectors(model.line_vectors(line_tokens)[inverse], valid, causal)
            cls = hidden[:, 0]
            head = model.anomaly_head(cls).squeeze(-1)
            log_probs = model.line_log_probs(hidden.index_select(0, lm_rows))
            nll = -log_probs.gather(2, targets.unsqueeze(-1)).squeeze(-1)
            top_lp, top = log_probs.max(dim=-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1)
            return cls, head, nll, top, top_lp.exp(), entropy

    return ScoringGraph


class OnnxTinyLogBERT:
    """A checkpoint's ``model.onnx`` in an ONNX Runtime session: numpy in, ``SequenceScores``
    out. Stands where ``TinyLogBERT`` stands in a detector (``config.hidden_size``,
    ``n_line_classes``), and scores itself (``score_sequences``)."""

    def __init__(self, path: str | Path, num_threads: int | None = None,
                 int8: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self._ort = ort
        self._num_threads = num_threads or 0
        self.int8 = bool(int8)
        self._graph: bytes | None = None  # the int8 graph, kept for a new session's threads
        if self.int8:
            from tinylogbert.model.onnx_int8 import quantized_graph

            try:
                self._graph = quantized_graph(self.path)
            except Exception as exc:  # noqa: BLE001 -- the quantizer raises many kinds
                message = " ".join(str(exc).split())
                raise CheckpointError(f"{self.path}: cannot be quantized ({message})") from None
        self.session = self._session()
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("tinylogbert_graph") != GRAPH_FORMAT:
            raise CheckpointError(f"{self.path}: not a TinyLogBERT scoring graph of this version "
                                  "(re-export: tinylogbert export-onnx --model DIR)")
        self.metadata = meta
        self.weights_sha256 = meta.get("weights_sha256", "")
        self.n_line_classes = int(meta["n_line_classes"])
        self.n_parameters = int(meta["n_parameters"])
        self.config = SimpleNamespace(**json.loads(meta["config"]))

    def _session(self) -> Any:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self._num_threads  # 0: ONNX Runtime's default (cores)
        options.inter_op_num_threads = 1  # one graph at a time: no second pool to share cores
        # Idle pool threads sleep instead of spinning: spinning took CPU from the threads that
        # parse and write beside the model (measured under load: 2 threads 7.9 s -> 5.1 s wall).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            graph = self._graph if self._graph is not None else str(self.path)
            return self._ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own kinds; all "corrupt"
            message = " ".join(str(exc).split())
            raise CheckpointError(f"{self.path}: not a loadable ONNX model ({message})") from None

    @property
    def num_threads(self) -> int:
        return self._num_threads

    def set_num_threads(self, num_threads: int) -> None:
        """ONNX Runtime's intra-op threads (0: its default); a new session when it changes."""
        if int(num_threads) != self._num_threads:
            self._num_threads = int(num_threads)
            self.session = self._session()

    def score_sequences(
        self, corpus: SessionCorpus, on_progress: Callable[[float], None] | None = None,
        bidirectional_pass: bool = True,
    ) -> SequenceScores:
        return score_sequences_onnx(self, corpus, on_progress, bidirectional_pass)


# ONNX Runtime's ReduceSum (Eigen, 16-byte packets) sums a row of the [rows, width, classes]
# next-line distributions in an order that depends on where the row starts modulo 4 floats
# (measured: the entropy of one sequence differed by 1 ulp between odd and even rows of a batch,
# so a session's score depended on which sessions shared its batch). With every row aligned, a
# sequence's outputs are bit-identical alone or in any batch of any width (tested), which is what
# the cross-call cache and ``streaming``'s byte-identical files rely on.
ALIGN_FLOATS = 4


def _aligned(batch: np.ndarray, n_classes: int) -> np.ndarray:
    """``batch`` with [PAD] columns appended until a row's outputs (width x classes floats) fill
    whole ``ALIGN_FLOATS`` groups, so that every row starts aligned and its entropy is the same
    in any batch (padding at the end changes no real position's value)."""
    width = batch.shape[1]
    extra = 0
    while ((width + extra) * n_classes) % ALIGN_FLOATS:
        extra += 1
    if not extra:
        return batch
    return np.pad(batch, ((0, 0), (0, extra)), constant_values=PAD_LINE)


def score_sequences_onnx(
    model: OnnxTinyLogBERT, corpus: SessionCorpus,
    on_progress: Callable[[float], None] | None = None, bidirectional_pass: bool = True,
) -> SequenceScores:
    """``inference.score_sequences`` with ONNX Runtime: same arguments, same result, no torch."""
    n_seq, n_pos = len(corpus.sequences), corpus.n_positions
    out = empty_scores(n_seq, n_pos, int(model.config.hidden_size))
    batches = length_batches(np.array([len(s) for s in corpus.sequences]))
    for b, idx in enumerate(batches):
        batch = _aligned(pad_batch([corpus.sequences[i] for i in idx]), model.n_line_classes)
        B = len(idx)
        rows = np.concatenate([batch, batch]) if bidirectional_pass else batch
        used, inverse = np.unique(rows, return_inverse=True)
        where, truth = next_line_targets(batch, corpus.line_class)
        feeds = {
            "line_tokens": np.ascontiguousarray(corpus.line_tokens[used], dtype=np.int64),
            "inverse": inverse.reshape(rows.shape).astype(np.int64),
            "valid": rows != PAD_LINE,
            "causal": np.arange(len(rows)) >= (B if bidirectional_pass else 0),
            "lm_rows": np.arange(B, 2 * B) if bidirectional_pass else np.arange(B),
            "targets": truth,
        }
        cls, head, nll, top, top_p, entropy = model.session.run(list(OUTPUTS), feeds)
        if bidirectional_pass:
            out.head[idx] = head[:B]
            out.embedding[idx] = cls[:B]
        else:
            out.head[idx] = np.nan
        write_positions(out, corpus, idx, batch, where, nll[where], top[where], top_p[where],
                        entropy[where])
        if on_progress:
            on_progress((b + 1) / len(batches))
    return out


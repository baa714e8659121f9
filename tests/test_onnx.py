"""Scoring with ONNX Runtime (``core/model/onnx_runtime.py``): the same scores as torch, without torch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_LOG

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnx and onnxscript "
                                         "(pip install 'tinylogbert[onnx]')")

from tinylogbert.cli.main import main
from tinylogbert.errors import CheckpointError
from tinylogbert.model.checkpoint import ONNX_FILE, write_manifest
from tinylogbert.model.inference import score_sequences
from tinylogbert.model.onnx_runtime import OnnxTinyLogBERT, export_onnx, score_sequences_onnx
from tinylogbert.scoring.detector import TinyLogBERTDetector

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def both(tiny_checkpoint):
    """The tiny checkpoint loaded with each runtime (``save`` wrote its model.onnx)."""
    assert (tiny_checkpoint / ONNX_FILE).exists()
    return (TinyLogBERTDetector.load(tiny_checkpoint, runtime="torch"),
            TinyLogBERTDetector.load(tiny_checkpoint, runtime="onnx", num_threads=1))


def test_onnx_scores_equal_torch_scores(both):
    torch_det, onnx_det = both
    assert isinstance(onnx_det.network_, OnnxTinyLogBERT)
    a, b = torch_det.score(SMALL_LOG), onnx_det.score(SMALL_LOG)
    for frame in ("session_frame", "lines"):
        x, y = getattr(a, frame), getattr(b, frame)
        assert len(x) == len(y) > 0
        assert np.abs(x["score"].to_numpy() - y["score"].to_numpy()).max() <= TOLERANCE
        assert (x["is_anomaly"] == y["is_anomaly"]).mean() > 0.99  # ties at the threshold aside
    assert np.abs(a.session_embeddings - b.session_embeddings).max() <= TOLERANCE


@pytest.mark.parametrize("bidirectional_pass", [True, False])
def test_every_sequence_score_matches_torch(both, bidirectional_pass):
    """The raw per-position values too, both passes (embeddings, head, [END])."""
    torch_det, onnx_det = both
    corpus = torch_det._prepare(SMALL_LOG)[2]
    a = score_sequences(torch_det.network_, corpus, bidirectional_pass=bidirectional_pass)
    b = score_sequences_onnx(onnx_det.network_, corpus, bidirectional_pass=bidirectional_pass)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.shape == y.shape and x.dtype == y.dtype, f.name
        if f.name.endswith("expected_class"):
            assert (x == y).mean() > 0.99, f.name  # argmax: equal but for near-ties
        else:
            np.testing.assert_allclose(x, y, atol=TOLERANCE, rtol=0, err_msg=f.name)


def test_the_onnx_path_does_not_import_torch(tiny_checkpoint, tmp_path):
    """A whole ``tinylogbert score --runtime onnx`` in a fresh interpreter, then sys.modules:
    no torch, and no scikit-learn or SciPy either (``sklearn.base`` alone cost 0.6 s of every
    start: ``scoring/estimator_params.py``)."""
    script = (
        "import json, sys\n"
        "from tinylogbert.cli.main import main\n"
        f"code = main(['score', {str(SMALL_LOG)!r}, '--model', {str(tiny_checkpoint)!r}, "
        f"'--out', {str(tmp_path / 'lines.csv')!r}, '--runtime', 'onnx', '--threads', '1'])\n"
        "heavy = ('torch', 'transformers', 'sklearn', 'scipy')\n"
        "print(json.dumps({'code': code, 'heavy': sorted(m for m in heavy if m in sys.modules), "
        "'onnxruntime': 'onnxruntime' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": [], "onnxruntime": True}
    assert len(pd.read_csv(tmp_path / "lines.csv")) == 7481


def test_a_checkpoint_without_model_onnx_loads_scores_and_can_be_exported(tiny_detector, tmp_path):
    folder = tiny_detector.save(tmp_path / "plain", onnx=False)
    assert not (folder / ONNX_FILE).exists()
    auto = TinyLogBERTDetector.load(folder, runtime="auto")  # torch, since there is no graph
    assert not isinstance(auto.network_, OnnxTinyLogBERT)
    expected = auto.score(SMALL_LOG, embeddings=False).session_frame["score"].to_numpy()
    with pytest.raises(CheckpointError, match="export-onnx --model"):
        TinyLogBERTDetector.load(folder, runtime="onnx")
    assert main(["export-onnx", "--model", str(folder)]) == 0
    exported = TinyLogBERTDetector.load(folder, runtime="auto")  # now onnx: the graph is covered
    assert isinstance(exported.network_, OnnxTinyLogBERT)
    assert ONNX_FILE in json.loads((folder / "checkpoint.sha256.json").read_text())["files"]
    got = exported.score(SMALL_LOG, embeddings=False).session_frame["score"].to_numpy()
    assert np.abs(got - expected).max() <= TOLERANCE


def test_a_tampered_model_onnx_fails_the_integrity_check(tiny_checkpoint, tmp_path):
    bad = shutil.copytree(tiny_checkpoint, tmp_path / "bad")
    data = bytearray((bad / ONNX_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / ONNX_FILE).write_bytes(bytes(data))
    for runtime in ("auto", "onnx", "torch"):  # the folder is corrupt whichever runtime reads it
        with pytest.raises(CheckpointError, match="model.onnx: sha256 mismatch") as error:
            TinyLogBERTDetector.load(bad, runtime=runtime)
        assert "\n" not in str(error.value)
    proc = subprocess.run(
        [sys.executable, "-m", "tinylogbert.cli.main", "score", str(SMALL_LOG), "--model", str(bad),
         "--out", str(tmp_path / "x.csv")], capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "model.onnx: sha256 mismatch" in proc.stderr


def test_a_graph_the_manifest_does_not_list_or_from_other_weights_is_refused(
    tiny_checkpoint, tiny_detector, tmp_path
):
    unlisted = shutil.copytree(tiny_checkpoint, tmp_path / "unlisted")
    manifest = json.loads((unlisted / "checkpoint.sha256.json").read_text())
    del manifest["files"][ONNX_FILE]
    (unlisted / "checkpoint.sha256.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not covered by checkpoint.sha256.json"):
        TinyLogBERTDetector.load(unlisted, runtime="auto")
    other = shutil.copytree(tiny_checkpoint, tmp_path / "other")
    export_onnx(tiny_detector.network_, other / ONNX_FILE, weights_sha256="0" * 64)
    write_manifest(other)  # covered, but exported from other weights than model.safetensors
    with pytest.raises(CheckpointError, match="exported from other weights"):
        TinyLogBERTDetector.load(other, runtime="onnx")


def test_cli_score_runtimes_write_the_same_scores(tiny_checkpoint, tmp_path):
    out = {}
    for runtime in ("torch", "onnx"):
        path = tmp_path / f"{runtime}.csv"
        assert main(["score", str(SMALL_LOG), "--model", str(tiny_checkpoint), "--out",
                     str(path), "--runtime", runtime, "--threads", "1"]) == 0
        out[runtime] = pd.read_csv(path)["score"].to_numpy()
    assert np.abs(out["torch"] - out["onnx"]).max() <= TOLERANCE


def test_an_onnx_loaded_detector_says_why_it_cannot_be_saved(both, tmp_path):
    with pytest.raises(CheckpointError, match="runtime='torch'"):
        both[1].save(tmp_path / "again")
    assert both[1].info()["parameters"] == both[0].info()["parameters"]


def test_int8_runtime_quantizes_the_graph_and_keeps_the_shipped_models_flags():
    """``runtime='onnx-int8'`` (``serve --int8``) on the shipped checkpoint and real later HDFS
    blocks: the weights are int8 (a graph under half the float one's size), each session's score
    within a fraction of a nat of the float graph's, and the flags the same but for a rare tie."""
    import gzip

    from conftest import ROOT

    checkpoint = ROOT / "checkpoint"
    with gzip.open(ROOT / "sample_data" / "HDFS_heldout.log.gz", "rt") as handle:
        lines = handle.read().splitlines()[:20_000]
    plain = TinyLogBERTDetector.load(checkpoint, runtime="onnx", num_threads=1)
    int8 = TinyLogBERTDetector.load(checkpoint, runtime="onnx-int8", num_threads=1)
    assert int8.network_.int8 and int8.info()["runtime"] == "onnx-int8"
    assert plain.info()["runtime"] == "onnx"
    assert len(int8.network_._graph) < (checkpoint / ONNX_FILE).stat().st_size / 2
    a = plain.score(lines, embeddings=False).session_frame
    b = int8.score(lines, embeddings=False).session_frame
    assert a["session_id"].tolist() == b["session_id"].tolist() and len(a) > 500
    gap = np.abs(a["score"].to_numpy() - b["score"].to_numpy())
    assert 0 < np.median(gap) < 0.05 and gap.max() < 0.5
    assert (a["is_anomaly"] == b["is_anomaly"]).mean() >= 0.995
    before = int8.score(lines[:2_000], embeddings=False).session_frame["score"].to_numpy()
    int8.__dict__.pop("_sequence_cache_key", None)  # score again, not from the cache
    int8.network_.set_num_threads(2)  # a new session from the kept int8 graph, not the file's
    assert int8.network_.int8 and int8.network_.session is not None
    after = int8.score(lines[:2_000], embeddings=False).session_frame["score"].to_numpy()
    assert len(after) == len(before) > 0 and np.abs(after - before).max() < 0.05


def test_int8_runtime_needs_the_graph(tiny_detector, tmp_path):
    folder = tiny_detector.save(tmp_path / "plain", onnx=False)
    with pytest.raises(CheckpointError, match="export-onnx --model"):
        TinyLogBERTDetector.load(folder, runtime="onnx-int8")
    with pytest.raises(CheckpointError, match="expected one of auto, onnx, onnx-int8, torch"):
        TinyLogBERTDetector.load(folder, runtime="int4")

"""Tokenizer, model shapes, masking and scoring internals."""
from __future__ import annotations

import numpy as np
import torch
from tinylogbert.model.log_tokenizer import LogTokenizer
from tinylogbert.model.session_corpus import next_line_targets, pad_batch
from tinylogbert.model.tinylogbert_model import (
    CLS_LINE,
    END_LINE_CLASS,
    PAD_LINE,
    ModelConfig,
    build_model,
)
from tinylogbert.model.training import mask_lines

LINES = [
    "dfs datanode dataxceiver receiving block src dest",
    "dfs fsnamesystem block namesystem allocateblock",
    "dfs datanode packetresponder packetresponder for block terminating",
]


def test_tokenizer_round_trip(tmp_path):
    tok = LogTokenizer.train(LINES * 20, vocab_size=200)
    ids = tok.encode_lines(LINES)
    assert ids.shape[0] == 3
    decoded = ["".join(t if not t.startswith("##") else t[2:] for t in tok.decode_ids(row))
               for row in ids]
    assert decoded == [line.replace(" ", "") for line in LINES]
    tok.save(tmp_path)
    again = LogTokenizer.load(tmp_path)
    assert (again.encode_lines(LINES) == ids).all()


def test_unseen_words_split_into_pieces_not_unk():
    tok = LogTokenizer.train(LINES * 20, vocab_size=200)
    pieces = tok.tokenize("zebra quokka")
    assert "[UNK]" not in pieces and len(pieces) >= 2


def test_bert_mini_defaults_and_head_sized_from_config():
    cfg = ModelConfig()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
            cfg.intermediate_size) == (256, 4, 4, 1024)
    small = build_model(ModelConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=96), vocab_size=50, pad_token_id=0,
                        n_line_classes=7)
    assert small.anomaly_head[0].in_features == 48 and small.anomaly_head[0].out_features == 64
    assert small.anomaly_head[2].out_features == 1


def test_left_to_right_rows_do_not_see_the_future():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64), 50, 0, 5).eval()
    table = torch.randint(5, 50, (10, 4))
    table[:3] = 0
    table[1, 0], table[2, 0] = 2, 4
    seq = torch.tensor([[CLS_LINE, 3, 4, 5, 6]])
    changed = seq.clone()
    changed[0, 4] = 7
    with torch.no_grad():
        a = model.encode(table, seq, causal=True)
        b = model.encode(table, changed, causal=True)
        c = model.encode(table, changed, causal=False)
        d = model.encode(table, seq, causal=False)
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-5)  # earlier positions unaffected
    assert not torch.allclose(c[0, :4], d[0, :4], atol=1e-5)  # bidirectional rows are


def test_next_line_targets_end_with_end():
    batch = pad_batch([np.array([3, 4]), np.array([5])])
    line_class = np.array([0, 0, 0, 7, 8, 9])
    where, truth = next_line_targets(batch, line_class)
    assert batch.tolist() == [[CLS_LINE, 3, 4], [CLS_LINE, 5, PAD_LINE]]
    assert where.tolist() == [[True, True, True], [True, True, False]]
    assert truth[0].tolist() == [7, 8, END_LINE_CLASS]
    assert truth[1, :2].tolist() == [9, END_LINE_CLASS]


def test_mask_lines_hides_at_least_one_real_line():
    rng = np.random.default_rng(0)
    batch = pad_batch([np.array([3]), np.array([3, 4, 5, 6])])
    _, hidden = mask_lines(batch, rng, 0.0, 0.0)
    assert hidden.sum(1).tolist() == [1, 1]
    assert (batch[hidden] >= 3).all()

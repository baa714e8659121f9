"""core/reports/templates_table.py: every distinct normalised line with its counts here and in training,
its rarity, where it appears and the flagged share of its sessions; checked against pandas and
against the detector's own line statistics."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import SMALL_LOG
from tinylogbert.model.configs import FIRST_LINE_CLASS
from tinylogbert.reports.templates_table import (
    TEMPLATE_COLUMNS,
    ModelLines,
    filter_templates,
    template_index,
    template_table,
)


@pytest.fixture(scope="module")
def result(tiny_detector):
    return tiny_detector.score(SMALL_LOG, embeddings=False)


@pytest.fixture(scope="module")
def index(result):
    return template_index(result)


@pytest.fixture(scope="module")
def model(tiny_detector, index):
    return ModelLines.from_detector(tiny_detector, index.texts)


@pytest.fixture(scope="module")
def words(result) -> pd.Series:
    return pd.Series(result.line_words.to_pylist())


def test_one_row_per_distinct_line_with_its_count_and_places(result, index, model, words):
    table = template_table(index, result, model).set_index("template")
    assert list(table.reset_index().columns) == TEMPLATE_COLUMNS
    counts = words.value_counts()
    assert table["count"].sum() == result.n_lines == 7481
    assert table.loc[counts.index, "count"].tolist() == counts.tolist()
    for text in counts.index[[0, 5, -1]]:
        at = np.flatnonzero(words.to_numpy() == text)
        row = table.loc[text]
        assert row["first_line_no"] == at[0] + 1 and row["last_line_no"] == at[-1] + 1
        assert row["first_timestamp"] == result.lines["timestamp"].iloc[at[0]]
        assert row["last_timestamp"] == result.lines["timestamp"].iloc[at[-1]]
        assert row["example"] == result.lines["message"].iloc[at[0]]
    # Most frequent first.
    assert table["count"].is_monotonic_decreasing


def test_training_counts_and_rarity_are_the_models(result, index, model, tiny_detector):
    table = template_table(index, result, model).set_index("template")
    vocab = tiny_detector.line_vocab_
    class_counts = np.asarray(tiny_detector.line_class_counts_, dtype=np.float64)
    for i, text in enumerate(vocab):
        assert table.loc[text, "train_count"] == class_counts[FIRST_LINE_CLASS + i]
        assert not table.loc[text, "new"]
        # -log p(line), add-half smoothed over the line classes: the rarity scoring uses.
        p = (class_counts[FIRST_LINE_CLASS + i] + 0.5) / (class_counts.sum()
                                                           + 0.5 * len(class_counts))
        assert table.loc[text, "rarity"] == pytest.approx(-np.log(p))
    new = table[table["new"]]
    assert len(new) > 0 and new["train_count"].isna().all()
    assert set(new.index).isdisjoint(vocab)
    # A new line unlike every known one is rarer than any line of the vocabulary (it backs off
    # to its words); one close to a known line is that line plus a novelty cost.
    # (The log's new lines may all be close to a known one; a made-up line of words training never
    # wrote stands for the rest.)
    stranger = "quux zebra frobnicated the teapot overflow"
    strange = ModelLines.from_detector(tiny_detector, [stranger])
    found = tiny_detector.matcher().match([*new.index, stranger])
    assert not found.matched[-1]
    unlike = [*new.index[~found.matched[:-1]]]
    rarities = [table.loc[t, "rarity"] for t in unlike] + [strange.rarity[stranger]]
    assert min(rarities) > table.loc[vocab, "rarity"].max()
    found = tiny_detector.matcher().match(list(new.index))
    for text, nearest, matched in zip(new.index, found.nearest, found.matched):
        if matched:
            assert new.loc[text, "rarity"] >= table.loc[vocab[nearest], "rarity"] - 1e-9
    assert model.min_count == tiny_detector.min_line_count and model.robust


def test_flagged_share_follows_the_threshold(result, index, model):
    sessions_of = result.lines["session_id"].str.split(";")
    frame = result.session_frame.set_index("session_id")
    for threshold in np.quantile(result.session_scores, [0.5, 0.95]):
        judged = result.with_threshold(float(threshold))
        table = template_table(index, judged, model).set_index("template")
        text = table.index[0]
        holding = set(sessions_of[index.line_template == index.position(text)].explode())
        flagged = sum(frame.loc[s, "score"] >= threshold for s in holding)
        assert table.loc[text, "sessions"] == len(holding)
        assert table.loc[text, "flagged_sessions"] == flagged
        assert table.loc[text, "flagged_share"] == pytest.approx(flagged / len(holding))


def test_sessions_with_a_template(result, index):
    sessions_of = result.lines["session_id"].str.split(";")
    ids = result.sessions.ids.astype(str)
    for text in [index.texts[0], index.texts[-1]]:
        expected = set(sessions_of[index.line_template == index.position(text)].explode())
        assert set(ids[index.sessions_with(text)]) == expected
    assert len(index.sessions_with("no such line at all")) == 0


def test_vocabulary_lines_absent_from_the_log(result, index, model):
    extra = ModelLines(
        vocabulary=model.vocabulary + ("zzz a line this log lacks",),
        train_counts=model.train_counts + (42,), min_count=2, robust=True,
        rarity={**model.rarity, "zzz a line this log lacks": 3.5},
    )
    table = template_table(index, result, extra).set_index("template")
    row = table.loc["zzz a line this log lacks"]
    assert (row["count"], row["train_count"], row["rarity"], row["sessions"]) == (0, 42, 3.5, 0)
    assert pd.isna(row["first_line_no"]) and not row["new"]
    assert "zzz a line this log lacks" not in template_table(
        index, result, extra, include_absent=False)["template"].tolist()


def test_raw_lines_as_examples_and_the_text_filter(result, index, model):
    raw = pa.array(gzip.decompress(SMALL_LOG.read_bytes()).decode().splitlines())
    table = template_table(index, result, model, raw_lines=raw)
    first = table.iloc[0]
    assert first["example"] == raw[int(first["first_line_no"]) - 1].as_py()
    assert first["example"].startswith("0811")  # the whole line, date first
    hits = filter_templates(table, "  VERIFICATION ")
    assert len(hits) >= 1 and hits["template"].str.contains("verification").all()
    assert len(filter_templates(table, "blk_")) == len(table)  # matches the raw examples too
    assert filter_templates(table, "").equals(table)
    assert filter_templates(table, "no line says this").empty

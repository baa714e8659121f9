"""core/reports/timeline.py: periods chosen from the log's span, counts that follow the threshold, and the
first appearance of lines the model never learned; checked against pandas on the same lines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_LOG
from tinylogbert.reports.templates_table import template_index
from tinylogbert.reports.timeline import (
    DAY,
    HOUR,
    MINUTE,
    bucket_counts,
    first_appearances,
    line_times,
    make_buckets,
)

HDFS_TIME = "%y%m%d %H%M%S"


@pytest.fixture(scope="module")
def result(tiny_detector):
    return tiny_detector.score(SMALL_LOG, embeddings=False)


@pytest.fixture(scope="module")
def seconds(result):
    return line_times(result.lines["timestamp"], HDFS_TIME)


def test_periods_of_ten_minutes_for_a_fourteen_hour_log(result, seconds):
    buckets = make_buckets(result, seconds)
    assert (buckets.mode, buckets.unit, buckets.width) == ("time", "10 minutes", 600)
    times = pd.to_datetime(result.lines["timestamp"], format=HDFS_TIME)
    expected = times.dt.floor("10min").value_counts().sort_index()
    counts = bucket_counts(buckets, result)
    busy = counts[counts["lines"] > 0].set_index("start")["lines"]
    assert busy.to_dict() == expected.to_dict()
    # Empty periods between busy ones are kept, and the periods are consecutive.
    assert len(counts) == (expected.index.max() - expected.index.min()) / pd.Timedelta("10min") + 1
    assert (counts["end"] - counts["start"] == pd.Timedelta("10min")).all()
    assert counts["label"].iloc[0] == expected.index.min().strftime("%Y-%m-%d %H:%M")
    assert counts["sessions"].sum() == result.n_sessions


@pytest.mark.parametrize("place", ["top", "start"])
def test_flagged_sessions_follow_the_threshold(result, seconds, place):
    buckets = make_buckets(result, seconds)
    frame = result.session_frame
    line = frame["top_line_no"] if place == "top" else frame["first_line_no"]
    period = (pd.to_datetime(result.lines["timestamp"].iloc[line - 1].to_numpy(), format=HDFS_TIME)
              .floor("10min"))
    for threshold in np.quantile(result.session_scores, [0.5, 0.9, 0.99]):
        judged = result.with_threshold(float(threshold))
        counts = bucket_counts(buckets, judged, place=place).set_index("start")
        flagged = pd.Series(frame["score"].to_numpy() >= threshold, index=period)
        expected = flagged.groupby(level=0).sum()
        assert counts.loc[expected.index, "flagged_sessions"].tolist() == expected.tolist()
        assert counts["flagged_sessions"].sum() == judged.n_anomalous_sessions
        # Lines of flagged sessions, by their own time.
        in_flagged = judged.lines["session_is_anomaly"].to_numpy()
        assert counts["flagged_lines"].sum() == in_flagged.sum()
    assert counts["anomalous_lines"].sum() == result.lines["is_anomaly"].sum()


def test_sessions_in_a_period_are_those_placed_there(result, seconds):
    buckets = make_buckets(result, seconds)
    top_period = buckets.line_bucket[result.session_frame["top_line_no"].to_numpy() - 1]
    for bucket in np.unique(top_period)[:5]:
        assert buckets.sessions_in(int(bucket)).tolist() == np.flatnonzero(
            top_period == bucket).tolist()
    total = sum(len(buckets.sessions_in(b, "start")) for b in range(buckets.n))
    assert total == result.n_sessions


def test_without_timestamps_runs_of_lines(result, seconds):
    buckets = make_buckets(result, None)
    assert (buckets.mode, buckets.width, buckets.unit) == ("lines", 50, "50 lines")
    counts = bucket_counts(buckets, result)
    assert len(counts) == 150 and counts["lines"].iloc[:-1].eq(50).all()
    assert counts["lines"].iloc[-1] == 7481 - 149 * 50
    assert counts["label"].iloc[1] == "lines 51–100"
    # Too few readable times: runs of lines too (a few timed lines would make a few periods).
    sparse = seconds.copy()
    sparse[np.arange(len(sparse)) % 3 != 0] = np.nan
    assert make_buckets(result, sparse).mode == "lines"
    half = seconds.copy()
    half[1::2] = np.nan  # 3,741 of 7,481 lines keep their time
    timed = make_buckets(result, half)
    assert timed.mode == "time" and timed.n_untimed == len(seconds) // 2
    assert bucket_counts(timed, result)["lines"].sum() == result.n_lines


@pytest.mark.parametrize("span, unit", [
    (90, "second"), (2 * HOUR, "minute"), (14 * HOUR, "10 minutes"), (5 * DAY, "hour"),
    (60 * DAY, "12 hours"), (120 * DAY, "day"), (2 * 365 * DAY, "week"), (10 * 365 * DAY, "4 weeks"),
])
def test_the_period_grows_with_the_span(result, span, unit):
    seconds = np.linspace(1.2e9 + 17, 1.2e9 + 17 + span, result.n_lines)
    buckets = make_buckets(result, seconds)
    assert buckets.unit == unit
    assert buckets.n <= 150
    assert (buckets.starts % MINUTE == 0).all() if buckets.width >= MINUTE else True
    if buckets.width == DAY:  # days start at midnight, weeks on Mondays
        assert (pd.to_datetime(buckets.starts, unit="s").hour == 0).all()
    if unit == "week":
        assert (pd.to_datetime(buckets.starts, unit="s").dayofweek == 0).all()


def test_first_appearance_of_lines_outside_the_vocabulary(result, seconds, tiny_detector):
    templates = template_index(result)
    known = set(tiny_detector.line_vocab_)
    buckets = make_buckets(result, seconds)
    new = first_appearances(result, buckets, templates, known)
    words = pd.Series(result.line_words.to_pylist())
    expected = words[~words.isin(known)].drop_duplicates()  # first occurrence of each, in order
    assert new["template"].tolist() == expected.tolist()
    assert new["line_no"].tolist() == (expected.index + 1).tolist()
    assert new["count"].tolist() == [int((words == t).sum()) for t in expected]
    counts = bucket_counts(buckets, result, new)
    assert counts["new_templates"].sum() == len(new) > 0
    # With an empty vocabulary, every template is new and appears once in the table.
    assert len(first_appearances(result, buckets, templates, set())) == templates.n_templates

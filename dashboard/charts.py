"""Plotly figures for the pages, built from arrays (no Streamlit, so they are easy to test).

Every figure has a bounded size whatever the log's size: histograms are binned here (the browser
gets bar heights, not 100,000 scores), curves are thinned, the scatter gets a sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from tinylogbert.reports.display import format_threshold
from tinylogbert.scoring.evaluate import Curves

NORMAL_COLOUR = "#4C78A8"
ANOMALY_COLOUR = "#E45756"
UNKNOWN_COLOUR = "#9D9D9D"
THRESHOLD_COLOUR = "#222222"
VOLUME_COLOUR = "#BFC7D5"
LINE_FLAG_COLOUR = "#F58518"
NEW_COLOUR = "#54A24B"
MAX_CURVE_POINTS = 2000
HOVER_TEXT_CHARS = 120

LABEL_NAMES = {0: "normal", 1: "anomaly", -1: "unlabelled"}
LABEL_COLOURS = {"normal": NORMAL_COLOUR, "anomaly": ANOMALY_COLOUR, "unlabelled": UNKNOWN_COLOUR}
FLAG_COLOURS = {"not flagged": NORMAL_COLOUR, "flagged": ANOMALY_COLOUR}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def score_histogram(
    scores: np.ndarray,
    labels: np.ndarray | None,
    threshold: float | None,
    title: str,
    threshold_name: str = "threshold",
    bins: int = 60,
    log_y: bool = True,
) -> go.Figure:
    """Binned score counts, one overlaid series per label, and the threshold as a vertical line."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    edges = np.histogram_bin_edges(scores[finite], bins=bins) if finite.any() else np.array([0, 1])
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    if labels is None:
        groups = [("sessions" if "session" in title.lower() else "lines", finite, NORMAL_COLOUR)]
    else:
        labels = np.asarray(labels)
        groups = [
            (name, finite & (labels == value), LABEL_COLOURS[name])
            for value, name in LABEL_NAMES.items()
            if (labels == value).any()
        ]
    fig = go.Figure()
    for name, mask, colour in groups:
        counts, _ = np.histogram(scores[mask], bins=edges)
        fig.add_trace(go.Bar(
            x=centers, y=counts, width=widths, name=f"{name} ({int(mask.sum()):,})",
            marker_color=colour, opacity=0.75 if labels is not None else 1.0,
            hovertemplate="score %{x:.3f}<br>count %{y:,}<extra>" + name + "</extra>",
        ))
    fig.update_layout(barmode="overlay", bargap=0)
    if log_y:
        fig.update_yaxes(type="log", dtick=1)  # ticks at 1, 10, 100...
    if threshold is not None and np.isfinite(threshold):
        fig.add_vline(
            x=threshold, line_dash="dash", line_color=THRESHOLD_COLOUR,
            annotation_text=f"{threshold_name} {format_threshold(threshold)}",
            annotation_position="top",
        )
    return _layout(fig, title, "score", "count (log scale)" if log_y else "count")


@dataclass(frozen=True)
class OperatingPoint:
    """Where a threshold sits on the ROC and precision-recall curves."""

    threshold: float
    fpr: float
    tpr: float  # = recall
    precision: float
    n_flagged: int


def operating_point(scores: np.ndarray, labels: np.ndarray, threshold: float) -> OperatingPoint:
    known = np.asarray(labels) >= 0
    s, y = np.asarray(scores)[known], np.asarray(labels)[known] == 1
    flagged = s >= threshold
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return OperatingPoint(
        threshold=float(threshold),
        fpr=fp / n_neg if n_neg else 0.0,
        tpr=tp / n_pos if n_pos else 0.0,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        n_flagged=int(flagged.sum()),
    )


def _thin(*arrays: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= max_points:
        return list(arrays)
    keep = np.unique(np.linspace(0, n - 1, max_points).astype(int))
    return [a[keep] for a in arrays]


def _mark(fig: go.Figure, x: float, y: float, point: OperatingPoint) -> None:
    fig.add_trace(go.Scatter(
        x=[x], y=[y], mode="markers", name=f"threshold {format_threshold(point.threshold)}",
        marker={"size": 13, "color": ANOMALY_COLOUR, "symbol": "x", "line": {"width": 1}},
        hovertemplate=(f"threshold {format_threshold(point.threshold)}<br>"
                       f"{point.n_flagged:,} flagged<br>"
                       "x %{x:.3f}, y %{y:.3f}<extra></extra>"),
    ))


def roc_figure(c: Curves, roc_auc: float, point: OperatingPoint) -> go.Figure:
    fpr, tpr = _thin(c.fpr, c.tpr)
    fig = go.Figure(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"ROC (AUC {roc_auc:.3f})",
                               line={"color": NORMAL_COLOUR, "width": 2}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line={"color": UNKNOWN_COLOUR, "dash": "dot"}))
    _mark(fig, point.fpr, point.tpr, point)
    fig.update_xaxes(range=[-0.02, 1.03])
    fig.update_yaxes(range=[-0.02, 1.03])
    return _layout(fig, f"ROC curve: AUC {roc_auc:.3f}", "false positive rate",
                   "true positive rate")


def pr_figure(c: Curves, pr_auc: float, point: OperatingPoint, base_rate: float) -> go.Figure:
    recall, precision = _thin(c.recall, c.precision)
    fig = go.Figure(go.Scatter(x=recall, y=precision, mode="lines", name=f"PR (AUC {pr_auc:.3f})",
                               line={"color": NORMAL_COLOUR, "width": 2, "shape": "hv"}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[base_rate, base_rate], mode="lines",
                             name=f"chance ({base_rate:.3f})",
                             line={"color": UNKNOWN_COLOUR, "dash": "dot"}))
    _mark(fig, point.tpr, point.precision, point)
    fig.update_xaxes(range=[-0.02, 1.03])
    fig.update_yaxes(range=[-0.02, 1.03])
    return _layout(fig, f"Precision-recall curve: AUC (average precision) {pr_auc:.3f}",
                   "recall", "precision")


COLOUR_CHOICES = ("score", "label", "predicted anomaly")
EMBEDDING_HEIGHT = 640  # with equal axis scales, room for a map about as tall as wide


def embedding_scatter(points: pd.DataFrame, colour_by: str, title: str) -> go.Figure:
    """Scatter of projected sessions. ``points`` has x, y, session_id, score, top_line, label,
    flagged; ``customdata[0]`` of every point is its session id (read back on selection)."""
    hover = ("session %{customdata[0]}<br>score %{customdata[1]:.3f}<br>"
             "top line: %{customdata[2]}<extra></extra>")

    def custom(frame: pd.DataFrame) -> np.ndarray:
        top = frame["top_line"].astype(str).str.slice(0, HOVER_TEXT_CHARS)
        return np.column_stack([frame["session_id"].astype(str), frame["score"], top])

    fig = go.Figure()
    if colour_by == "score":
        fig.add_trace(go.Scatter(
            x=points["x"], y=points["y"], mode="markers", name="sessions",
            customdata=custom(points), hovertemplate=hover,
            marker={"size": 7, "color": points["score"], "colorscale": "Viridis",
                    "showscale": True, "colorbar": {"title": "score"}, "opacity": 0.85},
        ))
    else:
        if colour_by == "label":
            colours = {"normal": NORMAL_COLOUR, "unlabelled": UNKNOWN_COLOUR,
                       "anomaly": ANOMALY_COLOUR}
            names = points["label"].map(LABEL_NAMES)
        else:
            colours = FLAG_COLOURS
            names = pd.Series(np.where(points["flagged"], "flagged", "not flagged"),
                              index=points.index)
        for name, colour in colours.items():  # anomalies last: drawn on top of the normal mass
            part = points[names == name]
            if part.empty:
                continue
            emphasis = name in ("anomaly", "flagged")
            fig.add_trace(go.Scatter(
                x=part["x"], y=part["y"], mode="markers", name=f"{name} ({len(part):,})",
                customdata=custom(part), hovertemplate=hover,
                marker={"size": 8 if emphasis else 6, "color": colour, "opacity": 0.85},
            ))
    # One unit is as long across as up, and the axes shrink to the map rather than stretch it: a
    # t-SNE/UMAP map has no preferred direction, and a stretched one suggests bands that are not
    # there. The legend goes to the side, so the map keeps the height.
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, scaleanchor="x", scaleratio=1, constrain="domain")
    fig = _layout(fig, title, "", "")
    fig.update_layout(dragmode="lasso", clickmode="event+select", height=EMBEDDING_HEIGHT,
                      legend={"orientation": "v", "x": 1.0, "y": 1.0})
    return fig


def selected_session_ids(selection: dict | None) -> list[str]:
    """Session ids of the points a user clicked, boxed or lassoed (from ``customdata[0]``)."""
    if not selection:
        return []
    ids = []
    for point in selection.get("points", []):
        custom = point.get("customdata")
        if custom:
            ids.append(str(custom[0]))
    return list(dict.fromkeys(ids))


def timeline_figure(counts: pd.DataFrame, mode: str, width: int, new: pd.DataFrame,
                    new_x: np.ndarray, threshold: float) -> go.Figure:
    """Rows over one axis: sessions per period (flagged ones in red), lines per period (lines of
    flagged sessions in red, lines over the line threshold in orange) and, when there are any, a
    strip marking where each line the model never learned first appears (``new_x``: its time or
    line number). Every bar's ``customdata`` is its bucket number (read back on selection)."""
    if mode == "time":
        x = counts["start"] + pd.to_timedelta(width / 2, unit="s")
        bar_width, axis_title = width * 1000.0, "time (a bar per period)"  # ms on a date axis
    else:
        x = counts["start"] + (width - 1) / 2
        bar_width, axis_title = width, "line number (a bar per run of lines)"
    rows = 3 if len(new) else 2
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.42, 0.42, 0.16][:rows])
    custom = counts[["bucket", "label"]].to_numpy()
    hover = "%{customdata[1]}<br>%{y:,} "

    def bars(y: str, name: str, colour: str, row: int, what: str) -> None:
        fig.add_trace(go.Bar(
            x=x, y=counts[y], width=bar_width, name=name, marker_color=colour,
            customdata=custom, hovertemplate=hover + what + "<extra></extra>",
        ), row=row, col=1)

    bars("sessions", "sessions", VOLUME_COLOUR, 1, "sessions")
    bars("flagged_sessions", f"flagged sessions (≥ {format_threshold(threshold)})",
         ANOMALY_COLOUR, 1, "flagged sessions")
    bars("lines", "lines", VOLUME_COLOUR, 2, "lines")
    bars("flagged_lines", "lines of flagged sessions", ANOMALY_COLOUR, 2,
         "lines of flagged sessions")
    fig.add_trace(go.Scatter(
        x=x, y=counts["anomalous_lines"], mode="lines+markers",
        name="lines over the line threshold",
        line={"color": LINE_FLAG_COLOUR, "width": 1.5}, marker={"size": 4}, customdata=custom,
        hovertemplate=hover + "lines over the line threshold<extra></extra>",
    ), row=2, col=1)
    if len(new):
        text = new["template"].astype(str).str.slice(0, HOVER_TEXT_CHARS)
        fig.add_trace(go.Scatter(
            x=new_x, y=np.zeros(len(new)), mode="markers", name=f"new lines ({len(new):,})",
            marker={"symbol": "triangle-up", "size": 11, "color": NEW_COLOUR},
            customdata=np.column_stack([new["bucket"], new["line_no"], text]),
            hovertemplate="first seen at line %{customdata[1]:,}<br>%{customdata[2]}"
                          "<extra>never in training</extra>",
        ), row=3, col=1)
    fig.update_layout(barmode="overlay", bargap=0, clickmode="event+select",
                      height=600 if len(new) else 520,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "x": 0, "y": 1.01, "yanchor": "bottom"})
    fig.update_yaxes(title_text="sessions", row=1, col=1)
    fig.update_yaxes(title_text="lines", row=2, col=1)
    if len(new):
        fig.update_yaxes(showticklabels=False, range=[-1, 1], title_text="new", row=3, col=1)
    fig.update_xaxes(title_text=axis_title, row=rows, col=1)
    return fig


def selected_bucket(selection: dict | None) -> int | None:
    """The bucket of the first bar or marker a user clicked or boxed (``customdata[0]``)."""
    for point in (selection or {}).get("points", []):
        custom = point.get("customdata")
        if custom is not None and len(custom):
            try:
                return int(float(custom[0]))
            except (TypeError, ValueError):
                continue
    return None

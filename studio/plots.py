"""Plotly figures for the Train tab, built from a run's events.jsonl (see core/training/events.py).
Each returns a figure even with no data yet, so a panel never shows an empty frame."""
from __future__ import annotations

import plotly.graph_objects as go

INDIGO, AMBER, TEAL, ROSE, SLATE = "#4f46e5", "#d97706", "#0d9488", "#e11d48", "#64748b"


def _base(title: str, ytitle: str, height: int = 260) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 14}}, height=height,
        margin={"l": 50, "r": 16, "t": 40, "b": 36}, template="plotly_white",
        showlegend=True, legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right", "font": {"size": 11}},
        xaxis={"title": {"text": "step", "font": {"size": 11}}, "gridcolor": "#eef2f7"},
        yaxis={"title": {"text": ytitle, "font": {"size": 11}}, "gridcolor": "#eef2f7"},
        font={"family": "ui-sans-serif, system-ui, sans-serif", "size": 11},
    )
    return fig


def _xy(events: list[dict], type_: str, key: str) -> tuple[list, list]:
    xs, ys = [], []
    for e in events:
        if e.get("type") == type_ and isinstance(e.get(key), (int, float)) and e.get("step") is not None:
            xs.append(e["step"])
            ys.append(e[key])
    return xs, ys


def _empty_note(fig: go.Figure, text: str = "waiting for the first log…") -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"color": SLATE, "size": 12})
    return fig


def smooth(ys: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the first points are not
    pulled towards 0. weight 0 = the raw values, towards 1 = smoother."""
    weight = min(max(float(weight or 0), 0.0), 0.999)
    out, avg = [], 0.0
    for i, y in enumerate(ys, 1):
        avg = weight * avg + (1 - weight) * y
        out.append(avg / (1 - weight ** i) if weight else y)
    return out


def loss_figure(events: list[dict], log_scale: bool = False, smoothing: float = 0.0) -> go.Figure:
    """Train loss (smoothed on demand, the raw values faint behind it) and eval loss; a log y axis
    keeps the late steps readable once the loss is near 0."""
    fig = _base("Loss", "loss" + (" (log scale)" if log_scale else ""))
    xs, ys = _xy(events, "log", "loss")
    ex, ey = _xy(events, "eval", "eval_loss")
    if xs:
        mode = "lines+markers" if len(xs) < 40 else "lines"
        if smoothing:
            fig.add_scatter(x=xs, y=ys, mode="lines", name="train loss (raw)", opacity=0.3,
                            line={"color": INDIGO, "width": 1})
            fig.add_scatter(x=xs, y=smooth(ys, smoothing), mode="lines", name=f"train loss (smoothed {smoothing:.2f})",
                            line={"color": INDIGO, "width": 2})
        else:
            fig.add_scatter(x=xs, y=ys, mode=mode, name="train loss", line={"color": INDIGO, "width": 2},
                            marker={"size": 5})
    if ex:
        fig.add_scatter(x=ex, y=ey, mode="lines+markers", name="eval loss",
                        line={"color": AMBER, "width": 2, "dash": "dot"}, marker={"size": 7})
    if log_scale:
        fig.update_yaxes(type="log", exponentformat="power")
    return fig if xs or ex else _empty_note(fig)


def memory_figure(events: list[dict], budget_gb: float | None = None) -> go.Figure:
    """GPU memory allocated / reserved against the GPU budget line; on a CPU run, the job's RAM,
    labelled as RAM and without the GPU budget (it says nothing about RAM)."""
    xa, ya = _xy(events, "log", "vram_alloc_gb")
    xr, yr = _xy(events, "log", "vram_reserved_gb")
    xs, ys = _xy(events, "log", "rss_gb")
    if xa or xr:
        fig = _base("GPU memory", "GiB")
        fig.add_scatter(x=xa, y=ya, mode="lines", name="allocated", line={"color": INDIGO, "width": 2})
        fig.add_scatter(x=xr, y=yr, mode="lines", name="reserved", line={"color": TEAL, "width": 2},
                        fill="tonexty", fillcolor="rgba(13,148,136,0.08)")
    elif xs:
        fig = _base("RAM (CPU run)", "GiB of RAM")
        fig.add_scatter(x=xs, y=ys, mode="lines", name="process RAM", line={"color": TEAL, "width": 2})
        return fig
    else:
        fig = _empty_note(_base("Memory", "GiB"))
    if budget_gb:
        fig.add_hline(y=budget_gb, line={"color": ROSE, "dash": "dash", "width": 1.5},
                      annotation_text=f"GPU budget {budget_gb:.2f} GiB usable", annotation_position="top left",
                      annotation_font={"color": ROSE, "size": 11})
    return fig


def lr_figure(events: list[dict]) -> go.Figure:
    fig = _base("Learning rate", "lr", height=220)
    xs, ys = _xy(events, "log", "lr")
    if not xs:
        return _empty_note(fig)
    fig.add_scatter(x=xs, y=ys, mode="lines", name="lr", line={"color": AMBER, "width": 2})
    fig.update_yaxes(exponentformat="e")
    return fig


def throughput_figure(events: list[dict]) -> go.Figure:
    fig = _base("Throughput", "tokens / s", height=220)
    xs, ys = _xy(events, "log", "tokens_per_s")
    if xs:
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name="tokens/s", line={"color": TEAL, "width": 2})
        return fig
    xs, ys = _xy(events, "log", "samples_per_s")
    if xs:
        fig.update_yaxes(title_text="samples / s")
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name="samples/s", line={"color": TEAL, "width": 2})
        return fig
    return _empty_note(fig)


def accept_rate_figure(series: dict) -> go.Figure:
    """The share of a run's suggestions accepted unchanged, run by run (core.label_loop.rate_series):
    one line per field and one for whole records, so retraining on more labels shows as a rise."""
    fig = _base("Suggestions accepted unchanged, run by run", "accepted unchanged", height=280)
    runs = series.get("runs") or []
    fig.update_layout(xaxis={"title": {"text": "run (in the order they pre-labeled)", "font": {"size": 11}},
                             "type": "category"}, yaxis={"range": [0, 1.05], "tickformat": ".0%"})
    if not runs:
        return _empty_note(fig, "accept or correct a few suggestions to see how good each run is")
    colours = [TEAL, AMBER, ROSE, SLATE]
    labels = [f"{r} ({n})" for r, n in zip(runs, series.get("reviewed") or [0] * len(runs))]
    for i, (name, ys) in enumerate((series.get("fields") or {}).items()):
        fig.add_scatter(x=labels, y=ys, mode="lines+markers", name=name, connectgaps=True,
                        line={"color": colours[i % len(colours)], "width": 1.5, "dash": "dot"}, marker={"size": 6})
    fig.add_scatter(x=labels, y=series.get("unchanged") or [], mode="lines+markers", name="whole record",
                    line={"color": INDIGO, "width": 3}, marker={"size": 8})
    return fig

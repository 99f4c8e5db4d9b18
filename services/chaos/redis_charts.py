"""Charts of the Redis failure labs (plotly), from a ChaosReport or its saved dict.

Each function returns a Figure with a title and axis units; the notebook puts
the sentence saying what to see under it. They read only ``series`` and
``metrics``, so a report loaded back from results/ charts the same way.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOURS = {
    "success": "#2ca02c", "sold_out": "#7f7f7f", "already_bought": "#17becf", "unavailable": "#ff7f0e",
    "not_found": "#9467bd", "limited": "#bcbd22", "client_error": "#e377c2", "server_error": "#d62728",
    "failed": "#8c564b",
}


def _parts(report) -> tuple[dict, dict, str]:
    if isinstance(report, dict):
        return report.get("series") or {}, report.get("metrics") or {}, report.get("scenario", "")
    return report.series, report.metrics, report.scenario


def answers_timeline(report, title: str | None = None) -> go.Figure:
    """What buyers saw, second by second: answers/s stacked by outcome (top), slowest answer (bottom), fault marks."""
    series, metrics, scenario = _parts(report)
    t = series.get("t", [])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.7, 0.3])
    for outcome, colour in COLOURS.items():
        if outcome in series:
            fig.add_trace(go.Scatter(x=t, y=series[outcome], name=outcome.replace("_", " "), stackgroup="answers",
                                     mode="lines", line={"width": 0.5, "color": colour}), row=1, col=1)
    if "max_latency_ms" in series:
        fig.add_trace(go.Scatter(x=t, y=series["max_latency_ms"], name="slowest answer", mode="lines+markers",
                                 line={"color": "#1f77b4"}), row=2, col=1)
    for mark in series.get("marks", []):
        fig.add_vline(x=mark["t"], line={"dash": "dash", "color": "#444"})
        fig.add_annotation(x=mark["t"], y=1.02, yref="paper", text=mark["label"], showarrow=False,
                           xanchor="left", font={"size": 11})
    fig.update_yaxes(title_text="answers / s", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="slowest (ms)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time since the buyers started (s)", row=2, col=1)
    fig.update_layout(title=title or f"{scenario}: what the buyers were answered, second by second",
                      height=520, hovermode="x unified", legend={"orientation": "h", "y": -0.18},
                      margin={"t": 80})
    return fig


def race_bars(report) -> go.Figure:
    """Naive against atomic: items promised, the stock, what PostgreSQL wrote and refused, the final Redis counter."""
    series, metrics, _ = _parts(report)
    methods = series.get("method", [])
    fig = go.Figure()
    for key, name, colour in (("promised", "buyers told 'you got it'", "#d62728"), ("stock", "items in stock", "#7f7f7f"),
                              ("written_in_pg", "orders PostgreSQL wrote", "#2ca02c"),
                              ("refused_by_pg", "orders PostgreSQL refused", "#ff7f0e"),
                              ("redis_counter_end", "Redis counter at the end", "#1f77b4")):
        fig.add_trace(go.Bar(x=methods, y=series.get(key, []), name=name, marker_color=colour,
                             text=series.get(key, []), textposition="outside"))
    fig.update_layout(barmode="group", height=430, legend={"orientation": "h", "y": -0.15},
                      title=f"The race: {metrics.get('buyers')} buyers, {metrics.get('stock')} items, "
                            f"{metrics.get('threads')} at a time")
    fig.update_yaxes(title_text="count (buyers, items or orders)", rangemode="tozero")
    fig.update_xaxes(title_text="how the gateway reserves")
    return fig


def leak_bars(report) -> go.Figure:
    """crash-between: Redis stock against PostgreSQL stock after the crashes, after reconcile --fix, at the end."""
    series, metrics, _ = _parts(report)
    moments = series.get("moment", [])
    fig = go.Figure([
        go.Bar(x=moments, y=series.get("redis_stock", []), name="stock in Redis", marker_color="#d62728",
               text=series.get("redis_stock", []), textposition="outside"),
        go.Bar(x=moments, y=series.get("pg_stock", []), name="stock in PostgreSQL (the truth)",
               marker_color="#1f77b4", text=series.get("pg_stock", []), textposition="outside"),
    ])
    fig.update_layout(barmode="group", height=420, legend={"orientation": "h", "y": -0.15},
                      title=f"crash-between: {metrics.get('crashes')} gateway crashes leaked "
                            f"{metrics.get('leaked')} items until reconciliation returned them")
    fig.update_yaxes(title_text="items left to sell", rangemode="tozero")
    fig.update_xaxes(title_text="moment of the lab")
    return fig

"""Charts of load-test runs (plotly), for notebooks: each function returns a Figure.

They take a :class:`seckill.loadtest.LoadResult` or a saved run as returned by
``loadtest.load_results()`` (a dict with summary, invariants and history), so a
notebook can chart the run it just made or the learner's earlier ones.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

OUTCOME_COLOURS = {
    "success": "#2ca02c", "sold_out": "#7f7f7f", "already_bought": "#17becf", "limited": "#ff7f0e",
    "client_error": "#9467bd", "server_error": "#d62728", "failed": "#8c564b",
}


def _parts(result) -> tuple[dict, dict, pd.DataFrame]:
    """(summary, invariants, history) of a LoadResult or a saved run."""
    if isinstance(result, dict):
        history = result.get("history") or []
        return result["summary"], result.get("invariants") or {}, pd.DataFrame(history)
    return result.summary, result.invariants, result.history


def _name(summary: dict) -> str:
    label = summary.get("label") or summary.get("tier") or "run"
    return label if label == summary.get("tier") else f"{label} ({summary.get('tier')})"


def throughput_latency(result) -> go.Figure:
    """Requests/s (top) and p50/p95/p99 latency (bottom), second by second."""
    summary, _inv, h = _parts(result)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("throughput", "latency (last ~2 s)"),
                        specs=[[{"secondary_y": True}], [{}]])
    if len(h):
        fig.add_trace(go.Scatter(x=h["time_s"], y=h["requests_per_s"], name="requests/s", mode="lines+markers",
                                 line={"color": "#1f77b4"}), row=1, col=1)
        if (h["failures_per_s"] > 0).any():
            fig.add_trace(go.Scatter(x=h["time_s"], y=h["failures_per_s"], name="failures/s",
                                     mode="lines+markers", line={"color": "#d62728"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=h["time_s"], y=h["users"], name="users", mode="lines",
                                 line={"color": "#aaaaaa", "dash": "dot"}), row=1, col=1, secondary_y=True)
        for col, colour in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
            fig.add_trace(go.Scatter(x=h["time_s"], y=h[col], name=col.replace("_ms", ""), mode="lines+markers",
                                     line={"color": colour}), row=2, col=1)
    fig.update_yaxes(title_text="requests / s", rangemode="tozero", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="users", rangemode="tozero", showgrid=False, row=1, col=1, secondary_y=True)
    fig.update_yaxes(title_text="latency (ms)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time since start (s)", row=2, col=1)
    fig.update_layout(
        title=(f"{_name(summary)}: {summary.get('users')} users, {summary.get('requests')} requests, "
               f"{summary.get('requests_per_s')} req/s, p99 {summary.get('p99_ms')} ms"),
        height=560, hovermode="x unified", legend={"orientation": "h", "y": -0.15})
    return fig


def outcomes(result) -> go.Figure:
    """How many requests ended in each outcome (success, sold_out, limited, ...)."""
    from .loadtest import OUTCOMES

    summary, inv, _h = _parts(result)
    counts = [int(summary.get(k) or 0) for k in OUTCOMES]
    fig = go.Figure(go.Bar(x=list(OUTCOMES), y=counts, text=counts, textposition="outside",
                           marker_color=[OUTCOME_COLOURS[k] for k in OUTCOMES]))
    verdict = ""
    if inv:
        verdict = (f" · oversold {inv.get('oversold')}, lost {inv.get('lost')}, "
                   f"orders {inv.get('orders')} of stock {inv.get('initial_stock')}")
    fig.update_layout(title=f"{_name(summary)}: outcomes of {summary.get('requests')} requests{verdict}",
                      xaxis_title="outcome", yaxis_title="requests", height=420)
    return fig


def stores(result) -> go.Figure:
    """Behind the gateway: stock left in Redis, orders waiting in RabbitMQ, orders in PostgreSQL."""
    if isinstance(result, dict):
        summary, frame = result["summary"], pd.DataFrame(result.get("stores") or [])
    else:
        summary, frame = result.summary, result.stores
    from .tiers import TIERS

    tier = TIERS.get(summary.get("tier") or "")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(frame) and tier is not None and not tier.redis_copy:  # db-direct: the stock lives in PostgreSQL only
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["pg_stock"], name="stock left (PostgreSQL)",
                                 mode="lines+markers", line={"color": "#1f77b4"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["pg_orders"], name="orders in PostgreSQL",
                                 mode="lines+markers", line={"color": "#2ca02c"}))
    elif len(frame):
        stock = frame["redis_stock"]
        if frame["held_locally"].fillna(0).gt(0).any():  # local-stock: leased units are not sold yet
            stock = stock + frame["held_locally"].fillna(0)
            fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["held_locally"], name="held by instances (leases)",
                                     mode="lines", line={"color": "#bcbd22", "dash": "dot"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=stock, name="stock left (Redis)", mode="lines+markers",
                                 line={"color": "#1f77b4"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["pg_orders"], name="orders in PostgreSQL",
                                 mode="lines+markers", line={"color": "#2ca02c"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["queue_depth"], name="waiting in RabbitMQ",
                                 mode="lines+markers", line={"color": "#ff7f0e"}), secondary_y=True)
    fig.update_xaxes(title_text="time since start (s)")
    fig.update_yaxes(title_text="items / orders", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="messages in the queue", rangemode="tozero", showgrid=False, secondary_y=True)
    fig.update_layout(title=f"{_name(summary)}: stock, queue and database while the sale runs and drains",
                      height=440, hovermode="x unified", legend={"orientation": "h", "y": -0.2})
    return fig


def compare_tiers(results: list) -> go.Figure:
    """Requests/s per run (tier or label), with p99 latency written on each bar."""
    rows = []
    for result in results:
        summary, _inv, _h = _parts(result)
        started = (summary.get("started_at") or "")[:16].replace("T", " ")
        rows.append({"run": f"{_name(summary)}<br>{summary.get('users')} users · {started}",
                     "rps": summary.get("requests_per_s") or 0.0, "p99": summary.get("p99_ms"),
                     "tier": summary.get("tier")})
    fig = go.Figure(go.Bar(
        x=[r["run"] for r in rows], y=[r["rps"] for r in rows],
        text=[f"p99 {r['p99']:.0f} ms" if r["p99"] is not None else "p99 n/a" for r in rows],
        textposition="outside", marker_color="#1f77b4"))
    fig.update_layout(title="Throughput per tier (p99 latency on each bar)", xaxis_title="run",
                      yaxis_title="requests / s", height=460)
    return fig


def bench_figure(record: dict) -> go.Figure:
    """``make bench``: requests/s of every tier (bars) under the machine's ceilings (lines), log scale."""
    rows = record.get("tiers") or []
    names = [row["tier"] for row in rows]
    fig = go.Figure(go.Bar(
        x=names, y=[row["requests_per_s"] for row in rows], name="tier, requests/s", marker_color="#1f77b4",
        text=[f"{row['requests_per_s']:,.0f}/s · p99 {row['p99_ms']:.0f} ms" for row in rows],
        textposition="outside"))
    ceilings = record.get("ceilings") or {}
    for key, label, colour in (("nginx_return_200_rps", "nginx `return 200`", "#2ca02c"),
                               ("redis_lua_ops_per_s", "stock Lua script in Redis", "#d62728"),
                               ("postgres_tx_per_s", "PostgreSQL guarded update, one row", "#7f7f7f")):
        if ceilings.get(key) and names:
            fig.add_trace(go.Scatter(x=names, y=[ceilings[key]] * len(names), mode="lines", name=label,
                                     line={"color": colour, "dash": "dash"}))
    fig.update_layout(
        title="The tier ladder under the same wrk load, against this machine's ceilings"
              + (f" ({record['saved_at']})" if record.get("saved_at") else ""),
        xaxis_title="tier", yaxis_title="requests / s (log scale)", yaxis_type="log", height=560,
        legend={"orientation": "h", "y": -0.2, "yanchor": "top"}, margin={"b": 190})
    fig.add_annotation(
        text=("What to see: how far each step of the ladder lifts the bar above db-direct. The dashed lines are what "
              "nginx alone, Redis's stock script alone<br>and one PostgreSQL row can do on these same cores: the gap "
              "between the top bar and them is the gateway's own cost per request. Same run, same load."),
        xref="paper", yref="paper", x=0, y=-0.45, yanchor="top", xanchor="left", showarrow=False, align="left",
        font={"size": 12})
    return fig

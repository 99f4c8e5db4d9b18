"""Charts of load-test runs (plotly), for notebooks: each function returns a Figure.

They take a :class:`seckill.measure.loadtest.LoadResult` or a saved run as returned by
``loadtest.load_results()`` (a dict with summary, invariants and history), so a
notebook can chart the run it just made or the learner's earlier ones.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from seckill.i18n import pick as _t  # titles and labels in the edition's language (SECKILL_LANG=zh: 中文)

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
                        subplot_titles=(_t("throughput", "吞吐量"), _t("latency (last ~2 s)", "延迟（最近约 2 秒）")),
                        specs=[[{"secondary_y": True}], [{}]])
    if len(h):
        fig.add_trace(go.Scatter(x=h["time_s"], y=h["requests_per_s"], name=_t("requests/s", "请求/秒"), mode="lines+markers",
                                 line={"color": "#1f77b4"}), row=1, col=1)
        if (h["failures_per_s"] > 0).any():
            fig.add_trace(go.Scatter(x=h["time_s"], y=h["failures_per_s"], name=_t("failures/s", "失败/秒"),
                                     mode="lines+markers", line={"color": "#d62728"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=h["time_s"], y=h["users"], name=_t("users", "用户数"), mode="lines",
                                 line={"color": "#aaaaaa", "dash": "dot"}), row=1, col=1, secondary_y=True)
        for col, colour in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
            fig.add_trace(go.Scatter(x=h["time_s"], y=h[col], name=col.replace("_ms", ""), mode="lines+markers",
                                     line={"color": colour}), row=2, col=1)
    fig.update_yaxes(title_text=_t("requests / s", "请求/秒"), rangemode="tozero", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text=_t("users", "用户数"), rangemode="tozero", showgrid=False, row=1, col=1, secondary_y=True)
    fig.update_yaxes(title_text=_t("latency (ms)", "延迟（毫秒）"), rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text=_t("time since start (s)", "开始后的时间（秒）"), row=2, col=1)
    fig.update_layout(
        title=_t(f"{_name(summary)}: {summary.get('users')} users, {summary.get('requests')} requests, "
                 f"{summary.get('requests_per_s')} req/s, p99 {summary.get('p99_ms')} ms",
                 f"{_name(summary)}：{summary.get('users')} 个用户，{summary.get('requests')} 个请求，"
                 f"{summary.get('requests_per_s')} 请求/秒，p99 {summary.get('p99_ms')} 毫秒"),
        height=560, hovermode="x unified", legend={"orientation": "h", "y": -0.15})
    return fig


def outcomes(result) -> go.Figure:
    """How many requests ended in each outcome (success, sold_out, limited, ...)."""
    from seckill.measure.loadtest import OUTCOMES

    summary, inv, _h = _parts(result)
    counts = [int(summary.get(k) or 0) for k in OUTCOMES]
    fig = go.Figure(go.Bar(x=list(OUTCOMES), y=counts, text=counts, textposition="outside",
                           marker_color=[OUTCOME_COLOURS[k] for k in OUTCOMES]))
    verdict = ""
    if inv:
        verdict = _t(f" · oversold {inv.get('oversold')}, lost {inv.get('lost')}, "
                     f"orders {inv.get('orders')} of stock {inv.get('initial_stock')}",
                     f" · 超卖 {inv.get('oversold')}，丢单 {inv.get('lost')}，"
                     f"订单 {inv.get('orders')} / 库存 {inv.get('initial_stock')}")
    fig.update_layout(title=_t(f"{_name(summary)}: outcomes of {summary.get('requests')} requests{verdict}",
                               f"{_name(summary)}：{summary.get('requests')} 个请求的结果{verdict}"),
                      xaxis_title=_t("outcome", "结果"), yaxis_title=_t("requests", "请求数"), height=420)
    return fig


def stores(result) -> go.Figure:
    """Behind the gateway: stock left in Redis, orders waiting in RabbitMQ, orders in PostgreSQL."""
    if isinstance(result, dict):
        summary, frame = result["summary"], pd.DataFrame(result.get("stores") or [])
    else:
        summary, frame = result.summary, result.stores
    from seckill.system.tiers import TIERS

    tier = TIERS.get(summary.get("tier") or "")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(frame) and tier is not None and not tier.redis_copy:  # db-direct: the stock lives in PostgreSQL only
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["pg_stock"], name=_t("stock left (PostgreSQL)", "剩余库存（PostgreSQL）"),
                                 mode="lines+markers", line={"color": "#1f77b4"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["pg_orders"], name=_t("orders in PostgreSQL", "PostgreSQL 中的订单"),
                                 mode="lines+markers", line={"color": "#2ca02c"}))
    elif len(frame):
        stock = frame["redis_stock"]
        if frame["held_locally"].fillna(0).gt(0).any():  # local-stock: leased units are not sold yet
            stock = stock + frame["held_locally"].fillna(0)
            fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["held_locally"], name=_t("held by instances (leases)", "实例本地持有（租约）"),
                                     mode="lines", line={"color": "#bcbd22", "dash": "dot"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=stock, name=_t("stock left (Redis)", "剩余库存（Redis）"), mode="lines+markers",
                                 line={"color": "#1f77b4"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["pg_orders"], name=_t("orders in PostgreSQL", "PostgreSQL 中的订单"),
                                 mode="lines+markers", line={"color": "#2ca02c"}))
        fig.add_trace(go.Scatter(x=frame["time_s"], y=frame["queue_depth"], name=_t("waiting in RabbitMQ", "RabbitMQ 中排队"),
                                 mode="lines+markers", line={"color": "#ff7f0e"}), secondary_y=True)
    fig.update_xaxes(title_text=_t("time since start (s)", "开始后的时间（秒）"))
    fig.update_yaxes(title_text=_t("items / orders", "件数 / 订单数"), rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text=_t("messages in the queue", "队列中的消息数"), rangemode="tozero", showgrid=False, secondary_y=True)
    fig.update_layout(title=_t(f"{_name(summary)}: stock, queue and database while the sale runs and drains",
                               f"{_name(summary)}：秒杀进行中和消化积压时的库存、队列与数据库"),
                      height=440, hovermode="x unified", legend={"orientation": "h", "y": -0.2})
    return fig


def compare_tiers(results: list) -> go.Figure:
    """Requests/s per run (tier or label), with p99 latency written on each bar."""
    rows = []
    for result in results:
        summary, _inv, _h = _parts(result)
        started = (summary.get("started_at") or "")[:16].replace("T", " ")
        rows.append({"run": f"{_name(summary)}<br>{summary.get('users')} {_t('users', '个用户')} · {started}",
                     "rps": summary.get("requests_per_s") or 0.0, "p99": summary.get("p99_ms"),
                     "tier": summary.get("tier")})
    fig = go.Figure(go.Bar(
        x=[r["run"] for r in rows], y=[r["rps"] for r in rows],
        text=[f"p99 {r['p99']:.0f} {_t('ms', '毫秒')}" if r["p99"] is not None else "p99 n/a" for r in rows],
        textposition="outside", marker_color="#1f77b4"))
    fig.update_layout(title=_t("Throughput per tier (p99 latency on each bar)", "各档吞吐量（柱上标注 p99 延迟）"),
                      xaxis_title=_t("run", "运行"), yaxis_title=_t("requests / s", "请求/秒"), height=460)
    return fig


def bench_figure(record: dict) -> go.Figure:
    """``make bench``: requests/s of every tier (bars) under the machine's ceilings (lines), log scale."""
    rows = record.get("tiers") or []
    names = [row["tier"] for row in rows]
    fig = go.Figure(go.Bar(
        x=names, y=[row["requests_per_s"] for row in rows], name=_t("tier, requests/s", "各档，请求/秒"), marker_color="#1f77b4",
        text=[f"{row['requests_per_s']:,.0f}/s · p99 {row['p99_ms']:.0f} ms" for row in rows],
        textposition="outside"))
    ceilings = record.get("ceilings") or {}
    for key, label, colour in (("nginx_return_200_rps", "nginx `return 200`", "#2ca02c"),
                               ("redis_lua_ops_per_s", _t("stock Lua script in Redis", "Redis 中的库存 Lua 脚本"), "#d62728"),
                               ("postgres_tx_per_s", _t("PostgreSQL guarded update, one row",
                                                        "PostgreSQL 单行带条件更新"), "#7f7f7f")):
        if ceilings.get(key) and names:
            fig.add_trace(go.Scatter(x=names, y=[ceilings[key]] * len(names), mode="lines", name=label,
                                     line={"color": colour, "dash": "dash"}))
    fig.update_layout(
        title=_t("The tier ladder under the same wrk load, against this machine's ceilings",
                 "同一 wrk 压力下的分档阶梯，对照本机上限")
              + (f" ({record['saved_at']})" if record.get("saved_at") else ""),
        xaxis_title=_t("tier", "档"), yaxis_title=_t("requests / s (log scale)", "请求/秒（对数坐标）"), yaxis_type="log", height=560,
        legend={"orientation": "h", "y": -0.2, "yanchor": "top"}, margin={"b": 190})
    fig.add_annotation(
        text=_t("What to see: how far each step of the ladder lifts the bar above db-direct. The dashed lines are what "
                "nginx alone, Redis's stock script alone<br>and one PostgreSQL row can do on these same cores: the gap "
                "between the top bar and them is the gateway's own cost per request. Same run, same load.",
                "看什么：阶梯的每一级把柱子比 db-direct 抬高了多少。虚线是在同样的 CPU 核上，单独的 nginx、单独的 Redis "
                "库存脚本<br>和 PostgreSQL 单行各自能做到的上限：最高那根柱子与虚线之间的差距，就是网关自身处理每个请求的开销。"
                "同一次运行，同样的压力。"),
        xref="paper", yref="paper", x=0, y=-0.45, yanchor="top", xanchor="left", showarrow=False, align="left",
        font={"size": 12})
    return fig

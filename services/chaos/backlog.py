"""backlog: the order service stops while buyers keep coming; the queue grows, an alert fires.

Nothing fails for the users: the gateway keeps answering 200, because an order
only has to reach the queue. That is the point of the queue (削峰: it absorbs
the peak) and also its danger: a dead order service is invisible from the
outside until someone looks at the queue. So a watcher samples the depth and
fires an alert the moment it passes a threshold (seckill.measure.alerts), and when the
order service is back we measure how fast it works the backlog off (the drain
rate, orders/s) and how long until the queue is empty and every order written.
"""

from __future__ import annotations

import time
from typing import TextIO

from seckill.measure import alerts
from seckill.stack import db
from seckill import stack
from seckill.config import settings
from seckill.measure.invariants import order_count
from seckill.chaos import ChaosReport
from seckill.chaos.stage import fresh_sale
from seckill.chaos._queue import (buy, buyers, check_books, start_order_service, stop_order_service, tier_for,
                                  wait_until)

TITLE = "order service stopped under load: the queue grows and an alert fires"


def run(tier: str | None = None, product_id: int = 9303, stock: int = 5000, requests: int = 2000,
        threshold: int = 500, interval_s: float = 0.05, concurrency: int = 100, hold_s: float = 1.0,
        consumer_batch: int | None = None, out: TextIO | None = None) -> ChaosReport:
    """Stop the order service, send ``requests`` buyers, restart it after ``hold_s``, measure the drain.

    ``consumer_batch`` restarts the order service with that batch size (and prefetch),
    to see how batching sets the drain rate. Alert lines go to ``out`` (default: stdout: in a failure lab the alert is the
    lesson, not an error; `seckill watch-queue` keeps them on stderr).
    """
    report = ChaosReport("backlog", TITLE)
    s = settings()
    state = tier_for(report, tier)
    fresh_sale(report, s, product_id, max(stock, requests))

    def on_alert(alert: alerts.Alert) -> None:
        report.event(alert.line(s.queue))
        print(alert.line(s.queue), file=out or stack.STDOUT, flush=True)

    probe = alerts.QueueDepthProbe(s.amqp_url, s.queue)
    watcher = alerts.QueueWatcher(probe, threshold, interval_s=interval_s, max_s=300, on_alert=on_alert)
    offset = watcher.t0 - report.started  # watcher time + offset = report time
    restarted = False
    try:
        stop_order_service(report, s)
        t_stopped = time.monotonic() - report.started
        watcher.start()
        load = buy(state["base_url"], product_id, buyers("backlog", requests, 0), concurrency, deadline_s=120)
        confirmed = set(load.order_ids)
        report.event(f"{load.total} buys in {load.elapsed_s:.1f} s → {dict(load.statuses)}; "
                     "every user was told success, nothing is written yet")
        time.sleep(hold_s)  # the backlog just sits there: nobody drains it

        env = {"SECKILL_CONSUMER_BATCH": str(consumer_batch),
               "SECKILL_CONSUMER_PREFETCH": str(consumer_batch)} if consumer_batch else None
        t_restart = time.monotonic() - report.started
        start_order_service(report, s, extra_env=env)
        restarted = True
        all_written = wait_until(lambda: order_count(s, product_id) >= len(confirmed), timeout_s=120,
                                 interval_s=0.01)
        t_written = time.monotonic() - report.started
        wait_until(lambda: not watcher.rule.firing, timeout_s=5)  # let it see the empty queue
    finally:
        watcher.stop()
        probe.close()
        if not restarted:
            start_order_service(report, s)

    samples = [(round(t + offset, 3), depth, cons) for t, depth, cons in watcher.samples]
    depths = [d for _, d, _ in samples if d is not None]
    peak = max(depths, default=0)
    fired = watcher.fired()
    first_alert = fired[0] if fired else None
    # in the watcher's own clock: the sample that fired the alert carries exactly the alert's time
    before_alert = [d for t, d, _ in watcher.samples if d is not None and first_alert and t < first_alert.t]
    attached = next((t for t, _, cons in samples if t >= t_restart and cons), None)
    t_attach = attached if attached is not None else t_restart
    written_t, written = _writes(s, product_id, wall_start=time.time() - (time.monotonic() - report.started))
    # the drain runs from the first batch's transaction (PostgreSQL's own clock) to the last order written
    t_first_write = next((t for t in written_t if t >= t_restart - 0.5), t_attach)
    drain_s = max(0.001, t_written - min(t_attach, t_first_write))

    report.check("the alert fired when the queue passed the threshold",
                 first_alert is not None and first_alert.depth > threshold,
                 f"peak {peak}, threshold {threshold}" + (f", fired at depth {first_alert.depth}" if first_alert else ""))
    report.check("no alert while the queue was at or below the threshold",
                 all(d <= threshold for d in before_alert), f"{len(before_alert)} samples before the alert")
    report.check("one alert for one backlog (no flapping)", len(fired) == 1, f"{len(fired)} alerts fired")
    report.check("the alert cleared once the backlog drained", not watcher.rule.firing)
    report.check("the backlog drained after the restart", all_written is not None,
                 f"{order_count(s, product_id)} of {len(confirmed)} written")
    check_books(report, s, product_id, confirmed)
    report.metrics.update(
        tier=state["tier"], threshold=threshold, peak_depth=peak,
        alert_at_s=round(first_alert.t + offset, 2) if first_alert else None,
        alert_depth=first_alert.depth if first_alert else None,
        alert_after_stop_s=round(first_alert.t + offset - t_stopped, 2) if first_alert else None,
        stopped_s=round(t_restart - t_stopped, 2),
        drain_s=round(drain_s, 2), drain_per_s=round(len(confirmed) / drain_s, 1),
        empty_after_restart_s=round(t_written - t_restart, 2),
        consumer_batch=consumer_batch or "default",
        stopped_t=round(t_stopped, 2), restart_t=round(t_restart, 2), attach_t=round(t_attach, 2),
        written_t=round(t_written, 2),
    )
    report.series = {"written_t": written_t, "written": written,
                     "t": [t for t, _, _ in samples], "queue_depth": [d for _, d, _ in samples],
                     "consumers": [c for _, _, c in samples],
                     "alerts": [{"t": round(a.t + offset, 3), "state": a.state, "depth": a.depth}
                                for a in watcher.alerts]}
    return report


def _writes(s, product_id: int, wall_start: float) -> tuple[list[float], list[int]]:
    """Orders written to PostgreSQL over time (cumulative), from each order's written_at.

    written_at is the writing transaction's start, so each batch shows as one step.
    """
    with db.connect(s.postgres_url) as conn:
        rows = conn.execute("SELECT extract(epoch FROM written_at)::float8, count(*) FROM orders "
                            "WHERE product_id = %s GROUP BY 1 ORDER BY 1", (product_id,)).fetchall()
    times, totals, total = [], [], 0
    for at, n in rows:
        total += n
        times.append(round(at - wall_start, 3))
        totals.append(total)
    return times, totals


def chart(report):
    """Queue depth over time with the threshold, the alert, and the drain after the restart."""
    import plotly.graph_objects as go

    data = report if isinstance(report, dict) else report.as_dict()
    series, m = data["series"], data["metrics"]
    fig = go.Figure()
    fig.add_vrect(x0=m["stopped_t"], x1=m["attach_t"], fillcolor="#d62728", opacity=0.10, line_width=0,
                  annotation_text="order service down", annotation_position="top left")
    fig.add_trace(go.Scatter(x=series["t"], y=series["queue_depth"], mode="lines", name="orders waiting in the queue",
                             line={"color": "#1f77b4"}))
    fig.add_hline(y=m["threshold"], line_dash="dash", line_color="#ff7f0e",
                  annotation_text=f"alert threshold {m['threshold']}")
    if series.get("written_t"):
        fig.add_trace(go.Scatter(x=series["written_t"], y=series["written"], mode="lines", line_shape="hv",
                                 name="orders written to PostgreSQL", line={"color": "#2ca02c"}))
    for alert in series.get("alerts", []):
        fired = alert["state"] == "fired"
        fig.add_trace(go.Scatter(x=[alert["t"]], y=[alert["depth"]], mode="markers+text",
                                 name="alert fired" if fired else "alert cleared",
                                 text=["ALERT" if fired else "cleared"], textposition="top center",
                                 marker={"color": "#d62728" if fired else "#2ca02c", "size": 12,
                                         "symbol": "x" if fired else "circle"}))
    fig.update_layout(
        title=(f"backlog on {m.get('tier')}: peak {m.get('peak_depth')} orders; after the restart the order "
               f"service drained {m.get('drain_per_s')} orders/s, all written in {m.get('drain_s')} s"),
        xaxis_title="time since the scenario started (s)", yaxis_title="orders",
        yaxis_rangemode="tozero", height=460, legend={"orientation": "h", "y": -0.2})
    return fig

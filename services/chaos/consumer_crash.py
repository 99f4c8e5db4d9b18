"""consumer-crash: the order service dies in the middle of a batch, twice.

RabbitMQ delivers at least once: a message is gone from the queue only when
the consumer acks it. The order service acks a batch *after* its transaction
committed, so whatever moment it dies at, the batch comes back. The two
moments that matter:

  * after commit, before ack: the orders ARE in PostgreSQL, and the broker
    redelivers them anyway. Only the idempotent insert (order_id primary key,
    ON CONFLICT DO NOTHING) keeps them from being written twice.
  * before commit: the orders were written inside an open transaction;
    PostgreSQL rolls it back when the connection dies, the broker redelivers,
    and they are written exactly once.

The crash is real: the order service is started with
``SECKILL_INJECT=consumer-crash:<point>`` (see order_service.inject_faults),
handles its first batch and calls os._exit, like a kill -9 at the worst
moment. It writes the batch's order ids to .run/consumer-crash.json first, so
we can show which orders were in flight and where each one ended up.

Each round: stop the order service, let ``orders`` buyers queue up, start the
crashing one, watch it die, look at PostgreSQL and the queue, start a normal
one, drain, check.
"""

from __future__ import annotations

import json

from seckill.system import broker, order_service
from seckill.stack import db, processes
from seckill.config import settings
from seckill.measure.invariants import written_order_ids
from seckill.chaos import ChaosError, ChaosReport
from seckill.chaos.stage import fresh_sale
from seckill.chaos._queue import (ORDER_SERVICE, buy, buyers, check_books, start_order_service,
                                  start_order_service_unwatched, stop_order_service, tier_for, wait_until)

TITLE = "order service killed after commit before ack, and before commit"


def _rejections(s, product_id: int) -> int:
    with db.connect(s.postgres_url) as conn:
        return conn.execute("SELECT count(*) FROM order_rejections WHERE product_id = %s",
                            (product_id,)).fetchone()[0]


def crash_round(report: ChaosReport, s, base_url: str, product_id: int, point: str, orders: int,
                first_ip: int, concurrency: int) -> tuple[set[str], dict]:
    """One crash at ``point``; returns the confirmed order ids and the round's figures."""
    stop_order_service(report, s)
    queued = buy(base_url, product_id, buyers(point, orders, first_ip), concurrency)
    confirmed = set(queued.order_ids)
    depth = broker.queue_depth(s.amqp_url, s.queue)
    report.event(f"[{point}] {len(confirmed)} orders confirmed to users, {depth} waiting in the queue")

    path = order_service.crash_report_path()
    path.unlink(missing_ok=True)
    record = start_order_service_unwatched(s, {order_service.INJECT_ENV: f"consumer-crash:{point}"})
    died = wait_until(lambda: processes.alive(s.run_dir, record) is None, timeout_s=30)
    if died is None:
        raise ChaosError(f"the order service armed with consumer-crash:{point} did not crash within 30 s; "
                         f"see `seckill logs {ORDER_SERVICE}`")
    processes.forget(s.run_dir, ORDER_SERVICE)
    try:
        batch = set(json.loads(path.read_text())["order_ids"])
    except (OSError, ValueError, KeyError) as exc:
        raise ChaosError(f"the crashed order service left no readable {path}: {exc}") from None
    report.event(f"[{point}] order service crashed with a batch of {len(batch)} orders in hand")

    # The broker hands unacked messages back as soon as it sees the connection die.
    back = wait_until(lambda: broker.queue_depth(s.amqp_url, s.queue) >= len(confirmed), timeout_s=15)
    depth_after = broker.queue_depth(s.amqp_url, s.queue)
    written = written_order_ids(s, product_id) & confirmed
    in_pg = len(batch & written)
    report.event(f"[{point}] after the crash: {in_pg} of the batch in PostgreSQL, {depth_after} orders back in "
                 "the queue (nothing was acked)")
    report.check(f"{point}: nothing acked, every order back in the queue", back is not None,
                 f"{depth_after} in the queue for {len(confirmed)} confirmed")
    if point == "after-commit":
        report.check(f"{point}: the crashed batch was committed before the crash", in_pg == len(batch) > 0,
                     f"{in_pg} of {len(batch)} in PostgreSQL")
    else:
        report.check(f"{point}: the crashed batch was rolled back", in_pg == 0 and len(batch) > 0,
                     f"{in_pg} of {len(batch)} in PostgreSQL")

    rejections_before = _rejections(s, product_id)
    took = start_order_service(report, s)
    wait_until(lambda: len(written_order_ids(s, product_id) & confirmed) == len(confirmed), timeout_s=60)
    written_now = written_order_ids(s, product_id) & confirmed
    rejected = _rejections(s, product_id) - rejections_before
    report.check(f"{point}: the redelivered batch written exactly once", batch <= written_now and rejected == 0,
                 f"{len(batch & written_now)} of {len(batch)} written, {rejected} refused as repeats")
    return confirmed, {"confirmed": len(confirmed), "batch": len(batch), "in_pg_after_crash": in_pg,
                       "queue_after_crash": depth_after, "redelivered": len(batch),
                       "already_written_when_redelivered": in_pg, "written_after_restart": len(written_now),
                       "refused_as_repeats": rejected, "restart_s": round(took, 2)}


def run(tier: str | None = None, product_id: int = 9302, stock: int = 1000, orders: int = 150,
        points: tuple[str, ...] = order_service.CRASH_POINTS, concurrency: int = 50) -> ChaosReport:
    """Crash the order service at each of ``points`` with ``orders`` orders waiting each time."""
    unknown = [p for p in points if p not in order_service.CRASH_POINTS]
    if unknown:
        raise ChaosError(f"no crash point {unknown[0]!r}; choose from {', '.join(order_service.CRASH_POINTS)}")
    if orders * len(points) > stock:
        raise ChaosError(f"{orders} orders × {len(points)} rounds need a stock of at least {orders * len(points)}")
    report = ChaosReport("consumer-crash", TITLE)
    s = settings()
    state = tier_for(report, tier)
    fresh_sale(report, s, product_id, stock)
    confirmed: set[str] = set()
    rounds = {}
    try:
        for i, point in enumerate(points):
            ids, figures = crash_round(report, s, state["base_url"], product_id, point, orders,
                                       first_ip=i * 10_000, concurrency=concurrency)
            confirmed |= ids
            rounds[point] = figures
    finally:
        if processes.alive(s.run_dir, processes.load(s.run_dir, ORDER_SERVICE)) is None:
            start_order_service(report, s)  # leave the tier whole, whatever happened
        order_service.crash_report_path().unlink(missing_ok=True)
    check_books(report, s, product_id, confirmed)
    report.metrics.update(tier=state["tier"], rounds=rounds,
                          redelivered=sum(r["redelivered"] for r in rounds.values()),
                          duplicates_prevented=sum(r["already_written_when_redelivered"] for r in rounds.values()))
    report.series = {"point": list(rounds),
                     **{key: [r[key] for r in rounds.values()]
                        for key in ("batch", "in_pg_after_crash", "queue_after_crash", "written_after_restart")}}
    return report


def chart(report):
    """Per crash point: the crashed batch, where it was right after the crash, and after the restart."""
    import plotly.graph_objects as go

    data = report if isinstance(report, dict) else report.as_dict()
    series = data["series"]
    bars = (("batch", "batch in hand when it died", "#7f7f7f"),
            ("in_pg_after_crash", "of it in PostgreSQL right after the crash", "#ff7f0e"),
            ("queue_after_crash", "orders back in the queue (redelivered)", "#1f77b4"),
            ("written_after_restart", "orders in PostgreSQL after the restart", "#2ca02c"))
    fig = go.Figure([go.Bar(x=series["point"], y=series[key], name=name, marker_color=colour,
                            text=series[key], textposition="outside") for key, name, colour in bars])
    m = data["metrics"]
    fig.update_layout(barmode="group", height=440, xaxis_title="where the order service died",
                      yaxis_title="orders",
                      title=(f"consumer-crash on {m.get('tier')}: {m.get('redelivered')} redelivered, "
                             f"{m.get('duplicates_prevented')} of them already written, "
                             f"{m.get('duplicate_users')} duplicates"))
    return fig

"""pg-down: PostgreSQL stopped in the middle of a sale, then started again.

Where the queue sits between the gateway and the database, the database is
off the buyer's path: Redis decides, RabbitMQ keeps the order, and the order
service writes it "later". So with PostgreSQL down:
  * buyers keep getting their answers (200, 409) at full speed;
  * their orders wait in the durable queue: pending, not lost (the status
    endpoint says 503 "order store unavailable": it cannot know more);
  * the order service keeps trying to reconnect (bounded back-off), and when
    PostgreSQL is back it drains the queue by itself: every order told 200
    becomes confirmed, with nobody restarting anything.

On the db-direct tier the database IS the buyer's path: every buy while it is
down is a 503 (never a 500, never a hang), and buying works again after.

PostgreSQL is stopped in its "fast" mode (SIGINT: roll back, disconnect the
clients), as an operator or a crashing host would; its "smart" mode would wait
for every connected gateway and order service to leave.
"""

from __future__ import annotations

import time

from seckill.system import broker, tiers
from seckill.measure import invariants
from seckill import stack
from seckill.config import settings
from seckill.chaos import ChaosError, ChaosReport
from seckill.chaos._queue import buy, buyers, check_books, consumers, tier_for, wait_until
from seckill.chaos.broker_stall import order_status
from seckill.chaos.stage import CHAOS_LIMITS, fresh_sale

TITLE = "PostgreSQL stopped mid-sale, then back"


def _db_direct(report: ChaosReport) -> dict:
    running = tiers.current()
    if running and running["tier"] == "db-direct":
        report.event(f"using the running db-direct tier at {running['base_url']}")
        return running
    state = tiers.up("db-direct", limits=CHAOS_LIMITS, out=None)
    report.event(f"started the db-direct tier at {state['base_url']}")
    return state


def run(tier: str | None = None, product_id: int = 9331, stock: int = 500, before: int = 30, during: int = 30,
        after: int = 30, concurrency: int = 20) -> ChaosReport:
    """Stop PostgreSQL between ``before`` and ``after`` buyers; ``during`` buy while it is down."""
    report = ChaosReport("pg-down", TITLE)
    s = settings()
    name = tier or ((tiers.current() or {}).get("tier")) or "flask"
    if name not in tiers.TIERS:
        raise ChaosError(f"no tier called {name!r}; choose one of: {', '.join(tiers.TIERS)}")
    direct = name == "db-direct"
    state = _db_direct(report) if direct else tier_for(report, name)
    base_url = state["base_url"]
    fresh_sale(report, s, product_id, stock)
    told_200: set[str] = set()
    pg_down = False
    try:
        a = buy(base_url, product_id, buyers("before", before, 40_000), concurrency)
        told_200 |= set(a.order_ids)
        report.event(f"before the stop: {a.total} buys → {dict(a.statuses)}")
        if not direct:
            invariants.wait_for_drain(s, product_id, expected_orders=len(told_200), timeout_s=30)

        t0 = time.monotonic()
        stack.stop_service("postgres")
        pg_down = True
        stop_s = time.monotonic() - t0
        report.event(f"PostgreSQL stopped (fast shutdown, {stop_s:.1f} s with clients connected)")
        report.check("stopping PostgreSQL with clients connected is quick (< 10 s)", stop_s < 10, f"{stop_s:.1f} s")

        b = buy(base_url, product_id, buyers("during", during, 41_000), concurrency)
        report.event(f"while down: {b.total} buys → {dict(b.statuses)} in {b.elapsed_s:.2f} s")
        if direct:
            report.check("every buy while the database is down answers 503 (never 500)",
                         b.statuses.get(503, 0) == b.total == during, f"statuses {dict(b.statuses)}")
        else:
            told_200 |= set(b.order_ids)
            report.check("buyers keep getting answers while the database is down (200, no 5xx)",
                         b.statuses.get(200, 0) == b.total == during, f"statuses {dict(b.statuses)}")
            queued = broker.queue_depth(s.amqp_url, s.queue)
            # (the order service may hold a few unacknowledged while it retries: they go back when it gives up)
            report.event(f"{queued} orders wait in the queue, pending")
            probe = b.order_ids[0] if b.order_ids else None
            seen = order_status(base_url, probe) if probe else None
            report.event(f"status of a pending order while down: {seen or '503 order store unavailable'}")

        t1 = time.monotonic()
        stack.start_service("postgres")
        pg_down = False
        report.event(f"PostgreSQL started again ({time.monotonic() - t1:.1f} s)")
        if not direct:
            back = wait_until(lambda: consumers(s) > 0, timeout_s=30)
            report.event("order service consuming again" if back is not None else "order service NOT back in 30 s")
        c = buy(base_url, product_id, buyers("after", after, 42_000), concurrency)
        told_200 |= set(c.order_ids)
        report.event(f"after the restart: {c.total} buys → {dict(c.statuses)}")
        report.check("buying works again after the restart", c.statuses.get(200, 0) == after,
                     f"statuses {dict(c.statuses)}")
    finally:
        if pg_down:
            stack.start_service("postgres")
            report.event("PostgreSQL started again")

    if direct:
        check = invariants.check_sale(s, product_id, told_200, redis_copy=False)
        report.check("oversold 0", check.oversold == 0, f"{check.orders} orders for a stock of {check.initial_stock}")
        report.check("no confirmed order lost", check.lost == 0, f"{len(told_200)} told 200, {check.lost} missing")
        report.check("nothing written that no user was told about", check.unexpected == 0,
                     f"{check.unexpected} unexpected orders")
    else:
        check = check_books(report, s, product_id, told_200)
        during_ids = list(b.order_ids)
        confirmed: set[str] = set()

        def all_confirmed() -> bool:  # what a buyer polling GET /api/orders/{id} would see
            confirmed.update(o for o in during_ids if o not in confirmed and order_status(base_url, o) == "confirmed")
            return len(confirmed) == len(during_ids)

        wait_until(all_confirmed, timeout_s=20, interval_s=0.5)
        report.check("every order told 200 while the database was down is confirmed now",
                     len(confirmed) == len(during_ids), f"{len(confirmed)} of {len(during_ids)}")
    report.metrics.update(stop_s=round(stop_s, 2), orders=check.orders, oversold=check.oversold, lost=check.lost)
    return report

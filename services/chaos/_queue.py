"""What the queue scenarios (mq-down, consumer-crash, backlog) share.

They all need: a tier with an order service, a sale of their own, bursts of
buyers whose names never collide across phases, the order service stopped or
started on cue, and the same closing verdict on the books.
"""

from __future__ import annotations

import os
import signal
import time

import redis as redis_lib

from seckill.measure import bots, burst, invariants
from seckill.system import broker, local_stock, reconcile, tiers
from seckill.stack import processes
from seckill.config import Settings, settings
from seckill.chaos import ChaosError, ChaosReport
from seckill.chaos.stage import CHAOS_LIMITS

ORDER_SERVICE = tiers.ORDER_SERVICE.name


def tier_for(report: ChaosReport, tier: str | None) -> dict:
    """The tier to break: ``tier`` (default: the running one, else flask), started with CHAOS_LIMITS.

    A running tier is reused when it is the one asked for and its global bucket is
    as wide as CHAOS_LIMITS; otherwise it is restarted, because a tight bucket
    would answer 429 where the scenario expects to see its fault.
    """
    running = tiers.current()
    name = tier or (running["tier"] if running else "flask")
    if name not in tiers.TIERS:
        raise ChaosError(f"no tier called {name!r}; choose one of: {', '.join(tiers.TIERS)}")
    if not tiers.TIERS[name].redis_copy:
        raise ChaosError(f"{report.scenario} needs a tier with a queue and an order service; "
                         "use flask, flask-x4 or fastapi")
    limits = (running or {}).get("limits") or {}
    if (running and running["tier"] == name
            and all(limits.get(k, 0) >= v for k, v in CHAOS_LIMITS.items())
            and processes.alive(settings().run_dir, processes.load(settings().run_dir, ORDER_SERVICE))):
        report.event(f"using the running {name} tier at {running['base_url']}")
        return running
    state = tiers.up(name, limits=CHAOS_LIMITS, out=None)
    report.event(f"started the {name} tier at {state['base_url']}")
    return state


def buyers(prefix: str, n: int, first_ip: int) -> list[tuple[str, str]]:
    """``n`` distinct users named prefix-0.. each with an address of their own."""
    return [(f"{prefix}-{i}", burst.fake_ip(first_ip + i)) for i in range(n)]


def buy(base_url: str, product_id: int, plan: list[tuple[str, str]], concurrency: int = 50,
        deadline_s: float = 60.0) -> burst.BurstResult:
    """Fire one bounded burst: each (user, ip) of ``plan`` buys once; counted like burst.buy_burst counts."""
    result = burst.BurstResult()
    if not plan:
        return result
    t0 = time.monotonic()
    for answer in bots.hammer(base_url, product_id, [], plan, concurrency=concurrency, deadline_s=deadline_s):
        if answer.status == 0:
            result.counts["failed"] += 1
            continue
        outcome = burst.classify(answer.status, answer.body)
        result.counts[outcome] += 1
        result.statuses[answer.status] += 1
        if outcome == "success":
            result.order_ids.append(answer.body["order_id"])
            result.buyers.append(answer.user)
        elif outcome == "pending":
            result.pending.append((answer.body["order_id"], answer.user))
    result.elapsed_s = time.monotonic() - t0
    return result


def redis_books(s: Settings, product_id: int) -> tuple[int | None, int]:
    """(units unsold, number of buyers) as Redis holds them for this sale.

    Units unsold = stock:{id} plus what local-stock instances still hold in their
    leases (tier T4 moves units from the one to the other without selling them).
    """
    r = redis_lib.Redis.from_url(s.redis_url, decode_responses=True, socket_timeout=2)
    try:
        raw = r.get(f"stock:{product_id}")
        leased = sum(int(v) for v in r.hvals(local_stock.leases_key(product_id)))
        return (int(raw) + leased if raw is not None else None), r.scard(f"buyers:{product_id}")
    finally:
        r.close()


def order_service_alive(s: Settings):
    return processes.alive(s.run_dir, processes.load(s.run_dir, ORDER_SERVICE))


def stop_order_service(report: ChaosReport, s: Settings) -> None:
    processes.stop(s.run_dir, ORDER_SERVICE, timeout=15)
    report.event("order service stopped")


def start_order_service(report: ChaosReport, s: Settings, extra_env: dict[str, str] | None = None) -> float:
    """Start it again and wait until it consumes; returns how long that took."""
    t0 = time.monotonic()
    tiers.start_order_service(s, extra_env=extra_env)
    took = time.monotonic() - t0
    report.event(f"order service started again (consuming after {took:.1f} s)")
    return took


def start_order_service_unwatched(s: Settings, extra_env: dict[str, str]) -> processes.Record:
    """Start the order service without waiting for it to attach: it may be meant to die at once."""
    state = tiers.current(s) or {}
    env = {"PYTHONUNBUFFERED": "1", "SECKILL_IMPL": state.get("impl") or os.environ.get("SECKILL_IMPL", "solutions")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("SECKILL_") and k not in env})
    env.update(extra_env)
    return processes.start(s.run_dir, ORDER_SERVICE, tiers.ORDER_SERVICE.command(s, s.limits), port=None,
                           env=env, cwd=s.run_dir, timeout=30)


def pause_order_service(s: Settings, paused: bool) -> int:
    """SIGSTOP / SIGCONT: the process keeps its connections but does nothing (a frozen VM, a GC pause)."""
    return processes.kill(s.run_dir, ORDER_SERVICE, signal.SIGSTOP if paused else signal.SIGCONT)


def wait_until(check, timeout_s: float, interval_s: float = 0.05) -> float | None:
    """Seconds until ``check()`` held, or None if it did not within ``timeout_s`` (bounded poll)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:
            pass  # a dependency still coming back: keep polling until the deadline
        time.sleep(interval_s)
    return None


def consumers(s: Settings) -> int:
    return broker.queue_stats(s.amqp_url, s.queue)["consumers"]


def check_books(report: ChaosReport, s: Settings, product_id: int, confirmed: set[str],
                drain_timeout_s: float = 60.0) -> invariants.SaleCheck:
    """Drain, then the four promises: nothing oversold, no duplicate, nothing confirmed lost, Redis = PostgreSQL
    (checked directly, then by the reconciliation a learner would run: `seckill reconcile`)."""
    drained = invariants.wait_for_drain(s, product_id, expected_orders=len(confirmed), timeout_s=drain_timeout_s)
    report.event("queue drained" if drained else f"queue NOT drained within {drain_timeout_s:.0f} s")
    check = invariants.check_sale(s, product_id, confirmed)
    report.check("queue drained", drained, f"{check.queue_depth} left in the queue")
    report.check("oversold 0", check.oversold == 0,
                 f"{check.orders} orders for a stock of {check.initial_stock}")
    report.check("no duplicate order", check.duplicate_users == 0,
                 f"{check.orders} orders from {check.distinct_users} users")
    report.check("no confirmed order lost", check.lost == 0,
                 f"{check.confirmed_to_users} confirmed to users, {check.lost} missing in PostgreSQL")
    report.check("nothing written that no user was told about", check.unexpected == 0,
                 f"{check.unexpected} unexpected orders")
    report.check("each order took one item in PostgreSQL", check.pg_stock == check.initial_stock - check.orders,
                 f"stock {check.initial_stock} − {check.orders} orders = {check.initial_stock - check.orders}, "
                 f"PostgreSQL holds {check.pg_stock}")
    held = getattr(check, "held_locally", 0)  # tier local-stock: units leased by live instances
    report.check("Redis agrees with PostgreSQL", (check.redis_stock or 0) + held == check.pg_stock,
                 f"stock left: Redis {check.redis_stock}" + (f" + {held} leased" if held else "")
                 + f", PostgreSQL {check.pg_stock}")
    rec = reconcile.reconcile(s, product_id)  # a look only: stock, buyers and sale window against the truth
    report.check("reconciliation finds nothing to repair", rec.consistent,
                 ", ".join(sorted({d.kind for d in rec.discrepancies})) or "stock, buyers and sale window agree")
    report.metrics.update(orders=check.orders, confirmed=check.confirmed_to_users, oversold=check.oversold,
                          lost=check.lost, duplicate_users=check.duplicate_users)
    return check

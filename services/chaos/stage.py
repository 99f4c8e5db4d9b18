"""The stage the Redis failure labs (race, redis-down, redis-failover, crash-between) run on.

Each of them needs the same three things around its fault: a tier started the
way the lab needs it (and the learner's tier put back afterwards), a sale of its
own, and the same closing verdict: drain the queue, reconcile Redis with
PostgreSQL, and check the promises (oversold 0, no duplicate order, no
confirmed order lost, Redis agrees with PostgreSQL).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from seckill.system import broker, reconcile, tiers
from seckill.measure import invariants
from seckill.config import Settings
from seckill.system.sale import create_sale
from seckill.chaos import ChaosError, ChaosReport

# Every simulated buyer is a distinct user with an address of its own; the global
# bucket is opened wide so that only the injected fault shapes the answers.
CHAOS_LIMITS = {"bucket_capacity": 100_000.0, "bucket_rate": 100_000.0}


@contextlib.contextmanager
def tier_on_stage(report: ChaosReport, tier: str, extra_env: dict[str, str] | None = None) -> Iterator[dict]:
    """Start ``tier`` for the lab (with ``extra_env``); afterwards stop it and restart what ran before."""
    if tier not in tiers.TIERS:
        raise ChaosError(f"no tier called {tier!r}; choose one of: {', '.join(tiers.TIERS)}")
    if not tiers.TIERS[tier].redis_copy:
        raise ChaosError(f"{report.scenario} needs a tier that reserves in Redis; use flask, flask-x4 or fastapi")
    before = tiers.current()
    state = tiers.up(tier, limits=CHAOS_LIMITS, out=None, extra_env=extra_env)
    report.event(f"{tier} tier up at {state['base_url']}" + (" (" + ", ".join(f"{k}={v}" for k, v in
                                                                              (extra_env or {}).items()) + ")"
                                                             if extra_env else ""))
    try:
        yield state
    finally:
        tiers.down(out=None)
        if before:
            try:
                tiers.up(before["tier"], limits=before.get("limits"), impl_name=before.get("impl"), out=None,
                         extra_env=before.get("extra_env") or None)
                report.event(f"the {before['tier']} tier that ran before is back")
            except Exception as exc:  # the lab's verdict stands; say what could not be restored
                report.event(f"could not restart the {before['tier']} tier that ran before: {exc}")


def fresh_sale(report: ChaosReport, s: Settings, product_id: int, stock: int, redis=None) -> None:
    """The lab's own sale; orders of earlier runs are drained first (bounded) so none land in it."""
    if broker.queue_depth(s.amqp_url, s.queue):
        invariants.wait_for_drain(s, product_id, timeout_s=30)
    create_sale(s, product_id, stock, name=f"chaos {report.scenario}", force=True, redis=redis)
    report.event(f"sale created: product {product_id}, stock {stock}")


def reconcile_step(report: ChaosReport, s: Settings, product_id: int, *, fix: bool, settle_s: float = 1.0,
                   redis=None) -> reconcile.ReconcileReport:
    """Run reconciliation as a learner would (`seckill reconcile [--fix]`), and put each line on the timeline."""
    result = reconcile.reconcile(s, product_id, fix=fix, settle_s=settle_s, redis=redis)
    label = "reconcile --fix" if fix else "reconcile"
    if not result.discrepancies:
        report.event(f"{label}: Redis agrees with PostgreSQL and the queue")
    for d in result.discrepancies:
        report.event(f"{label}: {d.line()}")
    return result


def verdict(report: ChaosReport, s: Settings, product_id: int, confirmed: set[str], *,
            drain_timeout_s: float = 60.0, refused_ok: set[str] | None = None, label: str = "") -> invariants.SaleCheck:
    """Drain, then check the promises. ``refused_ok``: order ids the lab *expects* PostgreSQL to refuse."""
    suffix = f" ({label})" if label else ""
    refused_ok = refused_ok or set()
    expected = len(confirmed - refused_ok)
    drained = invariants.wait_for_drain(s, product_id, expected_orders=expected, timeout_s=drain_timeout_s)
    report.event("queue drained" if drained else f"queue NOT drained within {drain_timeout_s:.0f} s")
    check = invariants.check_sale(s, product_id, confirmed - refused_ok)
    report.check("oversold 0" + suffix, check.oversold == 0,
                 f"{check.orders} orders in PostgreSQL for a stock of {check.initial_stock}")
    report.check("no duplicate order" + suffix, check.duplicate_users == 0,
                 f"{check.orders} orders from {check.distinct_users} users")
    report.check("no confirmed order lost" + suffix, check.lost == 0 and drained,
                 f"{check.confirmed_to_users} confirmed to users, {check.lost} missing in PostgreSQL")
    report.check("PostgreSQL stock = initial − orders" + suffix, check.pg_stock == check.initial_stock - check.orders,
                 f"{check.initial_stock} − {check.orders} = {check.initial_stock - check.orders}, "
                 f"PostgreSQL holds {check.pg_stock}")
    return check


def redis_agrees(report: ChaosReport, s: Settings, product_id: int, redis=None, label: str = "") -> bool:
    """The last promise: after reconciliation a fresh look finds nothing to fix."""
    again = reconcile.reconcile(s, product_id, fix=False, redis=redis)
    numbers = again.products.get(product_id, {})
    return report.check("after reconciliation Redis agrees with PostgreSQL" + (f" ({label})" if label else ""),
                        again.consistent,
                        f"Redis stock {numbers.get('redis_stock')}, expected {numbers.get('expected_stock')}; "
                        f"{len(again.discrepancies)} discrepancies")

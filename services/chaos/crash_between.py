"""Failure lab `crash-between`: the gateway dies between the Redis reservation and the publish.

The seed, in its own words: "可能超卖吗？用Redis原子操作理论上不会，但MQ发送失败会丢订单，
需要对账补偿" — Redis alone cannot oversell, but the step after it can fail, and
then only reconciliation finds out.

A failed publish is handled (the gateway gives the reservation back and answers
503, see the mq-down lab). A *dead* gateway handles nothing: the OOM killer, a
deploy, a pulled plug. This lab switches on an injection point that is off by
default (``SECKILL_GATEWAY_INJECT=crash-between``): a request from a user whose id
starts with ``crash-`` makes the gateway process SIGKILL itself right after
Redis reserved the item and before the order is published. gunicorn starts a
new worker; the sale goes on. What is left behind:

  * Redis: the item is gone from stock:{id} and the user is in buyers:{id};
  * the queue and PostgreSQL: no order. Nobody was told "success".

The stock has *leaked*: an item nobody bought that nobody else can buy
(undersell, the opposite of overselling). `seckill reconcile` finds it (Redis
holds back more than PostgreSQL and the queue explain) and, with --fix,
returns it; the last buyers of the sale then get it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from seckill.config import settings
from seckill.system.gateway import INJECT_CRASH_BETWEEN
from seckill.chaos import ChaosReport
from seckill.chaos.stage import fresh_sale, reconcile_step, redis_agrees, tier_on_stage, verdict
from seckill.chaos.traffic import Traffic

TITLE = "gateway killed between the Redis reservation and the publish"
CRASH_PREFIX = "crash-"


def _crash_request(base_url: str, product_id: int, user: str) -> str:
    """Send one request that trips the injection point; returns what the client saw."""
    req = urllib.request.Request(f"{base_url}/api/seckill/{product_id}", data=json.dumps({"user_id": user}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return f"{resp.status} (the injection point is off?)"
    except urllib.error.HTTPError as err:
        return f"{err.code}"
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        return f"no answer ({type(getattr(exc, 'reason', exc)).__name__})"


def run(tier: str = "flask", product_id: int = 9301, stock: int = 100, crashes: int = 3, buyers: int = 150,
        rate: float = 60.0, settle_s: float = 1.0) -> ChaosReport:
    report = ChaosReport("crash-between", TITLE)
    s = settings()
    env = {"SECKILL_GATEWAY_INJECT": INJECT_CRASH_BETWEEN, "SECKILL_GATEWAY_INJECT_USERS": CRASH_PREFIX}
    with tier_on_stage(report, tier, extra_env=env) as state:
        base = state["base_url"]
        fresh_sale(report, s, product_id, stock)
        # buyers: fewer than the stock, so the sale is still open when the crashes happen
        first = Traffic(base, [product_id], rate=rate, duration_s=60, max_requests=min(buyers, stock - crashes - 10),
                        user_prefix="cb").start()
        client_saw = []
        for i in range(crashes):
            first.wait_for(lambda a, n=(i + 1) * 15: len(a) >= n, timeout_s=30)
            client_saw.append(_crash_request(base, product_id, f"{CRASH_PREFIX}{i}"))
            report.event(f"{CRASH_PREFIX}{i} buys: the gateway process kills itself after the reservation; "
                         f"the client saw {client_saw[-1]}")
        first.wait()
        counts = first.counts()
        report.event(f"{len(first.answers)} other buyers meanwhile: " +
                     ", ".join(f"{k} {v}" for k, v in counts.most_common()))

        check = verdict(report, s, product_id, first.confirmed(), label="after the crashes")
        leak_seen = check.redis_stock is not None and check.pg_stock - check.redis_stock
        report.event(f"after the drain: Redis stock {check.redis_stock}, PostgreSQL stock {check.pg_stock}: "
                     f"{leak_seen} item(s) held by nobody; {check.unexpected} order(s) written whose buyer "
                     "never got an answer (in flight in the dying process)")

        found = reconcile_step(report, s, product_id, fix=False)
        low = found.of(product_id, "stock_low")
        extra = found.of(product_id, "buyers_extra")
        leaked = (low.expected - low.redis) if low else 0
        crashed_users = {f"{CRASH_PREFIX}{i}" for i in range(crashes)}
        report.check("reconcile finds the leak (Redis stock too low)", leaked >= crashes,
                     f"{leaked} item(s) leaked for {crashes} crashes")
        report.check("reconcile names the crashed buyers (reserved, no order)",
                     extra is not None and crashed_users <= set(extra.redis),
                     f"extra buyers: {sorted(extra.redis) if extra else []}")

        fixed = reconcile_step(report, s, product_id, fix=True, settle_s=settle_s)
        report.check("reconcile --fix returned the leaked items", fixed.consistent,
                     f"{len(fixed.discrepancies)} discrepancies fixed")

        # the rest of the sale: now the whole stock can be sold, the leaked items included
        rest = Traffic(base, [product_id], rate=rate * 2, duration_s=30, max_requests=stock + 20,
                       user_prefix="late", first_ip=50_000).start().wait()
        final = verdict(report, s, product_id, first.confirmed() | rest.confirmed(), label="end of the sale")
        report.check("after the fix the whole stock was sold (no item stayed leaked)",
                     final.orders == stock and final.pg_stock == 0,
                     f"{final.orders} orders for a stock of {stock}")
        redis_agrees(report, s, product_id)

    report.metrics.update({
        "crashes": crashes, "leaked": leaked, "extra_buyers": (extra.count if extra.count is not None else len(extra.redis)) if extra else 0,
        # requests in flight in the dying process: reserved and never published, or queued and never answered
        "collateral_leaks": max(0, leaked - crashes), "written_unanswered": check.unexpected,
        "client_saw": client_saw, "no_answer": counts.get("failed", 0),
        "sold_before_fix": check.orders, "sold_in_total": final.orders, "stock": stock,
    })
    report.series = {
        "moment": ["after the crashes", "after reconcile --fix", "after the sale"],
        "redis_stock": [check.redis_stock, (fixed.after.get(product_id) or {}).get("redis_stock"), final.redis_stock],
        "pg_stock": [check.pg_stock, (fixed.after.get(product_id) or {}).get("pg_stock"), final.pg_stock],
        "orders": [check.orders, check.orders, final.orders],
    }
    return report

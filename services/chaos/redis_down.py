"""Failure lab `redis-down`: Redis stops mid-sale, then comes back empty (Redis挂了？).

The seed's answer: failover (< 30 s) + a temporary fallback to local memory +
manual reconciliation. This lab has no replica (that is `redis-failover`); it
shows the other two on one Redis:

 1. Two sales run: product A has sold out, product B still sells.
 2. Redis is stopped. The gateway cannot reserve, so it must not pretend to:
    B's buyers get 503 at once (no hang, no 500, nothing reserved), and A's
    buyers get 409 sold_out from the gateway's local memory (degradation,
    seckill.system.sold_out) — a retry storm avoided for an answer already known.
 3. Redis comes back EMPTY (its snapshot deleted: a crash before any save,
    or a new machine). The gateway finds no sale in Redis, asks PostgreSQL,
    which still has it, and so answers 503 with Retry-After ("Redis lost it,
    try again"), never 404 "no such product" and never a sale from nothing.
 4. The gateway rebuilds Redis by itself (seckill.system.rebuild: `reconcile --fix`
    over every product, once, under a lock, with reconcile's settle rule);
    the sale resumes, and a user who bought before the outage is still refused
    a second item. Afterwards `seckill reconcile` finds nothing in ANY product:
    the lab leaves the whole system healed, not only its own two sales.
"""

from __future__ import annotations

import time

from seckill import stack
from seckill.config import settings
from seckill.chaos import ChaosReport
from seckill.system import reconcile
from seckill.chaos.stage import fresh_sale, redis_agrees, tier_on_stage, verdict
from seckill.measure.burst import buy_once
from seckill.chaos.traffic import Traffic

TITLE = "Redis stopped mid-sale, then back empty and rebuilt by the gateway from PostgreSQL"
# "At once": the gateway's Redis client gives up after a 1 s connect timeout and one retry, so a
# Redis that does not even refuse the connection (a stopped container behind Docker's port mapping)
# costs up to 2 s by design; 3 s leaves room for a loaded machine, and stays far below a client's
# patience and the minutes a client without timeouts hangs for (seen at 2.6 s on Docker at load 13).
NO_HANG_MS = 3000
REBUILD_WITHIN_S = 30  # bound on the gateway's own rebuild (a queue read, two looks settle_s apart)


def run(tier: str = "flask", sold_out_product: int = 9201, open_product: int = 9202, stock: int = 2000,
        rate: float = 80.0, before_s: float = 3.0, down_s: float = 3.0, empty_s: float = 1.5, after_s: float = 3.0,
        settle_s: float = 1.0) -> ChaosReport:
    report = ChaosReport("redis-down", TITLE)
    s = settings()
    # bounded, with room for slow steps (the traffic is stopped as soon as the lab is done)
    total_s = before_s + down_s + empty_s + 2 * settle_s + after_s + 30
    with tier_on_stage(report, tier, extra_env={"SECKILL_REBUILD_SETTLE_S": f"{settle_s:g}"}) as state:
        base = state["base_url"]
        fresh_sale(report, s, sold_out_product, 20)
        fresh_sale(report, s, open_product, stock)
        traffic = Traffic(base, [sold_out_product, open_product], rate=rate, duration_s=total_s,
                          max_requests=int(rate * total_s) + 1, concurrency=64, user_prefix="rd").start()
        try:
            traffic.wait_for(lambda a: any(x.outcome == "sold_out" and x.product_id == sold_out_product for x in a),
                             timeout_s=before_s + 10)
            time.sleep(max(0.0, before_s - traffic.now()))

            t_stop = traffic.now()
            stack.stop_service("redis")  # a clean stop: Redis saves a snapshot, deleted below
            t_down = traffic.now()       # from here on no Redis answers
            report.event(f"Redis stopped (t={t_stop:.1f}-{t_down:.1f} s of traffic)")
            time.sleep(down_s)

            stack.forget_snapshot("redis")
            t_up = traffic.now()
            stack.start_service("redis")
            t_back = traffic.now()
            report.event(f"Redis started again EMPTY, its snapshot deleted (t={t_up:.1f}-{t_back:.1f} s)")

            # nobody runs reconcile: the gateway notices the lost sales and rebuilds them
            resumed = traffic.wait_for(lambda a: any(x.outcome == "success" and x.product_id == open_product
                                                     and x.t >= t_up for x in a),
                                       timeout_s=empty_s + REBUILD_WITHIN_S)
            t_fix = t_fixed = min((a.t for a in traffic.snapshot() if a.outcome == "success"
                                   and a.product_id == open_product and a.t >= t_up), default=traffic.now())
            report.event(f"sale resumed, rebuilt by the gateway (t={t_fixed:.1f} s)" if resumed
                         else f"the sale did not resume within {empty_s + REBUILD_WITHIN_S:g} s")

            # a buyer from before the outage tries again: buyers were rebuilt, so no second item
            earlier = sorted(traffic.successful_users((0, t_down), open_product))
            retry = buy_once(base, open_product, earlier[0], "127.250.0.1") if earlier else (None, {})
            report.event(f"{earlier[0] if earlier else '-'} (bought before the outage) tries again: "
                         f"{retry[0]} {retry[1].get('error', '')}")
            time.sleep(after_s)
        finally:
            traffic.stop()
            traffic.wait()
            if not stack.healthy():
                stack.start_service("redis")
        # the whole system healed: every product of PostgreSQL, not only the lab's two
        everything = reconcile.reconcile(s, None, fix=False)
        for d in everything.discrepancies:
            report.event(f"reconcile: {d.line()}")

        # The rebuild's moment again, from every answer: a request sent just before the first success seen
        # above may still have been waiting then (a loaded machine) and succeeded later; it belongs after.
        t_fix = t_fixed = min((a.t for a in traffic.snapshot() if a.outcome == "success"
                               and a.product_id == open_product and a.t >= t_up), default=t_fixed)
        down = traffic.within((t_down, t_up))
        # from the moment the start was asked: Redis may answer (empty) before start_service returns,
        # which on the docker backend waits for the container's health check
        empty = traffic.within((t_up, t_fix))
        after = traffic.within((t_fixed, float("inf")))
        degraded = [a for a in down if a.product_id == sold_out_product]
        unavailable = [a for a in down if a.product_id == open_product]
        max_latency = max((a.latency_ms for a in down), default=0.0)

        report.check("while Redis was down: no 500, no dropped connection",
                     not any(a.outcome in ("server_error", "failed") for a in down),
                     f"{len(down)} answers: " + _tally(down))
        report.check(f"while Redis was down: answered at once (every answer < {NO_HANG_MS} ms)",
                     bool(down) and max_latency < NO_HANG_MS, f"slowest {max_latency:.0f} ms")
        report.check("while Redis was down: nothing sold", not any(a.outcome == "success" for a in down),
                     f"{sum(a.outcome == 'success' for a in down)} successes")
        report.check("the open sale answered 503 (try again)",
                     bool(unavailable) and all(a.outcome == "unavailable" for a in unavailable),
                     _tally(unavailable))
        if s.degrade_sold_out:
            report.check("the sold-out sale answered sold out from local memory",
                         bool(degraded) and all(a.outcome == "sold_out" and a.degraded for a in degraded),
                         _tally(degraded) + f", {sum(a.degraded for a in degraded)} from memory")
        # the open sale says "try again" until it is rebuilt; the sold-out one may say sold out
        # again once its keys are back (the sale key is restored last, just before the first sale)
        report.check("Redis back empty: 503 try again (never 404, never 500, no sale from nothing)",
                     bool(empty) and all(a.outcome == "unavailable" or (a.outcome == "sold_out" and
                                                                       a.product_id == sold_out_product)
                                         for a in empty), _tally(empty))
        report.check("the gateway rebuilt Redis by itself and the sale resumed",
                     resumed and any(a.outcome == "success" and a.product_id == open_product for a in after),
                     _tally(after))
        report.check("a buyer from before the outage is still refused a second item",
                     retry[0] == 409 and retry[1].get("error") == "already_bought", f"answer {retry[0]}")
        report.check("afterwards `seckill reconcile` finds nothing in any product", everything.consistent
                     and not everything.discrepancies,
                     f"{len(everything.discrepancies)} discrepancies in {len(everything.products)} products")

        checks = {}
        for product in (sold_out_product, open_product):
            checks[product] = verdict(report, s, product, traffic.confirmed(product), label=f"product {product}")
            redis_agrees(report, s, product, label=f"product {product}")

    report.metrics.update({
        "outage_s": round(t_up - t_down, 2), "answers_while_down": len(down),
        "answers_503": sum(a.outcome == "unavailable" for a in down),
        "answered_from_memory": sum(a.degraded for a in down),
        "max_latency_ms": max_latency,
        "answers_while_empty": len(empty), "rebuild_s": round(t_fixed - t_up, 2),
        "left_for_reconcile": len(everything.discrepancies),
        "sold_before_outage": len(traffic.successful_users((0, t_down))),
        "sold_after_rebuild": len(traffic.successful_users((t_fixed, float("inf")))),
    })
    report.series = {**traffic.series(), "marks": [{"t": round(t_stop, 2), "label": "Redis stopped"},
                                                   {"t": round(t_back, 2), "label": "back, empty"},
                                                   {"t": round(t_fixed, 2), "label": "rebuilt"}]}
    return report


def _tally(answers) -> str:
    from collections import Counter

    counts = Counter(a.outcome for a in answers)
    return ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "no answers"

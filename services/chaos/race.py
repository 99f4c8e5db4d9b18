"""Failure lab `race`: the third way to oversell (并发竞争), and the one-step fix.

The seed's checklist names three ways a flash sale oversells: Redis failure,
MQ loss, and the concurrent race. This lab is the race. The same crowd of
buyers, the same stock, two ways of reserving:

  * naive check-then-set (what NOT to do, written out below): GET the stock,
    and if it is positive SET it to stock − 1. Between one buyer's GET and its
    SET other buyers read the same number; every one of them is told "you got
    it". Their orders go to the queue like any other;
  * the atomic path: the real gateway, whose one Lua script checks and
    decrements in a single step inside Redis.

What to watch: the naive path promises more items than exist, and its Redis
counter even ends *above* zero (lost updates). PostgreSQL's guarded decrement
then refuses the surplus orders (oversold stays 0 in the database, but those
users were told yes and then refused: broken promises). The atomic path sells
exactly the stock. Reconciliation then repairs the naive counter from
PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis as redis_lib

from seckill.stack import db
from seckill.system import impl
from seckill.measure import invariants
from seckill.config import settings
from seckill.system.gateway import new_order
from seckill.chaos import ChaosReport
from seckill.chaos.stage import fresh_sale, reconcile_step, redis_agrees, tier_on_stage, verdict
from seckill.chaos.traffic import Traffic

TITLE = "naive check-then-set under concurrent buyers, against the atomic Lua path"


def naive_reserve(r: redis_lib.Redis, product_id: int, pause_s: float = 0.001) -> bool:
    """WHAT NOT TO DO: check, then act, in two round trips. Every line is right; together they oversell.

    ``pause_s`` stands for the work a real handler does between the read and
    the write (logging, a limit check, a network hop); it widens the window
    without creating it.
    """
    stock = int(r.get(f"stock:{product_id}") or 0)   # 1. check
    if stock <= 0:
        return False
    time.sleep(pause_s)
    r.set(f"stock:{product_id}", stock - 1)          # 2. act, on a number that may be stale by now
    return True


def naive_race(r: redis_lib.Redis, product_id: int, buyers: int, threads: int) -> list[str]:
    """``buyers`` distinct users on ``threads`` threads released together; returns the users told "yes"."""
    gate = threading.Barrier(threads)
    users = [f"naive-{i}" for i in range(buyers)]

    def worker(chunk: list[str]) -> list[str]:
        gate.wait(timeout=30)
        return [u for u in chunk if naive_reserve(r, product_id)]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        chunks = [users[i::threads] for i in range(threads)]
        return [u for won in pool.map(worker, chunks) for u in won]


def run(tier: str = "flask", stock: int = 50, buyers: int = 400, threads: int = 32,
        naive_product: int = 9101, atomic_product: int = 9102, settle_s: float = 1.0) -> ChaosReport:
    report = ChaosReport("race", TITLE)
    s = settings()
    r = redis_lib.Redis.from_url(s.redis_url, decode_responses=True, socket_timeout=5)
    with tier_on_stage(report, tier) as state:
        # -- the naive way ---------------------------------------------------------------
        fresh_sale(report, s, naive_product, stock)
        t0 = time.monotonic()
        winners = naive_race(r, naive_product, buyers, threads)
        naive_counter = int(r.get(f"stock:{naive_product}"))
        report.event(f"naive check-then-set: {len(winners)} of {buyers} buyers told 'you got it' for {stock} items "
                     f"in {time.monotonic() - t0:.2f} s; the Redis counter ends at {naive_counter}")
        producer = impl.running("producer").OrderProducer(s.amqp_url, queue=s.queue)
        naive_orders = [new_order(u, naive_product) for u in winners]
        try:
            for order in naive_orders:  # the naive gateway queues every "winner", like the real one
                producer.send_order(order)
        finally:
            producer.close()
        invariants.wait_for_drain(s, naive_product, expected_orders=min(stock, len(winners)), timeout_s=60)
        with db.connect(s.postgres_url) as conn:
            naive_pg = db.sale_numbers(conn, naive_product)
        report.event(f"naive orders written: {naive_pg['orders']}; refused by PostgreSQL's guard: "
                     f"{naive_pg['rejections']}")

        # -- the atomic way, through the real gateway --------------------------------------
        fresh_sale(report, s, atomic_product, stock)
        traffic = Traffic(state["base_url"], [atomic_product], rate=buyers * 2.0, duration_s=30,
                          max_requests=buyers, concurrency=threads * 2, user_prefix="atomic").start()
        traffic.wait()
        counts = traffic.counts()
        report.event(f"atomic Lua path: {counts['success']} of {buyers} buyers told 'you got it' for {stock} items "
                     f"({counts['sold_out']} sold out, {counts['unavailable']} unavailable)")
        confirmed = traffic.confirmed()

        # -- the verdicts --------------------------------------------------------------------
        report.check("naive check-then-set promised more than the stock (the race is real)",
                     len(winners) > stock, f"{len(winners)} promised for {stock} items")
        report.check("PostgreSQL's guard refused the naive surplus",
                     naive_pg["orders"] <= stock and naive_pg["rejections"] == len(winners) - naive_pg["orders"],
                     f"{naive_pg['orders']} written, {naive_pg['rejections']} refused")
        report.check("atomic path sold exactly the stock", counts["success"] == stock,
                     f"{counts['success']} successes for {stock} items")
        check = verdict(report, s, atomic_product, confirmed)
        # the naive counter was wrong (lost updates); reconciliation puts it right
        reconcile_step(report, s, naive_product, fix=True, settle_s=settle_s)
        redis_agrees(report, s, naive_product, label="naive counter, repaired")
        redis_agrees(report, s, atomic_product, label="atomic path")

    report.metrics.update({
        "stock": stock, "buyers": buyers, "threads": threads,
        "naive_promised": len(winners), "naive_oversold": max(0, len(winners) - stock),
        "naive_counter_end": naive_counter, "naive_refused_by_pg": naive_pg["rejections"],
        "atomic_promised": counts["success"], "atomic_oversold": check.oversold,
    })
    report.series = {
        "method": ["naive check-then-set", "atomic Lua script"],
        "promised": [len(winners), counts["success"]],
        "stock": [stock, stock],
        "written_in_pg": [naive_pg["orders"], check.orders],
        "refused_by_pg": [naive_pg["rejections"], check.rejections],
        "redis_counter_end": [naive_counter, check.redis_stock],
    }
    return report

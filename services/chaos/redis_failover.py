"""Failure lab `redis-failover`: the primary is killed mid-sale; Sentinel promotes the replica (主从切换).

The set-up (seckill.stack.sentinel): the course's Redis is the primary, a replica
follows it, one Sentinel watches (quorum 1: enough to see a failover on one
machine; production runs three or more on separate machines). The gateways
find the primary by asking Sentinel (SECKILL_REDIS_SENTINEL), so after the
failover they follow the new primary by themselves.

What happens, in order:
 1. Buyers buy at a steady rate; every reservation reaches the replica.
 2. The link between primary and replica is cut (a network partition). The
    primary goes on reserving and answering "success"; the replica hears
    nothing. Replication is asynchronous: the primary never waits for it.
 3. The primary is killed (SIGKILL). Sentinel notices (after 1 s without an
    answer), promotes the replica, and the gateways' next connections go
    there. The failover time is measured until a write succeeds on the new
    primary. Meanwhile buyers get 503 (try again), never a 500.
 4. The new primary has never heard of the reservations made during the
    cut: their buyers are not in buyers:{id} and their items are back in
    stock:{id}. Those users were told "success" and their orders are safely
    in the queue, but Redis now offers their items again. One of them buys
    again: Redis says yes; PostgreSQL's UNIQUE (user_id, product_id) refuses
    the second order. The database is the final guard.
 5. `seckill reconcile --fix` lowers the stock and restores the buyers from
    PostgreSQL; Redis agrees again. Then the original port becomes the
    primary again (fail-back) and replica and Sentinel stop.
"""

from __future__ import annotations

import time

import redis as redis_lib

from seckill.stack import db, sentinel
from seckill.measure import invariants
from seckill import stack
from seckill.config import HOST, settings
from seckill.chaos import ChaosReport
from seckill.chaos.stage import fresh_sale, reconcile_step, redis_agrees, tier_on_stage, verdict
from seckill.measure.burst import buy_once
from seckill.chaos.traffic import Traffic

TITLE = "primary killed with a replica and Sentinel watching"


def run(tier: str = "flask", product_id: int = 9401, stock: int = 3000, rate: float = 100.0,
        before_s: float = 3.0, cut_s: float = 0.6, after_s: float = 4.0, settle_s: float = 1.0) -> ChaosReport:
    report = ChaosReport("redis-failover", TITLE)
    s = settings()
    primary = redis_lib.Redis.from_url(s.redis_url, decode_responses=True, socket_timeout=2)
    link = sentinel.replication_link(s)  # a host relay natively; the replica's REPLICAOF on docker
    failover_s = None
    lost: set[str] = set()
    probe = (None, {})
    try:
        fresh_sale(report, s, product_id, stock, redis=primary)
        sentinel.start(s, replicate_via=link.port)
        report.event(f"replica on port {s.ports.redis_replica} synced, Sentinel on port {s.ports.sentinel} "
                     f"watching the primary on port {s.ports.redis}")
        with tier_on_stage(report, tier, extra_env=sentinel.client_env(s)) as state:
            base = state["base_url"]
            total_s = before_s + cut_s + after_s + 30  # bounded; stopped when the lab is done
            traffic = Traffic(base, [product_id], rate=rate, duration_s=total_s, max_requests=int(rate * total_s),
                              user_prefix="fo").start()
            try:
                traffic.wait_for(lambda a: traffic.now() >= before_s, timeout_s=before_s + 10)
                t_cut = traffic.now()
                link.cut()
                report.event(f"link primary → replica cut (t={t_cut:.1f} s): the primary keeps acknowledging")
                time.sleep(cut_s)
                t_kill = traffic.now()
                stack.stop_service("redis", kill=True)  # SIGKILL at once; the call returns once it is gone
                report.event(f"primary killed with SIGKILL (t={t_kill:.1f} s)")
                if sentinel.wait_for_promotion(s, s.ports.redis, timeout_s=30) is not None:
                    failover_s = traffic.now() - t_kill  # from the SIGKILL to a successful write
                t_promoted = traffic.now()
                report.event(f"Sentinel promoted the replica: writes succeed on port {sentinel.primary_port(s)} "
                             f"{failover_s:.1f} s after the kill" if failover_s is not None
                             else "no promotion within 30 s")

                # what the new primary forgot: users told "success" during the cut
                new_primary = redis_lib.Redis(host=HOST, port=s.ports.redis_replica, decode_responses=True,
                                              password=s.redis_password or None, socket_timeout=2)
                acknowledged = traffic.successful_users((0, t_kill))
                kept = set(new_primary.smembers(f"buyers:{product_id}")) if failover_s is not None else set()
                lost = acknowledged - kept
                report.event(f"{len(acknowledged)} reservations acknowledged before the kill; "
                             f"{len(lost)} of them are not on the new primary (made during the cut)")
                if lost:  # one of them buys again: Redis forgot them, PostgreSQL did not
                    again = sorted(lost)[0]
                    probe = buy_once(base, product_id, again, "127.252.0.1")
                    for _ in range(50):  # 503 says "try again": so does this user (bounded)
                        if probe[0] != 503:
                            break
                        time.sleep(0.2)
                        probe = buy_once(base, product_id, again, "127.252.0.1")
                    report.event(f"{again} buys again: the gateway answers {probe[0]} "
                                 f"{probe[1].get('error') or ('success' if probe[1].get('success') else '')}")
                traffic.wait_for(lambda a: traffic.now() >= t_promoted + after_s, timeout_s=after_s + 10)
            finally:
                traffic.stop()
                traffic.wait()

            first_ok = min((a.t for a in traffic.within((t_kill, float("inf"))) if a.outcome == "success"),
                           default=None)
            during = traffic.within((t_kill, first_ok if first_ok is not None else float("inf")))
            report.check("Sentinel promoted the replica (failover < 30 s)", failover_s is not None,
                         f"{failover_s:.1f} s" if failover_s is not None else "no promotion")
            report.check("during the failover: no 500, only 503 (try again)",
                         not any(a.outcome == "server_error" for a in during),
                         ", ".join(f"{k} {v}" for k, v in traffic.counts((t_kill, first_ok or t_kill)).items()))
            report.check("the gateways followed the new primary by themselves", first_ok is not None,
                         f"first success {first_ok - t_kill:.1f} s after the kill" if first_ok else "none")
            report.check("the cut lost acknowledged reservations (asynchronous replication)",
                         bool(lost) or cut_s <= 0, f"{len(lost)} lost")

            # the probe's second order: PostgreSQL must refuse it
            probe_id = probe[1].get("order_id") if probe[0] == 200 else None
            confirmed = traffic.confirmed()
            check = verdict(report, s, product_id, confirmed)
            if lost:
                refused = _refusal(s, probe_id)
                report.check("PostgreSQL refused the second purchase Redis allowed",
                             probe[0] != 200 or refused == "already_bought",
                             f"gateway answered {probe[0]}; PostgreSQL: {refused or 'no refusal'}")
            numbers = reconcile_step(report, s, product_id, fix=False, redis=new_primary)
            high = numbers.of(product_id, "stock_high")
            report.check("reconcile finds Redis offering the lost items again",
                         not lost or (high is not None and high.redis - high.expected >= len(lost) - (probe[0] == 200)),
                         f"Redis {high.redis} vs expected {high.expected}" if high else "stock agreed")
            reconcile_step(report, s, product_id, fix=True, settle_s=settle_s, redis=new_primary)
            redis_agrees(report, s, product_id, redis=new_primary, label="on the new primary")
    finally:
        # fail back: the original port serves again, with the promoted replica's data
        if not stack.healthy():
            stack.start_service("redis")
        try:
            sentinel.fail_back(s)
            report.event(f"failed back: port {s.ports.redis} is the primary again; replica and Sentinel stopped")
        finally:
            sentinel.stop(s)
            link.close()
    after = invariants.check_sale(s, product_id, confirmed)
    report.check("after fail-back Redis (original port) agrees with PostgreSQL",
                 after.redis_stock == after.pg_stock, f"Redis {after.redis_stock}, PostgreSQL {after.pg_stock}")

    report.metrics.update({
        "failover_s": round(failover_s, 2) if failover_s is not None else None,
        "first_success_after_kill_s": round(first_ok - t_kill, 2) if first_ok is not None else None,
        "answers_503": sum(a.outcome == "unavailable" for a in during),
        "lost_acknowledged": len(lost), "cut_s": cut_s, "replication_bytes_dropped": link.dropped_bytes,
        "second_purchase_answer": probe[0], "orders": check.orders, "refused_by_pg": check.rejections,
    })
    report.series = {**traffic.series(), "marks": [{"t": round(t_cut, 2), "label": "link cut"},
                                                   {"t": round(t_kill, 2), "label": "primary killed"},
                                                   {"t": round(t_promoted, 2), "label": "replica promoted"}]}
    return report


def _refusal(s, order_id: str | None) -> str | None:
    if not order_id:
        return None
    invariants.wait_for_drain(s, 0, timeout_s=20)
    with db.connect(s.postgres_url) as conn:
        row = conn.execute("SELECT reason FROM order_rejections WHERE order_id = %s", (order_id,)).fetchone()
    return row[0] if row else None

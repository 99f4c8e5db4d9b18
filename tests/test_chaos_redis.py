"""The Redis failure labs, each run whole against the real test stack: every invariant must hold.

Each scenario brings up the tier it needs, injects its fault, drives a bounded
load and checks oversold 0, no duplicate order, no confirmed order lost, and
Redis agreeing with PostgreSQL after reconciliation. Timing is only ever a
generous bound on "no hang" (a correctness property), never a speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.request

import pytest

from seckill import chaos, stack
from seckill.system import gateway, gateway_async, tiers
from seckill.stack import processes
from seckill.measure import results
from seckill.system.sale import create_sale

from conftest import BURST_LIMITS


def assert_ok(report: chaos.ChaosReport) -> None:
    broken = [c for c in report.checks if not c.held]
    assert report.ok and not broken, f"{report}"


@pytest.fixture(autouse=True)
def healthy_after(stack_urls):
    yield
    assert stack.healthy(), "a failure lab left the stack broken"
    assert tiers.current() is None, "a failure lab left its tier running"


def test_race_naive_oversells_atomic_does_not(s):
    report = chaos.run("race")
    assert_ok(report)
    m = report.metrics
    assert m["naive_promised"] > m["stock"] and m["naive_oversold"] > 0
    assert m["atomic_promised"] == m["stock"] and m["atomic_oversold"] == 0
    saved = results.newest("chaos", scenario="race")
    assert saved and saved["ok"] and saved["metrics"]["naive_oversold"] == m["naive_oversold"]


@pytest.mark.parametrize("tier", ["flask", "fastapi"])
def test_redis_down_answers_at_once_degrades_and_is_rebuilt(s, tier):
    report = chaos.run("redis-down", tier=tier, save=False)
    assert_ok(report)
    m = report.metrics
    assert m["answers_503"] > 0 and m["answered_from_memory"] > 0
    assert m["max_latency_ms"] < 2000  # "no hang": a correctness bound, not a speed
    assert m["sold_after_rebuild"] > 0 and m["left_for_reconcile"] == 0
    names = {c.name for c in report.checks}
    assert "the sold-out sale answered sold out from local memory" in names


def test_crash_between_leaks_stock_and_reconcile_returns_it(s):
    report = chaos.run("crash-between", save=False)
    assert_ok(report)
    assert report.metrics["leaked"] >= report.metrics["crashes"] == 3
    assert report.metrics["sold_in_total"] == report.metrics["stock"]


@pytest.mark.parametrize("tier", ["flask", "fastapi"])  # fastapi: the auto-pipelining client through Sentinel
def test_redis_failover_loses_acknowledged_writes_and_the_guard_holds(s, tier):
    report = chaos.run("redis-failover", save=False, tier=tier)
    assert_ok(report)
    m = report.metrics
    assert m["failover_s"] is not None and m["failover_s"] < 30
    assert m["lost_acknowledged"] > 0
    assert m["second_purchase_answer"] == 200 and m["refused_by_pg"] >= 1
    for name in ("redis-replica", "redis-sentinel"):
        assert processes.alive(s.run_dir, processes.load(s.run_dir, name)) is None


# -- the pieces the labs switch on, checked on their own ----------------------------------------------

def test_injection_point_is_off_by_default(s, monkeypatch):
    monkeypatch.delenv("SECKILL_GATEWAY_INJECT", raising=False)
    assert gateway.crash_users_from_env() is None
    state = tiers.up("flask", limits=BURST_LIMITS, out=None)
    try:
        create_sale(s, 9501, 5, force=True)
        pid = json.load(urllib.request.urlopen(f"{state['base_url']}/healthz"))["pid"]
        req = urllib.request.Request(f"{state['base_url']}/api/seckill/9501", data=b'{"user_id": "crash-0"}',
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and json.load(resp)["success"]
        assert json.load(urllib.request.urlopen(f"{state['base_url']}/healthz"))["pid"] == pid
    finally:
        tiers.down(out=None)


def dead_redis(s):
    """Settings whose Redis port has nobody listening: a real connection refused, not a mock."""
    port = s.ports.redis_replica  # free while no failover lab runs
    assert not processes.port_open(port)
    return dataclasses.replace(s, ports=dataclasses.replace(s.ports, redis=port))


@pytest.mark.parametrize("degrade", [True, False], ids=["degrade-on", "degrade-off"])
def test_both_gateways_with_redis_down_answer_503_or_sold_out_from_memory(s, degrade):
    down = dataclasses.replace(dead_redis(s), degrade_sold_out=degrade)
    body = b'{"user_id": "u1"}'
    sync_gw = gateway.build(down)
    sync_gw.sold_out.remember(11)  # as after Redis answered sold out for product 11

    async def async_answers():
        gw = gateway_async.build(down)
        gw.sold_out.remember(11)
        try:
            return [await gw.buy("11", body, "10.0.0.1"), await gw.buy("12", body, "10.0.0.1")]
        finally:
            await gw.producer.close()

    for sold_out, other in ([sync_gw.buy("11", body, "10.0.0.1"), sync_gw.buy("12", body, "10.0.0.1")],
                            asyncio.run(async_answers())):
        assert other.status == 503 and other.headers["Retry-After"] == "1"
        if degrade:
            assert sold_out.status == 409 and sold_out.body["error"] == "sold_out" and sold_out.body["degraded"]
        else:
            assert sold_out.status == 503

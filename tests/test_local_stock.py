"""Tier T4, local stock: slices leased from Redis, sold from memory, and the trade-off it brings.

Real Redis throughout (the leases are Redis scripts); the last tests run the
real tier and SIGKILL one of its instances to strand a lease.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psutil
import pytest
import redis.asyncio as aioredis

from seckill.measure import burst, invariants
from seckill.system import local_stock, tiers
from seckill.stack import processes
from seckill.system.gateway_async import AsyncGateway
from seckill.system.sale import create_sale

from conftest import BURST_LIMITS

PRODUCT = 741


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run(coro):
    return asyncio.run(coro)


async def _client(s):
    return aioredis.Redis.from_url(s.redis_url, decode_responses=True)


def test_two_instances_sell_exactly_the_stock_in_slices(s, redis_client):
    create_sale(s, PRODUCT, 45, redis=redis_client, force=True)

    async def sell():
        r = await _client(s)
        a = local_stock.AsyncLocalStock(r, slice_size=20)
        b = local_stock.AsyncLocalStock(r, slice_size=20)
        outcomes = await asyncio.gather(*(
            (a if i % 2 else b).reserve_once(PRODUCT, f"u{i}") for i in range(100)))
        again = await a.reserve_once(PRODUCT, "u1")  # all gone, but u1 bought: told so, not "sold out"
        slices = a.stats["slices"] + b.stats["slices"]
        await a.return_all(), await b.return_all()
        await r.aclose()
        return outcomes, again, slices

    outcomes, again, slices = run(sell())
    assert outcomes.count("ok") == 45 and outcomes.count("sold_out") == 55
    assert again == "already_bought"
    assert slices == 3  # 20 + 20 + 5: three round trips for 45 items, not 45
    assert redis_client.get(f"stock:{PRODUCT}") == "0"
    assert redis_client.scard(f"buyers:{PRODUCT}") == 45
    assert sum(held for held, _ in local_stock.leases(redis_client, PRODUCT).values()) == 0


def test_sold_out_is_answered_from_memory_without_redis(s, redis_client):
    """After the flag is up, a late buyer costs one set lookup (already bought?) and nothing else until the recheck."""
    create_sale(s, PRODUCT, 3, redis=redis_client, force=True)
    clock = FakeClock()

    class Shut:  # a bucket and a limiter that fail the test if the flag does not answer first
        def allow_request(self):
            raise AssertionError("the sold-out flag must answer before the token bucket")

    async def flood():
        r = await _client(s)
        stock = local_stock.AsyncLocalStock(r, slice_size=10, recheck_s=1.0, clock=clock)
        for i in range(4):
            await stock.reserve_once(PRODUCT, f"early{i}")
        gw = AsyncGateway(redis=r, stock=stock, limiter=None, bucket=Shut(), producer=None,
                          sales=_OpenSales(), clock=time.time)
        before = int(redis_client.info("stats")["total_commands_processed"])
        replies = [await gw.buy(str(PRODUCT), b'{"user_id": "late%d"}' % i, "10.0.0.1") for i in range(200)]
        after = int(redis_client.info("stats")["total_commands_processed"])
        await r.aclose()
        return replies, after - before, stock.stats["answered_from_memory"]

    replies, commands, from_memory = run(flood())
    assert {(r.status, r.body["error"]) for r in replies} == {(409, "sold_out")}
    assert from_memory == 200
    assert commands <= 200 + 2  # one SISMEMBER per request (and the INFO call itself): no script, no limiter


class _OpenSales:
    async def get(self, product_id):
        from seckill.system.sale import SaleWindow
        return SaleWindow(None, None)


def test_the_flag_is_rechecked_so_returned_stock_sells_again(s, redis_client):
    create_sale(s, PRODUCT, 1, redis=redis_client, force=True)
    clock = FakeClock()

    async def scenario():
        r = await _client(s)
        stock = local_stock.AsyncLocalStock(r, slice_size=5, recheck_s=1.0, clock=clock)
        first = await stock.reserve_once(PRODUCT, "a")
        second = await stock.reserve_once(PRODUCT, "b")
        await r.incrby(f"stock:{PRODUCT}", 2)  # stock comes back (another instance returned its lease)
        flag_before = stock.sold_out_locally(PRODUCT)
        clock.now += 1.0
        flag_after = stock.sold_out_locally(PRODUCT)
        third = await stock.reserve_once(PRODUCT, "b")
        await stock.return_all()
        await r.aclose()
        return first, second, flag_before, flag_after, third

    first, second, flag_before, flag_after, third = run(scenario())
    assert (first, second) == ("ok", "sold_out")
    assert flag_before is True    # within recheck_s: still answered from memory (the undersell window)
    assert flag_after is False    # then Redis is asked again ...
    assert third == "ok"          # ... and the returned stock sells
    assert redis_client.get(f"stock:{PRODUCT}") == "1"  # 2 back, 1 sold, the lease of the rest returned


def test_a_lost_stock_key_never_raises_the_sold_out_flag(s, redis_client):
    """Redis flushed mid-sale: "no such sale" is not "sold out". Were the flag raised, the
    gateway would answer 409 from memory for recheck_s after the rebuild put the stock back
    (seen in CI: a buyer told sold out with 45 left)."""
    create_sale(s, PRODUCT, 50, redis=redis_client, force=True)
    clock = FakeClock()

    async def scenario():
        r = await _client(s)
        stock = local_stock.AsyncLocalStock(r, slice_size=10, recheck_s=1.0, clock=clock)
        before = await stock.reserve_once(PRODUCT, "early")
        await r.flushall()  # the lease, the stock and the buyers are gone
        during = await stock.reserve_once(PRODUCT, "during")
        flag = stock.sold_out_locally(PRODUCT)
        create_sale(s, PRODUCT, 50, redis=redis_client, force=True)  # what the rebuild does, at once
        after = await stock.reserve_once(PRODUCT, "after")
        await stock.return_all()
        await r.aclose()
        return before, during, flag, after

    before, during, flag, after = run(scenario())
    assert (before, during) == ("ok", "sold_out")  # the gateway then finds stock:{id} gone: 503, rebuild
    assert flag is False, "no stock key is not sold out: the flag must stay down"
    assert after == "ok", "once the stock is back, the next buyer is sold to, without waiting recheck_s"


def test_a_lease_of_an_earlier_sale_is_dropped_not_sold(s, redis_client):
    create_sale(s, PRODUCT, 50, redis=redis_client, force=True)

    async def scenario():
        r = await _client(s)
        stock = local_stock.AsyncLocalStock(r, slice_size=20)
        assert await stock.reserve_once(PRODUCT, "old-buyer") == "ok"  # holds 19 more in memory
        create_sale(s, PRODUCT, 3, redis=redis_client, force=True)    # the sale starts afresh with 3
        outcomes = [await stock.reserve_once(PRODUCT, f"new{i}") for i in range(6)]
        await stock.return_all()
        await r.aclose()
        return outcomes

    outcomes = run(scenario())
    assert outcomes.count("ok") == 3  # the 19 units of the old lease are not sold in the new sale
    assert redis_client.get(f"stock:{PRODUCT}") == "0"


def test_release_puts_the_unit_back_into_the_lease(s, redis_client):
    create_sale(s, PRODUCT, 10, redis=redis_client, force=True)

    async def scenario():
        r = await _client(s)
        stock = local_stock.AsyncLocalStock(r, slice_size=4)
        await stock.reserve_once(PRODUCT, "u")
        assert await stock.reserve_once(PRODUCT, "u") == "already_bought"  # asked of Redis: all instances
        released = await stock.release(PRODUCT, "u")
        twice = await stock.release(PRODUCT, "u")
        held_in_redis = local_stock.leases(redis_client, PRODUCT)[stock.instance][0]
        returned = await stock.return_all()
        await r.aclose()
        return released, twice, held_in_redis, returned

    released, twice, held_in_redis, returned = run(scenario())
    assert released is True and twice is False
    assert held_in_redis == 4 and returned == 4
    assert redis_client.get(f"stock:{PRODUCT}") == "10" and redis_client.scard(f"buyers:{PRODUCT}") == 0


def test_a_dead_instance_strands_its_lease_until_it_is_returned(s, redis_client):
    create_sale(s, PRODUCT, 30, redis=redis_client, force=True)

    async def die_after_selling_three():
        r = await _client(s)
        stock = local_stock.AsyncLocalStock(r, slice_size=20)
        for i in range(3):
            assert await stock.reserve_once(PRODUCT, f"u{i}") == "ok"
        stock._heartbeat.cancel()  # the process dies: no clean return, no more heartbeats
        await r.aclose()
        return stock.instance

    instance = run(die_after_selling_three())
    assert local_stock.live_leases(redis_client, PRODUCT) == {instance: 17}
    assert processes.wait_until(lambda: not local_stock.live_leases(redis_client, PRODUCT),
                                timeout=local_stock.HEARTBEAT_TTL_MS / 1000 + 3)
    assert local_stock.stranded_leases(redis_client, PRODUCT) == {instance: 17}
    assert redis_client.get(f"stock:{PRODUCT}") == "10"  # 17 units nobody can sell: undersell
    assert local_stock.return_stranded(redis_client, PRODUCT) == 17
    assert local_stock.return_stranded(redis_client, PRODUCT) == 0  # idempotent
    assert redis_client.get(f"stock:{PRODUCT}") == "27" and not local_stock.leases(redis_client, PRODUCT)


# -- the real tier -----------------------------------------------------------------------------

def _instances(s) -> list[psutil.Process]:
    """The uvicorn worker processes (each one an instance with its own lease)."""
    main = processes.alive(s.run_dir, processes.load(s.run_dir, "gateway"))
    return main.children(recursive=True) if main else []


@pytest.fixture
def local_tier(stack_urls):
    state = tiers.up("local-stock", limits={**BURST_LIMITS, "local_slice": 25}, out=None)
    yield state
    tiers.down(out=None)


def test_the_tier_gives_unsold_leases_back_when_it_stops(s, local_tier, redis_client):
    create_sale(s, PRODUCT, 200, redis=redis_client, force=True)
    result = burst.buy_burst(local_tier["base_url"], PRODUCT, users=60, requests=60, concurrency=16)
    assert result.counts["success"] == 60
    assert sum(local_stock.live_leases(redis_client, PRODUCT).values()) > 0  # instances hold slices
    assert invariants.wait_for_drain(s, PRODUCT, expected_orders=60)
    tiers.down(out=None)
    check = invariants.check_sale(s, PRODUCT, result.order_ids)
    assert check.held_locally == 0 and check.stranded == 0
    assert check.redis_stock == check.pg_stock == 140 and check.ok, check.as_dict()


def test_an_instance_killed_mid_sale_strands_stock_until_reconciled(s, local_tier, redis_client):
    create_sale(s, PRODUCT, 100, redis=redis_client, force=True)
    first = burst.buy_burst(local_tier["base_url"], PRODUCT, users=40, requests=40, concurrency=8)
    assert first.counts["success"] == 40
    holders = local_stock.live_leases(redis_client, PRODUCT)
    victim = next(p for p in _instances(s) if any(f"-{p.pid}-" in i and held > 0 for i, held in holders.items()))
    os.kill(victim.pid, signal.SIGKILL)
    assert processes.wait_until(lambda: local_stock.stranded_leases(redis_client, PRODUCT),
                                timeout=local_stock.HEARTBEAT_TTL_MS / 1000 + 5)
    stranded = sum(local_stock.stranded_leases(redis_client, PRODUCT).values())
    assert stranded > 0

    # Everyone else buys: the sale sells out short by the stranded units (undersell), and by
    # whatever a live instance still holds while the other one's flag already says sold out.
    second = burst.buy_burst(local_tier["base_url"], PRODUCT, users=300, requests=300, concurrency=16,
                             user_prefix="late")
    assert second.counts["server_error"] == 0 and second.counts["sold_out"] > 0
    sold = first.counts["success"] + second.counts["success"]
    held_live = sum(local_stock.live_leases(redis_client, PRODUCT).values())
    assert redis_client.get(f"stock:{PRODUCT}") == "0"
    assert sold == 100 - stranded - held_live
    assert invariants.wait_for_drain(s, PRODUCT, expected_orders=sold)
    check = invariants.check_sale(s, PRODUCT, first.order_ids + second.order_ids)
    assert check.oversold == 0 and check.lost == 0 and check.stranded == stranded and not check.ok

    # Reconciliation gives the stranded lease back; after the flag's recheck the rest sells.
    assert local_stock.return_stranded(redis_client, PRODUCT) == stranded
    time.sleep(1.1)
    third = burst.buy_burst(local_tier["base_url"], PRODUCT, users=300, requests=300, concurrency=16,
                            user_prefix="after")
    assert third.counts["success"] == 100 - sold
    assert invariants.wait_for_drain(s, PRODUCT, expected_orders=100)
    check = invariants.check_sale(s, PRODUCT, first.order_ids + second.order_ids + third.order_ids)
    assert check.orders == 100 and check.oversold == 0 and check.lost == 0
    tiers.down(out=None)
    check = invariants.check_sale(s, PRODUCT, first.order_ids + second.order_ids + third.order_ids)
    assert check.ok, check.as_dict()

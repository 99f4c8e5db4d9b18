"""A dependency that is down or empty answers 503, never 500 or 404 (issue 11 §3), and
a user's repeat buy is already_bought on every local-stock worker (§5).

Real servers throughout: a dead dependency is a port nobody listens on, a
backend PostgreSQL really terminated, a Redis really flushed or stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest
import redis

from seckill.system import gateway, gateway_async, reconcile, rebuild, tiers
from seckill.measure import invariants
from seckill import stack
from seckill.measure.clients import client_address, post_json
from seckill.system.gateway_dbdirect import DirectSale, create_app as dbdirect_app
from seckill.system.sale import create_sale

from conftest import BURST_LIMITS


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_ports(s, **ports):
    return dataclasses.replace(s, ports=dataclasses.replace(s.ports, **ports))


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def buy(base: str, product, user: str, n: int = 0):
    status, body, headers = post_json(f"{base}/api/seckill/{product}", {"user_id": user},
                                      source=client_address(n))
    return status, json.loads(body or b"{}"), {k.lower(): v for k, v in headers.items()}


# -- db-direct without PostgreSQL ----------------------------------------------------------------------

def test_db_direct_with_postgres_down_answers_503_every_time(s, stack_urls):
    client = dbdirect_app(with_ports(s, postgres=closed_port())).test_client()
    answers = [client.post("/api/seckill/1", json={"user_id": f"u{i}"}) for i in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 503], [a.json for a in answers]
    assert all(a.json["error"] == "unavailable" and a.headers.get("Retry-After") for a in answers)
    assert client.get("/api/orders/00000000-0000-0000-0000-000000000000").status_code == 503
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["down"] == ["postgres"]


def test_db_direct_survives_its_connection_being_killed(s, stack_urls):
    create_sale(s, 9701, 10, force=True)
    sale = DirectSale(s.postgres_url)
    assert sale.buy("9701", b'{"user_id": "before"}').status == 200
    backend = sale._conn().info.backend_pid
    with psycopg.connect(s.postgres_url, autocommit=True) as admin:  # as a PostgreSQL restart does to it
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    statuses = [sale.buy("9701", b'{"user_id": "after%d"}' % i).status for i in range(3)]
    assert 500 not in statuses and statuses[-1] == 200, statuses
    assert sale.health().status == 200


# -- /healthz names what is down ------------------------------------------------------------------------

def test_healthz_names_the_dependency_that_is_down(s, stack_urls):
    down = with_ports(s, redis=closed_port())
    reply = gateway.build(down).health()
    assert reply.status == 503 and reply.body["down"] == ["redis"] and reply.headers["Retry-After"]
    assert reply.body["dependencies"] == {"redis": "down", "postgres": "up", "rabbitmq": "up"}

    async def async_health():
        gw = gateway_async.build(with_ports(s, amqp=closed_port()))
        try:
            return await gw.health()
        finally:
            await gw.producer.close()

    reply = asyncio.run(async_health())
    assert reply.status == 503 and reply.body["down"] == ["rabbitmq"]
    assert gateway.build(s).health().status == 200


@pytest.mark.parametrize("name", ["flask", "fastapi"])
def test_healthz_of_a_running_tier_says_redis_is_stopped(s, stack_urls, name):
    state = tiers.up(name, limits=BURST_LIMITS, out=None)
    try:
        status, body, _ = get(f"{state['base_url']}/healthz")
        assert status == 200 and body["ok"] and set(body["dependencies"]) >= {"redis", "postgres", "rabbitmq"}
        stack.stop_service("redis")
        try:
            status, body, headers = get(f"{state['base_url']}/healthz")
            assert status == 503 and body["down"] == ["redis"] and "redis" in body["message"], body
        finally:
            stack.start_service("redis")
        deadline = time.monotonic() + 15
        while get(f"{state['base_url']}/healthz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get(f"{state['base_url']}/healthz")[0] == 200
    finally:
        tiers.down(out=None)


# -- Redis lost its data ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["flask", "fastapi", "local-stock"])
def rebuild_tier(request, stack_urls):
    state = tiers.up(request.param, limits=BURST_LIMITS, out=None, extra_env={"SECKILL_REBUILD_SETTLE_S": "1"})
    yield state
    tiers.down(out=None)


def test_redis_lost_is_503_then_rebuilt_by_the_gateway(s, rebuild_tier):
    base, product, other = rebuild_tier["base_url"], 9702, 9703
    create_sale(s, product, 50, force=True)
    create_sale(s, other, 7, force=True)
    bought = [buy(base, product, f"early-{i}", i) for i in range(5)]
    # a sale is 200, or 202 pending when a loaded broker confirmed late (its item stays reserved)
    assert all(b[0] in (200, 202) for b in bought), [b[0] for b in bought]
    assert buy(base, other, "other-early", 10)[0] in (200, 202)
    confirmed = {b[1]["order_id"] for b in bought}
    assert invariants.wait_for_drain(s, product, expected_orders=5, timeout_s=30)
    assert invariants.wait_for_drain(s, other, expected_orders=1, timeout_s=30)

    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    r.flushall()
    status, body, headers = buy(base, product, "during", 20)
    assert status == 503 and body["error"] == "unavailable" and int(headers["retry-after"]) >= 1, body
    status, body, _ = buy(base, 424242, "nobody", 21)
    assert status == 404 and body["error"] == "unknown_product", "no such sale in PostgreSQL either: 404"
    assert get(f"{base}/api/sales/{other}")[0] in (503, 200), "the stock endpoint: 503 while rebuilding, never 404"
    assert get(f"{base}/api/sales/424242")[0] == 404

    deadline, status = time.monotonic() + 40, None
    while time.monotonic() < deadline:
        status, body, _ = buy(base, product, "after", 22)
        if status != 503:
            break
        time.sleep(0.5)
    assert status in (200, 202), body
    confirmed.add(body["order_id"])
    assert buy(base, product, "early-0", 23)[1].get("error") == "already_bought"
    assert buy(base, other, "other-early", 24)[1].get("error") == "already_bought"
    assert invariants.wait_for_drain(s, product, expected_orders=6, timeout_s=30)
    assert invariants.check_sale(s, product, confirmed).ok
    # every product is healed, not only the one that was asked for
    everything = reconcile.reconcile(s, None, fix=False)
    assert everything.consistent and not everything.discrepancies, str(everything)


def test_one_rebuild_at_a_time(s, stack_urls, redis_client):
    create_sale(s, 9704, 5, redis=redis_client, force=True)
    redis_client.flushall()
    workers = [rebuild.RedisRebuild(s, settle_s=0.5) for _ in range(4)]
    ran = []
    threads = [threading.Thread(target=lambda w=w: ran.append(w.run_once())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(ran) == [False, False, False, True]
    assert redis_client.get("stock:9704") == "5" and redis_client.exists("sale:9704")
    assert not redis_client.exists(rebuild.LOCK_KEY), "the lock is released after the rebuild"
    redis_client.set(rebuild.LOCK_KEY, "someone-else", ex=30)
    assert workers[0].run_once() is False, "a held lock means someone else is rebuilding"
    redis_client.delete(rebuild.LOCK_KEY)


def test_postgres_down_too_is_503_not_404(s, stack_urls, redis_client):
    gw = gateway.build(with_ports(s, postgres=closed_port()))
    reply = gw.buy("9705", b'{"user_id": "u"}', "127.9.0.1")  # no sale in Redis, and no database to ask
    assert reply.status == 503 and reply.body["error"] == "unavailable"


# -- local stock: the repeat buy -------------------------------------------------------------------------

def test_a_repeat_buy_is_already_bought_on_every_local_stock_worker(s, stack_urls, redis_client):
    create_sale(s, 9706, 1, redis=redis_client, force=True)

    async def two_workers():
        a, b = gateway_async.build(s, local_stock=True), gateway_async.build(s, local_stock=True)
        try:
            body = b'{"user_id": "repeat"}'
            first = await a.buy("9706", body, "127.9.0.1")
            other = await b.buy("9706", b'{"user_id": "someone"}', "127.9.0.2")  # b has no lease: sold out
            answers = [await b.buy("9706", body, "127.9.0.1") for _ in range(3)]  # flag up: from memory
            answers.append(await a.buy("9706", body, "127.9.0.1"))
            return first, other, answers
        finally:
            for gw in (a, b):
                await gw.stock.return_all()
                await gw.producer.close()

    first, other, answers = asyncio.run(two_workers())
    assert first.status == 200 and other.body["error"] == "sold_out"
    assert [(x.status, x.body["error"]) for x in answers] == [(409, "already_bought")] * 4
    assert invariants.wait_for_drain(s, 9706, expected_orders=1, timeout_s=30)

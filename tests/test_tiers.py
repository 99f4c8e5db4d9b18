"""The tier ladder: each tier sells exactly the stock; tier down leaves nothing behind.

A short burst per tier asserting the invariants only, never a speed (speeds
live in `make bench`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from seckill.measure import burst, invariants
from seckill.stack import processes
from seckill.system import tiers
from seckill.system.sale import create_sale

from conftest import BURST_LIMITS

WIDE_OPEN_NGINX = {"nginx_rate": 100_000.0, "nginx_burst": 100_000}


def sell(s, base_url: str, product_id: int, stock: int, users: int, requests: int,
         redis_copy: bool = True) -> invariants.SaleCheck:
    create_sale(s, product_id, stock, force=True)
    result = burst.buy_burst(base_url, product_id, users=users, requests=requests, concurrency=128)
    assert result.counts["server_error"] == 0 and result.counts["failed"] == 0, result.summary()
    # 202 pending (a confirm later than 5 s on a loaded machine) is a sale too: its item is kept, its order written
    told = result.order_ids + [order_id for order_id, _ in result.pending]
    assert invariants.wait_for_drain(s, product_id, expected_orders=len(told), timeout_s=60)
    check = invariants.check_sale(s, product_id, told, redis_copy=redis_copy)
    assert check.ok and check.oversold == 0 and check.lost == 0 and check.duplicate_users == 0, check.as_dict()
    return check, result


@pytest.mark.parametrize("name", ["db-direct", "flask", "flask-x4", "fastapi", "local-stock"])
def test_each_tier_sells_exactly_the_stock_and_stops_cleanly(s, stack_urls, name):
    state = tiers.up(name, limits={**BURST_LIMITS, **WIDE_OPEN_NGINX}, out=None)
    try:
        assert tiers.current(s)["tier"] == name
        check, result = sell(s, state["base_url"], 501, 300, users=1000, requests=4000,
                             redis_copy=tiers.TIERS[name].redis_copy)
        assert result.counts["success"] + result.counts["pending"] == 300 and check.orders == 300
        assert check.pg_stock == 0 and check.unexpected == 0, check.as_dict()
    finally:
        stopped = tiers.down(out=None)
    assert set(stopped) == {p.name for p in tiers.TIERS[name].procs}
    for port in (s.ports.gateway, s.ports.nginx, *(s.ports.gateway + 1 + i for i in range(4))):
        assert not processes.port_open(port), f"port {port} still open after tier down"
    assert tiers.current(s) is None


def test_nginx_spreads_requests_over_four_gateway_processes(s, stack_urls):
    state = tiers.up("flask-x4", limits=WIDE_OPEN_NGINX, out=None)
    try:
        pids = {json.load(urllib.request.urlopen(f"{state['base_url']}/healthz"))["pid"] for _ in range(24)}
        assert len(pids) == 4
    finally:
        tiers.down(out=None)


def test_nginx_limit_req_answers_429_before_python_and_nothing_is_oversold(s, stack_urls):
    state = tiers.up("flask-x4", limits={**BURST_LIMITS, "nginx_rate": 20, "nginx_burst": 5}, out=None)
    try:
        check, result = sell(s, state["base_url"], 502, 50, users=300, requests=300)
        assert result.counts["limited"] > 0, result.summary()
        assert result.counts["success"] + result.counts["limited"] + result.counts["sold_out"] == 300
        limited = None
        for i in range(50):  # in a row, far faster than 20/s: nginx must refuse before the burst of 5 is gone
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"{state['base_url']}/api/seckill/502", data=json.dumps({"user_id": f"x{i}"}).encode()))
            except urllib.error.HTTPError as err:
                if err.code == 429:
                    limited = err
                    break
        assert limited is not None, "nginx let 50 requests in a row through at 20/s with burst 5"
        assert json.loads(limited.read())["layer"] == "nginx"
        assert limited.headers["Retry-After"] == "1"
    finally:
        tiers.down(out=None)


@pytest.mark.parametrize("name", ["fastapi", "local-stock", "db-direct"])
def test_other_tiers_answer_bad_input_exactly_like_flask(s, stack_urls, name):
    """Same table as test_bad_input.py (the Flask tier): same status, same error code, nothing reserved."""
    import redis

    from test_bad_input import BAD_REQUESTS, PRODUCT, post

    state = tiers.up(name, out=None)
    try:
        create_sale(s, PRODUCT, 5, force=True)
        for path, body, status, code in BAD_REQUESTS:
            got_status, got_body, _ = post(state["base_url"], path, body)
            assert (got_status, got_body.get("error")) == (status, code), (path, body[:40], got_body)
            assert got_body.get("message")
        r = redis.Redis.from_url(s.redis_url, decode_responses=True)
        assert r.get(f"stock:{PRODUCT}") == "5" and r.scard(f"buyers:{PRODUCT}") == 0
        assert invariants.order_count(s, PRODUCT) == 0
    finally:
        tiers.down(out=None)


def test_fastapi_publishes_nothing_unconfirmed_when_the_broker_is_unreachable(s, stack_urls, redis_client):
    """Broker down for the async gateway: 503 at once and the reservation released (real Redis)."""
    import asyncio
    import dataclasses
    import socket

    from seckill.system import gateway_async

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    s2 = dataclasses.replace(s, ports=dataclasses.replace(s.ports, amqp=closed))
    create_sale(s, 503, 4, redis=redis_client, force=True)

    async def attempt():
        gw = gateway_async.build(s2)
        try:
            return await asyncio.wait_for(gw.buy("503", b'{"user_id": "u"}', "10.0.0.1"), timeout=10)
        finally:
            await gw.redis.aclose()

    reply = asyncio.run(attempt())
    assert reply.status == 503 and reply.body["error"] == "unavailable"
    assert redis_client.get("stock:503") == "4" and not redis_client.sismember("buyers:503", "u")


def test_unknown_tier_is_one_clear_error(stack_urls):
    with pytest.raises(tiers.TierError, match="choose one of: db-direct, flask, flask-x4, fastapi, local-stock"):
        tiers.up("flask-x9", out=None)


@pytest.mark.parametrize("limits, message", [
    ({"local_slice": 0}, "local_slice must be at least 1"),
    ({"bucket_sise": 5.0}, "no limit called bucket_sise"),
])
def test_bad_limits_are_one_clear_error_and_start_nothing(s, stack_urls, limits, message):
    with pytest.raises(tiers.TierError, match=message):
        tiers.up("local-stock", limits=limits, out=None)
    assert tiers.current(s) is None and not processes.port_open(s.ports.gateway)

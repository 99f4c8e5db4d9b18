"""The whole system under a real burst: exactly the stock is sold, nothing lost, nobody twice.

Real Redis, RabbitMQ and PostgreSQL, the Flask tier in gunicorn, the order
service as its own process, and 20,000 buy requests from 5,000 simulated users
in flight together.
"""

from __future__ import annotations

import signal
import time

import redis

from seckill.system import broker, tiers
from seckill.measure import burst, invariants
from seckill.stack import processes
from seckill.system.sale import create_sale


def test_thousand_items_five_thousand_users_twenty_thousand_requests(s, flask_tier):
    create_sale(s, 101, 1000, name="burst")
    result = burst.buy_burst(flask_tier["base_url"], 101, users=5000, requests=20_000, concurrency=256)

    assert result.total == 20_000
    assert result.counts["success"] == 1000, result.summary()
    assert result.counts["server_error"] == 0 and result.counts["failed"] == 0, result.summary()
    assert result.counts["client_error"] == 0, result.summary()
    assert len(set(result.buyers)) == 1000, "a user was told twice that they bought"

    assert invariants.wait_for_drain(s, 101, expected_orders=1000, timeout_s=60)
    check = invariants.check_sale(s, 101, result.order_ids)
    assert check.orders == 1000
    assert check.distinct_users == 1000
    assert check.pg_stock == 0
    assert check.redis_stock == 0
    assert check.lost == 0 and check.unexpected == 0
    assert check.oversold == 0 and check.ok, check.as_dict()


def test_order_service_killed_mid_drain_loses_and_duplicates_nothing(s, flask_tier):
    """SIGKILL while orders are being written: redelivery + idempotent insert = exactly once."""
    create_sale(s, 102, 2000, name="crash")
    processes.stop(s.run_dir, "order-service")  # let the queue fill up first
    result = burst.buy_burst(flask_tier["base_url"], 102, users=3000, requests=3000, concurrency=128)
    assert result.counts["success"] == 2000, result.summary()
    assert broker.queue_depth(s.amqp_url, s.queue) == 2000

    # Small batches make the drain slow enough to kill it half-way.
    tiers.start_order_service(s, extra_env={"SECKILL_CONSUMER_BATCH": "5", "SECKILL_CONSUMER_PREFETCH": "50"})
    assert processes.wait_until(lambda: invariants.order_count(s, 102) >= 200, timeout=30, interval=0.01)
    processes.kill(s.run_dir, "order-service", signal.SIGKILL)
    written_at_kill = invariants.order_count(s, 102)
    assert 0 < written_at_kill < 2000, "the kill did not land mid-drain"
    time.sleep(0.5)
    assert invariants.order_count(s, 102) == written_at_kill, "a killed service kept writing"

    tiers.start_order_service(s)
    assert invariants.wait_for_drain(s, 102, expected_orders=2000, timeout_s=60)
    check = invariants.check_sale(s, 102, result.order_ids)
    assert check.orders == 2000 and check.distinct_users == 2000
    assert check.lost == 0 and check.unexpected == 0
    assert check.rejections == 0, "a redelivered order was treated as a second purchase"
    assert check.pg_stock == 0 and check.redis_stock == 0 and check.ok, check.as_dict()


def test_order_status_goes_from_pending_to_confirmed(s, flask_tier):
    import json
    import urllib.request

    create_sale(s, 103, 3)
    processes.stop(s.run_dir, "order-service")
    req = urllib.request.Request(f"{flask_tier['base_url']}/api/seckill/103", data=b'{"user_id": "ada"}',
                                 headers={"Content-Type": "application/json"})
    order_id = json.load(urllib.request.urlopen(req))["order_id"]
    status_url = f"{flask_tier['base_url']}/api/orders/{order_id}"
    assert json.load(urllib.request.urlopen(status_url))["status"] == "pending"
    tiers.start_order_service(s)
    assert processes.wait_until(
        lambda: json.load(urllib.request.urlopen(status_url))["status"] == "confirmed", timeout=20)
    assert redis.Redis.from_url(s.redis_url).get("stock:103") == b"2"

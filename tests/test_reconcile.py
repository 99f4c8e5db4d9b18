"""Reconciliation against the real stores: it finds what was planted, --fix repairs it, a second run finds nothing.

No tier runs here, and the module has a queue of its own (SECKILL_QUEUE for the
CLI), so nothing consumes it: orders published in a test stay queued, which is
exactly what the queued-orders tests need. (On the shared "orders" queue a
consumer another module left behind once took them: tests/conftest.py now
names such a module in .run/test*/leaks.log.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading

import pytest

from seckill.system import broker, impl, reconcile
from seckill.system.gateway import new_order
from seckill.system.sale import create_sale

STOCK = 20
BOUGHT = [f"buyer-{i}" for i in range(6)]
QUEUE = "reconcile-tests"


@pytest.fixture
def s(s):
    """The test stack's settings, with this module's own queue."""
    return dataclasses.replace(s, queue=QUEUE)


def write_orders(s, orders: list[dict]) -> None:
    """Write orders the way the order service does (the reference consumer's batch insert)."""
    consumer = impl.load("consumer", "solutions").OrderConsumer(s.amqp_url, s.postgres_url, queue=s.queue)
    try:
        assert all(consumer.handle_batch(orders))
    finally:
        close = getattr(consumer, "close", None)
        if close:
            close()


def publish(s, orders: list[dict]) -> None:
    with impl.load("producer", "solutions").OrderProducer(s.amqp_url, queue=s.queue) as producer:
        for order in orders:
            producer.send_order(order)


@pytest.fixture
def sale(s, redis_client, pg_dsn):
    """A sale of STOCK where BOUGHT reserved in Redis and their orders are in PostgreSQL: all agree."""
    pid = 7001
    create_sale(s, pid, STOCK, force=True, redis=redis_client)
    cache = impl.load("stock", "solutions").StockCache(redis_client)
    for user in BOUGHT:
        assert cache.reserve_once(pid, user) == "ok"
    write_orders(s, [new_order(u, pid) for u in BOUGHT])
    yield pid
    broker.purge(s.amqp_url, s.queue)


def run(s, r, pid, fix=False):
    return reconcile.reconcile(s, pid, fix=fix, settle_s=0.2, redis=r)


def test_a_consistent_sale_has_no_discrepancy(s, redis_client, sale):
    report = run(s, redis_client, sale)
    assert report.consistent and report.discrepancies == [], str(report)
    assert report.products[sale]["expected_stock"] == STOCK - len(BOUGHT) == report.products[sale]["redis_stock"]


def plant_stock_high(r, pid):
    r.incrby(f"stock:{pid}", 5)


def plant_stock_low(r, pid):
    r.decrby(f"stock:{pid}", 3)


def plant_missing_buyers(r, pid):
    r.srem(f"buyers:{pid}", "buyer-0", "buyer-1")


def plant_extra_buyers(r, pid):
    # reserved in Redis with no order behind them: the crash-between leak
    cache = impl.load("stock", "solutions").StockCache(r)
    for user in ("ghost-1", "ghost-2"):
        assert cache.reserve_once(pid, user) == "ok"


def plant_missing_keys(r, pid):
    r.delete(f"stock:{pid}", f"buyers:{pid}", f"sale:{pid}")


@pytest.mark.parametrize("plant, kinds", [
    (plant_stock_high, {"stock_high"}),
    (plant_stock_low, {"stock_low"}),
    (plant_missing_buyers, {"buyers_missing"}),
    (plant_extra_buyers, {"stock_low", "buyers_extra"}),
    (plant_missing_keys, {"stock_missing", "buyers_missing", "sale_missing"}),
], ids=["stock-too-high", "stock-too-low", "missing-buyers", "extra-buyers-leak", "missing-keys"])
def test_finds_what_was_planted_and_fix_repairs_it_once(s, redis_client, sale, plant, kinds):
    plant(redis_client, sale)
    found = run(s, redis_client, sale)
    assert {d.kind for d in found.discrepancies} == kinds, str(found)
    assert not found.consistent and all(not d.fixed for d in found.discrepancies)

    fixed = run(s, redis_client, sale, fix=True)
    assert fixed.consistent and {d.kind for d in fixed.discrepancies} == kinds, str(fixed)
    assert int(redis_client.get(f"stock:{sale}")) == STOCK - len(BOUGHT)
    assert redis_client.smembers(f"buyers:{sale}") == set(BOUGHT)
    assert redis_client.hget(f"sale:{sale}", "stock") == str(STOCK)

    again = run(s, redis_client, sale, fix=True)  # idempotent: nothing left to do
    assert again.discrepancies == [] and again.consistent, str(again)


def test_queued_orders_count_and_stay_queued(s, redis_client, sale):
    cache = impl.load("stock", "solutions").StockCache(redis_client)
    waiting = [new_order(f"queued-{i}", sale) for i in range(4)]
    for order in waiting:
        assert cache.reserve_once(sale, order["user_id"]) == "ok"
    publish(s, waiting)
    assert broker.queue_depth(s.amqp_url, s.queue) == 4

    report = run(s, redis_client, sale)
    assert report.consistent, str(report)  # Redis is 4 lower than PostgreSQL: the queue explains it
    assert report.products[sale]["queued"] == 4
    assert report.products[sale]["expected_stock"] == STOCK - len(BOUGHT) - 4
    assert broker.queue_depth(s.amqp_url, s.queue) == 4, "reading the queue must not take orders out of it"

    # Redis restarted empty: the queued buyers are rebuilt too, and their items stay taken
    plant_missing_keys(redis_client, sale)
    run(s, redis_client, sale, fix=True)
    assert redis_client.smembers(f"buyers:{sale}") == set(BOUGHT) | {o["user_id"] for o in waiting}
    assert int(redis_client.get(f"stock:{sale}")) == STOCK - len(BOUGHT) - 4
    assert broker.queue_depth(s.amqp_url, s.queue) == 4


def test_an_order_in_flight_is_not_returned_as_a_leak(s, redis_client, sale):
    """Reserved, not yet queued when reconcile first looks, queued before its second look: not a leak."""
    cache = impl.load("stock", "solutions").StockCache(redis_client)
    assert cache.reserve_once(sale, "in-flight") == "ok"
    order = new_order("in-flight", sale)
    publisher = threading.Timer(0.3, publish, args=(s, [order]))
    publisher.start()
    report = reconcile.reconcile(s, sale, fix=True, settle_s=1.5, redis=redis_client)
    publisher.join()
    extra = report.of(sale, "buyers_extra")
    assert extra is not None and "in-flight" in extra.redis  # the first look saw it as extra ...
    assert "0 items returned" in extra.note                   # ... but it was not given back
    assert int(redis_client.get(f"stock:{sale}")) == STOCK - len(BOUGHT) - 1
    assert "in-flight" in redis_client.smembers(f"buyers:{sale}")
    assert run(s, redis_client, sale).consistent


def test_every_product_is_checked_when_none_is_named(s, redis_client, sale):
    create_sale(s, 7002, 5, force=True, redis=redis_client)
    redis_client.incrby("stock:7002", 1)
    report = reconcile.reconcile(s, None, settle_s=0.2, redis=redis_client)
    assert set(report.products) >= {sale, 7002}
    assert [(d.product_id, d.kind) for d in report.discrepancies] == [(7002, "stock_high")]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seckill.cli", "reconcile", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "SECKILL_QUEUE": QUEUE})


def test_cli_exit_codes_lines_and_json(s, redis_client, sale):
    ok = cli("--product", str(sale))
    assert ok.returncode == 0 and "agrees" in ok.stdout, ok.stderr

    plant_stock_high(redis_client, sale)
    found = cli("--product", str(sale))
    assert found.returncode == 1
    assert f"product {sale}: stock high — Redis {STOCK - len(BOUGHT) + 5}, expected {STOCK - len(BOUGHT)}" in found.stdout
    assert "seckill reconcile --fix" in found.stdout

    fixed = cli("--product", str(sale), "--fix", "--settle", "0", "--json")
    assert fixed.returncode == 0, fixed.stderr
    data = json.loads(fixed.stdout)
    assert data["consistent"] and data["discrepancies"][0]["kind"] == "stock_high" and data["discrepancies"][0]["fixed"]

    missing = cli("--product", "999999")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == ["seckill: no product 999999 in PostgreSQL; create it with "
                                                   "`seckill sale create`"]


def test_local_stock_leases_live_ones_count_stranded_ones_go_back(s, redis_client, sale):
    """Tier T4 leases: units a live instance holds are not missing; a dead instance's lease is returned by --fix."""
    stock_key, leases_key = f"stock:{sale}", f"leases:{sale}"
    redis_client.decrby(stock_key, 5)              # two instances leased 3 and 2 units out of stock:{id}
    redis_client.hset(leases_key, mapping={"alive": 3, "dead": 2})
    redis_client.set(f"lease:{sale}:alive", "1", px=60_000)  # only "alive" still beats

    found = run(s, redis_client, sale)
    assert [(d.kind, d.redis) for d in found.discrepancies] == [("stranded_lease", 2)], str(found)
    assert found.products[sale]["held_by_live_instances"] == 3

    fixed = run(s, redis_client, sale, fix=True)
    assert fixed.consistent and [d.kind for d in fixed.discrepancies] == ["stranded_lease"]
    assert int(redis_client.get(stock_key)) == STOCK - len(BOUGHT) - 3   # the dead lease's 2 units are back
    assert redis_client.hgetall(leases_key) == {"alive": "3"}
    assert run(s, redis_client, sale).discrepancies == []


def test_reading_a_queue_larger_than_a_window_keeps_it_whole_and_in_order(s, stack_urls):
    """read_queue holds at most `window` messages per channel (bounded memory); 300 orders through
    windows of 40 must all be seen, and all go back, each in its original place."""
    import pika

    broker.purge(s.amqp_url, s.queue)
    orders = [new_order(f"windowed-{i:03d}", 7003) for i in range(300)]
    publish(s, orders)
    try:
        seen, complete = reconcile.read_queue(s, window=40)
        assert complete and [o["order_id"] for o in seen] == [o["order_id"] for o in orders]
        assert broker.queue_depth(s.amqp_url, s.queue) == 300, "reading must not take orders out"
        connection = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
        try:
            channel = connection.channel()
            back = [json.loads(channel.basic_get(s.queue, auto_ack=True)[2])["order_id"] for _ in range(300)]
        finally:
            connection.close()
        assert back == [o["order_id"] for o in orders], "the queue's order changed"
    finally:
        broker.purge(s.amqp_url, s.queue)


def test_a_slow_broker_is_waited_for_not_taken_for_an_empty_queue(s, stack_urls):
    """A pause between deliveries (a loaded machine) is not the end of the queue while messages are still
    ready: `seckill bench --scale` once read 83,209 of 200,000 and called it complete. Here every pause
    longer than 0.1 ms counts as one; the read must still see all 2,000 orders."""
    broker.purge(s.amqp_url, s.queue)
    orders = [new_order(f"slow-{i:04d}", 7004) for i in range(2_000)]
    publish(s, orders)
    try:
        seen, complete = reconcile.read_queue(s, window=40, idle_s=0.0001)
        assert complete and len(seen) == 2_000, f"read {len(seen)} of 2,000 (complete={complete})"
        assert broker.queue_depth(s.amqp_url, s.queue) == 2_000
    finally:
        broker.purge(s.amqp_url, s.queue)


# -- many buyers: reported as a count and a bounded sample, fixed a page at a time ----------

def big_sale(s, r, pid: int, stock: int, orders: int) -> list[str]:
    """A sale of ``stock`` where ``orders`` users bought (PostgreSQL by COPY, Redis by SADD): all agree."""
    from seckill.stack import db

    create_sale(s, pid, stock, force=True, redis=r)
    users = [f"many-{i:05d}" for i in range(orders)]
    with db.connect(s.postgres_url, autocommit=True) as conn:
        with conn.cursor().copy("COPY orders (order_id, user_id, product_id, created_at) FROM STDIN") as copy:
            for user in users:
                copy.write_row((f"o-{pid}-{user}", user, pid, "2026-01-01T00:00:00Z"))
        conn.execute("UPDATE products SET stock = stock - %s WHERE id = %s", (orders, pid))
    r.sadd(f"buyers:{pid}", *users)
    r.decrby(f"stock:{pid}", orders)
    return users


def test_thousands_of_missing_buyers_are_counted_sampled_and_all_restored(s, redis_client):
    """2,500 buyers Redis forgot: the report names the first SAMPLE (1,000) and counts all 2,500; --fix
    restores every one (pages of 1,000, so three pages)."""
    pid = 7005
    users = big_sale(s, redis_client, pid, stock=3_000, orders=2_500)
    redis_client.delete(f"buyers:{pid}")

    found = run(s, redis_client, pid)
    missing = found.of(pid, "buyers_missing")
    assert missing is not None and missing.count == 2_500 and missing.expected == set(users[:reconcile.SAMPLE])
    assert f"buyers missing — 2,500 users ({', '.join(users[:3])}, …)" in missing.line()
    data = missing.as_dict()
    assert data["count"] == 2_500 and data["expected"] == users[:reconcile.SAMPLE]
    assert found.products[pid]["pg_orders"] == 2_500 and found.products[pid]["redis_buyers"] == 0

    fixed = run(s, redis_client, pid, fix=True)
    assert fixed.consistent, str(fixed)
    assert redis_client.scard(f"buyers:{pid}") == 2_500
    assert redis_client.smembers(f"buyers:{pid}") == set(users)
    assert run(s, redis_client, pid).discrepancies == []


def test_extra_buyers_beyond_a_page_return_only_the_items_missing_from_stock(s, redis_client):
    """1,500 buyers with no order (crash-between leaks of 1,200 items, and 300 that took no item): every
    one leaves buyers:{id}, but only 1,200 items go back — returning all 1,500 would oversell 300."""
    pid = 7006
    users = big_sale(s, redis_client, pid, stock=3_000, orders=1_000)
    ghosts = [f"ghost-{i:05d}" for i in range(1_500)]
    redis_client.sadd(f"buyers:{pid}", *ghosts)
    redis_client.decrby(f"stock:{pid}", 1_200)

    found = run(s, redis_client, pid)
    assert {d.kind for d in found.discrepancies} == {"stock_low", "buyers_extra"}, str(found)
    assert found.of(pid, "buyers_extra").count == 1_500 and found.products[pid]["redis_buyers"] == 2_500

    fixed = run(s, redis_client, pid, fix=True)
    assert fixed.consistent, str(fixed)
    assert "1200 items returned to stock" in fixed.of(pid, "buyers_extra").note
    assert int(redis_client.get(f"stock:{pid}")) == 3_000 - 1_000
    assert redis_client.smembers(f"buyers:{pid}") == set(users)


def test_buyer_names_copy_must_escape_are_compared_exactly(s, redis_client, sale):
    """Names with a tab, a backslash, a newline or a carriage return travel to PostgreSQL (COPY text
    format) unharmed: bought ones agree, a planted one is found under its own name."""
    odd = ["tab\tuser", "back\\slash", "new\nline", "cr\ruser", "\\.", "ünïcødé"]
    cache = impl.load("stock", "solutions").StockCache(redis_client)
    for user in odd[:-1]:
        assert cache.reserve_once(sale, user) == "ok"
    write_orders(s, [new_order(u, sale) for u in odd[:-1]])
    assert run(s, redis_client, sale).discrepancies == []

    assert cache.reserve_once(sale, odd[-1]) == "ok"  # reserved, no order
    found = run(s, redis_client, sale)
    assert found.of(sale, "buyers_extra").redis == {odd[-1]}, str(found)


def _drain_slowly(url: str, queue: str, stop: threading.Event, acked: list[str]) -> None:
    """Another consumer, as the order service during a sale: one message at a time, acknowledged after 20 ms."""
    import pika
    import time

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        for method, _props, body in channel.consume(queue, auto_ack=False, inactivity_timeout=0.05):
            if stop.is_set():
                break
            if method is not None:
                time.sleep(0.02)
                channel.basic_ack(method.delivery_tag)
                acked.append(json.loads(body)["order_id"])
    finally:
        connection.close()


def test_a_read_beside_a_draining_consumer_ends_complete_without_waiting_for_its_messages(s, stack_urls):
    """While the order service drains, the messages it holds are in flight: once nothing is ready the read
    ends, complete (it waits for missing messages only when nobody else consumes: then they must be on
    their way to it, and ending early once saw 1,996 of 2,000 and called it complete)."""
    import time

    broker.purge(s.amqp_url, s.queue)
    publish(s, [new_order(f"drained-{i:03d}", 7007) for i in range(300)])
    stop, acked = threading.Event(), []
    other = threading.Thread(target=_drain_slowly, args=(s.amqp_url, s.queue, stop, acked), daemon=True)
    other.start()
    try:
        for _ in range(500):
            if acked:
                break
            time.sleep(0.01)
        assert acked, "the other consumer took nothing"
        seen, complete = reconcile.read_queue(s, window=40, timeout_s=8, idle_s=0.05)
        assert complete, "the read waited for the other consumer's messages until its timeout"
        ids = [o["order_id"] for o in seen]
        assert len(ids) == len(set(ids)) and 0 < len(ids) < 300, len(ids)
    finally:
        stop.set()
        other.join(timeout=10)
        broker.purge(s.amqp_url, s.queue)

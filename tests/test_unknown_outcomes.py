"""Yes, no and unknown (issue 11 §1, §2): a publish that timed out is not a failure; a poison message blocks nothing.

On the real broker and database: the broker is really frozen (SIGSTOP), the poison
messages are really published by hand to a real queue, and PostgreSQL really
refuses them.
"""

from __future__ import annotations

import json
import random
import signal
import string
import threading
import time

import pika
import psycopg
import pytest
import redis

from seckill import chaos
from seckill.stack import processes
from seckill.system import tiers
from seckill.config import settings
from solutions import consumer as consumer_mod
from solutions.consumer import OrderConsumer
from solutions.producer import OrderProducer, PublishError, PublishUnknown

from test_solutions_consumer import add_products, order


# -- §1 the producer: unknown is its own outcome, and it is bounded ------------------------------

def _frozen_broker():
    s = settings()
    processes.kill(s.run_dir, "rabbitmq", signal.SIGSTOP)
    return lambda: processes.kill(s.run_dir, "rabbitmq", signal.SIGCONT)


def _send_in_thread(producer, payload, wait_s):
    """send_order in a thread; (exception or None, seconds) or ("hung", wait_s) when it did not return."""
    box = {}

    def go():
        t0 = time.monotonic()
        try:
            producer.send_order(payload)
            box["result"] = (None, time.monotonic() - t0)
        except Exception as exc:  # the test judges the kind
            box["result"] = (exc, time.monotonic() - t0)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(wait_s)
    return box.get("result", ("hung", wait_s))


def test_a_frozen_broker_gives_unknown_on_an_open_connection_and_no_on_a_new_one(amqp_url, fresh_queue):
    warm = OrderProducer(amqp_url, queue=fresh_queue)
    warm.send_order(order(1))  # connected, channel open, confirms on
    resume = _frozen_broker()
    try:
        exc, took = _send_in_thread(warm, order(2), wait_s=15)
        assert exc != "hung", "a publish on a frozen broker must give up (bounded), not wait for the thaw"
        assert isinstance(exc, PublishUnknown), f"sent but not confirmed is UNKNOWN, got {exc!r}"
        assert took < 10
        cold = OrderProducer(amqp_url, queue=fresh_queue)
        exc, took = _send_in_thread(cold, order(3), wait_s=15)
        assert isinstance(exc, PublishError) and not isinstance(exc, PublishUnknown), \
            f"no connection (handshake timed out) is a definite failure, got {exc!r}"
    finally:
        resume()
    # the unknown one was in fact queued: the broker read it after the thaw
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        deadline = time.monotonic() + 10
        count = 0
        while time.monotonic() < deadline:
            count = conn.channel().queue_declare(fresh_queue, durable=True).method.message_count
            if count >= 2:
                break
            time.sleep(0.2)
        assert count == 2, "order 1 (confirmed) and order 2 (unknown) are both queued; order 3 never was"
    finally:
        conn.close()
        warm.close()


# -- §1 the failure lab, on each queue tier -------------------------------------------------------

@pytest.fixture(scope="module")
def stall_tiers(stack_urls):
    yield
    tiers.down(out=None)


@pytest.mark.parametrize("tier", ["flask", "fastapi"])
def test_broker_stall_lab(stall_tiers, tier):
    report = chaos.run("broker-stall", save=False, tier=tier, before=20, during=20, after=20)
    assert report.ok, str(report)
    m = report.metrics
    assert m["answers_202"] >= 1, "buyers on the open connection got pending (unknown), not 503"
    if tier == "flask":  # a connection per thread: threads without one cannot open one → 503, nothing sent
        assert m["answers_503"] >= 1, "buyers that needed a new connection got 503 (nothing sent)"
    assert m["pending_confirmed"] >= 1, "the unknown publishes were queued after all and became orders"
    assert set(report.series["status"]) <= {200, 202, 503}


# -- §2 poison messages ------------------------------------------------------------------------------

def _publish_raw(amqp_url, queue, bodies):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        for body in bodies:
            ch.basic_publish("", queue, body)
    finally:
        conn.close()


def _dead_letters(amqp_url, queue):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        out = []
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(((props.headers or {}).get("x-dead-reason", ""), body))
    finally:
        ch.queue_delete(queue)
        conn.close()


# 9,000 characters that do not compress (a run of "x" would: PostgreSQL compresses index entries)
LONG_ID = "".join(random.Random(11).choices(string.ascii_letters + string.digits, k=9000))
POISON = [
    json.dumps({**order(1), "user_id": "poison", "order_id": LONG_ID}).encode(),  # index row too large
    b'{"order_id": "o-2", "user_id": "\\ud800", "product_id": 1, "created_at": "2024-11-11T00:00:00+00:00"}',
]


def test_poison_messages_are_dead_lettered_and_the_valid_order_behind_them_is_written(amqp_url, pg_dsn, fresh_queue):
    add_products(pg_dsn, p1=5)
    _publish_raw(amqp_url, fresh_queue, POISON + [json.dumps(order(3)).encode()])
    consumer = OrderConsumer(amqp_url, pg_dsn, queue=fresh_queue, prefetch=10, batch_size=10)
    try:
        assert consumer.run(max_messages=3, idle_timeout=5) == 3
    finally:
        consumer.close()
    with psycopg.connect(pg_dsn) as conn:
        assert [r[0] for r in conn.execute("SELECT order_id FROM orders").fetchall()] == ["o-3"]
        rejected = dict(conn.execute("SELECT order_id, reason FROM order_rejections").fetchall())
    assert list(rejected) == ["o-2"] and rejected["o-2"].startswith("invalid"), rejected
    dead = _dead_letters(amqp_url, f"{fresh_queue}.dead")
    assert len(dead) == 2
    assert "9000 characters" in dead[0][0] and "Unicode" in dead[1][0]


def test_an_order_the_database_refuses_is_isolated_retried_and_dead_lettered(amqp_url, pg_dsn, fresh_queue,
                                                                                 monkeypatch):
    """Validation switched off for length: PostgreSQL itself refuses the 9,000-character id (index row too big).

    The batch of five fails as a whole; it is split until the one bad order is alone, that one is
    tried MAX_ATTEMPTS times and dead-lettered, and the four good orders around it are written.
    """
    monkeypatch.setattr(consumer_mod, "MAX_ID_CHARS", 100_000)
    add_products(pg_dsn, p1=10)
    bodies = [json.dumps(order(n)).encode() for n in (1, 2)] + [POISON[0]] + \
        [json.dumps(order(n)).encode() for n in (4, 5)]
    _publish_raw(amqp_url, fresh_queue, bodies)
    consumer = OrderConsumer(amqp_url, pg_dsn, queue=fresh_queue, prefetch=10, batch_size=5)
    calls = []
    original = consumer.handle_batch
    consumer.handle_batch = lambda orders: calls.append(len(orders)) or original(orders)
    try:
        time.sleep(0.3)  # let all five arrive, so they form one batch
        assert consumer.run(max_messages=5, idle_timeout=5) == 5
    finally:
        consumer.close()
    with psycopg.connect(pg_dsn) as conn:
        written = sorted(r[0] for r in conn.execute("SELECT order_id FROM orders").fetchall())
    assert written == ["o-1", "o-2", "o-4", "o-5"]
    assert calls.count(1) >= consumer_mod.MAX_ATTEMPTS, f"the lone bad order was retried: batches {calls}"
    dead = _dead_letters(amqp_url, f"{fresh_queue}.dead")
    assert len(dead) == 1 and "refused by PostgreSQL" in dead[0][0]


# -- §2 and §3 as failure labs -----------------------------------------------------------------------

@pytest.mark.parametrize("tier", ["flask", "fastapi"])
def test_poison_lab(stall_tiers, tier):
    report = chaos.run("poison", save=False, tier=tier)
    assert report.ok, str(report)
    assert report.metrics["dead_lettered"] == 2


@pytest.mark.parametrize("tier", ["flask", "fastapi"])
def test_pg_down_lab_on_queue_tiers(stall_tiers, tier):
    report = chaos.run("pg-down", save=False, tier=tier)
    assert report.ok, str(report)
    assert report.metrics["stop_s"] < 10, "fast shutdown: PostgreSQL does not wait for its clients"


def test_pg_down_lab_on_db_direct(stall_tiers):
    report = chaos.run("pg-down", save=False, tier="db-direct")
    assert report.ok, str(report)


def test_postgres_restarts_right_after_a_stop_with_clients_connected(stack_urls):
    from seckill import stack

    s = settings()
    clients = [psycopg.connect(s.postgres_url) for _ in range(3)]
    try:
        for conn in clients:
            conn.execute("SELECT 1")
        for _ in range(2):  # twice: the second start must not trip on a stale postmaster.pid
            t0 = time.monotonic()
            stack.stop_service("postgres")
            assert time.monotonic() - t0 < 10, "fast shutdown, not smart (which waits for every client)"
            stack.start_service("postgres")
        with psycopg.connect(s.postgres_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        for conn in clients:
            conn.close()


# -- §1 the gateway's decision: unknown keeps the item, no gives it back (real Redis and PostgreSQL) --------

class _Producer:
    """A producer whose publish ends as told: the decision under test is the gateway's, not the broker's."""

    def __init__(self, error: Exception | None):
        self.error = error

    def send_order(self, order):
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_unknown_publish_answers_202_and_keeps_the_item_and_a_definite_failure_503_and_releases(stack_urls, kind):
    import asyncio

    from seckill.system import gateway, gateway_async
    from seckill.system.sale import create_sale

    s = settings()
    product = 9341 if kind == "sync" else 9342
    create_sale(s, product, 10, force=True)

    async def run_async():
        gw = gateway_async.build(s)
        answers = {}
        try:
            for name, error in (("unknown", gateway_async.PublishUnknown("sent, no confirm")),
                                ("no", gateway_async.PublishError("no connection"))):
                gw.producer = _AsyncProducer(error)
                body = json.dumps({"user_id": f"u-{name}"}).encode()
                reply = await gw.buy(str(product), body, f"10.9.0.{len(answers)}")
                status = await gw.order_status(reply.body["order_id"]) if reply.status == 202 else None
                answers[name] = (reply, status, await gw.stock.get_stock(product))
            return answers
        finally:
            await gw.producer.close()

    if kind == "sync":
        gw = gateway.build(s)
        answers = {}
        for name, error in (("unknown", PublishUnknown("sent, no confirm")), ("no", PublishError("no connection"))):
            gw.producer = _Producer(error)
            reply = gw.buy(str(product), json.dumps({"user_id": f"u-{name}"}).encode(), f"10.9.0.{len(answers)}")
            status = gw.order_status(reply.body["order_id"]) if reply.status == 202 else None
            answers[name] = (reply, status, gw.stock.get_stock(product))
    else:
        answers = asyncio.run(run_async())

    reply, status, stock = answers["unknown"]
    assert reply.status == 202 and reply.body["status"] == "pending", reply
    assert status.body["status"] == "pending", "the status endpoint says pending while the item is held"
    assert stock == 9, "an unknown outcome keeps the reservation"
    reply, _, stock = answers["no"]
    assert reply.status == 503 and stock == 9, "a definite failure releases the reservation"

    # reconciliation proved the pending order lost and gave its item back: the status turns rejected
    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    r.srem(f"buyers:{product}", "u-unknown")
    order_id = answers["unknown"][0].body["order_id"]
    if kind == "sync":
        assert gw.order_status(order_id).body["status"] == "rejected"
    else:
        async def status_now():
            gw2 = gateway_async.build(s)
            try:
                return (await gw2.order_status(order_id)).body["status"]
            finally:
                await gw2.producer.close()
        assert asyncio.run(status_now()) == "rejected"


class _AsyncProducer(_Producer):
    async def send_order(self, order):
        super().send_order(order)

    async def close(self):
        pass


@pytest.mark.parametrize("tier", ["fastapi", "flask"])
def test_the_issue_example_stock_5_frozen_broker(stall_tiers, tier):
    """Issue 11 §1 as reported: stock 5; a0…a4 buy while the broker is frozen; b0…b4 after it resumed.

    Wrong (before): a0…a4 told 503 yet hold the orders, b0…b4 told 200 and rejected. Right: a0…a4 told
    202 pending and their items kept, so b0…b4 are told sold out; a0…a4's orders are written and
    confirmed; nobody told 503 holds an order; Redis and PostgreSQL both end at 0.
    """
    from seckill.measure import invariants
    from seckill.chaos import broker_stall
    from seckill.chaos._queue import tier_for
    from seckill.chaos import ChaosReport
    from seckill.system.sale import create_sale

    s = settings()
    product = 9351
    base = tier_for(ChaosReport("example", ""), tier)["base_url"]
    invariants.wait_for_drain(s, product, timeout_s=30)
    create_sale(s, product, 5, force=True)
    create_sale(s, product + 1, 100, force=True)
    ips = iter(f"10.77.{i // 250}.{i % 250 + 1}" for i in range(1000))
    for i in range(12):  # open the gateway's broker connections first (each worker's), on another sale
        assert broker_stall._post(base, product + 1, f"warm-{i}", next(ips))[0] == 200
    answers = {}
    broker_stall.freeze_broker(True)
    try:
        threads = [threading.Thread(target=lambda u=f"a{i}", ip=next(ips): answers.__setitem__(
            u, broker_stall._post(base, product, u, ip))) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        broker_stall.freeze_broker(False)
    statuses = {u: a[0] for u, a in answers.items()}
    assert set(statuses.values()) <= {202, 503}, f"sent but unconfirmed → 202; no connection → 503: {statuses}"
    assert 202 in statuses.values(), f"buyers on an open connection are told pending: {statuses}"
    time.sleep(1)
    later = {f"b{i}": broker_stall._post(base, product, f"b{i}", next(ips)) for i in range(5)}
    held = [u for u, st in statuses.items() if st in (200, 202)]
    told_503 = [u for u, st in statuses.items() if st == 503]
    # the items of the a's that were not told 503 are still theirs: the b's find only what 503s gave back
    assert sum(1 for st, _ in later.values() if st == 200) == len(told_503), later
    assert all(st == 409 for st, body in later.values() if st != 200), later
    ids = [a[1]["order_id"] for u, a in answers.items() if u in held]
    ids += [body["order_id"] for st, body in later.values() if st == 200]
    assert invariants.wait_for_drain(s, product, expected_orders=len(ids), timeout_s=60)
    for order_id in ids:
        assert broker_stall.order_status(base, order_id) == "confirmed"
    assert not broker_stall.orders_of_users(s, product, told_503), "told 503 → no order"
    check = invariants.check_sale(s, product, ids)
    assert check.ok and check.orders == 5 and check.redis_stock == 0, check.as_dict()


def test_a_pending_order_that_never_reached_the_queue_is_proven_lost_by_reconcile_then_rejected(stack_urls):
    """The one case where "unknown" turns out "no": the message never left the gateway.

    The item stays reserved (never released on a guess); `reconcile --fix` finds a buyer with no
    order in PostgreSQL and none in the queue, twice, returns the item, and the status says rejected.
    """
    from seckill.system import gateway, reconcile
    from seckill.measure import invariants
    from seckill.system.sale import create_sale

    s = settings()
    product = 9361
    invariants.wait_for_drain(s, product, timeout_s=30)
    create_sale(s, product, 3, force=True)
    gw = gateway.build(s)
    gw.producer = _Producer(PublishUnknown("cut off before it was written to the socket"))
    reply = gw.buy(str(product), json.dumps({"user_id": "lost-1"}).encode(), "10.9.1.1")
    assert reply.status == 202 and gw.stock.get_stock(product) == 2
    order_id = reply.body["order_id"]
    assert gw.order_status(order_id).body["status"] == "pending"

    reconcile.reconcile(s, product, fix=True, settle_s=1.0)
    assert gw.stock.get_stock(product) == 3, "reconciliation proved the order lost and returned its item"
    assert gw.order_status(order_id).body["status"] == "rejected"
    assert reconcile.reconcile(s, product).consistent

"""solutions.consumer against real PostgreSQL and RabbitMQ: idempotent, guarded, ack after commit."""

import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import pika
import psycopg
import pytest

from solutions.consumer import BadOrder, OrderConsumer, parse_order, validate_order
from solutions.producer import OrderProducer

T0 = datetime(2024, 11, 11, tzinfo=timezone.utc)


def order(n: int, user: str | None = None, product: int = 1, seconds: float | None = None) -> dict:
    """Order number n; created n ms after T0 unless told otherwise."""
    created = T0 + timedelta(milliseconds=n if seconds is None else seconds * 1000)
    return {"order_id": f"o-{n}", "user_id": user or f"u-{n}", "product_id": product, "created_at": created.isoformat()}


def add_products(dsn: str, **stock_by_id: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for product_id, stock in stock_by_id.items():
            conn.execute(
                "INSERT INTO products (id, name, stock, initial_stock) VALUES (%s, %s, %s, %s)",
                (int(product_id.lstrip("p")), product_id, stock, stock),
            )


def snapshot(dsn: str) -> dict:
    """Everything the consumer writes, in comparable form."""
    with psycopg.connect(dsn) as conn:
        return {
            "stock": dict(conn.execute("SELECT id, stock FROM products ORDER BY id").fetchall()),
            "orders": conn.execute("SELECT order_id, user_id, product_id FROM orders ORDER BY order_id").fetchall(),
            "rejections": conn.execute(
                "SELECT order_id, user_id, product_id, reason FROM order_rejections ORDER BY order_id"
            ).fetchall(),
        }


@pytest.fixture
def consumer(amqp_url, pg_dsn, fresh_queue):
    consumer = OrderConsumer(amqp_url, pg_dsn, queue=fresh_queue, prefetch=50, batch_size=20)
    yield consumer
    consumer.close()


# -- validation ---------------------------------------------------------------


def test_parse_order_normalises_fields():
    parsed = parse_order(json.dumps({**order(1), "product_id": "7", "created_at": "2024-11-11T08:00:00"}).encode())
    assert parsed["product_id"] == 7
    assert parsed["created_at"] == datetime(2024, 11, 11, 8, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({k: v for k, v in order(1).items() if k != "user_id"}).encode(),
        json.dumps({**order(1), "product_id": "seven"}).encode(),
        json.dumps({**order(1), "product_id": 2**63}).encode(),
        json.dumps({**order(1), "created_at": "yesterday"}).encode(),
        json.dumps({**order(1), "order_id": ""}).encode(),
        json.dumps({**order(1), "user_id": "a\x00b"}).encode(),
    ],
)
def test_parse_order_refuses_what_postgres_would_choke_on(body):
    with pytest.raises(BadOrder):
        parse_order(body)


# -- handle: one order per transaction ------------------------------------------


def test_handle_writes_the_order_and_takes_one_item(consumer, pg_dsn):
    add_products(pg_dsn, p1=3)
    assert consumer.handle(order(1)) is True
    state = snapshot(pg_dsn)
    assert state["orders"] == [("o-1", "u-1", 1)]
    assert state["stock"] == {1: 2}
    assert state["rejections"] == []


def test_handle_redelivery_is_a_no_op(consumer, pg_dsn):
    add_products(pg_dsn, p1=3)
    assert consumer.handle(order(1)) is True
    before = snapshot(pg_dsn)
    assert consumer.handle(order(1)) is False
    assert consumer.handle(order(1)) is False
    assert snapshot(pg_dsn) == before


def test_handle_second_purchase_is_rejected_as_already_bought(consumer, pg_dsn):
    add_products(pg_dsn, p1=3)
    assert consumer.handle(order(1, user="alice")) is True
    assert consumer.handle(order(2, user="alice")) is False
    state = snapshot(pg_dsn)
    assert state["orders"] == [("o-1", "alice", 1)]
    assert state["stock"] == {1: 2}
    assert state["rejections"] == [("o-2", "alice", 1, "already_bought")]


def test_handle_never_writes_more_orders_than_stock(consumer, pg_dsn):
    add_products(pg_dsn, p1=2)
    assert [consumer.handle(order(n)) for n in range(1, 6)] == [True, True, False, False, False]
    state = snapshot(pg_dsn)
    assert [row[0] for row in state["orders"]] == ["o-1", "o-2"]
    assert state["stock"] == {1: 0}
    assert [(row[0], row[3]) for row in state["rejections"]] == [
        ("o-3", "sold_out"),
        ("o-4", "sold_out"),
        ("o-5", "sold_out"),
    ]


def test_handle_unknown_product(consumer, pg_dsn):
    assert consumer.handle(order(1, product=404)) is False
    assert snapshot(pg_dsn)["rejections"] == [("o-1", "u-1", 404, "unknown_product")]


def test_handle_redelivered_rejection_stays_rejected(consumer, pg_dsn):
    add_products(pg_dsn, p1=0)
    assert consumer.handle(order(1)) is False
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE products SET stock = 5")  # a restock after the refusal
    assert consumer.handle(order(1)) is False  # the decision stands
    state = snapshot(pg_dsn)
    assert state["orders"] == []
    assert state["rejections"] == [("o-1", "u-1", 1, "sold_out")]


# -- handle_batch: one transaction per batch --------------------------------------


def tricky_batch() -> list[dict]:
    """Duplicates, second purchases, unknown products and too little stock, in one batch."""
    batch = [order(n, product=1 + n % 2) for n in range(1, 31)]  # 15 orders each for products 1 and 2
    batch += [order(3)]  # a redelivered copy inside the batch
    batch += [order(40, user="u-4", product=1)]  # u-4 already ordered product 1
    batch += [order(41, product=404), order(41, product=404)]
    batch += [order(42, user="late", product=2), order(43, user="late", product=2)]  # both sold out
    batch += [order(1)]  # a copy of the first order
    return batch


def test_handle_batch_matches_handle_one_by_one(consumer, pg_dsn):
    add_products(pg_dsn, p1=10, p2=12, p3=1)
    consumer.handle(order(100, user="earlier", product=1))  # a pre-existing order and rejection
    consumer.handle(order(101, product=404))
    batch = tricky_batch() + [order(100, user="earlier", product=1), order(101, product=404)]

    one_by_one = [consumer.handle(o) for o in batch]
    expected = snapshot(pg_dsn)

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE orders, order_rejections, products")
    add_products(pg_dsn, p1=10, p2=12, p3=1)
    consumer.handle(order(100, user="earlier", product=1))
    consumer.handle(order(101, product=404))
    assert consumer.handle_batch(batch) == one_by_one
    assert snapshot(pg_dsn) == expected

    # The expectations themselves, so both cannot be wrong the same way:
    assert sum(one_by_one) == 9 + 12
    assert expected["stock"] == {1: 0, 2: 0, 3: 1}
    reasons = {row[0]: row[3] for row in expected["rejections"]}
    assert reasons["o-40"] == "already_bought"
    assert reasons["o-41"] == reasons["o-101"] == "unknown_product"
    assert reasons["o-42"] == reasons["o-43"] == "sold_out"
    assert len(expected["orders"]) == 1 + 9 + 12


def test_handle_batch_keeps_the_earliest_when_stock_runs_out(consumer, pg_dsn):
    add_products(pg_dsn, p1=3)
    batch = [order(n, seconds=10 - n) for n in range(1, 7)]  # batch order is latest first
    assert consumer.handle_batch(batch) == [False, False, False, True, True, True]
    state = snapshot(pg_dsn)
    assert [row[0] for row in state["orders"]] == ["o-4", "o-5", "o-6"]
    assert state["stock"] == {1: 0}
    assert {row[0]: row[3] for row in state["rejections"]} == {"o-1": "sold_out", "o-2": "sold_out", "o-3": "sold_out"}


def test_handle_batch_redelivery_changes_nothing(consumer, pg_dsn):
    add_products(pg_dsn, p1=5)
    batch = [order(n) for n in range(1, 9)]
    assert sum(consumer.handle_batch(batch)) == 5
    before = snapshot(pg_dsn)
    assert consumer.handle_batch(batch) == [False] * 8
    assert consumer.handle_batch(list(reversed(batch))) == [False] * 8
    assert snapshot(pg_dsn) == before
    assert consumer.handle_batch([]) == []


def test_concurrent_writers_never_oversell_or_deadlock(amqp_url, pg_dsn):
    """Four consumers (batches and single orders mixed) on the same two products."""
    add_products(pg_dsn, p1=30, p2=30)
    orders = [order(n, product=1 + n % 2) for n in range(400)]
    random.Random(7).shuffle(orders)
    chunks = [orders[i::4] for i in range(4)]
    written = []
    errors = []

    def work(index: int) -> None:
        consumer = OrderConsumer(amqp_url, pg_dsn)
        try:
            mine = chunks[index]
            if index == 0:
                written.append(sum(consumer.handle(o) for o in mine))
            else:
                written.append(sum(sum(consumer.handle_batch(mine[i : i + 25])) for i in range(0, len(mine), 25)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            consumer.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(written) == 60
    state = snapshot(pg_dsn)
    assert state["stock"] == {1: 0, 2: 0}
    assert len(state["orders"]) == 60
    assert len(state["rejections"]) == 340


# -- run: the service loop -------------------------------------------------------


def publish(amqp_url: str, queue: str, orders: list[dict]) -> None:
    with OrderProducer(amqp_url, queue=queue) as producer:
        for o in orders:
            producer.send_order(o)


def publish_raw(amqp_url: str, queue: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True)
    for body in bodies:
        channel.basic_publish(exchange="", routing_key=queue, body=body)
    connection.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue=queue, passive=True).method.message_count
    finally:
        connection.close()


def test_run_writes_then_acks_everything(consumer, amqp_url, pg_dsn, fresh_queue):
    add_products(pg_dsn, p1=1000)
    publish(amqp_url, fresh_queue, [order(n) for n in range(120)])
    assert consumer.run(max_messages=120, idle_timeout=10) == 120
    assert len(snapshot(pg_dsn)["orders"]) == 120
    assert queue_depth(amqp_url, fresh_queue) == 0  # acknowledged, not merely delivered


def test_run_stops_at_max_messages_and_leaves_the_rest(consumer, amqp_url, pg_dsn, fresh_queue):
    add_products(pg_dsn, p1=1000)
    publish(amqp_url, fresh_queue, [order(n) for n in range(30)])
    assert consumer.run(max_messages=10, idle_timeout=10) == 10
    assert len(snapshot(pg_dsn)["orders"]) == 10
    assert queue_depth(amqp_url, fresh_queue) == 20  # prefetched extras went back
    assert consumer.run(idle_timeout=0.5) == 20
    assert len(snapshot(pg_dsn)["orders"]) == 30


def test_run_returns_after_idle_timeout(consumer):
    started = time.monotonic()
    assert consumer.run(idle_timeout=0.5) == 0
    assert 0.4 < time.monotonic() - started < 3


def test_run_drops_malformed_messages_without_blocking_the_queue(consumer, amqp_url, pg_dsn, fresh_queue):
    add_products(pg_dsn, p1=10)
    bodies = [json.dumps(order(1)).encode(), b"not json", b'{"order_id": "half"}', json.dumps(order(2)).encode()]
    publish_raw(amqp_url, fresh_queue, bodies)
    assert consumer.run(idle_timeout=0.5) == 4
    assert [row[0] for row in snapshot(pg_dsn)["orders"]] == ["o-1", "o-2"]
    assert queue_depth(amqp_url, fresh_queue) == 0


def test_run_with_duplicate_messages_writes_once(consumer, amqp_url, pg_dsn, fresh_queue):
    add_products(pg_dsn, p1=10)
    publish(amqp_url, fresh_queue, [order(1), order(2), order(1)])  # a producer retry
    assert consumer.run(max_messages=3, idle_timeout=5) == 3
    state = snapshot(pg_dsn)
    assert [row[0] for row in state["orders"]] == ["o-1", "o-2"]
    assert state["stock"] == {1: 8}


def test_run_does_not_ack_when_the_database_fails(amqp_url, fresh_queue):
    publish(amqp_url, fresh_queue, [order(n) for n in range(5)])
    dead_db = "postgresql://seckill@127.0.0.1:1/seckill?connect_timeout=2"
    consumer = OrderConsumer(amqp_url, dead_db, queue=fresh_queue)
    with pytest.raises(psycopg.OperationalError):
        consumer.run(max_messages=5, idle_timeout=5)
    assert queue_depth(amqp_url, fresh_queue) == 5  # nothing was lost


def test_validate_order_accepts_datetime_objects():
    created = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)
    assert validate_order({**order(1), "created_at": created})["created_at"] == created

"""Checks for labs/consumer.py, on database seckill_grader and queues grader-<uuid>."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

from ._base import Check, expect

P = 7
_T0 = datetime(2026, 11, 11, 20, 0, tzinfo=timezone.utc)


def _order(user: str, product_id: int = P, n: int = 0) -> dict:
    return {"order_id": uuid.uuid4().hex, "user_id": user, "product_id": product_id,
            "created_at": (_T0 + timedelta(milliseconds=n)).isoformat()}


def _setup(ctx, stock: int):
    conn = ctx.pg()
    conn.execute("INSERT INTO products (id, name, stock, initial_stock) VALUES (%s, 'grader', %s, %s)",
                 (P, stock, stock))
    return conn


def _consumer(ctx, mod, queue: str = "grader-unused", dsn: str | None = None):
    consumer = mod.OrderConsumer(ctx.amqp_url, dsn or ctx.pg_dsn, queue=queue)
    ctx.cleanups.append(lambda: getattr(consumer, "close", lambda: None)())
    return consumer


def _facts(conn) -> tuple[int, int]:
    orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    stock = conn.execute("SELECT stock FROM products WHERE id = %s", (P,)).fetchone()[0]
    return orders, stock


def _publish(ctx, queue: str, orders: list[dict]) -> None:
    import pika

    channel = ctx.amqp().channel()
    channel.queue_declare(queue=queue, durable=True)
    channel.confirm_delivery()
    for order in orders:
        channel.basic_publish("", queue, json.dumps(order).encode(),
                              pika.BasicProperties(delivery_mode=2, content_type="application/json"))


def writes_once(ctx, mod) -> None:
    conn = _setup(ctx, 10)
    consumer = _consumer(ctx, mod)
    order = _order("ann")
    first = consumer.handle(order)
    expect(first is True and _facts(conn) == (1, 9),
           "handle writes the order and takes one item from the product's stock, in one transaction, and "
           "says True.", f"first handle: returned {first!r}, (orders, stock) = {_facts(conn)} (expected (1, 9))")
    again = consumer.handle(dict(order))
    expect(again is False and _facts(conn) == (1, 9),
           "RabbitMQ delivers at least once, so the same order can arrive twice. Make the second copy "
           "harmless: the database already knows this order id, so writing it again must change nothing "
           "(and not fail).", f"redelivered copy: returned {again!r}, (orders, stock) = {_facts(conn)}")


def one_per_user(ctx, mod) -> None:
    conn = _setup(ctx, 10)
    consumer = _consumer(ctx, mod)
    consumer.handle(_order("ann"))
    second = consumer.handle(_order("ann", n=1))
    expect(second is False and _facts(conn) == (1, 9),
           "One purchase per user per product: the database refuses a second order of the same user for the "
           "same product; handle must treat that refusal as an answer (False), not a crash, and take no stock.",
           f"second order of the same user: returned {second!r}, (orders, stock) = {_facts(conn)}")


def guarded_stock(ctx, mod) -> None:
    conn = _setup(ctx, 3)
    consumer = _consumer(ctx, mod)
    answers = [consumer.handle(_order(f"u{n}", n=n)) for n in range(5)]
    expect(answers == [True, True, True, False, False] and _facts(conn) == (3, 0),
           "PostgreSQL is the last guard against overselling: the stock update must only succeed while there "
           "is stock, and an order that found none must not stay written.",
           f"stock 3, five users: answers {answers}, (orders, stock) = {_facts(conn)} (expected (3, 0))")


def unknown_product(ctx, mod) -> None:
    conn = _setup(ctx, 3)
    consumer = _consumer(ctx, mod)
    answer = consumer.handle(_order("ann", product_id=P + 1000))
    expect(answer is False and _facts(conn) == (0, 3),
           "An order for a product the database does not know is refused (False), not a crash that would "
           "bring the message back forever.", f"returned {answer!r}, (orders, stock) = {_facts(conn)}")


def run_drains(ctx, mod) -> None:
    conn = _setup(ctx, 10)
    queue = ctx.queue()
    _publish(ctx, queue, [_order(f"u{n}", n=n) for n in range(5)])
    consumer = _consumer(ctx, mod, queue)
    consumer.run(max_messages=5, idle_timeout=3)
    left = ctx.message_count(queue)
    expect(_facts(conn) == (5, 5) and left == 0,
           "run writes every message it takes and then acknowledges it, so the queue ends empty.",
           f"5 orders published: (orders, stock) = {_facts(conn)}, {left} messages left in the queue")


def ack_after_commit(ctx, mod) -> None:
    conn = _setup(ctx, 10)
    queue = ctx.queue()
    _publish(ctx, queue, [_order("ann")])
    broken = _consumer(ctx, mod, queue, dsn=ctx.bad_pg_dsn())  # PostgreSQL unreachable: every write fails
    try:
        broken.run(max_messages=1, idle_timeout=3)
    except Exception:
        pass  # expected: the write failed
    deadline = time.monotonic() + 1.5
    while (left := ctx.message_count(queue)) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    expect(left == 1,
           "The acknowledgement tells RabbitMQ it may forget the message. Give it only once the order is "
           "safely committed: if the write fails after the ack, the order is lost for good.",
           "the database refused the write, and the message was gone from the queue (acknowledged anyway)")
    _consumer(ctx, mod, queue).run(max_messages=1, idle_timeout=3)
    expect(_facts(conn) == (1, 9), "A message that could not be written comes back and is written on the next run.",
           f"after the database came back: (orders, stock) = {_facts(conn)} (expected (1, 9))")


HINT = "Try your OrderConsumer in the notebook against PostgreSQL and compare with what it should do."

CHECKS = [
    Check("handle writes once; a redelivery changes nothing", writes_once, HINT),
    Check("one order per user per product", one_per_user, HINT),
    Check("the stock decrement is guarded", guarded_stock, HINT),
    Check("an unknown product is refused, not raised", unknown_product, HINT),
    Check("run writes the published orders and empties the queue", run_drains, HINT, timeout=30.0),
    Check("acknowledge only after commit", ack_after_commit, HINT, timeout=30.0),
]

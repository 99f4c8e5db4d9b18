"""``make bench``: the whole tier ladder under one load, against this machine's ceilings.

A load test (seckill.loadtest) shows one tier's behaviour over time; the bench
answers "how much faster is each design, on this machine, today?" in one run:

  * every tier of ``tiers.TIERS`` gets the SAME load from the same generator
    (wrk with a Lua script: distinct users, distinct X-Forwarded-For), the same
    fresh sale, and the same invariant check afterwards (oversold 0, lost 0);
  * the machine's ceilings are measured in the same run, with the same tools:
    nginx answering ``return 200`` by itself (what HTTP on these cores can
    do at all), the stock Lua script under ``redis-benchmark`` (what one Redis
    can decide per second), and guarded-update transactions on one PostgreSQL
    row (what the design that skips Redis is capped by);
  * two hand-offs behind the fast path, each against its naive version:
    :func:`drain` (orders/s into PostgreSQL, batched vs one row per
    transaction) and :func:`confirms` (publishes/s with a confirm awaited per
    message vs confirms pipelined, many in flight).

Ratios are only ever taken between figures of the same run: the two cores of a
shared machine are too noisy to compare with yesterday's numbers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import TextIO

import pika

from . import broker, db, impl, stack
from .config import Settings, settings
from .errors import SeckillError


class BenchError(SeckillError):
    """The bench cannot run or read its own measurement; the message says what to do."""


# Product ids the bench's side measurements use (the tier runs use BENCH_PRODUCT).
DRAIN_PRODUCT = 990_001
PG_CEILING_PRODUCT = 990_002
MAX_MESSAGES = 100_000  # drain() and confirms() refuse more: every loop here is bounded


def _say(progress: bool | TextIO | None, text: str) -> None:
    """A progress line on stderr (or the given stream); nothing when progress is off."""
    if not progress:
        return
    out = progress if hasattr(progress, "write") else sys.stderr
    print(f"• {text}", file=out, flush=True)


def _ready() -> Settings:
    """The stack's settings, starting the stack first if it is not up."""
    if not stack.healthy():
        stack.up(out=None)
    return settings()


def _check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_MESSAGES:
        raise BenchError(f"{what} must be a whole number from 1 to {MAX_MESSAGES:,}, not {n!r}")
    return n


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if a and b else None


# -- RabbitMQ helpers ------------------------------------------------------------------

def _channel(s: Settings):
    connection = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    return connection, connection.channel()


def _delete_queue(s: Settings, queue: str) -> None:
    connection, channel = _channel(s)
    try:
        channel.queue_delete(queue=queue)
    finally:
        if connection.is_open:
            connection.close()


def _wait_depth(s: Settings, queue: str, depth: int, timeout_s: float = 60.0) -> None:
    """Wait (bounded) until ``queue`` holds ``depth`` ready messages."""
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        seen = broker.queue_depth(s.amqp_url, queue)
        if seen == depth:
            return
        time.sleep(0.05)
    raise BenchError(f"the queue {queue!r} holds {seen} messages, expected {depth}; "
                     "is RabbitMQ short of memory or disk? `seckill logs rabbitmq` shows why")


def _order(product_id: int, run: str, i: int) -> dict:
    return {"order_id": f"bench-{run}-{i}", "user_id": f"bench-{run}-user-{i}", "product_id": product_id,
            "created_at": datetime.now(timezone.utc).isoformat()}


# -- order drain: batched vs one row per transaction -------------------------------------

def _fresh_product(s: Settings, product_id: int, stock: int) -> None:
    """A product row of its own with ``stock`` items, no orders, no rejections."""
    with db.connect(s.postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM order_rejections WHERE product_id = %s", (product_id,))
        conn.execute("DELETE FROM products WHERE id = %s", (product_id,))  # its orders cascade
        conn.execute("INSERT INTO products (id, name, stock, initial_stock) VALUES (%s, 'bench', %s, %s)",
                     (product_id, stock, stock))


def _drop_product(s: Settings, product_id: int) -> None:
    with db.connect(s.postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM order_rejections WHERE product_id = %s", (product_id,))
        conn.execute("DELETE FROM products WHERE id = %s", (product_id,))


def _one_per_transaction(consumer_mod):
    """The same order service, writing each order in its own transaction (handle) and acking it."""

    class OnePerTransaction(consumer_mod.OrderConsumer):
        def handle_batch(self, orders: list[dict]) -> list[bool]:
            return [self.handle(order) for order in orders]

    return OnePerTransaction


def _timed_drain(s: Settings, consumer, n: int, run: str) -> float:
    """Publish n orders to the consumer's (fresh) queue, then time run() until all n are committed."""
    _fresh_product(s, DRAIN_PRODUCT, stock=n)
    connection, channel = _channel(s)
    try:
        channel.queue_delete(queue=consumer.queue)
        channel.queue_declare(queue=consumer.queue, durable=True)
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                          content_type="application/json")
        for i in range(n):
            channel.basic_publish("", consumer.queue, json.dumps(_order(DRAIN_PRODUCT, run, i)), persistent)
    finally:
        if connection.is_open:
            connection.close()
    _wait_depth(s, consumer.queue, n)
    t0 = time.perf_counter()
    try:
        handled = consumer.run(max_messages=n, idle_timeout=10.0)
    finally:
        consumer.close()
    elapsed = time.perf_counter() - t0
    with db.connect(s.postgres_url) as conn:
        written = conn.execute("SELECT count(*) FROM orders WHERE product_id = %s", (DRAIN_PRODUCT,)).fetchone()[0]
    if handled != n or written != n:
        raise BenchError(f"the drain consumed {handled} and wrote {written} of {n} orders; "
                         "see `seckill logs postgres` — the bench reports only what it could verify")
    return elapsed


def drain(n: int = 5000, *, batch_size: int = 200, impl_name: str | None = None,
          progress: bool | TextIO | None = True) -> dict:
    """Orders/s the order service drains into PostgreSQL: batched vs one row per transaction.

    The same ``n`` orders are published to a fresh queue, then consumed by the
    implementation's ``OrderConsumer`` as the order service runs it
    (``handle_batch``, batches of ``batch_size``), and again by the same loop
    writing and acking each order on its own (``handle``). The clock runs from
    the first message taken to the last one committed; both runs must write all
    ``n`` orders or the bench refuses to report a figure.

    Returns {"orders", "batched_orders_per_s", "one_per_tx_orders_per_s", "ratio"}.
    """
    _check_count(n, "the number of orders")
    s = _ready()
    consumer_mod = impl.load("consumer", impl_name)
    queue = f"bench-drain-{uuid.uuid4().hex[:8]}"
    try:
        _say(progress, f"drain: {n:,} orders, batches of {batch_size} (handle_batch) …")
        batched = _timed_drain(s, consumer_mod.OrderConsumer(s.amqp_url, s.postgres_url, queue=queue,
                                                             prefetch=batch_size, batch_size=batch_size), n, "b")
        _say(progress, f"drain: {n:,} orders, one transaction each (handle) …")
        single = _timed_drain(s, _one_per_transaction(consumer_mod)(s.amqp_url, s.postgres_url, queue=queue,
                                                                    prefetch=batch_size, batch_size=1), n, "o")
    finally:
        _delete_queue(s, queue)
        _drop_product(s, DRAIN_PRODUCT)
    record = {"orders": n, "batched_orders_per_s": _rate(n, batched), "one_per_tx_orders_per_s": _rate(n, single)}
    record["ratio"] = _ratio(record["batched_orders_per_s"], record["one_per_tx_orders_per_s"])
    _say(progress, f"drain: batched {record['batched_orders_per_s']:,.0f} orders/s, one per transaction "
                   f"{record['one_per_tx_orders_per_s']:,.0f} orders/s (×{record['ratio']})")
    return record


# -- publisher confirms: one awaited per message vs pipelined -----------------------------

def _confirm_each(s: Settings, queue: str, bodies: list[bytes]) -> float:
    """pika with confirm_delivery: every basic_publish waits for its own confirm (the Flask tiers)."""
    connection, channel = _channel(s)
    try:
        channel.queue_declare(queue=queue, durable=True)
        channel.confirm_delivery()
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                          content_type="application/json")
        t0 = time.perf_counter()
        for body in bodies:
            channel.basic_publish("", queue, body, persistent, mandatory=True)  # raises unless confirmed
        return time.perf_counter() - t0
    finally:
        if connection.is_open:
            connection.close()


async def _pipelined(s: Settings, queue: str, orders: list[dict], in_flight: int) -> float:
    """The FastAPI tier's AsyncOrderProducer: up to ``in_flight`` publishes awaiting their confirms at once."""
    from .gateway_async import AsyncOrderProducer

    producer = AsyncOrderProducer(s.amqp_url, queue=queue)
    slots = asyncio.Semaphore(in_flight)

    async def send(order: dict) -> None:
        async with slots:
            await producer.send_order(order)  # returns only once the broker confirmed this message

    try:
        await producer.send_order(orders[0])  # connect and declare outside the clock
        t0 = time.perf_counter()
        await asyncio.gather(*(send(order) for order in orders[1:]))
        return time.perf_counter() - t0
    finally:
        await producer.close()


def confirms(n: int = 5000, *, in_flight: int = 64, progress: bool | TextIO | None = True) -> dict:
    """Publishes/s with a synchronous confirm per message vs pipelined confirms, same ``n`` messages.

    Both publish persistent messages to a durable queue and count a message only
    once the broker confirmed it, so neither may answer "success" for an order
    that could still be lost; they differ only in waiting. The synchronous way
    (pika, as the Flask tiers publish) waits one round trip per message; the
    pipelined way (aio-pika, as the FastAPI tier publishes) keeps up to
    ``in_flight`` messages unconfirmed at once, and the broker confirms runs of
    them with one frame. Both queues must then hold exactly ``n`` messages.

    Returns {"messages", "per_request_per_s", "pipelined_per_s", "ratio"}.
    """
    _check_count(n, "the number of messages")
    if n < 2:
        raise BenchError("confirms needs at least 2 messages (one opens the connection outside the clock)")
    s = _ready()
    run = uuid.uuid4().hex[:8]
    sync_queue, async_queue = f"bench-confirm-sync-{run}", f"bench-confirm-async-{run}"
    orders = [_order(DRAIN_PRODUCT, run, i) for i in range(n)]
    try:
        _say(progress, f"confirms: {n:,} persistent messages, one confirm awaited per message (pika) …")
        sync_s = _confirm_each(s, sync_queue, [json.dumps(order).encode() for order in orders])
        _say(progress, f"confirms: {n:,} persistent messages, up to {in_flight} confirms in flight (aio-pika) …")
        async_s = asyncio.run(_pipelined(s, async_queue, orders, in_flight))
        _wait_depth(s, sync_queue, n, timeout_s=30)
        _wait_depth(s, async_queue, n, timeout_s=30)
    finally:
        for queue in (sync_queue, async_queue):
            _delete_queue(s, queue)
    record = {"messages": n, "per_request_per_s": _rate(n, sync_s), "pipelined_per_s": _rate(n - 1, async_s)}
    record["ratio"] = _ratio(record["pipelined_per_s"], record["per_request_per_s"])
    _say(progress, f"confirms: one per message {record['per_request_per_s']:,.0f}/s, pipelined "
                   f"{record['pipelined_per_s']:,.0f}/s (×{record['ratio']})")
    return record

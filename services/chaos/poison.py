"""poison: messages that can never be written sit in the queue in front of good orders.

A "poison message" is one the consumer can never process: here an order whose
order_id is 9,000 characters long (PostgreSQL cannot put it in the primary
key's index: "index row size exceeds maximum") and one whose user_id is a
lone surrogate ("\\ud800": valid JSON, not valid UTF-8 text). Published by hand,
ahead of real buyers' orders, into the same batch.

Without protection the order service fails the whole batch, the broker
redelivers it, it fails again: forever, and every good order behind it waits
(the queue is blocked, Redis says sold, PostgreSQL never hears of it). The
protection, in solutions/consumer.py:
  * validation refuses every field PostgreSQL would refuse, before the batch;
  * a batch the database still refuses is split until the bad order is alone,
    which is retried a bounded number of times;
  * what cannot be written is moved to the dead-letter queue ``orders.dead``
    with its reason (header ``x-dead-reason``), recorded in order_rejections
    when its id can be stored, and acknowledged, so the queue moves on.

What must hold: every buyer told 200 has an order; the poison messages are in
the dead-letter queue with a reason; the one with a storable id is recorded as
rejected; the queue drains; oversold 0; Redis agrees with PostgreSQL.
"""

from __future__ import annotations

import json
import random
import string
import time
import uuid
from datetime import datetime, timezone

import pika
import psycopg

from seckill.config import settings
from seckill.chaos import ChaosReport
from seckill.chaos._queue import buy, buyers, check_books, pause_order_service, tier_for
from seckill.chaos.stage import fresh_sale

TITLE = "poison messages in the orders queue: dead-lettered, the good orders behind them written"


def poison_orders(product_id: int) -> list[tuple[str, bytes, str]]:
    """(label, raw body, order_id) of the messages no database will take."""
    long_id = "".join(random.Random(product_id).choices(string.ascii_letters + string.digits, k=9000))
    created = datetime.now(timezone.utc).isoformat()
    surrogate_id = str(uuid.uuid4())
    return [
        ("a 9,000-character order_id", json.dumps({"order_id": long_id, "user_id": "poison-long",
                                                   "product_id": product_id, "created_at": created}).encode(),
         long_id),
        # written by hand: json.dumps would escape it the same way, this shows what is on the wire
        ("a lone-surrogate user_id", ('{"order_id": "%s", "user_id": "\\ud800", "product_id": %d, '
                                      '"created_at": "%s"}' % (surrogate_id, product_id, created)).encode(),
         surrogate_id),
    ]


def _publish(amqp_url: str, queue: str, bodies: list[bytes]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                                                   content_type="application/json"))
    finally:
        conn.close()


def dead_letters(amqp_url: str, queue: str, limit: int = 10_000) -> list[tuple[str, bytes]]:
    """(reason, body) of every message in the dead-letter queue, read WITHOUT removing them.

    Nothing is acknowledged; closing the channel puts every message back.
    """
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        out = []
        for _ in range(limit):
            method, props, body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                break
            out.append((str((props.headers or {}).get("x-dead-reason", "")), body))
        return out
    finally:
        conn.close()


def run(tier: str | None = None, product_id: int = 9321, stock: int = 100, buyers_n: int = 30,
        concurrency: int = 20) -> ChaosReport:
    """Publish two poison messages, then let ``buyers_n`` buyers buy, all in one batch of the order service."""
    report = ChaosReport("poison", TITLE)
    s = settings()
    dead_queue = f"{s.queue}.dead"
    state = tier_for(report, tier)
    base_url = state["base_url"]
    fresh_sale(report, s, product_id, stock)
    before = {body for _, body in dead_letters(s.amqp_url, dead_queue)}
    poison = poison_orders(product_id)
    paused = False
    try:
        pause_order_service(s, True)
        paused = True
        report.event("order service paused: the poison and the good orders will meet in one batch")
        _publish(s.amqp_url, s.queue, [body for _, body, _ in poison])
        report.event("published by hand: " + ", ".join(label for label, _, _ in poison))
        good = buy(base_url, product_id, buyers("good", buyers_n, 30_000), concurrency)
        report.event(f"{good.total} buyers behind them → {dict(good.statuses)}")
    finally:
        if paused:
            pause_order_service(s, False)
            report.event("order service resumed")
    t0 = time.monotonic()
    check = check_books(report, s, product_id, set(good.order_ids), drain_timeout_s=30)
    report.event(f"books checked {time.monotonic() - t0:.1f} s after the resume")

    new = [(reason, body) for reason, body in dead_letters(s.amqp_url, dead_queue) if body not in before]
    ours = {body for _, body, _ in poison}
    reasons = [reason for reason, body in new if body in ours]
    for reason in reasons:
        report.event(f"dead-lettered: {reason[:120]}")
    report.check("both poison messages are in the dead-letter queue with a reason",
                 len(reasons) == len(poison) and all(reasons), f"{len(reasons)} of {len(poison)} found in {dead_queue}")
    storable = poison[1][2]
    with psycopg.connect(s.postgres_url, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute("SELECT reason FROM order_rejections WHERE order_id = %s", (storable,)).fetchone()
    report.check("the poison order with a storable id is recorded as rejected", row is not None,
                 f"reason: {row[0][:80]}" if row else "no rejection row")
    report.check("every buyer told 200 behind the poison has an order", check.lost == 0 and bool(good.order_ids),
                 f"{len(good.order_ids)} told 200, {check.lost} missing")
    report.metrics.update(dead_lettered=len(reasons), told_200=len(good.order_ids))
    return report

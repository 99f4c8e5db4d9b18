"""Small RabbitMQ helpers for the stack, the tests and the charts: how deep is the queue."""

from __future__ import annotations

import pika
import pika.exceptions


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue`` (0 when it does not exist yet)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        try:
            return ch.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:  # 404: no such queue
            return 0
    finally:
        if conn.is_open:
            conn.close()


def queue_stats(amqp_url: str, queue: str) -> dict[str, int]:
    """Ready messages and consumers of a durable queue (declared if missing)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ok = conn.channel().queue_declare(queue, durable=True).method
        return {"messages": ok.message_count, "consumers": ok.consumer_count}
    finally:
        if conn.is_open:
            conn.close()


def purge(amqp_url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        return ch.queue_purge(queue).method.message_count
    finally:
        if conn.is_open:
            conn.close()

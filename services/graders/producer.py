"""Checks for labs/producer.py, on queues grader-<uuid> (deleted afterwards)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

from ._base import Check, closed_port, expect, not_implemented

CONFIRM_HINT = ("Publishing is fire-and-forget unless you ask the broker to confirm each message: only then does "
                "send_order learn that the broker refused or lost it, and can raise PublishError.")


def _order() -> dict:
    return {"order_id": uuid.uuid4().hex, "user_id": "grader", "product_id": 1,
            "created_at": datetime.now(timezone.utc).isoformat()}


def _close(producer) -> None:
    close = getattr(producer, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


def _sent(ctx, mod):
    """A producer that sent one order to a fresh queue: (producer, queue, order)."""
    queue = ctx.queue()
    producer = mod.OrderProducer(ctx.amqp_url, queue)
    ctx.cleanups.append(lambda: _close(producer))
    order = _order()
    producer.send_order(order)
    return producer, queue, order


def _get(ctx, queue: str, wait: float = 2.0):
    """The first message of `queue` (method, properties, body), waiting a little for it."""
    channel = ctx.amqp().channel()
    deadline = time.monotonic() + wait
    while True:
        method, properties, body = channel.basic_get(queue=queue, auto_ack=True)
        if method is not None or time.monotonic() > deadline:
            return method, properties, body
        time.sleep(0.05)


def in_queue_on_return(ctx, mod) -> None:
    _producer, queue, order = _sent(ctx, mod)
    count = ctx.message_count(queue)
    expect(count == 1,
           "When send_order returns, the order must already be in the queue: the producer creates (declares) "
           "the queue it sends to, and waits until the broker has taken the message.",
           f"right after send_order: queue {'does not exist' if count is None else f'holds {count} messages'}")
    method, _properties, body = _get(ctx, queue)
    expect(method is not None and json.loads(body) == order,
           "The message body is the order as JSON, unchanged.", f"got {body!r}")


def queue_durable(ctx, mod) -> None:
    _producer, queue, _order_ = _sent(ctx, mod)
    import pika

    channel = ctx.amqp().channel()
    try:
        channel.queue_declare(queue=queue, durable=True, passive=False)
    except pika.exceptions.ChannelClosedByBroker as exc:
        expect(False,
               "A queue the broker forgets on restart loses every order in it: declare it so that it survives "
               "a broker restart.",
               f"the broker says the queue is not durable: {exc.reply_text[:120]}")


def persistent(ctx, mod) -> None:
    _producer, queue, _order_ = _sent(ctx, mod)
    method, properties, _body = _get(ctx, queue)
    expect(method is not None, "send_order must put the order in the queue it was given.",
           "no message arrived in the queue")
    expect(properties.delivery_mode == 2,
           "A durable queue keeps only the messages marked to be kept: each message itself must be marked "
           "persistent, or a broker restart drops it.",
           f"the message's delivery mode is {properties.delivery_mode!r} (transient)")


def confirms(ctx, mod) -> None:
    producer, queue, _order_ = _sent(ctx, mod)
    # Swap the queue under the producer's open channel for one that refuses every message.
    channel = ctx.amqp().channel()
    channel.queue_delete(queue=queue)
    channel.queue_declare(queue=queue, durable=True,
                          arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    try:
        producer.send_order(_order())
    except mod.PublishError:
        return
    except Exception as exc:
        if not_implemented(exc):
            raise
        expect(False, "Every way a publish can fail must reach the caller as PublishError (one thing to catch).",
               f"the broker refused the message and send_order raised {type(exc).__name__}: {exc}")
    expect(False, CONFIRM_HINT, "the broker refused the message (queue full), yet send_order returned normally")


def broker_down(ctx, mod) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F?connection_attempts=1&socket_timeout=3"
    producer = mod.OrderProducer(url, "grader-nowhere")
    ctx.cleanups.append(lambda: _close(producer))
    t0 = time.monotonic()
    raised = None
    try:
        producer.send_order(_order())
    except Exception as exc:
        if not_implemented(exc):
            raise
        raised = exc
    elapsed = time.monotonic() - t0
    expect(raised is not None,
           "When the broker cannot be reached the order is NOT queued: send_order must say so.",
           "broker unreachable, yet send_order returned normally")
    expect(isinstance(raised, mod.PublishError),
           "Every way a publish can fail must reach the caller as PublishError (one thing to catch): turn the "
           "client library's connection errors into it.",
           f"broker unreachable: send_order raised {type(raised).__name__}: {raised}")
    expect(elapsed < 5, "A gateway thread stuck waiting for a dead broker is worse than a quick 'try again': fail fast.",
           f"PublishError came after {elapsed:.1f} s")


HINT = "Try your OrderProducer in the notebook and look at the queue in RabbitMQ."

CHECKS = [
    Check("the order is in the queue when send_order returns", in_queue_on_return, HINT),
    Check("the queue is durable", queue_durable, HINT),
    Check("messages are persistent", persistent, HINT),
    Check("publisher confirms: a refused message raises PublishError", confirms, CONFIRM_HINT),
    Check("broker down: PublishError within 5 s", broker_down, HINT, timeout=12.0),
]

"""Checks for labs/producer.py, on queues grader-<uuid> (deleted afterwards).

The property a producer promises: when send_order returns normally, the order IS in a durable queue, as a
persistent message, confirmed by the broker; in every other case it raises PublishError. Checked at the
protocol's edges, some through a proxy that cuts the connection at a chosen moment:

* a refused message (queue full) and an unroutable one (the queue deleted under an open channel) raise;
* three outcomes: a definite failure (broker down, nack, unroutable) raises PublishError and NOT
  PublishUnknown; a message sent whose confirm does not come (the connection cut as it leaves, or a broker
  that froze after taking it: the proxy holds the confirm back) raises PublishUnknown, within the
  producer's deadline (CONFIRM_TIMEOUT_S), never a hang;
* after any failure, or a connection dropped between sends, the next send works (the producer reconnects);
* resources: one connection for many sends, none left after close() nor after a failed setup; the queue
  outlives the producer.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

from seckill.course.graders._base import AMQP_ACK, AMQP_PUBLISH, Check, closed_port, expect, not_implemented

CONFIRM_HINT = ("Publishing is fire-and-forget unless you ask the broker to confirm each message: only then does "
                "send_order learn that the broker refused or lost it, and can raise PublishError.")


DEFINITE_HINT = ("An order that was refused, unroutable, or never sent is definitely NOT queued: reported as an "
                 "unknown outcome, the gateway would keep the reservation and answer 'pending' for an order that "
                 "will never arrive. Only a message that left with no confirm back is unknown.")
UNKNOWN_HINT = ("A publish whose confirm never came was reported as a definite failure: the gateway would release "
                "an item the broker may still deliver (and the order service then sell it twice). Sent but not "
                "confirmed is an unknown outcome: it has its own exception.")
DEADLINE_HINT = ("A broker that froze (a paused VM, a stuck disk) keeps the TCP connection open and never answers: "
                 "waiting for its confirm without a time limit holds the gateway thread, and the user, as long as "
                 "the freeze lasts. Give up after the producer's confirm deadline, with an unknown outcome.")


def _unknown(mod):
    """The module's PublishUnknown class (a kind of PublishError)."""
    cls = getattr(mod, "PublishUnknown", None)
    expect(isinstance(cls, type) and issubclass(cls, mod.PublishError),
           "The producer has three outcomes: sent and confirmed, definitely not queued (PublishError), and "
           "unknown (PublishUnknown, a kind of PublishError). Keep both exception classes of the module.",
           "the module has no PublishUnknown that is a PublishError")
    return cls


def _definite(mod, raised, what: str) -> None:
    """``raised`` (a PublishError) must not claim an unknown outcome."""
    expect(not isinstance(raised, _unknown(mod)), DEFINITE_HINT,
           f"{what}: send_order raised PublishUnknown ({raised}), yet the order is definitely not queued")


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
    try:
        decoded = json.loads(body) if method is not None else None
    except ValueError:
        decoded = None
    expect(decoded == order, "The message body is the order as JSON, unchanged.", f"got {body[:200]!r}")


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
    except mod.PublishError as exc:
        _definite(mod, exc, "the broker refused the message (queue full, a nack)")
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
    _definite(mod, raised, "the broker could not be reached (nothing was sent)")
    expect(elapsed < 5, "A gateway thread stuck waiting for a dead broker is worse than a quick 'try again': fail fast.",
           f"PublishError came after {elapsed:.1f} s")


def _send(producer, mod, order) -> BaseException | None:
    """send_order(order): None when it returned, the exception when it raised (a stub re-raises)."""
    try:
        producer.send_order(order)
        return None
    except Exception as exc:
        if not_implemented(exc):
            raise
        return exc


def _ids_in(ctx, queue: str) -> list[str]:
    channel = ctx.amqp().channel()
    ids = []
    while True:
        method, _properties, body = channel.basic_get(queue=queue, auto_ack=True)
        if method is None:
            return ids
        ids.append(json.loads(body).get("order_id"))


def unroutable(ctx, mod) -> None:
    producer, queue, _order_ = _sent(ctx, mod)
    ctx.amqp().channel().queue_delete(queue=queue)  # under the producer's open channel
    raised = _send(producer, mod, _order())
    expect(raised is not None,
           "A message that reaches no queue is dropped by the broker, and a publisher confirm still says 'ok' "
           "(the broker handled it: by throwing it away). Ask the broker to return a message it cannot route, "
           "and treat that as a failure.",
           "the queue was deleted under the producer's open channel, yet send_order returned normally: the "
           "order exists nowhere")
    expect(isinstance(raised, mod.PublishError),
           "Every way a publish can fail must reach the caller as PublishError (one thing to catch).",
           f"unroutable message: send_order raised {type(raised).__name__}: {raised}")
    _definite(mod, raised, "the message was returned unroutable (it reached no queue)")
    later = _send(producer, mod, _order())
    expect(later is None,
           "After a failure the producer must recover by itself: the next send starts afresh (and declares its "
           "queue again).", f"the next send_order after the unroutable one raised {type(later).__name__}: {later}")


def lost_confirm(ctx, mod) -> None:
    queue = ctx.queue()
    proxy = ctx.amqp_proxy()
    producer = mod.OrderProducer(proxy.url(ctx.amqp_url), queue)
    ctx.cleanups.append(lambda: _close(producer))
    first = _order()
    expect(_send(producer, mod, first) is None, "send_order must work through an ordinary TCP connection.",
           "the first send through a plain proxy failed")
    proxy.cut_on = AMQP_PUBLISH  # the next message is lost on the wire, with its connection
    t0 = time.monotonic()
    raised = _send(producer, mod, _order())
    elapsed = time.monotonic() - t0
    expect(raised is not None,
           "The connection can die after the message left and before the broker's confirm came back: then "
           "nobody knows the order is safe, and send_order must not return normally. " + CONFIRM_HINT,
           "the connection was cut as the message left (it never reached the broker), yet send_order returned "
           "normally")
    expect(isinstance(raised, mod.PublishError) and elapsed < 8,
           "A lost connection must reach the caller as PublishError, and quickly.",
           f"send_order raised {type(raised).__name__} after {elapsed:.1f} s")
    expect(isinstance(raised, _unknown(mod)), UNKNOWN_HINT,
           f"the connection broke after the message left and before its confirm: send_order raised "
           f"{type(raised).__name__} ({raised}), a definite failure")
    third = _order()
    again = _send(producer, mod, third)
    expect(again is None,
           "After a lost connection the next send must reconnect instead of failing for ever.",
           f"the next send_order raised {type(again).__name__}: {again}")
    ids = _ids_in(ctx, queue)
    expect(ids == [first["order_id"], third["order_id"]],
           "Only what send_order reported as sent may be in the queue, in order.", f"queue holds {len(ids)} orders")


def frozen_broker(ctx, mod) -> None:
    import threading

    unknown = _unknown(mod)
    queue = ctx.queue()
    proxy = ctx.amqp_proxy()
    producer = mod.OrderProducer(proxy.url(ctx.amqp_url), queue)
    ctx.cleanups.append(lambda: _close(producer))
    expect(_send(producer, mod, _order()) is None, "send_order must work through an ordinary TCP connection.",
           "the first send through a plain proxy failed")
    limit = float(getattr(mod, "CONFIRM_TIMEOUT_S", 5))
    proxy.freeze_on = AMQP_ACK  # the broker takes the next message, then answers nothing more
    box: dict = {}

    def send() -> None:
        try:
            box["raised"] = _send(producer, mod, _order())
        except BaseException as exc:  # a stub's NotImplementedError, re-raised below
            box["stub"] = exc

    thread = threading.Thread(target=send, daemon=True, name="grader-frozen-send")
    t0 = time.monotonic()
    thread.start()
    thread.join(limit + 5)
    elapsed = time.monotonic() - t0
    if thread.is_alive():
        proxy.cut_all()  # end the freeze so the stuck send (and the clean-up) can finish
        thread.join(5)
        expect(False, DEADLINE_HINT,
               f"the broker froze after taking the message (the TCP connection stayed open): send_order had "
               f"not returned after {elapsed:.0f} s (its confirm deadline CONFIRM_TIMEOUT_S is {limit:g} s)")
    if "stub" in box:
        raise box["stub"]
    raised = box.get("raised")
    expect(raised is not None, CONFIRM_HINT,
           "the broker took the message and never confirmed it, yet send_order returned normally")
    expect(isinstance(raised, unknown), UNKNOWN_HINT,
           f"the broker froze after taking the message (no confirm came): send_order raised "
           f"{type(raised).__name__} ({raised}), a definite failure")
    expect(proxy.frozen, "send_order must publish the order.", "no message reached the broker")
    again = _send(producer, mod, _order())
    expect(again is None,
           "After an unknown outcome the producer must start afresh: the next send opens a new connection "
           "instead of waiting on the frozen one.",
           f"the next send_order after the frozen one raised {type(again).__name__}: {again}")


def reconnects(ctx, mod) -> None:
    queue = ctx.queue()
    proxy = ctx.amqp_proxy()
    producer = mod.OrderProducer(proxy.url(ctx.amqp_url), queue)
    ctx.cleanups.append(lambda: _close(producer))
    sent, failed = [], 0
    for n in range(6):
        if n in (2, 4):
            proxy.cut_all()  # the network drops the idle connection between two sends
            time.sleep(0.2)
        order = _order()
        raised = _send(producer, mod, order)
        if raised is None:
            sent.append(order["order_id"])
        else:
            expect(isinstance(raised, mod.PublishError), "Every failure must reach the caller as PublishError.",
                   f"after a dropped connection send_order raised {type(raised).__name__}: {raised}")
            failed += 1
    ids = _ids_in(ctx, queue)
    expect(failed == 0,
           "A connection dropped while the producer was idle (a network blip, a broker restart) must not fail "
           "the next send: nothing was published on it yet, so check it is alive before publishing and "
           "reconnect if not.",
           f"6 sends, the connection dropped before the 3rd and the 5th: {failed} raised")
    expect(set(sent) <= set(ids),
           "An order send_order returned for must be in the queue.",
           f"{len(sent)} sends returned normally, {len([i for i in sent if i in ids])} of them are in the queue")


def one_connection(ctx, mod) -> None:
    queue = ctx.queue()
    proxy = ctx.amqp_proxy()
    producer = mod.OrderProducer(proxy.url(ctx.amqp_url), queue)
    ctx.cleanups.append(lambda: _close(producer))
    for _ in range(10):
        producer.send_order(_order())
    opened, still_open = proxy.accepted, proxy.open_connections
    expect(opened == 1,
           "A connection to the broker is expensive (a TCP and AMQP handshake): keep one open and reuse it "
           "for every send, rather than one per order.",
           f"10 sends opened {opened} connections ({still_open} still open)")
    _close(producer)
    deadline = time.monotonic() + 2
    while proxy.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(proxy.open_connections == 0,
           "close() must give the connection back to the broker: a gateway that leaks one per restart ends up "
           "refused by the broker.", f"after close(): {proxy.open_connections} connection(s) still open")
    count = ctx.message_count(queue)
    expect(count == 10,
           "The queue belongs to the broker, not to the producer's connection: it and its orders must outlive "
           "the producer that declared it.",
           f"after close(): the queue {'is gone' if count is None else f'holds {count} of 10 orders'}")


def failed_setup_leaks_nothing(ctx, mod) -> None:
    queue = ctx.queue()
    ctx.amqp().channel().queue_declare(queue=queue, durable=False)  # a queue the producer cannot declare
    proxy = ctx.amqp_proxy()
    producer = mod.OrderProducer(proxy.url(ctx.amqp_url), queue)
    ctx.cleanups.append(lambda: _close(producer))
    raised = [_send(producer, mod, _order()) for _ in range(3)]
    expect(all(isinstance(r, mod.PublishError) for r in raised),
           "When the producer cannot set up its channel (the broker refuses the queue's declaration), the "
           "order is not queued: send_order must raise PublishError.",
           f"the queue's declaration was refused: send_order gave {[type(r).__name__ for r in raised]}")
    deadline = time.monotonic() + 2
    while proxy.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(proxy.open_connections == 0,
           "A connection opened for a setup that then failed must be closed on the way out: otherwise every "
           "failed attempt leaves one behind, until the broker refuses new ones.",
           f"3 sends whose setup failed left {proxy.open_connections} connection(s) open "
           f"(the producer opened {proxy.accepted})")


HINT = "Try your OrderProducer in the notebook and look at the queue in RabbitMQ."

CHECKS = [
    Check("the order is in the queue when send_order returns", in_queue_on_return, HINT),
    Check("the queue is durable", queue_durable, HINT),
    Check("messages are persistent", persistent, HINT),
    Check("publisher confirms: a refused message raises PublishError", confirms, CONFIRM_HINT),
    Check("broker down: PublishError within 5 s", broker_down, HINT, timeout=12.0),
    Check("unroutable (queue deleted under an open channel) raises PublishError", unroutable, HINT,
          depends=("the order is in the queue when send_order returns",)),
    Check("connection cut before the confirm: PublishError, then recovery", lost_confirm, CONFIRM_HINT,
          timeout=20.0, depends=("the order is in the queue when send_order returns",)),
    Check("a frozen broker (confirm held back): PublishUnknown within the deadline, then recovery", frozen_broker,
          UNKNOWN_HINT, timeout=40.0, depends=("the order is in the queue when send_order returns",)),
    Check("a dropped connection between sends: the producer reconnects", reconnects, HINT, timeout=25.0,
          depends=("the order is in the queue when send_order returns",)),
    Check("one connection for many sends; none left after close; the queue stays", one_connection, HINT,
          depends=("the order is in the queue when send_order returns",)),
    Check("a setup the broker refuses raises and leaves no connection open", failed_setup_leaks_nothing, HINT,
          depends=("the order is in the queue when send_order returns",)),
]

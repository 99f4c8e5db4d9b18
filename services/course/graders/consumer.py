"""Checks for labs/consumer.py, on database seckill_grader and queues grader-<uuid>.

The properties an order service promises, checked on the real PostgreSQL and RabbitMQ:

* never oversold: orders of a product <= its stock at the start, stock >= 0, orders + stock == initial;
* at most one order per user per product; a redelivered order changes nothing;
* every order that came in ends decided: written (status 'confirmed') or refused with its reason in
  order_rejections (status 'rejected'); nothing stays 'pending' for ever;
* an acknowledged order survives: the ack goes only after the commit;
* faults between any two writes (a statement failing once, the session dropped by the server, the consumer
  cut off after its commit and before its ack), then redelivery through the real run() loop, reach the SAME
  end state as the run without the fault.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

from seckill.course.graders._base import AMQP_ACK, PG_SITES, Check, arm_pg_failpoint, disarm_pg_failpoints, expect

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
    refused = conn.execute("SELECT count(*) FROM order_rejections").fetchone()[0]
    expect(refused == 0,
           "An order that was written is confirmed, never also recorded as refused: a good batch must leave "
           "order_rejections (and any dead-letter queue) empty. If acknowledging fails after the commit, the "
           "orders are already safe; treat that as a broker problem, not as poison.",
           f"5 good orders, all written: {refused} of them also recorded as refused")


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


def _books(conn) -> tuple:
    """The end state a fault must not change: written order ids, stock, refused ids with reasons."""
    orders = {r[0] for r in conn.execute("SELECT order_id FROM orders")}
    stock = conn.execute("SELECT stock FROM products WHERE id = %s", (P,)).fetchone()[0]
    refused = dict(conn.execute("SELECT order_id, reason FROM order_rejections").fetchall())
    return orders, stock, refused


def _describe(books, names: dict) -> str:
    orders, stock, refused = books
    return (f"written {sorted(names.get(o, o) for o in orders)}, stock {stock}, refused "
            f"{sorted((names.get(o, o), r) for o, r in refused.items())}")


def _scenario() -> list[dict]:
    """Stock 2: ann and bob get one, cat finds none, ann's second order is a second purchase."""
    return [_order("ann", n=0), _order("bob", n=1), _order("cat", n=2), _order("ann", n=3)]


def _scenario_names(orders: list[dict]) -> dict[str, str]:
    """order id → the name a hint gives it ("ann again" for ann's second order)."""
    return {o["order_id"]: name for o, name in zip(orders, ["ann", "bob", "cat", "ann again"])}


REASONS = {"ann": None, "bob": None, "cat": "sold_out"}


def refusals_recorded(ctx, mod) -> None:
    from seckill.stack import db

    conn = _setup(ctx, 1)
    consumer = _consumer(ctx, mod)
    ann, bob, ann2, dan = _order("ann"), _order("bob", n=1), _order("ann", n=2), _order("dan", P + 1000, n=3)
    for order in (ann, bob, ann2, dan):
        consumer.handle(order)
    statuses = {name: db.order_status(conn, o["order_id"]) for name, o in
                (("ann", ann), ("bob", bob), ("ann again", ann2), ("unknown product", dan))}
    refused = dict(conn.execute("SELECT order_id, reason FROM order_rejections").fetchall())
    expect(statuses == {"ann": "confirmed", "bob": "rejected", "ann again": "rejected",
                        "unknown product": "rejected"},
           "Every order that comes in must end decided: written, or refused AND recorded with its reason, so "
           "the buyer's status page says 'rejected' instead of 'pending' for ever. A refusal that leaves no "
           "record looks to the buyer like an order still on its way.",
           f"stock 1; ann, bob (no stock left), ann again, an unknown product: statuses {statuses}")
    reasons = [refused.get(o["order_id"]) for o in (bob, ann2, dan)]
    expect(reasons == ["sold_out", "already_bought", "unknown_product"],
           "A refusal's record says why: sold_out, already_bought or unknown_product.",
           f"recorded reasons for bob, ann again, unknown product: {reasons}")


def batch_decides_like_handle(ctx, mod) -> None:
    from seckill.stack import db

    conn = _setup(ctx, 2)
    consumer = _consumer(ctx, mod)
    ann = _order("ann")
    consumer.handle(ann)
    names = ["ann's order again", "bob", "cat", "bob again", "unknown product"]
    batch = [dict(ann), _order("bob", n=1), _order("cat", n=2), _order("bob", n=3), _order("dan", P + 1000, n=4)]
    answers = consumer.handle_batch([dict(o) for o in batch])
    refused = dict(conn.execute("SELECT order_id, reason FROM order_rejections").fetchall())
    decided = {name: (db.order_status(conn, o["order_id"]), refused.get(o["order_id"]))
               for name, o in zip(names, batch)}
    expect(answers == [False, True, False, False, False] and _facts(conn) == (2, 0)
           and decided == {"ann's order again": ("confirmed", None), "bob": ("confirmed", None),
                           "cat": ("rejected", "sold_out"), "bob again": ("rejected", "already_bought"),
                           "unknown product": ("rejected", "unknown_product")},
           "handle_batch must decide every order of a batch as handle would, one after the other: a copy of an "
           "order handled before changes nothing, and each other order is written or refused with its own "
           "reason (sold_out, already_bought, unknown_product), also when the batch mixes redelivered copies "
           "with new orders (a consumer restarted after a crash gets exactly such batches).",
           f"stock 2, ann's order already written; one batch of ann's order again, bob, cat, bob again, an "
           f"unknown product: answers {answers}, (orders, stock) = {_facts(conn)}, (status, reason) {decided}")


def large_batch(ctx, mod) -> None:
    conn = ctx.pg()
    n, first = 300, 1000
    conn.execute("INSERT INTO products (id, name, stock, initial_stock) "
                 "SELECT g, 'grader', 1, 1 FROM generate_series(%s::bigint, %s::bigint) AS g", (first, first + n - 1))
    orders = [_order(f"u{i}", product_id=first + i, n=i) for i in range(n)]
    try:
        answers = _consumer(ctx, mod).handle_batch(orders)
        said = f"{answers.count(True)} answered True"
    except NotImplementedError:
        raise
    except Exception as exc:  # the batch refused as a whole: that is the finding, not a crash of the check
        answers, said = None, f"handle_batch raised {type(exc).__name__}: {str(exc)[:120]}"
    written = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    left = conn.execute("SELECT sum(stock) FROM products").fetchone()[0]
    expect(answers == [True] * n and written == n and left == 0,
           "handle_batch must write a batch of any size: a batch is as large as the consumer's prefetch and batch "
           "size allow, and they may be set well above the defaults. Nothing in a batch of orders that all have "
           "stock may be refused because of how many there are.",
           f"one batch of {n} orders, one for each of {n} products with 1 in stock: {said}, {written} written, "
           f"{left} items left in stock (expected {n} True, {n} written, 0 left)")


def run_decides_every_order(ctx, mod) -> None:
    from seckill.stack import db

    conn = _setup(ctx, 2)
    queue = ctx.queue()
    orders = _scenario()
    _publish(ctx, queue, orders)
    _consumer(ctx, mod, queue).run(max_messages=len(orders), idle_timeout=3)
    names = ["ann", "bob", "cat", "ann again"]
    statuses = {name: db.order_status(conn, o["order_id"]) for name, o in zip(names, orders)}
    expect(statuses == {"ann": "confirmed", "bob": "confirmed", "cat": "rejected", "ann again": "rejected"},
           "Through the real loop too, every order ends decided: the first buyers while stock lasts are "
           "written, the others are refused and recorded with a reason (no order stays 'pending').",
           f"stock 2, queue: ann, bob, cat, ann again -> statuses {statuses}")


def _handle_with_retry(ctx, mod, order: dict) -> None:
    """handle(order); if it raises, a new consumer gets the order again (RabbitMQ's redelivery)."""
    consumer = _consumer(ctx, mod)
    try:
        consumer.handle(order)
        return
    except Exception:
        pass
    try:
        consumer.close()
    except Exception:
        pass
    _consumer(ctx, mod).handle(dict(order))


def handle_failpoints(ctx, mod) -> None:
    conn = _setup(ctx, 2)
    orders = _scenario()
    names = _scenario_names(orders)
    for order in orders:
        _handle_with_retry(ctx, mod, order)
    clean = _books(conn)
    for table, op in PG_SITES:
        for mode in ("raise", "drop"):
            conn = _setup(ctx, 2)
            for order in orders:
                arm_pg_failpoint(conn, table, op, mode)
                _handle_with_retry(ctx, mod, order)
            disarm_pg_failpoints(conn)
            faulty = _books(conn)
            expect(faulty == clean,
                   "A write can fail between any two statements. Whatever handle writes for one order (the "
                   "order, the stock, a refusal) must commit together or not at all, so that the redelivered "
                   "order finds the books as if nothing had happened and finishes the job.",
                   f"stock 2; ann, bob, cat, ann again, each order's first {op} on {table} "
                   f"{'failing' if mode == 'raise' else 'ending the session'} once, then redelivered: "
                   f"{_describe(faulty, names)}; without the fault: {_describe(clean, names)}")


def run_failpoints(ctx, mod) -> None:
    orders = _scenario()
    names = _scenario_names(orders)
    clean = None
    for site in [None] + [(table, op) for table, op in PG_SITES if op != "DELETE"]:
        conn = _setup(ctx, 2)
        queue = ctx.queue()
        _publish(ctx, queue, orders)
        if site:
            arm_pg_failpoint(conn, *site)
        for attempt in range(3):  # the service restarts after a crash, the broker redelivers
            try:
                _consumer(ctx, mod, queue).run(max_messages=len(orders), idle_timeout=1.5)
            except Exception:
                continue
            if ctx.message_count(queue) == 0:
                break
        disarm_pg_failpoints(conn)
        books, left = _books(conn), ctx.message_count(queue)
        if site is None:
            clean = books
            continue
        expect(books == clean and left == 0,
               "A fault in the middle of a batch must roll the whole batch back and leave its messages "
               "unacknowledged: the broker redelivers them and the restarted service reaches the same books "
               "as a run without the fault.",
               f"stock 2; queue ann, bob, cat, ann again; the first {site[1]} on {site[0]} failing once, then "
               f"run() again: {_describe(books, names)}, {left} messages left; without the fault: "
               f"{_describe(clean, names)}")


def killed_before_ack(ctx, mod) -> None:
    orders = _scenario()
    names = _scenario_names(orders)
    conn = _setup(ctx, 2)
    queue = ctx.queue()
    _publish(ctx, queue, orders)
    _consumer(ctx, mod, queue).run(max_messages=len(orders), idle_timeout=1.5)
    clean = _books(conn)

    conn = _setup(ctx, 2)
    queue = ctx.queue()
    _publish(ctx, queue, orders)
    proxy = ctx.amqp_proxy()
    proxy.cut_on = AMQP_ACK  # the consumer's connection dies as its ack leaves: committed, never acknowledged
    consumer = mod.OrderConsumer(proxy.url(ctx.amqp_url), ctx.pg_dsn, queue=queue)
    ctx.cleanups.append(lambda: getattr(consumer, "close", lambda: None)())
    try:
        consumer.run(max_messages=len(orders), idle_timeout=1.5)
    except Exception:
        pass
    redelivered = ctx.message_count(queue)
    _consumer(ctx, mod, queue).run(max_messages=len(orders), idle_timeout=1.5)
    books, left = _books(conn), ctx.message_count(queue)
    expect(books == clean and left == 0,
           "A consumer can die after its commit and before its acknowledgement: the broker then delivers the "
           "same orders again. The second delivery must change nothing (the database recognises orders it "
           "has already decided).",
           f"stock 2; queue ann, bob, cat, ann again; the consumer cut off as it acknowledged "
           f"({redelivered} messages came back), then run() again: {_describe(books, names)}, {left} left; "
           f"without the fault: {_describe(clean, names)}")


def malformed_dropped(ctx, mod) -> None:
    import pika

    conn = _setup(ctx, 10)
    queue = ctx.queue()
    channel = ctx.amqp().channel()
    channel.queue_declare(queue=queue, durable=True)
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"this is not an order", pika.BasicProperties(delivery_mode=2))
    _publish(ctx, queue, [_order("ann")])
    _consumer(ctx, mod, queue).run(max_messages=3, idle_timeout=1.5)
    left = ctx.message_count(queue)
    expect(_facts(conn) == (1, 9) and left == 0,
           "A message that can never become an order (not JSON, fields missing) must be set aside, not handed "
           "back to the queue: requeued, it comes back for ever and blocks the orders behind it (a poison "
           "message).", f"a malformed message, then ann's order: (orders, stock) = {_facts(conn)}, "
           f"{left} messages left in the queue")


def close_ends_session(ctx, mod) -> None:
    conn = _setup(ctx, 10)
    name = f"grader-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(ctx, mod, dsn=f"{ctx.pg_dsn}?application_name={name}")
    consumer.handle(_order("ann"))
    consumer.close()
    deadline = time.monotonic() + 2
    while True:
        sessions = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                (name,)).fetchone()[0]
        if sessions == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    expect(sessions == 0,
           "close() must end the consumer's database session: PostgreSQL allows a limited number, and a "
           "service that restarts its consumers would run out.",
           f"after close(): {sessions} session(s) of the consumer still open")


HINT = "Try your OrderConsumer in the notebook against PostgreSQL and compare with what it should do."

CHECKS = [
    Check("handle writes once; a redelivery changes nothing", writes_once, HINT),
    Check("one order per user per product", one_per_user, HINT),
    Check("the stock decrement is guarded", guarded_stock, HINT),
    Check("an unknown product is refused, not raised", unknown_product, HINT),
    Check("run writes the published orders and empties the queue", run_drains, HINT, timeout=30.0),
    Check("acknowledge only after commit", ack_after_commit, HINT, timeout=30.0),
    Check("a malformed message is dropped, not redelivered for ever", malformed_dropped, HINT, timeout=20.0,
          depends=("run writes the published orders and empties the queue",)),
    Check("close() ends the database session", close_ends_session, HINT),
    Check("every refusal is recorded with its reason; statuses answer", refusals_recorded, HINT),
    Check("handle_batch decides each order as handle would, with its reason", batch_decides_like_handle, HINT),
    Check("a batch of 300 orders for 300 products is written whole", large_batch, HINT, timeout=30.0),
    Check("run decides every order: confirmed or rejected, none pending", run_decides_every_order, HINT,
          timeout=30.0, depends=("run writes the published orders and empties the queue",)),
    Check("handle: a write failing once, then redelivery, ends as without the fault", handle_failpoints, HINT,
          timeout=45.0, depends=("handle writes once; a redelivery changes nothing",)),
    Check("run: a write failing once, then redelivery, ends as without the fault", run_failpoints, HINT,
          timeout=45.0, depends=("run writes the published orders and empties the queue",)),
    Check("killed after commit, before ack: the redelivery changes nothing", killed_before_ack, HINT,
          timeout=30.0, depends=("run writes the published orders and empties the queue",)),
]

# Your workspace. Generated from solutions/consumer.py by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/consumer.py and regenerate, never this file.
"""The order service: from the queue into PostgreSQL, exactly once in effect.

RabbitMQ delivers each message AT LEAST once: if the consumer dies after
writing an order but before acknowledging it, the broker delivers it again.
We cannot prevent the redelivery, so we make it harmless:

* orders.order_id is the primary key, and INSERT ... ON CONFLICT DO NOTHING
  turns a second copy into a no-op. Writing twice has the effect of once.
* We acknowledge only AFTER the transaction committed. Ack first and crash,
  and the order is gone; commit first and crash, and it merely comes back.

PostgreSQL is also the last guard against overselling: the stock decrement is
guarded (`stock > 0`, plus CHECK (stock >= 0) in the schema) and a user can
hold one order per product (UNIQUE (user_id, product_id)). An order the
database refuses is recorded in order_rejections, never silently dropped.

Two ways to write orders, compared in the notebook:

* handle(order): one order, one transaction. Easy to follow, but every order
  pays for a commit (a flush to disk) and several round trips.
* handle_batch(orders): a whole batch in one transaction with a handful of
  set-based statements. One commit per batch: many times faster, same result.
"""

import json
import logging
import time
from collections import defaultdict
from datetime import datetime, timezone

import pika
import psycopg

NOTEBOOK = "notebooks/14_order_consumer.ipynb"

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("order_id", "user_id", "product_id", "created_at")
BIGINT_MAX = 2**63 - 1
POLL_S = 0.2  # how long run() waits for a message before checking its timers


class BadOrder(ValueError):
    """A message that can never become an order (not JSON, missing or malformed fields)."""


def parse_order(body: bytes | str) -> dict:
    """Decode a message body into an order dict, or raise BadOrder."""
    try:
        order = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadOrder(f"not JSON: {exc}") from exc
    return validate_order(order)


def validate_order(order: dict) -> dict:
    """Check an order's fields and return it normalised (product_id int, created_at datetime).

    Anything PostgreSQL would choke on is caught here, because one bad order
    that makes the transaction fail would make the whole batch fail, again on
    every redelivery: a "poison message" that blocks the queue.
    """
    if not isinstance(order, dict):
        raise BadOrder(f"expected a JSON object, got {type(order).__name__}")
    missing = [field for field in REQUIRED_FIELDS if order.get(field) in (None, "")]
    if missing:
        raise BadOrder(f"missing fields: {', '.join(missing)}")
    for field in ("order_id", "user_id"):
        if not isinstance(order[field], str) or "\x00" in order[field]:
            raise BadOrder(f"{field} must be a string without NUL bytes")
    product_id = order["product_id"]
    if isinstance(product_id, str) and product_id.isdigit():
        product_id = int(product_id)
    if isinstance(product_id, bool) or not isinstance(product_id, int) or not 0 <= product_id <= BIGINT_MAX:
        raise BadOrder(f"product_id must be a non-negative integer, got {order['product_id']!r}")
    created_at = order["created_at"]
    if not isinstance(created_at, datetime):
        try:
            created_at = datetime.fromisoformat(str(created_at))
        except ValueError as exc:
            raise BadOrder(f"created_at is not ISO-8601: {created_at!r}") from exc
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=timezone.utc)  # the gateway stamps UTC
    return {**order, "product_id": product_id, "created_at": created_at}


class OrderConsumer:
    """Reads orders from a RabbitMQ queue and writes them to PostgreSQL."""

    def __init__(
        self,
        amqp_url: str,
        pg_dsn: str,
        queue: str = "orders",
        prefetch: int = 200,
        batch_size: int = 200,
    ) -> None:
        if prefetch < 1 or batch_size < 1:
            raise ValueError("prefetch and batch_size must be >= 1")
        self.amqp_url = amqp_url
        self.pg_dsn = pg_dsn
        self.queue = queue
        self.prefetch = prefetch
        self.batch_size = batch_size
        self._pg: psycopg.Connection | None = None

    def _db(self) -> psycopg.Connection:
        """The one PostgreSQL connection, (re)opened when there is none or it broke."""
        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(self.pg_dsn, autocommit=False)
        return self._pg

    def close(self) -> None:
        """Close the PostgreSQL connection (run() closes its own RabbitMQ connection)."""
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    # -- one order at a time ---------------------------------------------------

    def handle(self, order: dict) -> bool:
        """Write one order in its own transaction. True if it was written.

        False when the order_id was already handled (a redelivery: nothing
        changes), or the database refused it; refusals are recorded in
        order_rejections with their reason.
        """
        order = validate_order(order)
        raise NotImplementedError("OrderConsumer.handle in labs/consumer.py is not written yet — see notebooks/14_order_consumer.ipynb")

    # -- a batch at a time -----------------------------------------------------

    def handle_batch(self, orders: list[dict]) -> list[bool]:
        """Write a batch of orders in ONE transaction; same results as handle() on each in turn.

        Set-based: the cost is a handful of statements per batch, not per
        order. When a product has less stock than new orders, the earliest
        created_at keep their items (the batch order, when the queue delivers
        orders in the order the gateway accepted them, as it normally does).
        """
        orders = [validate_order(order) for order in orders]
        return [self.handle(order) for order in orders]

    # -- the service loop ------------------------------------------------------

    def run(self, max_messages: int | None = None, idle_timeout: float | None = None) -> int:
        """Consume orders until `max_messages` were handled or the queue was idle for `idle_timeout` s.

        Returns how many messages were handled (written, refused or dropped as
        malformed). With both None it runs until interrupted. Connection errors
        propagate; unacknowledged messages then go back to the queue.
        """
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        handled = 0
        try:
            channel = connection.channel()
            channel.queue_declare(queue=self.queue, durable=True)
            # prefetch: how many unacknowledged messages the broker may push
            # to us. It bounds our memory and the size of a batch.
            channel.basic_qos(prefetch_count=self.prefetch)
            batch: list[tuple[int, dict]] = []  # (delivery_tag, order)
            last_message_at = time.monotonic()
            for method, _properties, body in channel.consume(self.queue, inactivity_timeout=POLL_S):
                if method is None:  # nothing arrived within POLL_S
                    if idle_timeout is not None and time.monotonic() - last_message_at >= idle_timeout:
                        break
                    continue
                last_message_at = time.monotonic()
                try:
                    batch.append((method.delivery_tag, parse_order(body)))
                except BadOrder as exc:
                    # Requeueing would hand us the same broken message forever.
                    log.warning("dropping malformed message %r: %s", body[:200], exc)
                    channel.basic_nack(delivery_tag=method.delivery_tag, requeue=False)
                    handled += 1
                limit_reached = max_messages is not None and handled + len(batch) >= max_messages
                # Flush when the batch is full, when nothing more is waiting
                # (do not hold orders back hoping for more), or at the limit.
                if batch and (
                    len(batch) >= self.batch_size or channel.get_waiting_message_count() == 0 or limit_reached
                ):
                    self._write_then_ack(channel, batch)
                    handled += len(batch)
                    batch = []
                if limit_reached:
                    break
            return handled
        except (KeyboardInterrupt, SystemExit):
            log.info("order consumer stopped after %d messages", handled)
            raise
        finally:
            # Closing hands every unacknowledged message back to the queue.
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass

    def _write_then_ack(self, channel, batch: list[tuple[int, dict]]) -> None:
        """Commit the batch, THEN acknowledge it: a crash in between only causes a redelivery."""
        raise NotImplementedError("OrderConsumer._write_then_ack in labs/consumer.py is not written yet — see notebooks/14_order_consumer.ipynb")


def _columns(orders: list[dict], *fields: str) -> list[list]:
    """Turn a list of order dicts into one list per field, for unnest(...)."""
    return [[order[field] for order in orders] for field in fields]


def _already_decided(cur: psycopg.Cursor, order_id: str) -> bool:
    """Was this order_id written or refused before? Then a new copy is just a redelivery."""
    cur.execute(
        """
        SELECT EXISTS (SELECT 1 FROM orders WHERE order_id = %(id)s)
            OR EXISTS (SELECT 1 FROM order_rejections WHERE order_id = %(id)s)
        """,
        {"id": order_id},
    )
    return cur.fetchone()[0]


def _record_rejections(cur: psycopg.Cursor, rejections: list[tuple[dict, str]]) -> None:
    """Store refused orders with their reason. A reason recorded before is kept."""
    if not rejections:
        return
    cur.execute(
        """
        INSERT INTO order_rejections (order_id, user_id, product_id, reason)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[])
        ON CONFLICT (order_id) DO NOTHING
        """,
        _columns([order for order, _ in rejections], "order_id", "user_id", "product_id")
        + [[reason for _, reason in rejections]],
    )

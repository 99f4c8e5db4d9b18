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
# Ids are indexed (orders' primary key, UNIQUE (user_id, product_id)); a B-tree row
# must fit in a third of a page (~2,700 bytes), so a longer id fails the INSERT.
MAX_ID_CHARS = 200
MAX_ATTEMPTS = 2  # a single order that makes its transaction fail is tried this often, then dead-lettered
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
        value = order[field]
        if not isinstance(value, str) or "\x00" in value:
            raise BadOrder(f"{field} must be a string without NUL bytes")
        if len(value) > MAX_ID_CHARS:
            raise BadOrder(f"{field} is {len(value)} characters long; at most {MAX_ID_CHARS} fit the index")
        try:
            value.encode("utf-8")  # a lone surrogate ("\ud800") is valid JSON but not UTF-8 text
        except UnicodeEncodeError as exc:
            raise BadOrder(f"{field} is not valid Unicode text: {exc.reason}") from exc
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
        self.dead_letter_queue = f"{queue}.dead"

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
            channel.queue_declare(queue=self.dead_letter_queue, durable=True)
            channel.confirm_delivery()  # a dead-lettered copy is safe before the original is acked
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
                    # Requeueing would hand us the same broken message forever: set it aside.
                    self._dead_letter(channel, method.delivery_tag, body, str(exc))
                    handled += 1
                limit_reached = max_messages is not None and handled + len(batch) >= max_messages
                # Flush when the batch is full, when nothing more is waiting
                # (do not hold orders back hoping for more), or at the limit.
                if batch and (
                    len(batch) >= self.batch_size or channel.get_waiting_message_count() == 0 or limit_reached
                ):
                    self._write_or_isolate(channel, batch)
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

    def _write_or_isolate(self, channel, batch: list[tuple[int, dict]], attempt: int = 1) -> None:
        """Write the batch; if the DATABASE refuses it (not a lost connection), find the poison message.

        A message that makes its transaction fail would fail the whole batch on
        every redelivery, forever, and block the orders behind it. So a refused
        batch is split in halves and each half written on its own; a single order
        that still fails is tried MAX_ATTEMPTS times, then moved to the dead-letter
        queue with its reason and recorded as rejected. A lost connection is not
        the message's fault: it propagates, and the service reconnects.
        """
        try:
            self._write_then_ack(channel, batch)
        except (pika.exceptions.AMQPError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if self._pg is None or self._pg.closed or self._pg.broken:
                raise  # PostgreSQL went away: not the batch's fault
            if len(batch) > 1:
                log.warning("a batch of %d failed (%s); splitting it to isolate the cause", len(batch), exc)
                middle = len(batch) // 2
                self._write_or_isolate(channel, batch[:middle])
                self._write_or_isolate(channel, batch[middle:])
            elif attempt < MAX_ATTEMPTS:
                self._write_or_isolate(channel, batch, attempt + 1)
            else:
                tag, order = batch[0]
                self._dead_letter(channel, tag, json.dumps(order, default=str).encode(),
                                  f"refused by PostgreSQL: {type(exc).__name__}: {exc}", order)

    def _dead_letter(self, channel, delivery_tag: int, body: bytes, reason: str, order: dict | None = None) -> None:
        """Move a message that can never be written to ``<queue>.dead`` (with its reason), record it, ack it."""
        log.warning("dead-lettering a message (%s): %r", reason, body[:200])
        channel.basic_publish(exchange="", routing_key=self.dead_letter_queue, body=body,
                              properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                                              headers={"x-dead-reason": reason[:500]}))
        self._record_invalid(order if order is not None else _loose_order(body), reason)
        channel.basic_ack(delivery_tag=delivery_tag)

    def _record_invalid(self, order: dict | None, reason: str) -> None:
        """Record the refusal in order_rejections when its fields can be stored at all (best effort)."""
        order = _storable(order)
        if order is None:
            return  # no order id or product that fits the table: the dead-letter queue is its only record
        try:
            conn = self._db()
            with conn.transaction(), conn.cursor() as cur:
                _record_rejections(cur, [(order, "invalid: " + reason[:200])])
        except psycopg.Error as exc:
            log.warning("could not record the rejection of %s: %s", order.get("order_id"), exc)

    def _write_then_ack(self, channel, batch: list[tuple[int, dict]]) -> None:
        """Commit the batch, THEN acknowledge it: a crash in between only causes a redelivery."""
        raise NotImplementedError("OrderConsumer._write_then_ack in labs/consumer.py is not written yet — see notebooks/14_order_consumer.ipynb")


def _storable(order: dict | None) -> dict | None:
    """The order's id, user and product as order_rejections can store them, or None if its id or product cannot be."""
    if not isinstance(order, dict):
        return None
    order_id, user_id, product_id = order.get("order_id"), order.get("user_id"), order.get("product_id")
    if not isinstance(order_id, str) or not 0 < len(order_id) <= MAX_ID_CHARS or "\x00" in order_id:
        return None
    try:
        order_id.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if isinstance(product_id, bool) or not isinstance(product_id, int) or not 0 <= product_id <= BIGINT_MAX:
        return None
    # the user as readable text: a lone surrogate becomes \\ud800, NULs dropped, cut to size
    user = str(user_id).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "")[:MAX_ID_CHARS]
    return {"order_id": order_id, "user_id": user, "product_id": product_id}


def _loose_order(body: bytes) -> dict | None:
    """The fields of a message that failed validation, if it is a JSON object at all."""
    try:
        order = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return order if isinstance(order, dict) else None


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

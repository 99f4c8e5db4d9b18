# Your workspace. Generated from solutions/producer.py by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/producer.py and regenerate, never this file.
"""Publishing orders to RabbitMQ so that an acknowledged order is never lost.

Once Redis has reserved an item, the gateway answers the user at once and
leaves the slow database write to the order service. The queue in between is
the only copy of the order, so "published" has to mean "safe", which takes
three settings that are all off by default:

* a durable queue (queue_declare(durable=True)): the queue survives a broker
  restart;
* persistent messages (delivery_mode=Persistent): the messages in it survive
  too;
* publisher confirms (confirm_delivery): basic_publish waits until the broker
  has taken responsibility for the message, and raises if it could not.

mandatory=True adds one more check: a message that reaches no queue (someone
deleted it) comes back as an error instead of vanishing.

Every way a publish can fail becomes one PublishError, so the gateway has a
single thing to catch: it then releases the Redis reservation and tells the
user to try again. Publishing the same order twice is harmless, because the
consumer ignores an order_id it has already written.
"""

import json

import pika
import pika.exceptions

NOTEBOOK = "notebooks/13_order_producer.ipynb"

# Fail fast when the broker is down: a gateway thread stuck for the default
# timeouts (tens of seconds) is worse than an immediate "try again".
CONNECT_TIMEOUT_S = 3
BLOCKED_TIMEOUT_S = 5


class PublishError(Exception):
    """The broker did not confirm the order: it is NOT safely queued."""


class OrderProducer:
    """Publishes order dicts as persistent JSON messages to a durable queue.

    Not thread-safe (pika's BlockingConnection is not): use one producer per
    thread. It connects on the first send, and after any failure it drops the
    connection so that the next send starts with a fresh one.
    """

    def __init__(self, amqp_url: str, queue: str = "orders") -> None:
        self.queue = queue
        self._parameters = pika.URLParameters(amqp_url)
        self._parameters.connection_attempts = 1
        self._parameters.socket_timeout = CONNECT_TIMEOUT_S
        self._parameters.stack_timeout = CONNECT_TIMEOUT_S + 2
        self._parameters.blocked_connection_timeout = BLOCKED_TIMEOUT_S
        self._connection: pika.BlockingConnection | None = None
        self._channel = None

    def _open_channel(self):
        """Connect and prepare a channel: durable queue, publisher confirms on."""
        raise NotImplementedError("OrderProducer._open_channel in labs/producer.py is not written yet — see notebooks/13_order_producer.ipynb")

    def _usable_channel(self):
        """The open channel, reconnecting if there is none or the broker went away.

        A BlockingConnection only notices a dead socket when it does I/O, so
        poke it (process_data_events with no wait) before trusting it. A lost
        connection found here costs nothing: nothing was published on it yet.
        """
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.process_data_events(time_limit=0)
            except (pika.exceptions.AMQPError, OSError):
                self._discard_connection()
        if self._channel is None or not self._channel.is_open:
            self._discard_connection()
            return self._open_channel()
        return self._channel

    def send_order(self, order: dict) -> None:
        """Publish `order` and wait for the broker's confirm; raise PublishError if it fails."""
        body = json.dumps(order).encode("utf-8")
        order_id = order.get("order_id")
        raise NotImplementedError("OrderProducer.send_order in labs/producer.py is not written yet — see notebooks/13_order_producer.ipynb")

    def _discard_connection(self) -> None:
        """Forget the connection (closing it if still open) so the next send reconnects."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass  # it is going away either way

    def close(self) -> None:
        """Close the connection, if any. Sending again later reconnects."""
        self._discard_connection()

    def __enter__(self) -> "OrderProducer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

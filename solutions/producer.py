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

A remote call has three outcomes, not two: yes (the confirm came), no (the
broker refused, or nothing was sent), and UNKNOWN (the message was sent but no
confirm came back in time, or the connection broke while waiting). An unknown
outcome is not a failure: the message may well be queued, and after a broker
that froze for 40 s wakes up it usually is. So:

* PublishError: definitely NOT queued (no connection, nack, unroutable). The
  gateway releases the Redis reservation and answers 503 "try again".
* PublishUnknown (a kind of PublishError): maybe queued. The gateway keeps the
  reservation and answers 202 "pending" with the order id; the status endpoint
  resolves it once the order service wrote or refused it, and `seckill
  reconcile` returns the reservation if the order provably never arrived.

Publishing the same order twice is harmless, because the consumer ignores an
order_id it has already written.
"""

import json

import pika
import pika.exceptions

NOTEBOOK = "notebooks/13_order_producer.ipynb"

# Fail fast when the broker is down: a gateway thread stuck for the default
# timeouts (tens of seconds) is worse than an immediate "try again".
CONNECT_TIMEOUT_S = 3
BLOCKED_TIMEOUT_S = 5
# How long a publish waits for its confirm. A frozen broker (a paused VM) keeps
# the TCP connection open and never answers: without this bound a gateway
# thread would wait as long as the freeze lasts.
CONFIRM_TIMEOUT_S = 5


class PublishError(Exception):
    """The order is definitely NOT queued (not sent, nacked, or unroutable): safe to release and retry."""


class PublishUnknown(PublishError):
    """The order was sent but its confirm did not arrive (timeout, connection lost): it MAY be queued.

    Never treat it as a failure: keep the reservation and answer "pending".
    """


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
        # BEGIN SOLUTION
        connection = pika.BlockingConnection(self._parameters)
        try:
            channel = connection.channel()
            channel.queue_declare(queue=self.queue, durable=True)
            channel.confirm_delivery()
        except BaseException:
            connection.close()
            raise
        self._connection, self._channel = connection, channel
        return channel
        # END SOLUTION

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

    def _confirm_deadline(self, timeout_s: float):
        """Arm a timer that cuts the connection if the confirm is not back within ``timeout_s``.

        BlockingChannel.basic_publish waits for the confirm with no time limit.
        The timer runs inside that wait (pika's I/O loop) and ends the stream
        the way pika's own heartbeat check does, so basic_publish raises an
        AMQPConnectionError: an unknown outcome. Cancel it with the returned
        function once the publish returned.
        """
        impl = self._connection._impl  # pika has no public "abort after N s" for a blocking publish

        def overdue():
            impl._terminate_stream(pika.exceptions.StreamLostError(
                f"no publisher confirm within {timeout_s:g} s (broker frozen or overloaded?)"))

        timer = impl.ioloop.call_later(timeout_s, overdue)

        def cancel():
            try:
                impl.ioloop.remove_timeout(timer)
            except Exception:
                pass  # the connection (and its loop) is already gone

        return cancel

    def send_order(self, order: dict) -> None:
        """Publish `order` and wait (at most CONFIRM_TIMEOUT_S) for the broker's confirm.

        Raises PublishError when the order is definitely not queued (no
        connection, nack, unroutable) and PublishUnknown when it was sent but
        not confirmed in time (it may be queued).
        """
        body = json.dumps(order).encode("utf-8")
        order_id = order.get("order_id")
        # BEGIN SOLUTION
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            message_id=None if order_id is None else str(order_id),
        )
        try:
            channel = self._usable_channel()
        except Exception as exc:  # refused, handshake timed out (pika raises several kinds): nothing was sent
            self._discard_connection()  # a definite failure
            raise PublishError(f"cannot reach the broker for order {order_id}: {exc!r}") from exc
        cancel = self._confirm_deadline(CONFIRM_TIMEOUT_S)
        try:
            channel.basic_publish(
                exchange="",  # the default exchange routes by queue name
                routing_key=self.queue,
                body=body,
                properties=properties,
                mandatory=True,
            )
        except pika.exceptions.UnroutableError as exc:
            self._discard_connection()
            raise PublishError(f"order {order_id} reached no queue (was {self.queue!r} deleted?)") from exc
        except pika.exceptions.NackError as exc:
            self._discard_connection()
            raise PublishError(f"broker refused order {order_id}") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            # Sent (or half sent), no answer: the broker may have queued it.
            self._discard_connection()
            raise PublishUnknown(f"order {order_id} sent, confirm not received: {exc!r}") from exc
        finally:
            cancel()
        # END SOLUTION

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

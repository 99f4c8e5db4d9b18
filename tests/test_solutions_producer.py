"""solutions.producer against a real RabbitMQ: durable, persistent, confirmed, fails fast."""

import json
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest

from solutions.producer import OrderProducer, PublishError

ORDER = {"order_id": "o-1", "user_id": "u-1", "product_id": 7, "created_at": "2024-11-11T00:00:00+00:00"}


def broker_queue(amqp_url: str, queue: str):
    """(message count, channel, connection) of `queue`, looked up without creating it."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    frame = channel.queue_declare(queue=queue, passive=True)
    return frame.method.message_count, channel, connection


def message_count(amqp_url: str, queue: str) -> int:
    count, _, connection = broker_queue(amqp_url, queue)
    connection.close()
    return count


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_port(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class TcpProxy:
    """Forwards a local port to the broker; cut() breaks every open connection, like a network failure."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_order_survives_as_a_persistent_message_in_a_durable_queue(amqp_url, fresh_queue):
    with OrderProducer(amqp_url, queue=fresh_queue) as producer:
        producer.send_order(ORDER)
        producer.send_order({**ORDER, "order_id": "o-2"})
    count, channel, connection = broker_queue(amqp_url, fresh_queue)
    try:
        assert count == 2
        method, properties, body = channel.basic_get(fresh_queue, auto_ack=True)
        assert json.loads(body.decode("utf-8")) == ORDER
        assert properties.delivery_mode == 2  # persistent
        assert properties.content_type == "application/json"
        assert properties.message_id == "o-1"
        # A passive declare with durable=False would fail if it were not durable;
        # re-declaring with durable=True succeeds only on a durable queue.
        channel.queue_declare(queue=fresh_queue, durable=True)
    finally:
        connection.close()


def test_connects_lazily(amqp_url, fresh_queue):
    producer = OrderProducer(f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F", queue=fresh_queue)
    producer.close()  # constructing and closing never touched the network


def test_unreachable_broker_raises_publish_error_fast(fresh_queue):
    producer = OrderProducer(f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F", queue=fresh_queue)
    started = time.monotonic()
    with pytest.raises(PublishError) as caught:
        producer.send_order(ORDER)
    assert time.monotonic() - started < 5
    assert caught.value.__cause__ is not None  # the pika error is chained
    with pytest.raises(PublishError):  # and again: no stale state
        producer.send_order(ORDER)
    producer.close()


def test_unroutable_message_raises_then_next_send_recovers(amqp_url, fresh_queue):
    with OrderProducer(amqp_url, queue=fresh_queue) as producer:
        producer.send_order(ORDER)
        _, channel, connection = broker_queue(amqp_url, fresh_queue)
        channel.queue_delete(queue=fresh_queue)  # the queue vanishes under the producer
        connection.close()
        with pytest.raises(PublishError, match="no queue"):
            producer.send_order({**ORDER, "order_id": "o-lost"})
        producer.send_order({**ORDER, "order_id": "o-3"})  # reconnects, re-declares the queue
    assert message_count(amqp_url, fresh_queue) == 1


def test_reconnects_after_the_connection_was_lost(amqp_url, fresh_queue):
    broker = urlsplit(amqp_url)
    proxy = TcpProxy(broker.hostname, broker.port or 5672)
    try:
        with OrderProducer(with_port(amqp_url, "127.0.0.1", proxy.port), queue=fresh_queue) as producer:
            producer.send_order(ORDER)
            proxy.cut()
            time.sleep(0.1)
            sent = 1
            for attempt in range(2):  # the loss may surface as one PublishError
                try:
                    producer.send_order({**ORDER, "order_id": f"o-after-{attempt}"})
                    sent += 1
                    break
                except PublishError:
                    continue
            assert sent == 2
            producer.send_order({**ORDER, "order_id": "o-last"})
    finally:
        proxy.close()
    assert message_count(amqp_url, fresh_queue) == 3


def test_broker_refusing_the_queue_declaration_is_a_publish_error(amqp_url, fresh_queue):
    # Someone declared the queue with other arguments: our declare is refused.
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_declare(queue=fresh_queue, durable=False)
    connection.close()
    with OrderProducer(amqp_url, queue=fresh_queue) as producer:
        with pytest.raises(PublishError):
            producer.send_order(ORDER)

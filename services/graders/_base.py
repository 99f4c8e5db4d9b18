"""What every lab's checks share: expect(), Check, and the Context with the servers."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

GRADER_DB = "seckill_grader"
GRADER_REDIS_DB = 15


class CheckFailed(AssertionError):
    """A check saw behaviour that is wrong; `hint` points to the idea, `detail` says what was seen."""

    def __init__(self, hint: str, detail: str | None = None) -> None:
        super().__init__(detail or hint)
        self.hint = hint
        self.detail = detail


def expect(condition: Any, hint: str, detail: str | None = None) -> None:
    if not condition:
        raise CheckFailed(hint, detail)


def not_implemented(exc: BaseException | None) -> bool:
    """Is NotImplementedError the exception or anywhere in its chain (a wrapped lab stub)?"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, NotImplementedError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class Check:
    title: str
    func: Callable[["Context", Any], None]
    hint: str  # shown when the learner's code raises instead of answering
    timeout: float = 15.0


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Context:
    """The servers one grading run uses, isolated from the learner's running sale."""

    urls: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    # -- Redis: db 15, flushed per check -----------------------------------------
    def redis(self):
        import redis

        base = self.urls["redis"].rsplit("/", 1)[0]
        client = redis.Redis.from_url(f"{base}/{GRADER_REDIS_DB}", decode_responses=True,
                                      socket_timeout=10, socket_connect_timeout=5)
        client.flushdb()
        self.cleanups.append(client.close)
        return client

    # -- RabbitMQ: a queue of our own, deleted afterwards --------------------------
    @property
    def amqp_url(self) -> str:
        return self.urls["amqp"]

    def queue(self) -> str:
        name = f"grader-{uuid.uuid4().hex[:12]}"
        self.cleanups.append(lambda: self._delete_queue(name))
        return name

    def amqp(self):
        """A connection of the grader's own (closed after the check)."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        self.cleanups.append(lambda: connection.is_open and connection.close())
        return connection

    def _delete_queue(self, name: str) -> None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            connection.channel().queue_delete(queue=name)
        finally:
            connection.close()

    def message_count(self, queue: str) -> int | None:
        """Ready messages in `queue`, or None when it does not exist."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            return connection.channel().queue_declare(queue=queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return None
        finally:
            if connection.is_open:
                connection.close()

    # -- PostgreSQL: database seckill_grader ---------------------------------------
    @property
    def pg_dsn(self) -> str:
        return self.urls["postgres"].rsplit("/", 1)[0] + f"/{GRADER_DB}"

    def bad_pg_dsn(self) -> str:
        """The grader's database at a port where nothing listens: every write fails."""
        import re

        return re.sub(r":\d+/", f":{closed_port()}/", self.pg_dsn, count=1) + "?connect_timeout=2"

    def ensure_database(self) -> None:
        import psycopg

        from .. import db

        admin = self.urls["postgres"].rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (GRADER_DB,)).fetchone():
                try:
                    conn.execute(f'CREATE DATABASE "{GRADER_DB}"')
                except psycopg.errors.DuplicateDatabase:
                    pass  # another grader was quicker
        db.apply_schema(self.pg_dsn)

    def pg(self):
        """An autocommit connection to an emptied grader database (others' sessions ended first)."""
        import psycopg

        conn = psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=5)
        self.cleanups.append(conn.close)
        # A consumer left over from an earlier check (or one that timed out)
        # may hold locks: end every other session of the grader's database.
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (GRADER_DB,))
        conn.execute("SET lock_timeout = '5s'")
        conn.execute("TRUNCATE orders, order_rejections, products")
        return conn

    def close(self) -> None:
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception:  # cleanup must never hide the check's result
                pass

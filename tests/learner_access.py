"""Checks shared by the workshop isolation tests (native and Docker): learner B is refused by learner A's
servers — with B's own credentials and with the single-learner defaults — while A's own credentials work.

``a`` and ``b`` are the two learners' Settings (seckill.config.Settings in workshop mode).
"""

from __future__ import annotations

import pika
import psycopg
import pytest
import redis


def assert_redis_refuses_b(a, b) -> None:
    for password in (b.redis_password, None):
        client = redis.Redis(host="127.0.0.1", port=a.ports.redis, password=password, socket_timeout=3)
        with pytest.raises(redis.AuthenticationError):
            client.get("stock:1")
        with pytest.raises(redis.AuthenticationError):
            client.flushdb()
        client.close()
    own = redis.Redis.from_url(a.redis_url, socket_timeout=3)
    assert own.ping() and own.set("workshop:probe", "a")  # A's own credentials do work
    own.close()


def assert_rabbitmq_refuses_b(a, b) -> None:
    for user, password in ((b.amqp_user, b.amqp_password), ("guest", "guest")):
        url = f"amqp://{user}:{password}@127.0.0.1:{a.ports.amqp}/%2F?connection_attempts=1&socket_timeout=3"
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.URLParameters(url)).close()
    pika.BlockingConnection(pika.URLParameters(a.amqp_url)).close()


def assert_postgres_refuses_b(a, b) -> None:
    """B's password and the default one are refused (A's own is the caller's to check)."""
    for password in (b.pg_password, "seckill"):
        url = f"postgresql://{a.pg_user}:{password}@127.0.0.1:{a.ports.postgres}/{a.pg_database}"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url, connect_timeout=5).close()

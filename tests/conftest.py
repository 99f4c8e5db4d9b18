"""Fixtures: a real stack of this checkout's own, on test ports, for the whole run.

The tests never touch the learner's stack: they use .run/test and their own
ports, set here before anything reads the settings. The stack starts once per
session (about 6 s, RabbitMQ being the slow one) and is stopped at the end, so
`make test` leaves no process behind.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_ENV = {
    "SECKILL_RUN_DIR": str(REPO / ".run" / "test"),
    "SECKILL_REDIS_PORT": "17379",
    "SECKILL_POSTGRES_PORT": "17432",
    "SECKILL_AMQP_PORT": "17672",
    "SECKILL_RABBITMQ_DIST_PORT": "17673",
    "SECKILL_EPMD_PORT": "17369",
    "SECKILL_GATEWAY_PORT": "19000",
    "SECKILL_NGINX_PORT": "19080",
    "SECKILL_BACKEND": "native",
    "SECKILL_IMPL": "solutions",
}
os.environ.update(TEST_ENV)

import pika  # noqa: E402
import psycopg  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402

from seckill import stack, tiers  # noqa: E402
from seckill.config import settings  # noqa: E402


@pytest.fixture(scope="session")
def stack_urls():
    urls = stack.up(out=None)
    yield urls
    stack.down(out=None)


@pytest.fixture(scope="session")
def s(stack_urls):
    """The settings the test stack runs with."""
    return settings()


@pytest.fixture
def redis_client(stack_urls):
    client = redis.Redis.from_url(stack_urls["redis"], decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def amqp_url(stack_urls):
    return stack_urls["amqp"]


@pytest.fixture
def pg_dsn(stack_urls):
    with psycopg.connect(stack_urls["postgres"], autocommit=True) as conn:
        conn.execute("TRUNCATE orders, order_rejections, products")
    return stack_urls["postgres"]


@pytest.fixture
def fresh_queue(amqp_url):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_delete(queue=name)
    finally:
        connection.close()


# Limits generous enough that a burst from thousands of simulated users is
# never throttled by the global bucket; per-user and per-IP stay as the seed says.
BURST_LIMITS = {"bucket_capacity": 100_000.0, "bucket_rate": 100_000.0}


@pytest.fixture(scope="module")
def flask_tier(stack_urls):
    state = tiers.up("flask", limits=BURST_LIMITS, out=None)
    yield state
    tiers.down(out=None)

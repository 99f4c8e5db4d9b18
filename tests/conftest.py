"""Fixtures: a real stack of this checkout's own, on test ports, for the whole run.

The tests never touch the learner's stack: they use .run/test and their own
ports, set here before anything reads the settings. The stack starts once per
session (about 6 s, RabbitMQ being the slow one) and is stopped at the end, so
`make test` leaves no process behind.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# SECKILL_TEST_SLOT=N moves the whole test stack by N*100 ports and into .run/testN,
# so two test runs on one machine (two checkouts, two developers) do not collide.
SLOT = int(os.environ.get("SECKILL_TEST_SLOT", "0") or 0)
PORT_SHIFT = 100 * SLOT  # no two ports below differ by a multiple of 100
TEST_ENV = {
    "SECKILL_RUN_DIR": str(REPO / ".run" / (f"test{SLOT}" if SLOT else "test")),
    "SECKILL_REDIS_PORT": str(17379 + PORT_SHIFT),
    "SECKILL_POSTGRES_PORT": str(17432 + PORT_SHIFT),
    "SECKILL_AMQP_PORT": str(17672 + PORT_SHIFT),
    "SECKILL_RABBITMQ_DIST_PORT": str(17673 + PORT_SHIFT),
    "SECKILL_EPMD_PORT": str(17369 + PORT_SHIFT),
    "SECKILL_GATEWAY_PORT": str(19000 + PORT_SHIFT),
    "SECKILL_NGINX_PORT": str(19080 + PORT_SHIFT),
    "SECKILL_REDIS_REPLICA_PORT": str(17380 + PORT_SHIFT),
    "SECKILL_SENTINEL_PORT": str(17381 + PORT_SHIFT),
    "SECKILL_BACKEND": "native",
    "SECKILL_IMPL": "solutions",
}
# measurements made by tests and notebooks stay out of the learner's results/
TEST_ENV["SECKILL_RESULTS_DIR"] = str(Path(TEST_ENV["SECKILL_RUN_DIR"]) / "results")
os.environ.update(TEST_ENV)

import pika  # noqa: E402
import psycopg  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402

from seckill import stack  # noqa: E402
from seckill.stack import processes  # noqa: E402
from seckill.system import tiers  # noqa: E402
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


@pytest.fixture(params=[True, False], ids=["decoded", "bytes"])
def any_redis(request, redis_client):
    """redis_client, and a twin on the same db that returns bytes: code must handle both."""
    if request.param:
        yield redis_client
        return
    pool = redis_client.connection_pool
    kwargs = dict(pool.connection_kwargs, decode_responses=False)
    client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
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


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """A module's own empty SECKILL_RESULTS_DIR: what the tests measure and save, read back alone."""
    path = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECKILL_RESULTS_DIR", str(path))
        yield path


def _queue_consumers(s) -> int | None:
    """Consumers on the orders queue of the test stack, or None when RabbitMQ is not up."""
    if not processes.port_open(s.ports.amqp):  # not up: say so without pika logging a failed connection
        return None
    try:
        connection = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    except Exception:
        return None
    try:
        return connection.channel().queue_declare(s.queue, passive=True).method.consumer_count
    except Exception:
        return None
    finally:
        if connection.is_open:
            connection.close()


def _amqp_clients(port: int) -> list[str]:
    """Processes with a connection to RabbitMQ's port: who is still consuming."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(c.raddr and c.raddr.port == port for c in proc.net_connections(kind="tcp")):
                me = " (this pytest process)" if proc.pid == os.getpid() else ""
                found.append(f"{proc.pid}{me}: {' '.join(proc.info['cmdline'] or [])[:160]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module", autouse=True)
def no_consumer_left_behind(request):
    """A module that leaves a consumer on the orders queue breaks the next one's premise
    ("nothing consumes the queue"): say which module, and who is connected."""
    yield
    s = settings()
    for _ in range(20):  # a stopping process may take a moment to close its connection
        left = _queue_consumers(s)
        if not left:
            return
        time.sleep(0.5)
    who = _amqp_clients(s.ports.amqp)
    log = Path(TEST_ENV["SECKILL_RUN_DIR"]) / "leaks.log"
    with log.open("a") as f:
        f.write(f"{request.node.nodeid}: {left} consumer(s) on {s.queue!r} after the module; connected: {who}\n")

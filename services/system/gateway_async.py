"""The gateway's fast path on an event loop (tier T3, FastAPI): same steps, no thread waits.

Why it is faster than the threaded Flask gateway on the same cores: a request
spends most of its life waiting on Redis and RabbitMQ round trips. A thread per
request pays for every wait with a blocked thread (and the GIL hand-over); one
event loop per process parks the request and serves others meanwhile.

The decisions are exactly the Flask tier's (the shared steps live in
gateway.py); only the I/O is async:
  * Redis: redis.asyncio, running the *same Lua sources* as the chosen
    implementation's StockCache and RedisRateLimiter (so SECKILL_IMPL=labs runs
    the learner's scripts here too); the limits and reserve_once go as one
    script built from those sources (one_script.py; SECKILL_ONE_SCRIPT=0: three);
  * RabbitMQ: aio-pika with publisher confirms. Many requests publish on one
    channel at once and each awaits its own confirm, so the confirms are
    pipelined: the broker confirms a whole run of messages with one frame
    (multiple=True) instead of one round trip per order, and still no request
    is answered "success" before the broker has confirmed its order.

Why two drivers (Gateway.buy blocking, AsyncGateway.buy awaiting) and not one
sans-I/O core that both drive, as h11 does for HTTP: every *decision* is
already one shared pure function in gateway.py (parse_request, sale_problem,
reservation_problem, is_sold_out, remember_outcome, accepted/pending/unavailable),
so what each ``_buy`` keeps is the order of the I/O calls — ten lines a reader
follows top to bottom. A single core would turn each call into ``result = yield
Step(...)`` with a dispatch table per driver, and the two places where the
drivers really differ would move into that plumbing: a cancelled await leaves
the publish outcome unknown (the reservation is kept, never released), and tier
T4 answers its local sold-out flag before the bucket. Weighed for issue 13:
more lines in all, and the fast path would no longer read as the request it is. The twins are kept in step by tests that send both tiers the same bad
input and the same failures and expect the same answers
(tests/test_fuzz_api.py, tests/test_identity.py, tests/test_dependencies.py,
tests/test_unknown_outcomes.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import redis.asyncio as aioredis
import redis as redis_lib

from seckill.stack import db
from seckill.system import autopipeline, fastjson, impl, one_script
from seckill.config import Limits, Settings
from seckill.system.gateway import (ORDER_ID, PENDING_TTL_S, Reply, accepted, bucket_limited, bucket_retry_after,
                                    limited, new_order, order_reply, parse_request, pending, pending_marker,
                                    pending_status, reservation_problem, sale_problem, unavailable)
from seckill.system.gateway import (crash_point, crash_users_from_env, redis_down, remember_outcome,
                                    sentinel_address)
from seckill.system.gateway import (PRODUCT_EXISTS_SQL, ProductMemory, TrustedProxies, health_reply, is_sold_out,
                                    sale_lost, trusted_from)
from seckill.system.sold_out import SoldOutMemory
from seckill.system.sale import AsyncSaleCatalog, order_key

log = logging.getLogger("seckill.system.gateway")


class PublishError(Exception):
    """The order is definitely not queued (no connection, nack, unroutable): release and answer 503."""


class PublishUnknown(PublishError):
    """Sent, but no confirm within the timeout (or the connection broke meanwhile): it MAY be queued.

    The gateway keeps the reservation and answers 202 pending (see gateway.pending).
    """


def _marker_fields(marker) -> tuple[int, str] | None:
    """(product_id, user_id) from a pending marker (gateway.pending_marker), None for an old plain one."""
    try:
        data = fastjson.loads(marker)
        return int(data["product_id"]), str(data["user_id"])
    except (ValueError, TypeError, KeyError):
        return None


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class AsyncStock:
    """reserve_once / release with the implementation's own Lua scripts, on redis.asyncio."""

    def __init__(self, redis, stock_module):
        self.redis = redis
        self._reserve_once = redis.register_script(stock_module.RESERVE_ONCE_LUA)
        self._release = redis.register_script(stock_module.RELEASE_LUA)

    @staticmethod
    def _keys(product_id: int) -> list[str]:
        return [f"stock:{product_id}", f"buyers:{product_id}"]

    async def reserve_once(self, product_id: int, user_id: str) -> str | None:
        return _text(await self._reserve_once(keys=self._keys(product_id), args=[user_id]))

    async def release(self, product_id: int, user_id: str) -> bool:
        return bool(await self._release(keys=self._keys(product_id), args=[user_id]))

    async def get_stock(self, product_id: int) -> int | None:
        value = await self.redis.get(f"stock:{product_id}")
        return None if value is None else int(value)

    async def sold_out_answer(self, product_id: int, user_id: str) -> str:
        """'already_bought' for a user who holds one, else 'sold_out' (see local_stock)."""
        return "already_bought" if await self.redis.sismember(f"buyers:{product_id}", user_id) else "sold_out"


class AsyncLayeredLimiter:
    """User layer, then IP layer, with the implementation's fixed-window Lua script."""

    def __init__(self, redis, rate_limit_module, limits: Limits, prefix: str = "rl"):
        self.redis = redis
        self.verdict = rate_limit_module.LimitVerdict
        self._count = redis.register_script(rate_limit_module.FIXED_WINDOW_LUA)
        self.window_ms = int(limits.window_s * 1000)
        self.layers = (("user", limits.user_limit), ("ip", limits.ip_limit))
        self.prefix = prefix

    async def check(self, user_id: str, client_ip: str, first: int = 0):
        """The verdict of the layers from ``first`` on (0: both; one_script passes 1 after judging the user)."""
        for (layer, limit), who in zip(self.layers[first:], (user_id, client_ip)[first:]):
            key = f"{self.prefix}:{layer}:{who}"
            if int(await self._count(keys=[key], args=[self.window_ms])) > limit:
                ttl_ms = await self.redis.pttl(key)
                return self.verdict(False, layer, ttl_ms / 1000 if ttl_ms > 0 else 0.0)
        return self.verdict(True, None, 0.0)


def _aio_pika_url(amqp_url: str) -> str:
    """Our URLs carry pika's query options (socket_timeout ...); aio-pika takes its own."""
    parts = urlsplit(amqp_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class AsyncOrderProducer:
    """Durable queue, persistent messages, publisher confirms; one channel shared by all requests."""

    def __init__(self, amqp_url: str, queue: str = "orders", timeout_s: float = 5.0):
        self.url = _aio_pika_url(amqp_url)
        self.queue = queue
        self.timeout_s = timeout_s
        self._connection = None
        self._channel = None
        self._lock = asyncio.Lock()
        self._in_flight: set[asyncio.Task] = set()  # publishes still waiting for their confirm

    async def _open(self):
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await self._discard()
                self._connection = await aio_pika.connect(self.url, timeout=3)
                self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
                await self._channel.declare_queue(self.queue, durable=True)
            return self._channel

    async def _discard(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:
                pass

    async def send_order(self, order: dict) -> None:
        """Publish and await the confirm (at most ``timeout_s``).

        Raises PublishError when the order is definitely not queued (no
        connection or channel, a nack, a return) and PublishUnknown when it was
        sent but the confirm did not come in time or the connection broke while
        waiting: then the broker may have queued it.
        """
        message = aio_pika.Message(fastjson.dumps(order), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                   content_type="application/json", message_id=str(order["order_id"]))
        channel = self._channel
        if channel is None or channel.is_closed:  # the lock (and a timer) only when a channel must be opened
            try:
                channel = await asyncio.wait_for(self._open(), timeout=self.timeout_s)
            except Exception as exc:  # no connection (refused, handshake timed out): nothing was sent
                await self._discard()
                raise PublishError(f"cannot reach the broker for order {order['order_id']}: {exc!r}") from exc
        # The publish runs as a task of its own and only the WAIT is bounded. aio-pika's own
        # timeout would also cancel a publish still queued behind others on this channel
        # (never written): the buyer would be told "pending" for a message that is then never
        # sent. Shielded, a publish that is late still goes out and is confirmed later.
        task = asyncio.ensure_future(channel.default_exchange.publish(message, routing_key=self.queue,
                                                                      mandatory=True))
        self._in_flight.add(task)
        task.add_done_callback(self._settled)
        try:
            # Returns once the broker confirmed (ack); a nack or a return raises.
            await asyncio.wait_for(asyncio.shield(task), timeout=self.timeout_s)
        except (aio_pika.exceptions.DeliveryError, aio_pika.exceptions.ChannelInvalidStateError) as exc:
            await self._discard()  # nacked, returned (reached no queue), or the channel was closed: not queued
            raise PublishError(f"order {order['order_id']} refused by the broker: {exc!r}") from exc
        except Exception as exc:  # late confirm, or the connection broke while waiting: unknown
            # A late confirm (a slow or frozen broker) is no reason to close the channel that
            # every other request publishes on; drop it only when it is already broken.
            if channel.is_closed:
                await self._discard()
            raise PublishUnknown(f"order {order['order_id']} sent, confirm not received: {exc!r}") from exc

    def _settled(self, task: asyncio.Task) -> None:
        """A publish ended (maybe after its buyer was told pending): forget it, log a late failure."""
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a publish answered pending ended without a confirm: %r", task.exception())

    async def close(self) -> None:
        if self._in_flight:  # let late publishes finish (bounded) before the connection goes
            await asyncio.wait(list(self._in_flight), timeout=self.timeout_s)
        await self._discard()


class AsyncGateway:
    """The same buy and order-status decisions as gateway.Gateway, awaiting instead of blocking."""

    def __init__(self, *, redis, stock, limiter, bucket, producer, sales, orders_db=None,
                 trusted_proxies=TrustedProxies(), bucket_rate: float = 1.0, clock=time.time,
                 sold_out: SoldOutMemory | None = None, crash_users: str | None = None,
                 sale_in_db=None, rebuild=None, health_checks: dict | None = None, one_script=None):
        self.redis = redis
        self.stock = stock
        self.limiter = limiter
        self.bucket = bucket
        self.producer = producer
        self.sales = sales
        self.orders_db = orders_db
        self.trusted_proxies = trusted_proxies
        self.bucket_retry_after = bucket_retry_after(bucket_rate)
        self.clock = clock
        self.sold_out = sold_out if sold_out is not None else SoldOutMemory(enabled=False)
        self.crash_users = crash_users  # the crash-between injection point (gateway.crash_point); None: off
        self.sale_in_db = sale_in_db      # async (product_id) -> bool; None: a missing sale is 404
        self.known_in_db = ProductMemory()
        self.stock_seen = ProductMemory()  # stock:{id} seen present (a sold-out answer is a real one)
        self.rebuild = rebuild            # rebuild.RedisRebuild (a thread), started when Redis lost a sale
        self.health_checks = health_checks or {}  # name -> async check that raises when down
        self.one_script = one_script  # one_script.AsyncOneScript: limits and reservation in one round trip
        # a stock that keeps a local sold-out flag (local_stock.AsyncLocalStock) is asked first
        self._sold_out_locally = getattr(stock, "sold_out_locally", None)

    async def buy(self, product_id_raw: str, body: bytes, client: str) -> Reply:
        try:
            return await self._buy(product_id_raw, body, client)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError, OSError) as exc:
            log.warning("redis unavailable: %s", exc)
            return redis_down(self.sold_out, product_id_raw)

    async def _buy(self, product_id_raw: str, body: bytes, client: str) -> Reply:
        product_id, user_id, problem = parse_request(product_id_raw, body)
        if problem:
            return problem
        window = await self.sales.get(product_id)
        if window is None:
            return await self._no_sale(product_id)
        problem = sale_problem(product_id, window, self.clock())
        if problem:
            return problem
        if self._sold_out_locally is not None and self._sold_out_locally(product_id):
            # tier local-stock: answered from memory, but a user who already bought hears so wherever
            # the request lands (one set lookup, not the whole buy path)
            return reservation_problem(await self.stock.sold_out_answer(product_id, user_id))
        if not self.bucket.allow_request():
            return bucket_limited(self.bucket_retry_after)
        if self.one_script is not None:  # the same two steps, one round trip (one_script.py)
            verdict, reserved = await self.one_script.limit_and_reserve(product_id, user_id, client)
            if not verdict.allowed:
                return limited(verdict)
        else:
            verdict = await self.limiter.check(user_id, client)
            if not verdict.allowed:
                return limited(verdict)
            reserved = await self.stock.reserve_once(product_id, user_id)
        problem = reservation_problem(reserved)
        if is_sold_out(problem) and await self._stock_lost(product_id):
            return await self._no_sale(product_id)  # "sold out" only because Redis lost the stock key
        remember_outcome(self.sold_out, product_id, problem)
        if problem:
            return problem
        crash_point(self.crash_users, user_id)

        order = new_order(user_id, product_id)
        try:
            await self.producer.send_order(order)
        except PublishUnknown as exc:
            # Not a failure: the broker may hold the order. Keep the item reserved for this user.
            log.warning("publish outcome unknown, reservation kept, answered pending: %s", exc)
            await self._mark_pending(order)
            return pending(order)
        except PublishError as exc:
            await self._release(product_id, user_id)
            log.warning("publish failed, reservation released: %s", exc)
            return unavailable("order queue")
        # (Cancelled while publishing, CancelledError passes through: its outcome is unknown
        # too, so the reservation is kept, never released for an order that may be queued;
        # reconciliation returns it if the order never arrives.)
        await self._mark_pending(order)
        return accepted(order)

    async def _mark_pending(self, order: dict) -> None:
        try:
            await self.redis.set(order_key(order["order_id"]), pending_marker(order), ex=PENDING_TTL_S)
        except redis_lib.RedisError:
            pass  # only the "pending" answer of the status endpoint depends on it

    async def _stock_lost(self, product_id: int) -> bool:
        """True when ``stock:{id}`` is gone (see gateway.Gateway._stock_lost)."""
        if self.stock_seen.get(product_id):
            return False
        if await self.redis.exists(f"stock:{product_id}"):
            self.stock_seen.put(product_id, True)
            return False
        return True

    async def _no_sale(self, product_id: int) -> Reply:
        """Redis has no sale: 404 if PostgreSQL has none either, else 503 while Redis is rebuilt."""
        if self.sale_in_db is None:
            return sale_problem(product_id, None, self.clock())
        exists = self.known_in_db.get(product_id)
        if exists is None:
            try:
                exists = bool(await self.sale_in_db(product_id))
            except Exception as exc:  # PostgreSQL down too: we cannot tell, so we do not say "no such sale"
                log.warning("sale lookup failed: %s", exc)
                return unavailable("sale catalogue")
            self.known_in_db.put(product_id, exists)
        if not exists:
            return sale_problem(product_id, None, self.clock())
        if self.rebuild is not None:
            self.rebuild.request()  # a thread: returns at once
        return sale_lost(product_id)

    async def health(self, tier: str = "fastapi") -> Reply:
        """200 when every dependency answers, else 503 naming the ones that do not."""
        up = {}
        for name, check in self.health_checks.items():
            try:
                await asyncio.wait_for(check(), timeout=3)
                up[name] = True
            except Exception as exc:
                log.warning("health: %s unavailable: %r", name, exc)
                up[name] = False
        return health_reply(up, tier=tier, impl=impl.current())

    async def _release(self, product_id: int, user_id: str) -> None:
        try:
            await self.stock.release(product_id, user_id)
        except redis_lib.RedisError:
            log.error("could not release the reservation of %s for product %s", user_id, product_id)

    async def order_status(self, order_id: str) -> Reply:
        if not ORDER_ID.match(order_id or ""):
            return order_reply(order_id, None)
        try:
            written = await self.orders_db(order_id) if self.orders_db else None
        except Exception as exc:
            log.warning("order lookup failed: %s", exc)
            return unavailable("order store")
        if written:
            return order_reply(order_id, written)
        try:
            marker = await self.redis.get(order_key(order_id))
            reserved = False
            if marker is not None:
                reserved = True
                data = _marker_fields(marker)
                if data is not None:
                    reserved = bool(await self.redis.sismember(f"buyers:{data[0]}", data[1]))
        except (redis_lib.RedisError, OSError):
            marker, reserved = None, False
        return order_reply(order_id, pending_status(marker, reserved))


def build(s: Settings, limits: Limits | None = None, impl_name: str | None = None,
          local_stock: bool = False) -> AsyncGateway:
    """An async gateway wired to the real services (call inside the server's event loop).

    ``local_stock=True`` is tier T4: this process sells from slices it leases
    from Redis (local_stock.AsyncLocalStock) instead of asking Redis per item.
    """
    import psycopg

    from seckill.config import HOST
    from seckill.system.local_stock import AsyncLocalStock
    from seckill.system.rebuild import RedisRebuild, settle_from_env

    limits = limits or s.limits
    r = async_redis_for(s)
    token_bucket = impl.running("token_bucket", impl_name)
    rate_limit, stock_module = impl.running("rate_limit", impl_name), impl.running("stock", impl_name)
    limiter = AsyncLayeredLimiter(r, rate_limit, limits)
    stock = AsyncLocalStock(r, slice_size=limits.local_slice) if local_stock else AsyncStock(r, stock_module)
    state = {"conn": None}
    lock = asyncio.Lock()

    async def on_db(sql: str, params) -> tuple | None:
        async with lock:  # status, lost sales and health are not the hot path: one connection is plenty
            for attempt in (1, 2):  # a connection from before a PostgreSQL restart: retry on a fresh one
                conn = state["conn"]
                fresh = conn is None or conn.closed
                if fresh:
                    conn = state["conn"] = await psycopg.AsyncConnection.connect(
                        s.postgres_url, autocommit=True, connect_timeout=3)
                try:
                    cur = await conn.execute(sql, params)
                    return await cur.fetchone()
                except Exception:
                    await conn.close()
                    if fresh or attempt == 2:
                        raise

    async def orders_db(order_id: str) -> str | None:
        row = await on_db(db.ORDER_STATUS_SQL, {"id": order_id})
        return row[0] if row else None

    async def sale_in_db(product_id: int) -> bool:
        return await on_db(PRODUCT_EXISTS_SQL, (product_id,)) is not None

    async def amqp_accepts() -> None:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, s.ports.amqp), timeout=1)
        writer.close()

    return AsyncGateway(
        redis=r,
        stock=stock,
        limiter=limiter,
        one_script=(None if not one_script.enabled()
                    else one_script.AsyncLocalOneScript(r, limiter, stock, rate_limit.FIXED_WINDOW_LUA) if local_stock
                    else one_script.AsyncOneScript(r, limiter, stock, rate_limit.FIXED_WINDOW_LUA,
                                                   stock_module.RESERVE_ONCE_LUA)),
        bucket=token_bucket.TokenBucket(limits.bucket_capacity, limits.bucket_rate),
        producer=AsyncOrderProducer(s.amqp_url, queue=s.queue),
        sales=AsyncSaleCatalog(r),
        orders_db=orders_db,
        trusted_proxies=trusted_from(s),
        bucket_rate=limits.bucket_rate,
        sold_out=SoldOutMemory(enabled=s.degrade_sold_out),
        crash_users=crash_users_from_env(),
        sale_in_db=sale_in_db,
        rebuild=RedisRebuild(s, settle_s=settle_from_env()),  # its own sync client, in its own thread
        health_checks={"redis": r.ping, "postgres": lambda: on_db("SELECT 1", None),
                       "rabbitmq": amqp_accepts},
    )


def async_redis_for(s: Settings):
    """redis.asyncio twin of gateway.redis_for: fast failure, and Sentinel when SECKILL_REDIS_SENTINEL is set."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options = {"socket_connect_timeout": 1, "socket_timeout": 2, "retry": Retry(NoBackoff(), 1)}
    # one pipeline round trip for the commands of one loop turn (autopipeline.py says why)
    client_class = autopipeline.AutoPipelineRedis if autopipeline.enabled() else aioredis.Redis
    if not s.redis_sentinel:
        return client_class.from_url(s.redis_url, max_connections=1024, **options)
    from redis.asyncio.sentinel import Sentinel

    options["password"] = s.redis_password or None  # workshop mode: Sentinel's and the primary's
    sentinel = Sentinel([sentinel_address(s)], sentinel_kwargs=dict(options), **options)
    return sentinel.master_for(s.redis_master, redis_class=client_class, max_connections=1024)

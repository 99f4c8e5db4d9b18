"""The gateway's fast path, independent of any web framework.

    validate → global token bucket → per-user, per-IP limits (Redis)
             → reserve in Redis (one Lua script) → publish to RabbitMQ (confirmed)
             → 200 {"success": true, "order_id": ...}

This is the seed's "Flask × 4 (user limits + Redis pre-decrement)" box. Each
web tier (Flask now, FastAPI later) is a thin adapter that turns a request into
``buy(...)`` and the returned :class:`Reply` into a response, so every tier
answers exactly alike.

Rules that keep the books right:
  * nothing is reserved before the request is known to be valid and allowed;
  * a reservation is released only when the publish DEFINITELY failed (no
    connection, nack: 503), so a broker outage never leaks stock; when the
    outcome is UNKNOWN (sent, confirm not back in time) the order may well be
    queued, so the reservation is kept and the answer is 202 "pending" with the
    order id: told-503 users never get an order, and the status endpoint tells
    a pending user when theirs is written (or refused);
  * a dependency that is down answers 503 at once (short socket timeouts), never
    a 500 and never a hang; with Redis down, a product this process saw sold out
    is answered 409 from memory (sold_out.py).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import signal
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import redis as redis_lib

from seckill.system import fastjson, impl
from seckill.config import Limits, Settings
from seckill.system.sale import SaleCatalog, order_key
from seckill.system.sold_out import SoldOutMemory

log = logging.getLogger("seckill.system.gateway")

PRODUCT_ID = re.compile(r"^[1-9][0-9]{0,17}$")  # the canonical form only: no sign, no leading zero
ORDER_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_USER_ID = 64
MAX_BODY = 4096
PENDING_TTL_S = 24 * 3600
PRODUCT_EXISTS_SQL = "SELECT 1 FROM products WHERE id = %s"


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, **extra) -> Reply:
    return Reply(status, {"error": code, "message": message, **extra})


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class TrustedProxies:
    """The peers whose X-Forwarded-For is believed: addresses or networks (``"127.0.80.80"``,
    ``"10.0.0.0/8"``), and with ``loopback=True`` (the load-test switch) every loopback address.

    ``address in trusted`` is all client_ip asks. Empty by default: anything on the host
    that reaches a gateway directly would otherwise choose its own address, and with it
    dodge the per-IP limit or push a neighbour over it.
    """

    def __init__(self, entries=(), *, loopback: bool = False):
        self.networks = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                from seckill.config import ConfigError

                raise ConfigError(f"SECKILL_TRUSTED_PROXIES: {entry!r} is not an address or network "
                                  "like 127.0.80.80 or 10.0.0.0/8") from None
        if loopback:
            self.networks.extend(LOOPBACK)
        self.loopback = loopback

    def __contains__(self, address) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except (TypeError, ValueError):
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({', '.join(map(str, self.networks)) or 'nobody'})"


def trusted_from(s: Settings) -> TrustedProxies:
    """The gateway's trusted proxies from the settings; the load-test switch is said out loud."""
    trusted = TrustedProxies(s.trusted_proxies, loopback=s.loadtest_forwarded)
    if s.loadtest_forwarded:
        import sys

        print(f"seckill gateway (pid {os.getpid()}): LOAD-TEST MODE — X-Forwarded-For is believed from every "
              "loopback peer (SECKILL_LOADTEST_FORWARDED=1); never use this with real clients",
              file=sys.stderr, flush=True)
    return trusted


def client_ip(peer: str | None, forwarded_for: str | None, trusted) -> str:
    """The address limits count against.

    The peer, unless the peer is a trusted proxy (nginx from its own source
    address; every loopback peer only with the load-test switch): then the
    right-most address in X-Forwarded-For that is not itself a trusted proxy.
    Right-most, because a client can write anything into the left part of that
    header. ``trusted`` is a TrustedProxies (or any container of addresses).
    """
    peer = peer or "unknown"
    if peer not in trusted or not forwarded_for:
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed header from a trusted hop: trust nothing in it
        if hop not in trusted:
            return hop
    return peer


class ThreadLocalProducer:
    """One OrderProducer per thread: a pika connection must not be shared by threads."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._local = threading.local()

    def send_order(self, order: dict) -> None:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            producer = self._local.producer = self._factory()
        producer.send_order(order)


class Gateway:
    """Everything the buy endpoint needs, passed in so tests and tiers can swap pieces."""

    def __init__(self, *, redis, stock, limiter, bucket, producer, publish_error: type[Exception],
                 sales: SaleCatalog, publish_unknown: type[Exception] | tuple = (),
                 orders_db: Callable[[str], str | None] | None = None,
                 trusted_proxies=TrustedProxies(), bucket_rate: float = 1.0,
                 clock: Callable[[], float] = time.time, sold_out: SoldOutMemory | None = None,
                 crash_users: str | None = None, sale_in_db: Callable[[int], bool] | None = None,
                 rebuild=None, health_checks: dict[str, Callable[[], Any]] | None = None):
        self.redis = redis
        self.stock = stock
        self.limiter = limiter
        self.bucket = bucket
        self.producer = producer
        self.publish_error = publish_error
        self.publish_unknown = publish_unknown  # a kind of publish_error: sent, but not confirmed in time
        self.sales = sales
        self.orders_db = orders_db
        self.trusted_proxies = trusted_proxies
        self.bucket_retry_after = bucket_retry_after(bucket_rate)
        self.clock = clock
        self.sold_out = sold_out if sold_out is not None else SoldOutMemory(enabled=False)
        self.crash_users = crash_users  # the crash-between injection point; None: off
        # Redis lost a sale? PostgreSQL says whether it exists (None: no database, a missing sale is 404)
        self.sale_in_db = sale_in_db
        self.known_in_db = ProductMemory()
        self.stock_seen = ProductMemory()  # stock:{id} seen present (a sold-out answer is a real one)
        self.rebuild = rebuild            # rebuild.RedisRebuild, started when Redis lost a sale
        self.health_checks = health_checks or {}

    # -- POST /api/seckill/{product_id} ------------------------------------------------
    def buy(self, product_id_raw: str, body: bytes, client: str) -> Reply:
        try:
            return self._buy(product_id_raw, body, client)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
            log.warning("redis unavailable: %s", exc)
            return redis_down(self.sold_out, product_id_raw)

    def _buy(self, product_id_raw: str, body: bytes, client: str) -> Reply:
        product_id, user_id, problem = parse_request(product_id_raw, body)
        if problem:
            return problem
        window = self.sales.get(product_id)
        if window is None:
            return self._no_sale(product_id)
        problem = sale_problem(product_id, window, self.clock())
        if problem:
            return problem
        if not self.bucket.allow_request():
            return bucket_limited(self.bucket_retry_after)
        verdict = self.limiter.check(user_id, client)
        if not verdict.allowed:
            return limited(verdict)
        problem = reservation_problem(self.stock.reserve_once(product_id, user_id))
        if is_sold_out(problem) and self._stock_lost(product_id):
            return self._no_sale(product_id)  # "sold out" only because Redis lost the stock key
        remember_outcome(self.sold_out, product_id, problem)
        if problem:
            return problem
        crash_point(self.crash_users, user_id)

        order = new_order(user_id, product_id)
        try:
            self.producer.send_order(order)
        except self.publish_unknown as exc:
            log.warning("publish outcome unknown, reservation kept, answered pending: %s", exc)
            self._mark_pending(order)
            return pending(order)
        except self.publish_error as exc:
            self._release(product_id, user_id)
            log.warning("publish failed, reservation released: %s", exc)
            return unavailable("order queue")
        except Exception:
            self._release(product_id, user_id)
            raise
        self._mark_pending(order)
        return accepted(order)

    def _mark_pending(self, order: dict) -> None:
        try:
            self.redis.set(order_key(order["order_id"]), pending_marker(order), ex=PENDING_TTL_S)
        except redis_lib.RedisError:
            pass  # only the "pending" answer of the status endpoint depends on it

    def _stock_lost(self, product_id: int) -> bool:
        """True when ``stock:{id}`` is gone (Redis lost its data while our sale window was cached).

        Asked only when the reservation said sold out, and at most once a second per
        product while the key is there: the flood of late buyers costs no extra command.
        """
        if self.stock_seen.get(product_id):
            return False
        if self.redis.exists(f"stock:{product_id}"):
            self.stock_seen.put(product_id, True)
            return False
        return True

    def _no_sale(self, product_id: int) -> Reply:
        """Redis has no sale: 404 if PostgreSQL has none either, else 503 while Redis is rebuilt."""
        if self.sale_in_db is None:
            return sale_problem(product_id, None, self.clock())
        exists = self.known_in_db.get(product_id)
        if exists is None:
            try:
                exists = bool(self.sale_in_db(product_id))
            except Exception as exc:  # PostgreSQL down too: we cannot tell, so we do not say "no such sale"
                log.warning("sale lookup failed: %s", exc)
                return unavailable("sale catalogue")
            self.known_in_db.put(product_id, exists)
        if not exists:
            return sale_problem(product_id, None, self.clock())
        if self.rebuild is not None:
            self.rebuild.request()
        return sale_lost(product_id)

    def health(self) -> Reply:
        """200 when every dependency answers, else 503 naming the ones that do not."""
        return health_reply(run_checks(self.health_checks), tier=os.environ.get("SECKILL_TIER", "flask"),
                            impl=impl.current())

    def _release(self, product_id: int, user_id: str) -> None:
        try:
            self.stock.release(product_id, user_id)
        except redis_lib.RedisError:
            # Reservation stays in Redis with no order behind it: a leak that
            # `seckill reconcile` finds by comparing Redis with PostgreSQL.
            log.error("could not release the reservation of %s for product %s", user_id, product_id)

    # -- GET /api/orders/{order_id} --------------------------------------------------------
    def order_status(self, order_id: str) -> Reply:
        if not ORDER_ID.match(order_id or ""):
            return order_reply(order_id, None)
        try:
            written = self.orders_db(order_id) if self.orders_db else None
        except Exception as exc:  # PostgreSQL down: say so, do not guess
            log.warning("order lookup failed: %s", exc)
            return unavailable("order store")
        if written:
            return order_reply(order_id, written)
        try:
            marker = self.redis.get(order_key(order_id))
            reserved = still_reserved(marker, lambda p, u: self.redis.sismember(f"buyers:{p}", u))
        except redis_lib.RedisError:
            marker, reserved = None, False
        return order_reply(order_id, pending_status(marker, reserved))


# -- the steps every tier shares (pure: no I/O) ---------------------------------------------

def parse_request(product_id_raw: str, body: bytes) -> tuple[int | None, str | None, Reply | None]:
    """Product id from the path and user id from the body, or the 4xx that explains what is wrong."""
    problem = product_id_problem(product_id_raw)
    if problem:
        return None, None, problem
    user_id, problem = parse_user(body)
    return int(product_id_raw), user_id, problem


def product_id_problem(product_id_raw: str | None) -> Reply | None:
    """404 unless the path holds a product id in its one canonical form (211, never 0211 or +211).

    One product, one URL: ``int("0211")`` is 211, so accepting it would give a
    product two names (and two cache keys, two log spellings) for one stock.
    """
    raw = product_id_raw or ""
    if PRODUCT_ID.match(raw):
        return None
    if re.fullmatch(r"0+[0-9]+", raw) and raw.lstrip("0") and PRODUCT_ID.match(raw.lstrip("0")):
        return error(404, "unknown_product",
                     f"product ids are written without leading zeros: use {raw.lstrip('0')}, not {raw}")
    return error(404, "unknown_product", "product id must be a positive whole number like 211")


def sale_problem(product_id: int, window, now: float) -> Reply | None:
    """404 for no such sale, 422 when it has not started or is over; None while it is open."""
    if window is None:
        return error(404, "unknown_product", f"no sale for product {product_id}")
    state = window.state(now)
    if state == "not_started":
        return error(422, "sale_not_started", "the sale has not started yet")
    if state == "ended":
        return error(422, "sale_ended", "the sale is over")
    return None


class ProductMemory:
    """Whether PostgreSQL has a product, remembered for ``ttl_s``: a flood of buys for a
    product that does not exist must not become a flood of database queries."""

    def __init__(self, ttl_s: float = 1.0, max_items: int = 10_000, clock=time.monotonic):
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.clock = clock
        self._seen: dict[int, tuple[float, bool]] = {}

    def get(self, product_id: int) -> bool | None:
        hit = self._seen.get(product_id)
        if hit is None or self.clock() - hit[0] >= self.ttl_s:
            return None
        return hit[1]

    def put(self, product_id: int, exists: bool) -> None:
        if len(self._seen) >= self.max_items:
            self._seen.clear()  # bounded: forgetting only costs a query
        self._seen[product_id] = (self.clock(), exists)


SALE_LOST_RETRY_S = 5


def sale_lost(product_id: int) -> Reply:
    """503: PostgreSQL has the sale, Redis lost it; it is being rebuilt, so try again soon."""
    return Reply(503, {"error": "unavailable",
                       "message": f"the sale of product {product_id} is being restored from the database, "
                                  f"try again in {SALE_LOST_RETRY_S} s"},
                 {"Retry-After": str(SALE_LOST_RETRY_S)})


def run_checks(checks: dict[str, Callable[[], Any]]) -> dict[str, bool]:
    """Call each dependency's check; a check that raises means that dependency is down."""
    result = {}
    for name, check in checks.items():
        try:
            check()
            result[name] = True
        except Exception as exc:
            log.warning("health: %s unavailable: %s", name, exc)
            result[name] = False
    return result


def health_reply(up: dict[str, bool], **extra) -> Reply:
    """GET /healthz: 200 {"ok": true, "dependencies": {...}}, or 503 naming what is down."""
    down = [name for name, ok in up.items() if not ok]
    body = {"ok": not down, **extra, "pid": os.getpid(),
            "dependencies": {name: "up" if ok else "down" for name, ok in up.items()}}
    if not down:
        return Reply(200, body)
    return Reply(503, {**body, "error": "unavailable", "down": down,
                       "message": f"{', '.join(down)} down"}, {"Retry-After": "1"})


def tcp_check(host: str, port: int, timeout_s: float = 1.0) -> Callable[[], None]:
    """A check that a server accepts connections (the broker: an AMQP handshake per probe is too dear)."""
    import socket

    def check() -> None:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    return check


def bucket_retry_after(rate: float) -> int:
    """Whole seconds until the global bucket has a token again (Retry-After); 60 for a shut bucket."""
    return max(1, math.ceil(1.0 / rate)) if rate > 0 else 60


def pending_marker(order: dict) -> bytes:
    """What order:{id} holds in Redis until the order is written: whose reservation backs it (JSON)."""
    return fastjson.dumps({"product_id": order["product_id"], "user_id": order["user_id"]})


def still_reserved(marker: str | bytes | None, is_buyer: Callable[[int, str], Any]) -> bool:
    """Does the reservation behind a pending order still stand (its user still in buyers:{product})?"""
    if marker is None:
        return False
    try:
        data = fastjson.loads(marker)
        return bool(is_buyer(int(data["product_id"]), str(data["user_id"])))
    except (ValueError, TypeError, KeyError):
        return True  # an old plain "pending" marker: nothing to check against


def pending_status(marker, reserved: bool) -> str | None:
    """The status of an order PostgreSQL does not hold (yet).

    pending while its reservation stands; rejected when reconciliation proved the
    order never reached the queue and returned its item (an unknown publish that
    turned out lost); None (404) when nobody knows the order.
    """
    if marker is None:
        return None
    return "pending" if reserved else "rejected"


def order_reply(order_id: str, status: str | None) -> Reply:
    """200 with the order's status (pending, confirmed, rejected), or 404 when nobody knows it."""
    if status is None:
        return error(404, "unknown_order", "no such order")
    return Reply(200, {"order_id": order_id, "status": status})


def bucket_limited(retry_after_s: int) -> Reply:
    return Reply(429, {"error": "rate_limited", "layer": "global", "message": "too many requests, try again"},
                 {"Retry-After": str(retry_after_s)})


def limited(verdict) -> Reply:
    return Reply(429, {"error": "rate_limited", "layer": verdict.layer,
                       "message": f"too many requests from this {verdict.layer}, try again later"},
                 {"Retry-After": str(max(1, math.ceil(verdict.retry_after)))})


def reservation_problem(reserved) -> Reply | None:
    """409 for sold out or already bought; None when the item is reserved."""
    outcome = getattr(reserved, "value", reserved)  # a Reservation enum, or its string
    if outcome == "sold_out":
        return error(409, "sold_out", "sold out")
    if outcome == "already_bought":
        return error(409, "already_bought", "you have already bought this product")
    return None


def new_order(user_id: str, product_id: int) -> dict:
    """The message the order service will write: the order id is made here, by the server."""
    return {"order_id": str(uuid.uuid4()), "user_id": user_id, "product_id": product_id,
            "created_at": datetime.now(timezone.utc).isoformat()}


def is_sold_out(problem: Reply | None) -> bool:
    return problem is not None and problem.body.get("error") == "sold_out"


def remember_outcome(sold_out: SoldOutMemory, product_id: int, problem: Reply | None) -> None:
    """Keep the local sold-out flag in step with what Redis just said about the product."""
    if problem is None:
        sold_out.forget(product_id)
    elif problem.body.get("error") == "sold_out":
        sold_out.remember(product_id)


def redis_down(sold_out: SoldOutMemory, product_id_raw: str) -> Reply:
    """Redis is unreachable: 409 sold_out from memory when this process knows it, else 503."""
    product_id = int(product_id_raw) if PRODUCT_ID.match(product_id_raw or "") else None
    if sold_out.answers(product_id):
        return error(409, "sold_out", "sold out", degraded=True)
    return unavailable("stock service")


INJECT_CRASH_BETWEEN = "crash-between"


def crash_users_from_env() -> str | None:
    """The user-id prefix that makes this process die mid-buy, or None (the default: off).

    Failure lab crash-between only: ``SECKILL_GATEWAY_INJECT=crash-between`` (and
    optionally ``SECKILL_GATEWAY_INJECT_USERS=<prefix>``, default "crash-").
    """
    if os.environ.get("SECKILL_GATEWAY_INJECT", "") != INJECT_CRASH_BETWEEN:
        return None
    return os.environ.get("SECKILL_GATEWAY_INJECT_USERS") or "crash-"


def crash_point(crash_users: str | None, user_id: str) -> None:
    """The injection point between the Redis reservation and the publish.

    When switched on and the user id starts with the prefix, the process kills
    itself with SIGKILL, as the OOM killer or a pulled plug would: no except,
    no finally, no release. Its reservation stays in Redis with no order behind
    it, which is the stock leak that `seckill reconcile` must find.
    """
    if crash_users and user_id.startswith(crash_users):
        log.error("injected crash between reservation and publish (user %s)", user_id)
        os.kill(os.getpid(), signal.SIGKILL)


def accepted(order: dict) -> Reply:
    return Reply(200, {"success": True, "order_id": order["order_id"]})


def pending(order: dict) -> Reply:
    """202: the order was sent to the queue but its confirm did not come back in time (an UNKNOWN outcome).

    Not a failure: the item stays reserved for this user and the order is most
    likely queued. GET /api/orders/{order_id} answers pending until the order
    service has written it (confirmed) or refused it (rejected).
    """
    return Reply(202, {"order_id": order["order_id"], "status": "pending",
                       "message": "order sent, its confirmation is late: see GET /api/orders/{order_id}"})


def unavailable(what: str) -> Reply:
    """A dependency is down: 503 at once, with a hint when to retry."""
    return Reply(503, {"error": "unavailable", "message": f"{what} unavailable, try again"}, {"Retry-After": "1"})


def parse_user(body: bytes) -> tuple[str | None, Reply | None]:
    """The user id from a JSON body, or the 4xx that explains what is wrong with it."""
    if len(body) > MAX_BODY:
        return None, error(413, "body_too_large", f"the body must be at most {MAX_BODY} bytes")
    try:
        data = fastjson.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: [[[[… too deep
        return None, error(400, "invalid_json", 'the body must be JSON like {"user_id": "u123"}')
    if not isinstance(data, dict):
        return None, error(422, "invalid_body", 'the body must be a JSON object like {"user_id": "u123"}')
    user_id = data.get("user_id")
    if user_id is None:
        return None, error(422, "missing_user_id", "user_id is required")
    if not isinstance(user_id, str):
        return None, error(422, "invalid_user_id", "user_id must be a string")
    try:
        user_id = canonical_user_id(user_id)
    except UnicodeError:
        return None, error(422, "invalid_user_id", "user_id must be valid Unicode text (no lone surrogates)")
    if not user_id:
        return None, error(422, "invalid_user_id", "user_id must not be empty")
    if len(user_id) > MAX_USER_ID:
        return None, error(422, "invalid_user_id", f"user_id must be at most {MAX_USER_ID} characters")
    if not user_id.isprintable():
        return None, error(422, "invalid_user_id", "user_id must not contain control characters")
    return user_id, None


def canonical_user_id(raw: str) -> str:
    """The one form a user id is stored and counted under: surrounding white space
    dropped, then Unicode NFC ("cafe\u0301" and "caf\u00e9" are one user).

    Applied before the limits, the reservation and the database, so two spellings
    of one visible name can neither buy twice nor dodge the per-user limit.
    Raises UnicodeError for text that is not valid Unicode (a lone surrogate).
    """
    raw.encode("utf-8")  # a lone surrogate cannot be a name: refuse it here, not in PostgreSQL
    return unicodedata.normalize("NFC", raw.strip())


def fast_fail_options() -> dict:
    """Client options that make a dead Redis an error within a second, not a hang.

    Short connect and socket timeouts, and one immediate retry (a pooled
    connection that went stale is replaced) instead of redis-py's default ten
    retries with back-off, which would hold a request for seconds.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"socket_connect_timeout": 1, "socket_timeout": 2, "retry": Retry(NoBackoff(), 1)}


def redis_client(url: str) -> redis_lib.Redis:
    """Short timeouts: with Redis down the gateway must answer 503 at once, not hang."""
    return redis_lib.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                    max_connections=512, **fast_fail_options())


def sentinel_address(s: Settings) -> tuple[str, int]:
    host, _, port = s.redis_sentinel.rpartition(":")
    if not host or not port.isdigit():
        from seckill.config import ConfigError

        raise ConfigError(f"SECKILL_REDIS_SENTINEL={s.redis_sentinel!r}: give host:port, e.g. 127.0.0.1:16381")
    return host, int(port)


def redis_for(s: Settings) -> redis_lib.Redis:
    """The gateway's Redis: the fixed port, or, with SECKILL_REDIS_SENTINEL set, the primary Sentinel names.

    Through Sentinel every new connection asks where the primary is now, so
    after a failover the gateway follows the promoted replica by itself.
    """
    if not s.redis_sentinel:
        return redis_client(s.redis_url)
    from redis.sentinel import Sentinel

    # the stack's password (workshop mode) for Sentinel and for the primary it names
    options = {**fast_fail_options(), "password": s.redis_password or None}
    sentinel = Sentinel([sentinel_address(s)], sentinel_kwargs=dict(options), **options)
    return sentinel.master_for(s.redis_master, decode_responses=True, health_check_interval=30,
                               max_connections=512)


def build(s: Settings, limits: Limits | None = None, impl_name: str | None = None) -> Gateway:
    """A gateway wired to the real services, using the chosen implementation."""
    from seckill.stack import db
    from seckill.config import HOST
    from seckill.system.rebuild import RedisRebuild, settle_from_env

    limits = limits or s.limits
    r = redis_for(s)
    token_bucket = impl.running("token_bucket", impl_name)
    rate_limit = impl.running("rate_limit", impl_name)
    stock = impl.running("stock", impl_name)
    producer = impl.running("producer", impl_name)
    local = threading.local()

    def on_db(query: Callable[[Any], Any]) -> Any:
        # Twice at most: a connection kept from before a PostgreSQL restart fails on first
        # use; that says nothing about PostgreSQL now, so try once more on a fresh one.
        for attempt in (1, 2):
            conn = getattr(local, "conn", None)
            fresh = conn is None or conn.closed
            if fresh:
                conn = local.conn = db.connect(s.postgres_url, autocommit=True, connect_timeout=3)
            try:
                return query(conn)
            except Exception:
                conn.close()
                if fresh or attempt == 2:
                    raise

    def orders_db(order_id: str) -> str | None:
        return on_db(lambda conn: db.order_status(conn, order_id))

    def sale_in_db(product_id: int) -> bool:
        return on_db(lambda conn: conn.execute(PRODUCT_EXISTS_SQL, (product_id,)).fetchone() is not None)

    return Gateway(
        redis=r,
        stock=stock.StockCache(r),
        limiter=rate_limit.LayeredLimiter(r, user_limit=limits.user_limit, ip_limit=limits.ip_limit,
                                          window_s=limits.window_s),
        bucket=token_bucket.TokenBucket(limits.bucket_capacity, limits.bucket_rate),
        producer=ThreadLocalProducer(lambda: producer.OrderProducer(s.amqp_url, queue=s.queue)),
        publish_error=producer.PublishError,
        # a learner's producer without the unknown kind: every error is treated as definite
        publish_unknown=getattr(producer, "PublishUnknown", ()),
        sales=SaleCatalog(r),
        orders_db=orders_db,
        trusted_proxies=trusted_from(s),
        bucket_rate=limits.bucket_rate,
        sold_out=SoldOutMemory(enabled=s.degrade_sold_out),
        crash_users=crash_users_from_env(),
        sale_in_db=sale_in_db,
        rebuild=RedisRebuild(s, r, settle_s=settle_from_env()),
        health_checks={"redis": r.ping, "postgres": lambda: on_db(lambda conn: conn.execute("SELECT 1")),
                       "rabbitmq": tcp_check(HOST, s.ports.amqp)},
    )

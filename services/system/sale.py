"""Creating a sale, and the gateway's view of which sales are open.

A sale lives in two places on purpose:
  * PostgreSQL ``products`` holds the truth: the stock the order service
    decrements, guarded, for every order it writes;
  * Redis holds the fast copy the gateway reserves from: ``stock:{id}``,
    ``buyers:{id}`` and the sale window in ``sale:{id}``.
``create_sale`` writes both, in that order.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

import redis as redis_lib

from seckill.system import broker, impl
from seckill.stack import db
from seckill.config import Settings
from seckill.errors import SeckillError


class SaleError(SeckillError):
    """The sale cannot be created as asked; the message says why."""


def sale_key(product_id: int) -> str:
    return f"sale:{product_id}"


def order_key(order_id: str) -> str:
    """Marks an order the gateway accepted, until the order service writes it."""
    return f"order:{order_id}"


def parse_time(value: str | None, what: str) -> datetime | None:
    """ISO-8601 with a zone (``+08:00`` or ``Z``) to an aware datetime; None stays None.

    A time without a zone is refused (SaleError), not guessed: read as UTC on a
    machine in Beijing, 20:00 would open the sale eight hours late.
    """
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise SaleError(f"{what} {value!r} is not an ISO-8601 time like 2026-11-25T20:00:00+08:00") from None
    if parsed.tzinfo is None:
        raise SaleError(f"{what} {value!r} has no time zone; add one, e.g. {value}+08:00 or {value}Z (UTC)")
    return parsed


def create_sale(
    s: Settings,
    product_id: int,
    stock: int,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    name: str = "",
    redis: redis_lib.Redis | None = None,
    force: bool = False,
) -> dict:
    """Write the product to PostgreSQL and load its stock into Redis.

    Re-creating a product starts its sale afresh: its earlier orders are
    deleted. Orders still waiting in the queue would land in the new sale, so
    we refuse while the queue holds any, unless ``force`` purges it.
    """
    if not isinstance(product_id, int) or isinstance(product_id, bool) or not 0 < product_id < 2**62:
        raise SaleError(f"product id must be a positive whole number, not {product_id!r}")
    if not isinstance(stock, int) or isinstance(stock, bool) or not 0 <= stock <= 10**9:
        raise SaleError(f"stock must be a whole number from 0 to 1000000000, not {stock!r}")
    if starts_at and ends_at and ends_at <= starts_at:
        raise SaleError("the sale must end after it starts (--ends-at later than --starts-at)")

    waiting = broker.queue_depth(s.amqp_url, s.queue)
    if waiting:
        if not force:
            raise SaleError(f"{waiting} orders are still waiting in the queue {s.queue!r}; "
                            "let the order service drain them, or pass --force to drop them")
        broker.purge(s.amqp_url, s.queue)

    with db.connect(s.postgres_url) as conn, conn.transaction():
        conn.execute("DELETE FROM orders WHERE product_id = %s", (product_id,))
        conn.execute("DELETE FROM order_rejections WHERE product_id = %s", (product_id,))
        conn.execute(
            "INSERT INTO products (id, name, stock, initial_stock, starts_at, ends_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, stock = EXCLUDED.stock, "
            "initial_stock = EXCLUDED.initial_stock, starts_at = EXCLUDED.starts_at, "
            "ends_at = EXCLUDED.ends_at, created_at = now()",
            (product_id, name, stock, stock, starts_at, ends_at),
        )

    r = redis or redis_lib.Redis.from_url(s.redis_url, decode_responses=True)
    cache = impl.load("stock").StockCache(r)
    cache.set_stock(product_id, stock)
    cache.clear_buyers(product_id)
    # leases of the local-stock tier belong to the old sale: instances holding one
    # find it gone at their next sale and lease afresh (local_stock.py)
    r.delete(f"leases:{product_id}")
    r.hset(sale_key(product_id), mapping={
        "starts_at": starts_at.timestamp() if starts_at else "",
        "ends_at": ends_at.timestamp() if ends_at else "",
        "stock": stock,
    })
    return {"product_id": product_id, "stock": stock, "name": name,
            "starts_at": starts_at.isoformat() if starts_at else None,
            "ends_at": ends_at.isoformat() if ends_at else None}


@dataclass(frozen=True)
class SaleWindow:
    starts_at: float | None
    ends_at: float | None

    def state(self, now: float) -> str:
        if self.starts_at is not None and now < self.starts_at:
            return "not_started"
        if self.ends_at is not None and now >= self.ends_at:
            return "ended"
        return "open"


class SaleCatalog:
    """The gateway's read of ``sale:{id}``, cached in-process for ``ttl_s``.

    Only known sales are cached, so a sale created a moment ago is seen at
    once; a changed window is seen within ``ttl_s``.
    """

    def __init__(self, redis: redis_lib.Redis, ttl_s: float = 1.0, clock=time.monotonic):
        self._redis = redis
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[int, tuple[float, SaleWindow]] = {}
        self._lock = threading.Lock()

    def get(self, product_id: int) -> SaleWindow | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(product_id)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        window = window_from_hash(self._redis.hgetall(sale_key(product_id)))
        if window is not None:
            with self._lock:
                self._cache[product_id] = (now, window)
        return window


class AsyncSaleCatalog:
    """SaleCatalog for the async tiers (redis.asyncio); one event loop, so no lock."""

    def __init__(self, redis, ttl_s: float = 1.0, clock=time.monotonic):
        self._redis = redis
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[int, tuple[float, SaleWindow]] = {}

    async def get(self, product_id: int) -> SaleWindow | None:
        now = self._clock()
        hit = self._cache.get(product_id)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        window = window_from_hash(await self._redis.hgetall(sale_key(product_id)))
        if window is not None:
            self._cache[product_id] = (now, window)
        return window


def window_from_hash(raw: dict) -> SaleWindow | None:
    """The ``sale:{id}`` hash as a SaleWindow (None when there is no such sale)."""
    if not raw:
        return None
    raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
           for k, v in raw.items()}
    return SaleWindow(float(raw["starts_at"]) if raw.get("starts_at") else None,
                      float(raw["ends_at"]) if raw.get("ends_at") else None)

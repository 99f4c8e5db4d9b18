"""The promises a flash sale must keep, checked against the real stores.

After the queue drains:
  * oversold = 0: PostgreSQL never holds more orders than the sale had stock;
  * lost = 0: every order the gateway confirmed to a user is in PostgreSQL;
  * no user bought twice;
  * Redis and PostgreSQL agree on the stock left (counting what live
    local-stock instances hold; a stranded lease is a disagreement until
    reconciliation returns it).
Tests, load tests, benchmarks and failure labs all ask these same questions,
so they are answered in one place.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import redis as redis_lib

from seckill.system import broker, local_stock
from seckill.stack import db
from seckill.config import Settings


@dataclass
class SaleCheck:
    product_id: int
    initial_stock: int
    pg_stock: int
    redis_stock: int | None
    orders: int
    distinct_users: int
    rejections: int
    confirmed_to_users: int
    lost: int
    unexpected: int
    queue_depth: int
    held_locally: int = 0   # tier local-stock: units leased by live instances, not in stock:{id}
    stranded: int = 0       # leased by instances that died: unsold until reconciled (undersell)

    @property
    def oversold(self) -> int:
        return max(0, self.orders - self.initial_stock)

    @property
    def duplicate_users(self) -> int:
        return self.orders - self.distinct_users

    @property
    def ok(self) -> bool:
        return (self.oversold == 0 and self.lost == 0 and self.duplicate_users == 0
                and self.pg_stock == self.initial_stock - self.orders
                and (self.redis_stock is None or self.redis_stock + self.held_locally == self.pg_stock))

    def problems(self) -> list[str]:
        """What is wrong, one plain line each (empty when ok); a Redis copy below PostgreSQL is named
        as what it is — reservations without an order, an undersell that reconcile returns — not as a loss."""
        found = []
        if self.oversold:
            found.append(f"oversold {self.oversold}")
        if self.lost:
            found.append(f"lost {self.lost} confirmed order(s)")
        if self.duplicate_users:
            found.append(f"{self.duplicate_users} user(s) with two orders")
        if self.pg_stock != self.initial_stock - self.orders:
            found.append(f"PostgreSQL's stock {self.pg_stock} ≠ {self.initial_stock} − {self.orders} orders")
        if self.redis_stock is not None:
            gap = self.pg_stock - (self.redis_stock + self.held_locally)
            if gap > 0:
                found.append(f"undersold {gap}: Redis holds reservations with no order (requests abandoned "
                             "before their order was queued, or stranded leases); `seckill reconcile --fix` "
                             "returns them")
            elif gap < 0:
                found.append(f"Redis shows {-gap} more in stock than PostgreSQL (an oversell risk); "
                             "`seckill reconcile --fix` lowers it")
        return found

    def as_dict(self) -> dict:
        return {**asdict(self), "oversold": self.oversold, "duplicate_users": self.duplicate_users,
                "ok": self.ok, "problems": self.problems()}


def written_order_ids(s: Settings, product_id: int) -> set[str]:
    with db.connect(s.postgres_url) as conn:
        return {r[0] for r in conn.execute("SELECT order_id FROM orders WHERE product_id = %s",
                                           (product_id,))}


def order_count(s: Settings, product_id: int) -> int:
    with db.connect(s.postgres_url) as conn:
        return conn.execute("SELECT count(*) FROM orders WHERE product_id = %s", (product_id,)).fetchone()[0]


def wait_for_drain(s: Settings, product_id: int, expected_orders: int | None = None,
                   timeout_s: float = 60.0) -> bool:
    """Wait (bounded) until the queue is empty and, if given, ``expected_orders`` are written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        depth = broker.queue_depth(s.amqp_url, s.queue)
        if depth == 0:
            if expected_orders is None or order_count(s, product_id) >= expected_orders:
                # one more look: the last batch may still be committing
                time.sleep(0.2)
                if broker.queue_depth(s.amqp_url, s.queue) == 0:
                    return True
        time.sleep(0.1)
    return False


def settled_check(s: Settings, product_id: int, confirmed_order_ids: list[str] | set[str], *,
                  redis_copy: bool = True, timeout_s: float = 60.0, quiet_s: float = 1.0) -> tuple[SaleCheck, bool]:
    """check_sale once the sale has settled: (the check, whether it settled within ``timeout_s``).

    After an overload, requests the generator gave up on (no answer within its
    deadline) are still being served: the gateway reserves and publishes them
    after the generator stopped counting, so an empty queue is not yet the end.
    A check taken then finds orders nobody was told about and stores that do not
    agree yet, and calls a sound system broken. So this waits until the queue is
    empty and the number of orders in PostgreSQL has not moved for ``quiet_s``
    seconds, bounded by ``timeout_s``, and checks then.
    """
    deadline = time.monotonic() + timeout_s
    last_count, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        drained = wait_for_drain(s, product_id, timeout_s=max(0.1, deadline - time.monotonic()))
        count = order_count(s, product_id)
        if count != last_count:
            last_count, still_since = count, time.monotonic()
        elif drained and time.monotonic() - still_since >= quiet_s:
            return check_sale(s, product_id, confirmed_order_ids, redis_copy=redis_copy), True
        time.sleep(0.1)
    return check_sale(s, product_id, confirmed_order_ids, redis_copy=redis_copy), False


def check_sale(s: Settings, product_id: int, confirmed_order_ids: list[str] | set[str],
               redis_copy: bool = True) -> SaleCheck:
    """Compare what users were told (confirmed ids) with what the stores hold.

    ``redis_copy=False`` for a design that keeps no stock in Redis (the db-direct tier).
    """
    with db.connect(s.postgres_url) as conn:
        numbers = db.sale_numbers(conn, product_id)
    if numbers is None:
        raise LookupError(f"no product {product_id} in PostgreSQL")
    written = written_order_ids(s, product_id)
    confirmed = set(confirmed_order_ids)
    r = redis_lib.Redis.from_url(s.redis_url, decode_responses=True, socket_timeout=2)
    redis_stock, held, stranded = None, 0, 0
    if redis_copy:
        try:
            raw = r.get(f"stock:{product_id}")
            redis_stock = int(raw) if raw is not None else None
            held, stranded = local_stock.lease_totals(r, product_id)
        except redis_lib.RedisError:
            pass
    return SaleCheck(
        product_id=product_id,
        initial_stock=numbers["initial_stock"],
        pg_stock=numbers["stock"],
        redis_stock=redis_stock,
        orders=numbers["orders"],
        distinct_users=numbers["distinct_users"],
        rejections=numbers["rejections"],
        confirmed_to_users=len(confirmed),
        lost=len(confirmed - written),
        unexpected=len(written - confirmed),
        queue_depth=broker.queue_depth(s.amqp_url, s.queue),
        held_locally=held,
        stranded=stranded,
    )

"""Reconciliation (对账): make Redis agree with PostgreSQL and the queue again.

Redis is the fast copy the gateway sells from; the truth is PostgreSQL plus the
orders still on their way to it. After a Redis crash, a failover that lost the
last writes, or a gateway killed between its reservation and its publish, the
copy and the truth disagree. ``seckill reconcile [--fix]`` finds out where:

  truth, per product                       compared with Redis
  ---------------------------------------  ----------------------------------
  stock left = PostgreSQL stock             stock:{id}
               − orders still queued
               − units leased by live local-stock instances (tier T4)
  buyers     = users of PostgreSQL orders   buyers:{id}
               ∪ users of queued orders
  the sale   = products.starts_at/ends_at   sale:{id}

Queued orders are read without being lost: a consumer that never acknowledges,
then closes its channel, so RabbitMQ puts every message back (the order
service may see them again, marked redelivered; its insert is idempotent).

Safe while a sale runs: what it guarantees
-------------------------------------------
The snapshot reads PostgreSQL, then the queue, then leases, then Redis. An order
moves the other way (Redis → gateway → queue → order service → PostgreSQL), so
an order in flight during the snapshot is seen in Redis but nowhere after it:
in-flight work can only make Redis look *too low* (and show its buyer as
"extra"), never too high. Hence the fixes:

  * Redis stock too high (an oversell risk): lowered at once, by a relative
    DECRBY, so reservations made meanwhile are kept. Lowering can never cause
    an oversell.
  * Users with an order that Redis forgot: added to buyers at once (this only
    refuses a second purchase).
  * Redis stock too low, stock key missing, or buyers with no order (a leak):
    only after a second snapshot ``settle_s`` later (default 5 s) confirms it.
    A reserved item is returned only for a buyer who was "extra" in both
    snapshots, and only when both reads of the queue were complete. A missing
    stock key (the gateway answers sold out meanwhile, so nothing new is
    reserved) is set from the second snapshot, and only if still missing.

So ``--fix`` never makes Redis claim more stock than really remains, provided
no order spends longer than ``settle_s`` between its reservation and being
either queued or committed (a publish gives up after 3-5 s; the order service
commits what it holds within a batch). If the order service is stalled holding
messages (PostgreSQL hanging), run reconcile after it recovers. PostgreSQL's
guarded decrement stays the last line of defence either way.

A publish whose outcome is UNKNOWN (sent, confirm not back in time: the gateway
answered 202 pending) keeps its reservation. If the message did reach the broker
it is in the queue once the broker answers again, and is counted; while the
broker cannot be read (frozen, down) the read is incomplete and nothing is
returned. Only a pending order that provably never arrived (reserved, absent
from PostgreSQL and from two complete reads of the queue) gets its item back,
and the status endpoint then answers ``rejected`` for it.

Idempotent: a second run right after a ``--fix`` finds nothing to do.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import pika
import pika.exceptions

from seckill.stack import db
from seckill.config import Settings, settings
from seckill.errors import SeckillError
from seckill.system.sale import sale_key

KINDS = {
    "stock_high": "Redis would sell more than PostgreSQL has left (oversell risk)",
    "stock_low": "Redis holds back stock nobody bought (a leak: undersell)",
    "stock_missing": "stock:{id} is missing in Redis (the gateway answers sold out)",
    "buyers_missing": "users with an order that Redis does not know (they could buy again)",
    "buyers_extra": "users Redis holds a reservation for, with no order behind it",
    "sale_missing": "sale:{id} is missing in Redis (the gateway answers 503 and rebuilds it)",
    "stranded_lease": "units leased by a local-stock instance that died (nobody sells them)",
}

# Give one reserved item back if the user really held it (the stock lab's release, inline:
# reconciliation must not depend on the learner's labs/ code).
RELEASE_LUA = """
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
    redis.call('INCR', KEYS[1])
    return 1
end
return 0
"""

# Lower the stock by ARGV[1] (relative: concurrent reservations are kept), never below 0.
LOWER_LUA = """
local v = redis.call('DECRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0) return 0 end
return v
"""


BUYERS_PAGE = 1_000  # members per SSCAN call: about a millisecond of Redis each


class ReconcileError(SeckillError):
    """Reconciliation cannot run (a store is down, no such product); the message says what to do."""


@dataclass
class Discrepancy:
    product_id: int
    kind: str
    redis: Any
    expected: Any
    fixed: bool = False
    note: str = ""

    def line(self) -> str:
        def show(v):
            if isinstance(v, (set, list, tuple)):
                items = sorted(map(str, v))
                return f"{len(items)} users" + (f" ({', '.join(items[:3])}{', …' if len(items) > 3 else ''})"
                                                 if items else "")
            return "missing" if v is None else str(v)

        verdict = "fixed" if self.fixed else "not fixed"
        if self.kind.startswith("buyers_"):
            users = self.expected if self.kind == "buyers_missing" else self.redis
            text = f"product {self.product_id}: {self.kind.replace('_', ' ')} — {show(users)} → {verdict}"
        else:
            text = (f"product {self.product_id}: {self.kind.replace('_', ' ')} — Redis {show(self.redis)}, "
                    f"expected {show(self.expected)} → {verdict}")
        return text + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("redis", "expected"):
            if isinstance(data[key], (set, list, tuple)):
                data[key] = sorted(map(str, data[key]))
        data["meaning"] = KINDS.get(self.kind, "")
        return data


@dataclass
class Snapshot:
    """One product as the stores saw it, read in the order PostgreSQL → queue → leases → Redis."""
    product_id: int
    pg_stock: int
    initial_stock: int
    pg_users: set[str]
    queued_units: int           # queued orders that will still take an item
    queued_users: set[str]      # users of queued orders that will still be written
    queue_complete: bool
    held_live: int              # leased by live local-stock instances
    stranded: int               # leased by dead ones
    redis_stock: int | None
    redis_buyers: set[str]
    sale_present: bool
    window: tuple[Any, Any] = (None, None)

    @property
    def expected_stock(self) -> int:
        return max(0, self.pg_stock - self.queued_units - self.held_live - self.stranded)

    @property
    def expected_buyers(self) -> set[str]:
        return self.pg_users | self.queued_users

    @property
    def extra_buyers(self) -> set[str]:
        return self.redis_buyers - self.expected_buyers

    @property
    def missing_buyers(self) -> set[str]:
        return self.expected_buyers - self.redis_buyers

    def numbers(self) -> dict:
        return {"pg_stock": self.pg_stock, "initial_stock": self.initial_stock, "pg_orders": len(self.pg_users),
                "queued": self.queued_units, "held_by_live_instances": self.held_live,
                "stranded": self.stranded, "expected_stock": self.expected_stock,
                "redis_stock": self.redis_stock, "redis_buyers": len(self.redis_buyers),
                "expected_buyers": len(self.expected_buyers), "queue_complete": self.queue_complete}


@dataclass
class ReconcileReport:
    fix: bool
    discrepancies: list[Discrepancy] = field(default_factory=list)
    products: dict[int, dict] = field(default_factory=dict)   # numbers of the first snapshot
    after: dict[int, dict] = field(default_factory=dict)      # numbers after the fixes (with --fix)
    queued_read: int = 0
    elapsed_s: float = 0.0

    @property
    def remaining(self) -> list[Discrepancy]:
        return [d for d in self.discrepancies if not d.fixed]

    @property
    def consistent(self) -> bool:
        """True when nothing is left to fix (all agreed, or every discrepancy was repaired)."""
        return not self.remaining

    def of(self, product_id: int, kind: str) -> Discrepancy | None:
        return next((d for d in self.discrepancies if d.product_id == product_id and d.kind == kind), None)

    def as_dict(self) -> dict:
        return {"fix": self.fix, "consistent": self.consistent,
                "discrepancies": [d.as_dict() for d in self.discrepancies],
                "products": {str(k): v for k, v in self.products.items()},
                "after": {str(k): v for k, v in self.after.items()},
                "queued_read": self.queued_read, "elapsed_s": round(self.elapsed_s, 2)}

    def __str__(self) -> str:
        lines = [d.line() for d in self.discrepancies]
        n = len(self.products)
        if not self.discrepancies:
            lines.append(f"Redis agrees with PostgreSQL and the queue ({n} product{'s' if n != 1 else ''} checked)")
        elif self.consistent:
            lines.append(f"fixed {len(self.discrepancies)} discrepanc{'ies' if len(self.discrepancies) != 1 else 'y'}; "
                         "Redis agrees with PostgreSQL again")
        else:
            lines.append(f"{len(self.remaining)} discrepanc{'ies' if len(self.remaining) != 1 else 'y'} left"
                         + ("" if self.fix else "; run `seckill reconcile --fix` to repair them"))
        return "\n".join(lines)


# -- reading the truth ----------------------------------------------------------------------

READ_WINDOW = 1000  # messages one channel holds while read_queue reads (see there)


def read_queue(s: Settings, timeout_s: float = 30.0, idle_s: float = 0.5,
               window: int = READ_WINDOW) -> tuple[list[dict], bool]:
    """The orders waiting in the queue, read without taking them: (orders, complete).

    A consumer that never acknowledges, then closes its connection: RabbitMQ puts
    every message back, each in its original place. Messages another consumer (the
    order service) holds at that moment are not seen; they are in flight, which
    reconcile allows for. ``complete`` is False when ``timeout_s`` cut the read short.

    Memory stays bounded by ``window`` messages, whatever the backlog: each channel
    has a prefetch of ``window`` and, as nothing is acknowledged, stops receiving once
    it holds that many, so the broker can never push the whole queue into this
    process at once (200,000 queued orders took 253 MB before); the next window comes
    on a new channel. Only the three fields reconcile needs are kept per order.
    """
    import json

    params = pika.URLParameters(s.amqp_url)
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise ReconcileError(f"RabbitMQ is not reachable ({exc!r}); start it with `seckill up`") from None
    orders: list[dict] = []
    complete = True
    try:
        probe = conn.channel()  # asks the queue how many messages are still ready (not held by anyone)
        try:
            depth = probe.queue_declare(s.queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return [], True  # no queue yet: nothing queued
        if depth == 0:
            return [], True
        # a channel per window; far below RabbitMQ's channel_max (2,047) even for millions of orders
        window = max(window, -(-depth // 1000))
        deadline = time.monotonic() + timeout_s
        seen = 0
        ch = conn.channel()
        while seen < depth and complete:
            ch.basic_qos(prefetch_count=window)
            taken = 0
            for method, _props, body in ch.consume(s.queue, auto_ack=False, inactivity_timeout=idle_s):
                if method is None:
                    if time.monotonic() > deadline:
                        complete = False
                        break
                    # Quiet for idle_s: either nothing is left for us (the rest is held, unacknowledged,
                    # by the order service: in flight) or the broker is just slow (a loaded machine).
                    # Only the queue can tell: messages still ready mean keep waiting.
                    if probe.queue_declare(s.queue, passive=True).method.message_count == 0:
                        break
                    continue
                seen += 1
                taken += 1
                try:
                    order = json.loads(body)
                    if isinstance(order, dict) and {"order_id", "user_id", "product_id"} <= order.keys():
                        orders.append({k: order[k] for k in ("order_id", "user_id", "product_id")})
                except ValueError:
                    pass  # the order service drops malformed messages; so do we
                if time.monotonic() > deadline:
                    complete = False
                if taken >= window or seen >= depth or not complete:
                    break
            if taken < window:
                break  # the queue ran dry before this window filled
            ch = conn.channel()  # this one is full of unacknowledged messages: go on on a fresh one
    finally:
        if conn.is_open:
            conn.close()  # unacknowledged: every message goes back to the queue
    return orders, complete


def _pg_products(s: Settings, product_id: int | None) -> dict[int, dict]:
    try:
        with db.connect(s.postgres_url) as conn:
            if product_id is None:
                rows = conn.execute("SELECT id, stock, initial_stock, starts_at, ends_at FROM products "
                                    "ORDER BY id").fetchall()
            else:
                rows = conn.execute("SELECT id, stock, initial_stock, starts_at, ends_at FROM products "
                                    "WHERE id = %s", (product_id,)).fetchall()
            users: dict[int, set[str]] = {row[0]: set() for row in rows}
            for pid, user in conn.execute("SELECT product_id, user_id FROM orders WHERE product_id = ANY(%s)",
                                          (list(users),)):
                users[pid].add(user)
    except Exception as exc:
        if isinstance(exc, SeckillError):
            raise
        raise ReconcileError(f"PostgreSQL is not reachable ({type(exc).__name__}); start it with `seckill up`") from None
    if product_id is not None and not rows:
        raise ReconcileError(f"no product {product_id} in PostgreSQL; create it with `seckill sale create`")
    return {row[0]: {"stock": row[1], "initial_stock": row[2], "window": (row[3], row[4]), "users": users[row[0]]}
            for row in rows}


def _rejected(s: Settings, order_ids: list[str]) -> set[str]:
    if not order_ids:
        return set()
    with db.connect(s.postgres_url) as conn:
        return {r[0] for r in conn.execute("SELECT order_id FROM order_rejections WHERE order_id = ANY(%s)",
                                           (order_ids,))}


def _leases(r, product_id: int) -> tuple[int, int]:
    """(units held by live local-stock instances, units stranded by dead ones); (0, 0) without tier T4."""
    from seckill.system import local_stock

    return local_stock.lease_totals(r, product_id)


def snapshot(s: Settings, r, product_id: int | None = None, queue_timeout_s: float = 30.0) -> dict[int, Snapshot]:
    """Every product (or one) as the stores see it now; read PostgreSQL → queue → leases → Redis."""
    import redis as redis_lib

    products = _pg_products(s, product_id)
    queued, complete = read_queue(s, timeout_s=queue_timeout_s)
    queued = [o for o in queued if _as_int(o.get("product_id")) in products]
    rejected = _rejected(s, [str(o["order_id"]) for o in queued])
    pending: dict[int, set[str]] = {pid: set() for pid in products}
    for order in queued:
        pid, user = _as_int(order["product_id"]), str(order["user_id"])
        if str(order["order_id"]) in rejected or user in products[pid]["users"]:
            continue  # refused already, or a redelivery / second purchase the database will refuse
        pending[pid].add(user)  # one item per user, however many copies are queued
    out = {}
    try:
        for pid, row in products.items():
            held, stranded = _leases(r, pid)
            raw_stock = r.get(f"stock:{pid}")
            out[pid] = Snapshot(
                product_id=pid, pg_stock=row["stock"], initial_stock=row["initial_stock"], pg_users=row["users"],
                queued_units=len(pending[pid]), queued_users=pending[pid], queue_complete=complete,
                held_live=held, stranded=stranded,
                redis_stock=None if raw_stock is None else int(raw_stock),
                # SSCAN in pages, not SMEMBERS: one SMEMBERS of a 1,000,000-buyer set stalls Redis
                # (and every buyer of a live sale) for about 0.5 s; a page of 1,000 takes a millisecond
                redis_buyers={_text(m) for m in r.sscan_iter(f"buyers:{pid}", count=BUYERS_PAGE)},
                sale_present=bool(r.exists(sale_key(pid))), window=row["window"])
    except redis_lib.RedisError as exc:
        raise ReconcileError(f"Redis is not reachable ({exc}); start it with `seckill up`") from None
    return out


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- comparing ----------------------------------------------------------------------------

def compare(snap: Snapshot) -> list[Discrepancy]:
    """What differs between Redis and the truth for one product (nothing changed)."""
    found = []
    pid = snap.product_id
    if snap.stranded:
        found.append(Discrepancy(pid, "stranded_lease", snap.stranded, 0,
                                 note="returned to stock:{id} by --fix"))
    if snap.redis_stock is None:
        found.append(Discrepancy(pid, "stock_missing", None, snap.expected_stock))
    elif snap.redis_stock > snap.expected_stock:
        found.append(Discrepancy(pid, "stock_high", snap.redis_stock, snap.expected_stock, note=_why(snap)))
    elif snap.redis_stock < snap.expected_stock:
        found.append(Discrepancy(pid, "stock_low", snap.redis_stock, snap.expected_stock, note=_why(snap)))
    if snap.missing_buyers:
        found.append(Discrepancy(pid, "buyers_missing", set(), snap.missing_buyers))
    if snap.extra_buyers:
        found.append(Discrepancy(pid, "buyers_extra", snap.extra_buyers, set()))
    if not snap.sale_present:
        found.append(Discrepancy(pid, "sale_missing", None, "the sale window from PostgreSQL"))
    return found


def _why(snap: Snapshot) -> str:
    parts = [f"PostgreSQL {snap.pg_stock}"]
    if snap.queued_units:
        parts.append(f"{snap.queued_units} queued")
    if snap.held_live:
        parts.append(f"{snap.held_live} leased")
    if snap.stranded:
        parts.append(f"{snap.stranded} stranded")
    return " − ".join(parts)


# -- the whole run ------------------------------------------------------------------------

def reconcile(s: Settings | None = None, product_id: int | None = None, *, fix: bool = False,
              settle_s: float = 5.0, redis=None, out: TextIO | None = None) -> ReconcileReport:
    """Compare Redis with PostgreSQL and the queue; with ``fix``, repair what differs (see the module doc)."""
    import redis as redis_lib

    from seckill.system.gateway import redis_for

    s = s or settings()
    r = redis or redis_for(s)
    try:
        return _reconcile(s, r, product_id, fix, settle_s, out)
    except redis_lib.RedisError as exc:
        raise ReconcileError(f"Redis is not reachable ({exc}); start it with `seckill up`, then run again "
                             "(whatever was fixed before it went away stays fixed)") from None


def _reconcile(s: Settings, r, product_id: int | None, fix: bool, settle_s: float,
               out: TextIO | None) -> ReconcileReport:
    t0 = time.monotonic()
    report = ReconcileReport(fix=fix)

    if fix:  # leases of dead local-stock instances go back first: they are plain undersell
        try:
            from seckill.system import local_stock
        except ImportError:
            local_stock = None
        if local_stock is not None:
            for pid in _pg_products(s, product_id):
                returned = local_stock.return_stranded(r, pid)
                if returned:
                    report.discrepancies.append(Discrepancy(pid, "stranded_lease", returned, 0, fixed=True))

    first = snapshot(s, r, product_id)
    report.products = {pid: snap.numbers() for pid, snap in first.items()}
    report.queued_read = sum(snap.queued_units for snap in first.values())
    found = {pid: compare(snap) for pid, snap in first.items()}
    for pid, items in found.items():
        report.discrepancies += [d for d in items if not (fix and d.kind == "stranded_lease")]
    if not fix or not report.discrepancies:
        report.elapsed_s = time.monotonic() - t0
        return report

    scripts = {"release": r.register_script(RELEASE_LUA), "lower": r.register_script(LOWER_LUA)}
    # 1. what is safe at once: restore forgotten buyers, lower a stock that is too high
    for pid, snap in first.items():
        for d in found[pid]:
            if d.kind == "buyers_missing":
                r.sadd(f"buyers:{pid}", *sorted(d.expected))
                d.fixed = True
            elif d.kind == "stock_high":
                scripts["lower"](keys=[f"stock:{pid}"], args=[d.redis - d.expected])
                d.fixed = True

    # 2. what must be seen twice: a leak, a missing stock key
    needs_second_look = {pid for pid, items in found.items()
                         if any(d.kind in ("stock_low", "stock_missing", "buyers_extra") for d in items)}
    if needs_second_look:
        if out is not None and settle_s > 0:
            print(f"• waiting {settle_s:g} s, then looking again: an order in flight is not a leak",
                  file=out, flush=True)
        time.sleep(settle_s)
        for pid in sorted(needs_second_look):
            second = snapshot(s, r, pid)[pid]
            _fix_after_settle(r, scripts, first[pid], second, found[pid])

    # 3. the sale window last: the gateway sells again only once stock and buyers are right
    for pid, snap in first.items():
        for d in found[pid]:
            if d.kind == "sale_missing":
                starts, ends = snap.window
                r.hset(sale_key(pid), mapping={"starts_at": starts.timestamp() if starts else "",
                                               "ends_at": ends.timestamp() if ends else "",
                                               "stock": snap.initial_stock})
                d.fixed = True

    report.after = {pid: snap.numbers() for pid, snap in snapshot(s, r, product_id).items()}
    report.elapsed_s = time.monotonic() - t0
    return report


def _fix_after_settle(r, scripts, first: Snapshot, second: Snapshot, items: list[Discrepancy]) -> None:
    pid = first.product_id
    stock_key, buyers_key = f"stock:{pid}", f"buyers:{pid}"
    complete = first.queue_complete and second.queue_complete
    if second.missing_buyers:  # an order that was in flight during the first look
        r.sadd(buyers_key, *sorted(second.missing_buyers))
    for d in items:
        if d.kind == "stock_missing":
            if second.redis_stock is None and complete:
                # NX: if anything set it meanwhile (a new sale), leave it
                r.set(stock_key, second.expected_stock, nx=True)
                d.expected = second.expected_stock
                d.fixed = True
            elif second.redis_stock is not None:
                d.fixed = True
                d.note = "set by someone else meanwhile"
            else:
                d.note = "the queue could not be read whole; run again"
        elif d.kind == "buyers_extra":
            confirmed = first.extra_buyers & second.extra_buyers
            if not complete:
                d.note = "the queue could not be read whole; run again"
                continue
            # an extra buyer holds an item only while the stock is short of what it should be
            short = max(0, second.expected_stock - (second.redis_stock or 0)) if second.redis_stock is not None else 0
            returned = 0
            for user in sorted(confirmed):
                if returned < short:
                    returned += int(scripts["release"](keys=[stock_key, buyers_key], args=[user]))
                else:
                    r.srem(buyers_key, user)
            d.note = f"{returned} item{'s' if returned != 1 else ''} returned to stock"
            if confirmed != first.extra_buyers:
                d.note += f"; {len(first.extra_buyers - confirmed)} were orders in flight"
            d.fixed = True
        elif d.kind == "stock_low":
            if not complete:
                d.note = "the queue could not be read whole; run again"
                continue
            if second.redis_stock is None:
                continue
            # a shortfall that no extra buyer explains is not an order in flight (every
            # reservation records its buyer): raise it by what both looks agree on
            unexplained = min(first.expected_stock - (first.redis_stock or 0) - len(first.extra_buyers),
                              second.expected_stock - second.redis_stock - len(second.extra_buyers))
            if unexplained > 0:
                r.incrby(stock_key, unexplained)
            d.fixed = True
    # a stock that was fine at the first look may still be short after the extras went back
    # (nothing to do) — or was low only because of orders in flight (nothing to do either)

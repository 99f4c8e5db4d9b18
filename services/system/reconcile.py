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

Bounded memory, whatever the sale
---------------------------------
A sold-out sale of 1,000,000 items has a million buyers in PostgreSQL and a
million in Redis; holding both in Python sets to compare them took 411 MB, and
a 200,000-order backlog 76 MB more. So the sets never come into this process.
A run keeps one PostgreSQL connection and lets the database compare them in
TEMP tables (gone with the connection):

  rc_expected  the buyers of PostgreSQL's orders, copied server-side in the
               same REPEATABLE READ snapshot as the stock, then the queued
               orders' buyers (not refused, no order yet; once per user)
  rc_queued    the queue: read_queue hands each window of 1,000 messages to a
               COPY while they are still unacknowledged
  rc_redis     buyers:{id}: SSCAN pages of 1,000, each one COPY write

PostgreSQL counts them and runs the anti-joins (expected and not in Redis;
in Redis and not expected) in C, its own memory bounded by temp_buffers and
work_mem: a million buyers are about 57 MB of temp files per table, spilled
to disk. A report keeps each difference's count and its first 1,000 names;
--fix streams a whole difference through a server-side cursor, 1,000 users at
a time, and the first look's extra buyers wait in a TEMP table for the second
look. This process holds a page, not the sale: ``seckill bench --scale``
measured the same peak (+0.1 MB) at 10,000 and 1,000,000 buyers (7.6 s), and
a ``--fix`` that restored all 1,000,000 buyers of an emptied set took 15 s
and no more memory. The time stays linear.

Safe while a sale runs: what it guarantees
-------------------------------------------
The snapshot reads PostgreSQL (stock and orders as of one moment), then the
queue (and which of its orders PostgreSQL has refused meanwhile), then leases,
then Redis; the comparing comes after, on what was read. An order moves the
other way (Redis → gateway → queue → order service → PostgreSQL), so an order
in flight during the snapshot is seen in Redis but nowhere after it:
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
from typing import Any, Callable, TextIO

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

# Drop a page of users (ARGV[2..]) from the buyers, giving an item back for each one who really
# held it, up to ARGV[1] items (the stock lab's release, inline and a page at a time: reconciliation
# must not depend on the learner's labs/ code). Returns the items given back.
GIVE_BACK_LUA = """
local cap, returned = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
    if redis.call('SREM', KEYS[2], ARGV[i]) == 1 and returned < cap then
        returned = returned + 1
    end
end
if returned > 0 then redis.call('INCRBY', KEYS[1], returned) end
return returned
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
class Users:
    """A set of users too large to hold, as it is reported: how many, and the first ``SAMPLE`` by name.

    ``len()`` is the whole count and ``in`` asks the sample: the sets themselves stay in
    PostgreSQL (see the module doc), so a report of a million missing buyers is a few kB.
    """
    count: int = 0
    sample: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __contains__(self, user: object) -> bool:
        return user in self.sample

    def __iter__(self):
        return iter(sorted(self.sample))


SAMPLE = 1_000  # users named per discrepancy in a report; the count is always the whole one


@dataclass
class Discrepancy:
    product_id: int
    kind: str
    redis: Any
    expected: Any
    fixed: bool = False
    note: str = ""
    count: int | None = None  # buyers_*: how many users in all (redis/expected name at most SAMPLE of them)

    def line(self) -> str:
        def show(v):
            if isinstance(v, (set, list, tuple)):
                items = sorted(map(str, v))
                total = len(items) if self.count is None else self.count
                return f"{total:,} users" + (f" ({', '.join(items[:3])}{', …' if total > 3 else ''})"
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
    """One product as the stores saw it, read in the order PostgreSQL → queue → leases → Redis.

    Buyers are counted, not held: the sets being compared wait in TEMP tables of the
    run's PostgreSQL connection (see the module doc); the differences come as ``Users``.
    """
    product_id: int
    pg_stock: int
    initial_stock: int
    pg_orders: int              # users with an order in PostgreSQL
    queued_units: int           # queued orders that will still take an item (one per user)
    queue_complete: bool
    held_live: int              # leased by live local-stock instances
    stranded: int               # leased by dead ones
    redis_stock: int | None
    redis_buyers: int           # members of buyers:{id}
    missing_buyers: Users       # expected (an order, or a queued one) and not in buyers:{id}
    extra_buyers: Users         # in buyers:{id} with neither behind them
    sale_present: bool
    window: tuple[Any, Any] = (None, None)

    @property
    def expected_stock(self) -> int:
        return max(0, self.pg_stock - self.queued_units - self.held_live - self.stranded)

    @property
    def expected_buyers(self) -> int:
        """Users with an order in PostgreSQL or one still queued (each counted once)."""
        return self.pg_orders + self.queued_units

    def numbers(self) -> dict:
        return {"pg_stock": self.pg_stock, "initial_stock": self.initial_stock, "pg_orders": self.pg_orders,
                "queued": self.queued_units, "held_by_live_instances": self.held_live,
                "stranded": self.stranded, "expected_stock": self.expected_stock,
                "redis_stock": self.redis_stock, "redis_buyers": self.redis_buyers,
                "expected_buyers": self.expected_buyers, "queue_complete": self.queue_complete}


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
            n_left = len(self.remaining)
            lines.append(f"{n_left} discrepanc{'ies' if n_left != 1 else 'y'} "
                         + ("left after --fix" if self.fix else
                            f"found; run `seckill reconcile --fix` to repair {'them' if n_left != 1 else 'it'}"))
        return "\n".join(lines)


# -- reading the truth ----------------------------------------------------------------------

READ_WINDOW = 1000  # messages one channel holds while read_queue reads (see there)
SETTLE_S = 0.2  # on loopback, a message the broker already sent this process arrives well within this


def read_queue(s: Settings, timeout_s: float = 30.0, idle_s: float = 0.5, window: int = READ_WINDOW,
               sink: Callable[[list[dict]], None] | None = None) -> tuple[list[dict], bool]:
    """The orders waiting in the queue, read without taking them: (orders, complete).

    A consumer that never acknowledges, then closes its connection: RabbitMQ puts
    every message back, each in its original place. Messages another consumer (the
    order service) holds at that moment are not seen; they are in flight, which
    reconcile allows for. ``complete`` is False when ``timeout_s`` cut the read short.
    Each order is a dict of the three fields reconcile needs (order_id, user_id,
    product_id), in queue order; malformed messages are skipped, as the order service does.

    With ``sink``, each window's orders go to ``sink(orders)`` as soon as the window
    is read (before the next is asked for, while the messages are still unacknowledged)
    and the returned list stays empty: this process then holds one window, whatever
    the backlog (reconcile writes them to PostgreSQL). Without it they are returned,
    all of them: fine for a test's few hundred, not for a 200,000-order backlog.

    The broker never pushes more than ``window`` messages at once either: each channel
    has a prefetch of ``window`` and, as nothing is acknowledged, stops receiving once
    it holds that many (200,000 queued orders took 253 MB when it could); the next
    window comes on a new channel. If ``sink`` raises, the read stops and every
    message still goes back.
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
        seen = consumers = 0
        ch = conn.channel()
        while seen < depth and complete:
            ch.basic_qos(prefetch_count=window)
            taken, consumers, quiet_since = 0, consumers + 1, None
            for method, _props, body in ch.consume(s.queue, auto_ack=False, inactivity_timeout=idle_s):
                if method is None:
                    if time.monotonic() > deadline:
                        complete = False
                        break
                    # Quiet for idle_s: either nothing is left for us (the rest is held, unacknowledged,
                    # by the order service: in flight) or the broker is just slow (a loaded machine).
                    # Only the queue can tell: messages still ready mean keep waiting.
                    queue = probe.queue_declare(s.queue, passive=True).method
                    if queue.message_count > 0:
                        quiet_since = None
                        continue
                    if queue.consumer_count <= consumers and seen < depth:
                        continue  # nobody consumes but us: the rest is on its way to this channel
                    # Nothing ready, and another consumer holds some. What the broker already handed
                    # this channel may still be on its way too (seen: 1,996 of 2,000 on a loaded
                    # machine): the read ends only after SETTLE_S more of quiet.
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= SETTLE_S:
                        break
                    continue
                quiet_since = None
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
            if sink is not None and orders:
                sink(orders)
                orders = []
            if taken < window:
                break  # the queue ran dry before this window filled
            ch = conn.channel()  # this one is full of unacknowledged messages: go on on a fresh one
    finally:
        if conn.is_open:
            conn.close()  # unacknowledged: every message goes back to the queue
    return orders, complete


# The run's three sets, in TEMP tables of its one PostgreSQL connection (gone when it closes):
#   rc_expected  the truth's buyers: PostgreSQL's orders (ordered) ∪ queued orders not refused
#   rc_queued    the queue as read_queue saw it (order_id, user_id, product_id), before the refusals
#   rc_redis     buyers:{id} as SSCAN saw it (a member may appear twice: SSCAN can repeat one)
#   rc_extra_1   the first look's extra buyers, for the second look's "extra in both" rule
TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS rc_expected (product_id bigint, user_id text, ordered boolean);
CREATE TEMP TABLE IF NOT EXISTS rc_queued (order_id text, user_id text, product_id bigint);
CREATE TEMP TABLE IF NOT EXISTS rc_redis (product_id bigint, user_id text);
CREATE TEMP TABLE IF NOT EXISTS rc_extra_1 (product_id bigint, user_id text);
"""

# expected, not in Redis / in Redis, not expected: anti-joins PostgreSQL runs (hash joins, spilling
# to disk past work_mem), so neither side is ever held by this process
MISSING_ALL = ("SELECT e.product_id, e.user_id FROM rc_expected e WHERE NOT EXISTS "
               "(SELECT 1 FROM rc_redis r WHERE r.product_id = e.product_id AND r.user_id = e.user_id)")
EXTRA_ALL = ("SELECT DISTINCT r.product_id, r.user_id FROM rc_redis r WHERE NOT EXISTS "
             "(SELECT 1 FROM rc_expected e WHERE e.product_id = r.product_id AND e.user_id = r.user_id)")
MISSING_SQL = f"SELECT d.user_id FROM ({MISSING_ALL}) d WHERE d.product_id = %(pid)s"
EXTRA_SQL = f"SELECT d.user_id FROM ({EXTRA_ALL}) d WHERE d.product_id = %(pid)s"
# extra now and at the first look: the only buyers whose item may go back
CONFIRMED_SQL = (f"{EXTRA_SQL} AND EXISTS "
                 "(SELECT 1 FROM rc_extra_1 f WHERE f.product_id = d.product_id AND f.user_id = d.user_id)")
PAGE = 1_000  # users per page when a difference is streamed (a named cursor) and fixed


def _connect(s: Settings):
    """The run's one PostgreSQL connection (autocommit; transactions where needed), its TEMP tables made."""
    conn = db.connect(s.postgres_url, autocommit=True)
    conn.execute(TEMP_TABLES)
    return conn


def _pg_products(conn, product_id: int | None) -> dict[int, dict]:
    """Products (stock, window) and their orders' buyers, into rc_expected: one snapshot of PostgreSQL."""
    with conn.transaction():
        # REPEATABLE READ: stock and orders as of one moment (with two separate reads, an order committed
        # between them would be among the orders but not yet off the stock)
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if product_id is None:
            rows = conn.execute("SELECT id, stock, initial_stock, starts_at, ends_at FROM products "
                                "ORDER BY id").fetchall()
        else:
            rows = conn.execute("SELECT id, stock, initial_stock, starts_at, ends_at FROM products "
                                "WHERE id = %s", (product_id,)).fetchall()
        conn.execute("TRUNCATE rc_expected, rc_queued, rc_redis")
        conn.execute("INSERT INTO rc_expected (product_id, user_id, ordered) "
                     "SELECT product_id, user_id, true FROM orders WHERE product_id = ANY(%s)",
                     ([row[0] for row in rows],))
    if product_id is not None and not rows:
        raise ReconcileError(f"no product {product_id} in PostgreSQL; create it with `seckill sale create`")
    return {row[0]: {"stock": row[1], "initial_stock": row[2], "window": (row[3], row[4])} for row in rows}


def _product_ids(conn, product_id: int | None) -> list[int]:
    if product_id is None:
        return [row[0] for row in conn.execute("SELECT id FROM products ORDER BY id")]
    return [row[0] for row in conn.execute("SELECT id FROM products WHERE id = %s", (product_id,))]


def _queued_to_pg(conn, s: Settings, products: dict[int, dict], timeout_s: float) -> bool:
    """The queue, read window by window into rc_expected (not refused, not ordered yet); complete?"""
    def copy_window(orders: list[dict]) -> None:
        rows = [(str(o["order_id"]), str(o["user_id"]), pid) for o in orders
                if (pid := _as_int(o["product_id"])) in products]
        if rows:
            with conn.cursor().copy("COPY rc_queued (order_id, user_id, product_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    _, complete = read_queue(s, timeout_s=timeout_s, sink=copy_window)
    with conn.transaction():
        # refused already (the order service wrote its rejection), or a redelivery / second purchase the
        # database will refuse (the user has an order): not a unit still to come; one per user, however
        # many copies are queued
        conn.execute("DELETE FROM rc_queued q USING order_rejections x WHERE x.order_id = q.order_id")
        conn.execute("INSERT INTO rc_expected (product_id, user_id, ordered) "
                     "SELECT DISTINCT q.product_id, q.user_id, false FROM rc_queued q WHERE NOT EXISTS "
                     "(SELECT 1 FROM rc_expected e WHERE e.product_id = q.product_id AND e.user_id = q.user_id)")
    return complete


def _redis_buyers_to_pg(conn, r, pid: int) -> None:
    """buyers:{pid} into rc_redis, an SSCAN page at a time."""
    # SSCAN in pages, not SMEMBERS: one SMEMBERS of a 1,000,000-buyer set stalls Redis (and every
    # buyer of a live sale) for about 0.5 s; a page of 1,000 takes a millisecond
    prefix, cursor = f"{pid}\t".encode(), 0
    with conn.cursor().copy("COPY rc_redis (product_id, user_id) FROM STDIN") as copy:
        while True:
            cursor, members = r.sscan(f"buyers:{pid}", cursor, count=BUYERS_PAGE)
            members = [m if isinstance(m, bytes) else str(m).encode() for m in members]
            page = b"\n".join(members)
            if not members:
                pass
            elif any(c in page for c in (b"\\", b"\t", b"\r")) or page.count(b"\n") != len(members) - 1:
                for member in members:  # a name COPY's text format must escape: row by row
                    copy.write_row((pid, member.decode()))
            else:  # the page as COPY text in one piece: "pid<TAB>user" lines
                copy.write(prefix + page.replace(b"\n", b"\n" + prefix) + b"\n")
            if int(cursor) == 0:
                break


def _pages(conn, sql: str, pid: int):
    """The users ``sql`` selects for product ``pid``, in name order, PAGE at a time (a server-side cursor)."""
    with conn.transaction(), conn.cursor(name="rc_pages") as cur:
        cur.itersize = PAGE
        cur.execute(f"{sql} ORDER BY 1", {"pid": pid})
        while page := cur.fetchmany(PAGE):
            yield [row[0] for row in page]


def _differences(conn, sql_all: str) -> dict[int, int]:
    """{product: users} of a difference, every product in one pass."""
    return dict(conn.execute(f"SELECT product_id, count(*) FROM ({sql_all}) d GROUP BY 1").fetchall())


def _users(conn, sql: str, pid: int, count: int) -> Users:
    """``count`` users, and the first SAMPLE of them by name (a top-N sort: SAMPLE rows held, not count)."""
    if not count:
        return Users()
    sample = conn.execute(f"{sql} ORDER BY 1 LIMIT {SAMPLE}", {"pid": pid}).fetchall()
    return Users(count, {row[0] for row in sample})


def _buyer_counts(conn) -> dict[int, tuple[int, int]]:
    """{product: (users with an order, units queued)} from rc_expected (one row per product and user)."""
    rows = conn.execute("SELECT product_id, count(*) FILTER (WHERE ordered), count(*) FILTER (WHERE NOT ordered) "
                        "FROM rc_expected GROUP BY product_id").fetchall()
    return {pid: (ordered, queued) for pid, ordered, queued in rows}


def _leases(r, product_id: int) -> tuple[int, int]:
    """(units held by live local-stock instances, units stranded by dead ones); (0, 0) without tier T4."""
    from seckill.system import local_stock

    return local_stock.lease_totals(r, product_id)


def snapshot(s: Settings, r, product_id: int | None = None, queue_timeout_s: float = 30.0,
             conn=None) -> dict[int, Snapshot]:
    """Every product (or one) as the stores see it now; read PostgreSQL → queue → leases → Redis.

    ``conn``: the run's PostgreSQL connection (``_connect``), whose TEMP tables then hold this
    look's sets for the fixes; without it one is opened and closed here.
    """
    import redis as redis_lib

    if conn is None:
        with _connect(s) as own:
            return snapshot(s, r, product_id, queue_timeout_s, conn=own)
    products = _pg_products(conn, product_id)
    complete = _queued_to_pg(conn, s, products, queue_timeout_s)
    read = {}
    try:
        for pid in products:
            held, stranded = _leases(r, pid)
            raw_stock = r.get(f"stock:{pid}")
            _redis_buyers_to_pg(conn, r, pid)
            read[pid] = (held, stranded, None if raw_stock is None else int(raw_stock), bool(r.exists(sale_key(pid))))
    except redis_lib.RedisError as exc:
        raise ReconcileError(f"Redis is not reachable ({exc}); start it with `seckill up`") from None
    conn.execute("ANALYZE rc_expected, rc_redis")  # the planner's row counts: hash joins, not nested loops
    counts = _buyer_counts(conn)
    missing = _differences(conn, MISSING_ALL)
    rows = dict(conn.execute("SELECT product_id, count(*) FROM rc_redis GROUP BY 1").fetchall())
    # Redis holds at least the expected buyers it was not missing, each once; if SSCAN returned no more
    # rows than that, none is extra, and the second anti-join (as long as the first) is not needed
    extra = {}
    if any(rows.get(pid, 0) > sum(counts.get(pid, (0, 0))) - missing.get(pid, 0) for pid in products):
        extra = _differences(conn, EXTRA_ALL)
    out = {}
    for pid, row in products.items():
        held, stranded, redis_stock, sale_present = read[pid]
        ordered, queued = counts.get(pid, (0, 0))
        n_missing, n_extra = missing.get(pid, 0), extra.get(pid, 0)
        out[pid] = Snapshot(
            product_id=pid, pg_stock=row["stock"], initial_stock=row["initial_stock"], pg_orders=ordered,
            queued_units=queued, queue_complete=complete, held_live=held, stranded=stranded,
            # Redis's members: the expected ones it has, and the extra ones (counted once each, although
            # SSCAN may have returned one twice)
            redis_stock=redis_stock, redis_buyers=ordered + queued - n_missing + n_extra,
            missing_buyers=_users(conn, MISSING_SQL, pid, n_missing),
            extra_buyers=_users(conn, EXTRA_SQL, pid, n_extra),
            sale_present=sale_present, window=row["window"])
    return out


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None



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
        found.append(Discrepancy(pid, "buyers_missing", set(), set(snap.missing_buyers.sample),
                                 count=snap.missing_buyers.count))
    if snap.extra_buyers:
        found.append(Discrepancy(pid, "buyers_extra", set(snap.extra_buyers.sample), set(),
                                 count=snap.extra_buyers.count))
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
    import psycopg
    import redis as redis_lib

    from seckill.system.gateway import redis_for

    s = s or settings()
    r = redis or redis_for(s)
    try:
        with _connect(s) as conn:
            return _reconcile(s, r, conn, product_id, fix, settle_s, out)
    except redis_lib.RedisError as exc:
        raise ReconcileError(f"Redis is not reachable ({exc}); start it with `seckill up`, then run again "
                             "(whatever was fixed before it went away stays fixed)") from None
    except psycopg.Error as exc:
        raise ReconcileError(f"PostgreSQL is not reachable ({type(exc).__name__}); start it with `seckill up`") from None


def _reconcile(s: Settings, r, conn, product_id: int | None, fix: bool, settle_s: float,
               out: TextIO | None) -> ReconcileReport:
    t0 = time.monotonic()
    report = ReconcileReport(fix=fix)

    if fix:  # leases of dead local-stock instances go back first: they are plain undersell
        try:
            from seckill.system import local_stock
        except ImportError:
            local_stock = None
        if local_stock is not None:
            for pid in _product_ids(conn, product_id):
                returned = local_stock.return_stranded(r, pid)
                if returned:
                    report.discrepancies.append(Discrepancy(pid, "stranded_lease", returned, 0, fixed=True))

    first = snapshot(s, r, product_id, conn=conn)
    report.products = {pid: snap.numbers() for pid, snap in first.items()}
    report.queued_read = sum(snap.queued_units for snap in first.values())
    found = {pid: compare(snap) for pid, snap in first.items()}
    for pid, items in found.items():
        report.discrepancies += [d for d in items if not (fix and d.kind == "stranded_lease")]
    if not fix or not report.discrepancies:
        report.elapsed_s = time.monotonic() - t0
        return report

    scripts = {"give_back": r.register_script(GIVE_BACK_LUA), "lower": r.register_script(LOWER_LUA)}
    # 1. what is safe at once: restore forgotten buyers, lower a stock that is too high
    for pid, snap in first.items():
        for d in found[pid]:
            if d.kind == "buyers_missing":
                _restore_buyers(conn, r, pid)
                d.fixed = True
            elif d.kind == "stock_high":
                scripts["lower"](keys=[f"stock:{pid}"], args=[d.redis - d.expected])
                d.fixed = True

    # 2. what must be seen twice: a leak, a missing stock key
    needs_second_look = {pid for pid, items in found.items()
                         if any(d.kind in ("stock_low", "stock_missing", "buyers_extra") for d in items)}
    if needs_second_look:
        with conn.transaction():  # the first look's extra buyers, kept for "extra in both looks"
            conn.execute("TRUNCATE rc_extra_1")
            for pid in needs_second_look:
                if first[pid].extra_buyers:
                    conn.execute(f"INSERT INTO rc_extra_1 (product_id, user_id) SELECT %(pid)s, x.user_id "
                                 f"FROM ({EXTRA_SQL}) x", {"pid": pid})
            conn.execute("ANALYZE rc_extra_1")
        if out is not None and settle_s > 0:
            print(f"• waiting {settle_s:g} s, then looking again: an order in flight is not a leak",
                  file=out, flush=True)
        time.sleep(settle_s)
        for pid in sorted(needs_second_look):
            second = snapshot(s, r, pid, conn=conn)[pid]
            _fix_after_settle(r, conn, scripts, first[pid], second, found[pid])

    # 3. the sale window last: the gateway sells again only once stock and buyers are right
    for pid, snap in first.items():
        for d in found[pid]:
            if d.kind == "sale_missing":
                starts, ends = snap.window
                r.hset(sale_key(pid), mapping={"starts_at": starts.timestamp() if starts else "",
                                               "ends_at": ends.timestamp() if ends else "",
                                               "stock": snap.initial_stock})
                d.fixed = True

    report.after = {pid: snap.numbers() for pid, snap in snapshot(s, r, product_id, conn=conn).items()}
    report.elapsed_s = time.monotonic() - t0
    return report


def _restore_buyers(conn, r, pid: int) -> None:
    """SADD the buyers the last look found missing from buyers:{pid}, a page at a time."""
    for page in _pages(conn, MISSING_SQL, pid):
        r.sadd(f"buyers:{pid}", *page)


def _fix_after_settle(r, conn, scripts, first: Snapshot, second: Snapshot, items: list[Discrepancy]) -> None:
    pid = first.product_id
    stock_key = f"stock:{pid}"
    complete = first.queue_complete and second.queue_complete
    if second.missing_buyers:  # an order that was in flight during the first look
        _restore_buyers(conn, r, pid)
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
            if not complete:
                d.note = "the queue could not be read whole; run again"
                continue
            # an extra buyer holds an item only while the stock is short of what it should be
            short = max(0, second.expected_stock - (second.redis_stock or 0)) if second.redis_stock is not None else 0
            returned = confirmed = 0
            for page in _pages(conn, CONFIRMED_SQL, pid):  # extra in both looks, in name order
                confirmed += len(page)
                returned += int(scripts["give_back"](keys=[stock_key, f"buyers:{pid}"],
                                                     args=[short - returned, *page]))
            d.note = f"{returned} item{'s' if returned != 1 else ''} returned to stock"
            if confirmed != len(first.extra_buyers):
                d.note += f"; {len(first.extra_buyers) - confirmed} were orders in flight"
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

"""Tier T4: each gateway process sells from its own slice of the stock (本地库存).

The seed's last step up the ladder: instead of asking Redis for every item,
each instance *leases* a slice of the stock (say 20 items) in one round trip
and then counts down in its own memory. Once Redis has nothing left to lease,
the instance raises a local sold-out flag, and from then on every late buyer
(in a flash sale, nearly all of them) is answered from memory: no limiter, no
script, no queue — only one set lookup, so that a user who already bought
hears ``already_bought`` whichever instance the request lands on.

What is still asked of Redis, and why:
  * one script per *buyer* (not per request): "this user has not bought yet"
    is a question about all instances at once, so it cannot be local. The same
    script counts the unit off this instance's lease, so Redis always knows
    exactly how many units each instance still holds.
  * one script per slice, and a heartbeat per second per product.

The leases live in Redis, in ``leases:{product_id}`` (field: instance id,
value: units that instance still holds), with a heartbeat key
``lease:{product_id}:{instance}`` that expires a few seconds after the
instance stops beating. That is what makes the trade-off visible and fixable:
  * an instance that dies keeps its lease: those units are *stranded*. Nobody
    sells them (undersell) until reconciliation sees the expired heartbeat and
    gives the lease back to ``stock:{id}`` (:func:`return_stranded`);
  * while one instance still holds units, another may already answer
    "sold out": the flag is re-checked every ``recheck_s`` seconds, so the
    undersell lasts at most that long once units come back;
  * an instance that stops cleanly gives its lease back (:meth:`return_all`).

Nothing here can oversell: a unit is only ever sold from a lease that Redis
took out of ``stock:{id}`` atomically, and PostgreSQL still guards the stock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

log = logging.getLogger("seckill.system.local_stock")

HEARTBEAT_TTL_MS = 3000


def leases_key(product_id: int) -> str:
    return f"leases:{product_id}"


def heartbeat_key(product_id: int, instance: str) -> str:
    return f"lease:{product_id}:{instance}"


def new_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


# KEYS[1] stock, KEYS[2] leases, KEYS[3] heartbeat; ARGV[1] slice size, ARGV[2] instance, ARGV[3] ttl ms.
# Returns the units granted (0: nothing left), or -1 when there is no such sale.
TAKE_SLICE_LUA = """
local stock = tonumber(redis.call('GET', KEYS[1]))
if stock == nil then return -1 end
local n = math.min(stock, tonumber(ARGV[1]))
if n > 0 then
    redis.call('DECRBY', KEYS[1], n)
    redis.call('HINCRBY', KEYS[2], ARGV[2], n)
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
return n
"""

# KEYS[1] buyers, KEYS[2] leases; ARGV[1] user, ARGV[2] instance.
# 'stale': this instance's lease is gone (the sale was re-created, or reconciliation
# returned it): the units it counts in memory are no longer its to sell.
CLAIM_LUA = """
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]))
if held == nil or held <= 0 then return 'stale' end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 'already_bought' end
redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
return 'ok'
"""

# KEYS[1] buyers, KEYS[2] leases, KEYS[3] stock; ARGV[1] user, ARGV[2] instance.
# Undo a claim whose order could not be queued. 1: back into our lease, 2: back into
# the shared stock (our lease is gone), 0: the user held no claim.
UNCLAIM_LUA = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
    return 1
end
redis.call('INCR', KEYS[3])
return 2
"""

# KEYS[1] stock, KEYS[2] leases; ARGV[1] instance. Give a whole lease back; returns the units.
RETURN_LEASE_LUA = """
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
if held == nil then return 0 end
if held > 0 then redis.call('INCRBY', KEYS[1], held) end
redis.call('HDEL', KEYS[2], ARGV[1])
return held
"""


@dataclass
class _Product:
    held: int = 0               # units of our lease not yet sold (what Redis holds for us, minus in-flight)
    sold_out_at: float | None = None  # when Redis last had nothing to lease to us
    refill: asyncio.Lock | None = None


class AsyncLocalStock:
    """The stock interface of AsyncStock (reserve_once, release, get_stock), sold from a local lease.

    One per gateway process (one event loop, so plain ints need no lock; a
    refill is serialised per product so concurrent buyers do not each lease a slice).
    """

    def __init__(self, redis, *, slice_size: int = 20, recheck_s: float = 1.0, instance: str | None = None,
                 clock=time.monotonic):
        if slice_size < 1:
            raise ValueError("slice_size must be at least 1")
        self.redis = redis
        self.slice_size = slice_size
        self.recheck_s = recheck_s
        self.instance = instance or new_instance_id()
        self.clock = clock
        self._products: dict[int, _Product] = {}
        self._take_slice = redis.register_script(TAKE_SLICE_LUA)
        self._claim = redis.register_script(CLAIM_LUA)
        self._unclaim = redis.register_script(UNCLAIM_LUA)
        self._return = redis.register_script(RETURN_LEASE_LUA)
        self._heartbeat: asyncio.Task | None = None
        self.stats = {"slices": 0, "answered_from_memory": 0}

    def _product(self, product_id: int) -> _Product:
        state = self._products.get(product_id)
        if state is None:
            state = self._products[product_id] = _Product(refill=asyncio.Lock())
        return state

    # -- what the gateway asks ------------------------------------------------------------
    def sold_out_locally(self, product_id: int) -> bool:
        """True while our flag says sold out: answer at once, without Redis (re-checked every recheck_s)."""
        state = self._products.get(product_id)
        if state is None or state.held > 0 or state.sold_out_at is None:
            return False
        if self.clock() - state.sold_out_at >= self.recheck_s:
            return False  # time to ask Redis again: stock may have come back
        self.stats["answered_from_memory"] += 1
        return True

    async def reserve_once(self, product_id: int, user_id: str) -> str:
        """'ok', 'sold_out' or 'already_bought', like the Lua reserve_once of the stock lab."""
        state = self._product(product_id)
        for _ in range(3):  # a stale lease is dropped and leased afresh, at most twice
            if state.held <= 0 and not await self._refill(product_id, state):
                return await self.sold_out_answer(product_id, user_id)
            state.held -= 1  # taken before the await: no other buyer of this process counts it
            outcome = _text(await self._claim(keys=[f"buyers:{product_id}", leases_key(product_id)],
                                              args=[user_id, self.instance]))
            if outcome == "ok":
                return "ok"
            if outcome == "already_bought":
                state.held += 1
                return "already_bought"
            state.held = 0  # 'stale': our lease is gone, so are the units we counted
        return await self.sold_out_answer(product_id, user_id)

    async def sold_out_answer(self, product_id: int, user_id: str) -> str:
        """What a buyer hears when this instance has nothing to sell: 'already_bought' if the user
        holds one (bought through any instance: the buyers set is shared), else 'sold_out'.

        Without it the answer to a repeat buy would depend on which worker the request
        lands on: the one that sold it says already_bought, one without a lease sold_out.
        """
        return "already_bought" if await self.redis.sismember(f"buyers:{product_id}", user_id) else "sold_out"

    async def release(self, product_id: int, user_id: str) -> bool:
        back = int(await self._unclaim(keys=[f"buyers:{product_id}", leases_key(product_id),
                                             f"stock:{product_id}"], args=[user_id, self.instance]))
        if back == 1:
            self._product(product_id).held += 1
        return back > 0

    async def get_stock(self, product_id: int) -> int | None:
        """Units left in the shared stock plus every lease (what could still be sold)."""
        value = await self.redis.get(f"stock:{product_id}")
        if value is None:
            return None
        leased = sum(max(0, int(v)) for v in (await self.redis.hgetall(leases_key(product_id))).values())
        return int(value) + leased

    # -- leases ---------------------------------------------------------------------------
    async def _refill(self, product_id: int, state: _Product) -> bool:
        async with state.refill:
            if state.held > 0:
                return True
            if state.sold_out_at is not None and self.clock() - state.sold_out_at < self.recheck_s:
                return False  # a buyer queued behind us just asked Redis: no need to ask again
            granted = int(await self._take_slice(
                keys=[f"stock:{product_id}", leases_key(product_id), heartbeat_key(product_id, self.instance)],
                args=[self.slice_size, self.instance, HEARTBEAT_TTL_MS]))
            if granted < 0:
                return False  # no stock key: the sale is lost, not sold out (the gateway answers 503 and rebuilds)
            if granted == 0:
                state.sold_out_at = self.clock()
                return False
            self.stats["slices"] += 1
            state.held += granted
            state.sold_out_at = None
            self._start_heartbeat()
            return True

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat_forever())

    async def _beat_forever(self) -> None:
        """Keep our leases alive: an instance that stops beating has stranded its units."""
        while True:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for product_id in self._products:
                    pipe.set(heartbeat_key(product_id, self.instance), "1", px=HEARTBEAT_TTL_MS)
                await pipe.execute()
            except Exception as exc:  # Redis away for a moment: keep trying, the gateway answers 503 meanwhile
                log.warning("lease heartbeat failed: %s", exc)
            await asyncio.sleep(HEARTBEAT_TTL_MS / 3000)

    async def return_all(self) -> int:
        """Give every lease back to the shared stock (a clean shutdown). Returns the units."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        total = 0
        for product_id, state in self._products.items():
            try:
                total += int(await self._return(keys=[f"stock:{product_id}", leases_key(product_id)],
                                                args=[self.instance]))
                await self.redis.delete(heartbeat_key(product_id, self.instance))
            except Exception as exc:
                log.error("could not return the lease of product %s: %s (reconciliation will)", product_id, exc)
            state.held = 0
        return total


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- what reconciliation, the invariants and the notebooks ask (sync redis client) ----------

def leases(redis, product_id: int) -> dict[str, tuple[int, bool]]:
    """Every lease of a product: instance → (units held, heartbeat alive)."""
    raw = redis.hgetall(leases_key(product_id))
    out = {}
    for field, value in raw.items():
        instance = _text(field)
        out[instance] = (int(value), bool(redis.exists(heartbeat_key(product_id, instance))))
    return out


def lease_totals(redis, product_id: int) -> tuple[int, int]:
    """(units held by live instances, units stranded by dead ones), from one read of the leases."""
    all_leases = leases(redis, product_id).values()
    return (sum(held for held, alive in all_leases if alive), sum(held for held, alive in all_leases if not alive))


def live_leases(redis, product_id: int) -> dict[str, int]:
    """Units held by instances that are alive (they will sell them, or give them back)."""
    return {i: held for i, (held, alive) in leases(redis, product_id).items() if alive}


def stranded_leases(redis, product_id: int) -> dict[str, int]:
    """Units held by instances whose heartbeat expired: nobody will sell them (undersell)."""
    return {i: held for i, (held, alive) in leases(redis, product_id).items() if not alive}


def return_stranded(redis, product_id: int) -> int:
    """Give the leases of dead instances back to ``stock:{id}``; returns the units. Idempotent."""
    script = redis.register_script(RETURN_LEASE_LUA)
    total = 0
    for instance in stranded_leases(redis, product_id):
        # the heartbeat may have come back between the two calls: then leave it
        if redis.exists(heartbeat_key(product_id, instance)):
            continue
        total += int(script(keys=[f"stock:{product_id}", leases_key(product_id)], args=[instance]))
    return total

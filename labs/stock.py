# Your workspace. Generated from solutions/stock.py by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/stock.py and regenerate, never this file.
"""Reserving flash-sale stock in Redis without overselling.

During a flash sale thousands of requests hit the same few products in the
same second. PostgreSQL could not take that load row-lock by row-lock, so the
gateway decides in Redis who got an item and hands the slow write to a queue.
The decision in Redis must therefore be exactly right. Three attempts, each
fixing the previous one (the notebook races them against each other):

1. get_stock, then decr_stock when it was positive: check, then act. Between
   one request's GET and its DECR other requests read the same count, all see
   "1 left", all decrement: the counter ends below zero and we oversold.
2. try_reserve: DECR, and if the result went below zero, INCR it back and say
   no. One atomic command decides, so no more than the stock is ever handed
   out. But a user can still buy the same item twice.
3. reserve_once: a Lua script that checks "bought already?", checks the stock,
   decrements and records the buyer as ONE atomic step inside Redis.

release() undoes reserve_once when a later step fails (the order could not be
queued). It only returns the item if it actually removed the buyer, so running
it twice cannot create stock out of nothing.

Keys: stock:<product_id> holds the count, buyers:<product_id> the set of user
ids. (Under Redis Cluster both keys of one script must share a hash slot; this
course uses a single Redis, so plain names keep them readable.)
"""

import enum

import redis as redis_lib

NOTEBOOK = "notebooks/12_stock_reservation.ipynb"

RESERVE_ONCE_LUA = """
-- KEYS[1]: stock key, KEYS[2]: buyers key, ARGV[1]: user id.
-- Return 'already_bought', 'sold_out' or 'ok' (and then take one item).
"""

RELEASE_LUA = """
-- KEYS[1]: stock key, KEYS[2]: buyers key, ARGV[1]: user id.
-- Give the item back only if this user really held one; return 1 or 0.
"""


class Reservation(str, enum.Enum):
    """What reserve_once decided. A str enum, so it compares equal to the script's reply."""

    OK = "ok"
    SOLD_OUT = "sold_out"
    ALREADY_BOUGHT = "already_bought"


def _text(value: str | bytes) -> str:
    """Redis replies are bytes unless the client was made with decode_responses=True."""
    return value.decode() if isinstance(value, bytes) else value


class StockCache:
    """The flash-sale stock of each product, and who bought it, in Redis."""

    def __init__(self, redis: redis_lib.Redis) -> None:
        self.redis = redis
        # register_script sends nothing yet: it runs the script by its SHA1
        # (EVALSHA) and uploads it only the first time Redis does not know it.
        self._reserve_once = redis.register_script(RESERVE_ONCE_LUA)
        self._release = redis.register_script(RELEASE_LUA)

    @staticmethod
    def _stock_key(product_id: int) -> str:
        return f"stock:{product_id}"

    @staticmethod
    def _buyers_key(product_id: int) -> str:
        return f"buyers:{product_id}"

    def set_stock(self, product_id: int, n: int) -> None:
        """Load the sale's stock (before the sale opens)."""
        self.redis.set(self._stock_key(product_id), int(n))

    def get_stock(self, product_id: int) -> int | None:
        """The current count, or None when the product was never loaded."""
        value = self.redis.get(self._stock_key(product_id))
        return None if value is None else int(value)

    def decr_stock(self, product_id: int) -> int:
        """Take one item, no questions asked. A result below 0 means we oversold.

        The building block of the naive check-then-act version (see above).
        """
        return self.redis.decrby(self._stock_key(product_id), 1)

    def incr_stock(self, product_id: int, n: int = 1) -> int:
        """Put `n` items back (a cancelled order, a restock); returns the new count."""
        return self.redis.incrby(self._stock_key(product_id), n)

    def try_reserve(self, product_id: int) -> bool:
        """Take one item if there is one. Never hands out more than the stock.

        DECR is atomic, so each caller gets a distinct result and exactly
        `stock` callers see a result >= 0. The others put their decrement back.
        The counter may dip below zero for a moment, but it ends at zero.
        """
        raise NotImplementedError("StockCache.try_reserve in labs/stock.py is not written yet — see notebooks/12_stock_reservation.ipynb")

    def reserve_once(self, product_id: int, user_id: str) -> Reservation:
        """Take one item for `user_id`: at most one per user, never more than the stock."""
        raise NotImplementedError("StockCache.reserve_once in labs/stock.py is not written yet — see notebooks/12_stock_reservation.ipynb")

    def release(self, product_id: int, user_id: str) -> bool:
        """Undo reserve_once for `user_id`. True if an item went back to stock.

        Safe to call twice: only the call that removes the buyer returns the item.
        """
        raise NotImplementedError("StockCache.release in labs/stock.py is not written yet — see notebooks/12_stock_reservation.ipynb")

    def clear_buyers(self, product_id: int) -> None:
        """Forget who bought `product_id` (before a new sale of it)."""
        self.redis.delete(self._buyers_key(product_id))

    def buyers(self, product_id: int) -> set[str]:
        """The user ids holding a reservation for `product_id`."""
        return {_text(member) for member in self.redis.smembers(self._buyers_key(product_id))}

"""Degradation while Redis is down: remember, in this process, which products sold out.

The seed's answer to "Redis挂了？" is: failover (< 30 s) + a temporary fallback to
local memory (临时降级到本地内存) + manual reconciliation. This is the fallback.

While Redis is unreachable the gateway cannot reserve anything, so every buy
would be a 503 ("try again"). But most buyers of a flash sale arrive after it
sold out, and clients retry 503s: the outage turns into a retry storm for an
answer we already know. So each gateway process remembers the products Redis
told it were sold out, and while Redis is down it answers those with
``409 sold_out`` from memory; everything else still gets 503.

Why it is safe to keep on by default: the flag is only ever *set* by Redis's own
answer, and it only *refuses*. It can never sell an item, so it cannot oversell;
the worst it can do is call a product sold out that was restocked while Redis
was away, for as long as Redis stays away (no sale could happen then anyway).
A successful reservation clears the flag, and it is consulted only while Redis
is down. ``SECKILL_DEGRADE_SOLD_OUT=0`` turns it off (every answer is then 503).
"""

from __future__ import annotations

import threading


class SoldOutMemory:
    """The set of product ids this process has seen sold out (thread-safe; also fine on one event loop)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._products: set[int] = set()
        self._lock = threading.Lock()
        self.answered = 0  # requests answered from memory while Redis was down

    def remember(self, product_id: int) -> None:
        if self.enabled and product_id not in self._products:
            with self._lock:
                self._products.add(product_id)

    def forget(self, product_id: int) -> None:
        if product_id in self._products:
            with self._lock:
                self._products.discard(product_id)

    def answers(self, product_id: int | None) -> bool:
        """True when, with Redis down, this request may be answered sold out from memory."""
        if not self.enabled or product_id is None or product_id not in self._products:
            return False
        self.answered += 1
        return True

"""Rebuilding Redis from PostgreSQL and the queue, started by the gateway itself.

When Redis loses its data (FLUSHALL, a restart without persistence, a new
machine), a buyer of a sale that exists asks for ``sale:{id}`` and finds
nothing. Answering 404 "no such product" would be a lie, and waiting for an
operator to run ``seckill reconcile --fix`` leaves the sale shut meanwhile. So
the gateway tells the two apart (PostgreSQL has the product: Redis lost it →
503 with Retry-After) and asks this module to rebuild.

A rebuild is ``reconcile --fix`` over every product (Redis usually loses all of
its keys at once, and a failure lab must leave the whole system healed), with
the settle rule reconcile already has: stock and buyers are set only after a
second look ``settle_s`` later agrees, so an order in flight is not counted
twice. It runs:
  * in a background thread, so the request that noticed is answered at once;
  * once at a time across every gateway process and tier: a Redis lock
    ``rebuild:lock`` (SET NX with an expiry, released only by its owner), so
    eight workers that notice together start one rebuild, not eight;
  * at most once every ``min_interval_s`` per process, so a rebuild that cannot
    finish (the queue unreadable) is not restarted in a tight loop.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis as redis_lib

from seckill.config import Settings

log = logging.getLogger("seckill.system.rebuild")

LOCK_KEY = "rebuild:lock"

# Delete the lock only if it is still ours (it may have expired and been taken by another).
UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRebuild:
    """Start at most one background rebuild of Redis from PostgreSQL and the queue.

    ``request()`` returns at once (True when this call started a rebuild thread);
    the rebuild itself holds the cross-process lock for at most ``lock_ttl_s``.
    """

    def __init__(self, s: Settings, redis=None, *, settle_s: float = 5.0, lock_ttl_s: float = 120.0,
                 min_interval_s: float = 2.0, clock=time.monotonic):
        self.s = s
        self._redis = redis
        self.settle_s = settle_s
        self.lock_ttl_s = lock_ttl_s
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_end = float("-inf")
        self.runs = 0            # rebuilds this process ran (held the lock)
        self.last_report = None  # the ReconcileReport of the last one

    def _r(self):
        if self._redis is None:
            from seckill.system.gateway import redis_for

            self._redis = redis_for(self.s)
        return self._redis

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request(self) -> bool:
        with self._mutex:
            if self.running() or self.clock() - self._last_end < self.min_interval_s:
                return False
            self._thread = threading.Thread(target=self._run, name="seckill-rebuild", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout_s: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self.run_once()
        except Exception as exc:  # a store went away mid-rebuild: the next request tries again
            log.warning("rebuild of Redis failed: %s", exc)
        finally:
            with self._mutex:
                self._last_end = self.clock()

    def run_once(self) -> bool:
        """Rebuild now, in this thread, if no one else is; True when this call did the rebuild."""
        from seckill.system import reconcile

        r = self._r()
        token = uuid.uuid4().hex
        try:
            if not r.set(LOCK_KEY, token, nx=True, ex=max(1, int(self.lock_ttl_s))):
                return False  # another gateway process is rebuilding
        except redis_lib.RedisError as exc:
            log.warning("rebuild: Redis unavailable: %s", exc)
            return False
        try:
            log.warning("Redis lost sales that PostgreSQL has: rebuilding stock, buyers and sales "
                        "(reconcile --fix, settle %.1f s)", self.settle_s)
            report = reconcile.reconcile(self.s, fix=True, settle_s=self.settle_s, redis=r)
            self.runs += 1
            self.last_report = report
            log.warning("rebuild done: %d discrepancies, %d left", len(report.discrepancies), len(report.remaining))
            return True
        finally:
            try:
                r.register_script(UNLOCK_LUA)(keys=[LOCK_KEY], args=[token])
            except redis_lib.RedisError:
                pass  # it expires by itself


def settle_from_env(default: float = 5.0) -> float:
    """SECKILL_REBUILD_SETTLE_S: seconds between the rebuild's two looks (reconcile's settle rule)."""
    from seckill.config import _float_env

    return max(0.0, _float_env("SECKILL_REBUILD_SETTLE_S", default))

"""What the stores hold, second by second, while a load test runs and drains.

A load test's own numbers (requests/s, latency) say how fast the gateway
answered; these say what happened behind it: the stock left in Redis falling to
zero, the orders waiting in RabbitMQ piling up and draining, PostgreSQL
catching up. Sampled from a background thread every ``interval_s`` (a few
cheap reads per sample, on their own connections) and bounded by ``max_s``.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
import redis as redis_lib

from seckill.system import broker, local_stock
from seckill.stack import db
from seckill.config import Settings

COLUMNS = ("time_s", "redis_stock", "held_locally", "queue_depth", "pg_orders", "pg_stock")


class StoreSampler:
    """``with StoreSampler(s, product_id) as sampler: ...`` then ``sampler.frame()``."""

    def __init__(self, s: Settings, product_id: int, interval_s: float = 0.5, max_s: float = 3600.0):
        self.s = s
        self.product_id = product_id
        self.interval_s = interval_s
        self.max_s = max_s
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="store-sampler", daemon=True)
        self._t0 = 0.0

    def __enter__(self) -> "StoreSampler":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def sample_now(self) -> None:
        """One more row at once (e.g. right after the drain), besides the periodic ones."""
        self.rows.append(self._sample(self._r(), self._pg()))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    # -- internals ----------------------------------------------------------------------------
    def _r(self):
        return redis_lib.Redis.from_url(self.s.redis_url, decode_responses=True, socket_timeout=1,
                                        socket_connect_timeout=1)

    def _pg(self):
        return db.connect(self.s.postgres_url, autocommit=True)

    def _sample(self, r, pg) -> dict:
        row: dict = {"time_s": round(time.monotonic() - self._t0, 2)}
        try:
            raw = r.get(f"stock:{self.product_id}")
            row["redis_stock"] = int(raw) if raw is not None else None
            row["held_locally"] = sum(local_stock.live_leases(r, self.product_id).values())
        except redis_lib.RedisError:
            row["redis_stock"] = row["held_locally"] = None  # Redis away: a gap in the chart, not a crash
        try:
            row["queue_depth"] = broker.queue_depth(self.s.amqp_url, self.s.queue)
        except Exception:
            row["queue_depth"] = None
        try:
            numbers = db.sale_numbers(pg, self.product_id)
            row["pg_orders"] = numbers["orders"] if numbers else None
            row["pg_stock"] = numbers["stock"] if numbers else None
        except Exception:
            row["pg_orders"] = row["pg_stock"] = None
        return row

    def _loop(self) -> None:
        r, pg = self._r(), None
        try:
            pg = self._pg()
            while not self._stop.is_set() and time.monotonic() - self._t0 < self.max_s:
                self.rows.append(self._sample(r, pg))
                self._stop.wait(self.interval_s)
        except Exception:
            pass  # the sampler is an observer: it must never break the run it observes
        finally:
            r.close()
            if pg is not None:
                pg.close()

"""Fire a bounded burst of buy requests at a gateway and count what came back.

A small asyncio client (aiohttp) for tests, notebooks and failure labs: many
simulated users, each connecting from its own client address in 127.0.0.0/8
(seckill.measure.clients: the gateway counts the TCP peer, it does not believe a
client's X-Forwarded-For), ``concurrency`` requests in flight together. The full load-test
tool with charts is locust (seckill.measure.loadtest); this is the quick version.

Bounded in both count (``requests``) and time (``deadline_s``): it never runs
away, and it only ever talks to the base URL it is given (loopback).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp

from seckill.measure.clients import SourceSessions, client_address, post_json

OUTCOMES = ("success", "pending", "sold_out", "already_bought", "limited", "client_error", "server_error",
            "failed")


@dataclass
class BurstResult:
    counts: Counter = field(default_factory=Counter)
    order_ids: list[str] = field(default_factory=list)
    buyers: list[str] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)  # (order_id, user) answered 202 pending
    statuses: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def rps(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict:
        return {**{k: self.counts.get(k, 0) for k in OUTCOMES}, "requests": self.total,
                "elapsed_s": round(self.elapsed_s, 2), "rps": round(self.rps, 1)}


def fake_ip(i: int) -> str:
    """A distinct client address per simulated user: a loopback address the generator connects from."""
    return client_address(i)


def classify(status: int, body: dict | None) -> str:
    error = (body or {}).get("error")
    if status == 200 and (body or {}).get("success"):
        return "success"
    if status == 202 and (body or {}).get("status") == "pending":
        return "pending"  # sent, confirm late: an unknown outcome, the item stays reserved
    if status == 409 and error in ("sold_out", "already_bought"):
        return error
    if status == 429:
        return "limited"
    if 400 <= status < 500:
        return "client_error"
    return "server_error"


async def _burst(base_url: str, product_id: int, plan: list[tuple[str, str]], concurrency: int,
                 deadline_s: float) -> BurstResult:
    result = BurstResult()
    url = f"{base_url.rstrip('/')}/api/seckill/{product_id}"
    timeout = aiohttp.ClientTimeout(total=min(30.0, deadline_s))
    sessions = SourceSessions(timeout)
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    t0 = time.monotonic()
    stop_at = t0 + deadline_s

    async def worker() -> None:
        while time.monotonic() < stop_at:
            try:
                user_id, ip = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                async with sessions.get(ip).post(url, json={"user_id": user_id}) as resp:
                    try:
                        body = await resp.json(content_type=None)
                    except ValueError:
                        body = None
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                result.counts["failed"] += 1
                continue
            outcome = classify(status, body if isinstance(body, dict) else None)
            result.counts[outcome] += 1
            result.statuses[status] += 1
            if outcome == "success":
                result.order_ids.append(body["order_id"])
                result.buyers.append(user_id)
            elif outcome == "pending":
                result.pending.append((body["order_id"], user_id))

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await sessions.close()
    result.elapsed_s = time.monotonic() - t0
    return result


def buy_burst(base_url: str, product_id: int, *, users: int, requests: int, concurrency: int = 200,
              users_per_ip: int = 1, deadline_s: float = 120.0, seed: int = 42,
              user_prefix: str = "user") -> BurstResult:
    """Send ``requests`` buy requests from ``users`` users, ``concurrency`` at a time.

    Users take turns (user i sends about requests/users requests) and the
    order is shuffled, so one user's retries are spread through the burst.
    """
    if users < 1 or requests < 1 or concurrency < 1:
        raise ValueError("users, requests and concurrency must be at least 1")
    plan = [(f"{user_prefix}-{i % users}", fake_ip((i % users) // users_per_ip)) for i in range(requests)]
    random.Random(seed).shuffle(plan)
    return run_coroutine(_burst(base_url, product_id, plan, concurrency, deadline_s))


def run_coroutine(coro):
    """asyncio.run, also from a notebook, whose kernel already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def buy_once(base_url: str, product_id: int, user: str, ip: str = "127.250.0.1",
             timeout_s: float = 10.0) -> tuple[int | None, dict]:
    """One blocking buy from client address ``ip`` (loopback): (HTTP status, JSON body),
    or (None, {}) when nothing answered at all."""
    try:
        status, body, _headers = post_json(f"{base_url}/api/seckill/{product_id}", {"user_id": user},
                                           source=ip, timeout_s=timeout_s)
    except OSError:
        return None, {}
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {}

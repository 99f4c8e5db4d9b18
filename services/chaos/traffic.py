"""Steady buyers in the background, every answer recorded with its time: what a fault looks like from outside.

A failure lab injects its fault *while* users buy, then asks what they saw:
how many 503s, how long the answers took, when the first success came back.
burst.buy_burst fires everything at once and counts; this sends at a steady
rate instead (so a chart shows before / during / after) and keeps one record
per answer: when it was sent, how long it took, the status, the user, the
order id.

Bounded in count (``max_requests``) and time (``duration_s``), loopback only,
and every buyer is a distinct user with an address of its own, so the per-user
and per-IP limits never answer in place of the fault.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import aiohttp

from seckill.measure.burst import fake_ip
from seckill.measure.clients import SourceSessions

OUTCOMES = ("success", "pending", "sold_out", "already_bought", "unavailable", "not_found", "limited", "client_error",
            "server_error", "failed")


def outcome(status: int | None, body: dict | None) -> str:
    """One word per answer: 503 is "unavailable" (a dependency down), not a server error."""
    body = body or {}
    if status is None:
        return "failed"  # no answer at all: connection refused or reset, or a timeout
    if status == 200 and body.get("success"):
        return "success"
    if status == 202 and body.get("status") == "pending":
        return "pending"  # sent, its confirm late: unknown, not failed (the item stays reserved)
    if status == 409 and body.get("error") in ("sold_out", "already_bought"):
        return body["error"]
    if status == 503:
        return "unavailable"
    if status == 404:
        return "not_found"
    if status == 429:
        return "limited"
    if 400 <= status < 500:
        return "client_error"
    return "server_error"


@dataclass
class Answer:
    t: float               # seconds since the traffic started, when the request was sent
    latency_ms: float
    status: int | None
    outcome: str
    user: str
    product_id: int
    order_id: str | None = None
    degraded: bool = False  # answered from the gateway's local sold-out memory


@dataclass
class Traffic:
    """``rate`` requests per second to ``base_url`` for at most ``duration_s`` s and ``max_requests`` requests."""

    base_url: str
    product_ids: list[int]
    rate: float = 100.0
    duration_s: float = 10.0
    max_requests: int = 5000
    concurrency: int = 64
    user_prefix: str = "u"
    first_ip: int = 1
    timeout_s: float = 10.0
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self):
        if self.rate <= 0 or self.duration_s <= 0 or self.max_requests < 1:
            raise ValueError("rate, duration_s and max_requests must be positive")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0: float | None = None
        self._lock = threading.Lock()

    # -- running ------------------------------------------------------------------
    def start(self) -> "Traffic":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="chaos-traffic", daemon=True)
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> "Traffic":
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.duration_s + self.timeout_s + 5)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def now(self) -> float:
        """Seconds since the traffic started (the time axis of its answers)."""
        return time.monotonic() - (self.t0 or time.monotonic())

    def wait_for(self, predicate: Callable[[list[Answer]], bool], timeout_s: float) -> bool:
        """Block (bounded) until ``predicate(answers so far)`` holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            if not self.running:
                return predicate(self.snapshot())
            time.sleep(0.05)
        return False

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    async def _run(self) -> None:
        url = self.base_url.rstrip("/")
        sem = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        session = SourceSessions(timeout)  # every simulated buyer connects from its own address
        tasks = []
        try:
            i = 0
            while i < self.max_requests and not self._stop.is_set():
                due = i / self.rate
                if due >= self.duration_s:
                    break
                delay = due - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                product_id = self.product_ids[i % len(self.product_ids)]
                await sem.acquire()
                tasks.append(asyncio.ensure_future(
                    self._one(session, sem, f"{url}/api/seckill/{product_id}", product_id,
                              f"{self.user_prefix}-{i}", fake_ip(self.first_ip + i))))
                i += 1
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            await session.close()

    async def _one(self, sessions, sem, url, product_id, user, ip) -> None:
        sent = self.now()
        status, body = None, None
        try:
            async with sessions.get(ip).post(url, json={"user_id": user}) as resp:
                status = resp.status
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            pass
        finally:
            sem.release()
        body = body if isinstance(body, dict) else None
        answer = Answer(round(sent, 3), round((self.now() - sent) * 1000, 1), status, outcome(status, body),
                        user, product_id, (body or {}).get("order_id"), bool((body or {}).get("degraded")))
        with self._lock:
            self.answers.append(answer)

    # -- reading the answers -----------------------------------------------------------
    def counts(self, between: tuple[float, float] | None = None) -> Counter:
        return Counter(a.outcome for a in self.within(between))

    def within(self, between: tuple[float, float] | None = None, product_id: int | None = None) -> list[Answer]:
        lo, hi = between or (float("-inf"), float("inf"))
        return [a for a in self.snapshot() if lo <= a.t < hi and (product_id is None or a.product_id == product_id)]

    def confirmed(self, product_id: int | None = None) -> set[str]:
        """Order ids the gateway answered "success" with (what users were promised)."""
        return {a.order_id for a in self.within(product_id=product_id) if a.outcome == "success" and a.order_id}

    def successful_users(self, between: tuple[float, float] | None = None, product_id: int | None = None) -> set[str]:
        return {a.user for a in self.within(between, product_id) if a.outcome == "success"}

    def series(self, bucket_s: float = 0.5, outcomes: Iterable[str] = OUTCOMES) -> dict[str, list]:
        """Answers per second by outcome, in buckets of ``bucket_s`` (for a stacked chart), plus max latency."""
        answers = self.snapshot()
        if not answers:
            return {"t": []}
        n = int(max(a.t for a in answers) / bucket_s) + 1
        chosen = [o for o in outcomes if any(a.outcome == o for a in answers)]
        out: dict[str, list] = {"t": [round(i * bucket_s, 2) for i in range(n)]}
        for name in chosen:
            out[name] = [0.0] * n
        out["max_latency_ms"] = [0.0] * n
        for a in answers:
            i = int(a.t / bucket_s)
            if a.outcome in out:
                out[a.outcome][i] += 1 / bucket_s
            out["max_latency_ms"][i] = max(out["max_latency_ms"][i], a.latency_ms)
        return out

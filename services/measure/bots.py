"""Bots against the gateway's limits: one user hammering from many addresses, one address with many users.

The seed's Q2 (同一用户疯狂刷单?) answers with layered limits: per user, then per
IP. Each bot here is mixed, in one shuffled burst, with ordinary shoppers who
send one request each from an address of their own (every simulated client
connects from its own loopback address, seckill.measure.clients), so a run shows both halves
of the promise: the bot is held to its limit, and the shoppers do not notice.

    answers = bots.hammer(base_url, product_id, bots.one_user_many_ips(60), bots.shoppers(40))
    bots.tally(answers)      # per group: how many 200 / 409 / 429 (and which layer said no)

Bounded: every request is sent once, ``concurrency`` at a time, within ``deadline_s``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

from seckill.measure.burst import fake_ip, run_coroutine
from seckill.measure.clients import SourceSessions


@dataclass
class Answer:
    group: str            # "bot" or "shopper"
    user: str
    ip: str
    status: int           # 0: no answer within the deadline
    body: dict
    retry_after: str | None
    t: float              # seconds since the burst started


def one_user_many_ips(n: int, user: str = "bot-user") -> list[tuple[str, str]]:
    """The same user id from ``n`` different addresses (a botnet, or a proxy pool)."""
    return [(user, fake_ip(i)) for i in range(n)]


def one_ip_many_users(n: int, ip: str = "127.198.51.7") -> list[tuple[str, str]]:
    """``n`` invented user ids from one address (one machine, many sock puppets)."""
    return [(f"sock-puppet-{i}", ip) for i in range(n)]


def shoppers(n: int, tag: str = "shopper") -> list[tuple[str, str]]:
    """Ordinary users: one request each, each from an address of their own."""
    return [(f"{tag}-{i}", fake_ip(50_000 + i)) for i in range(n)]


async def _hammer(base_url: str, product_id: int, plan: list[tuple[str, str, str]], concurrency: int,
                  deadline_s: float) -> list[Answer]:
    answers: list[Answer] = []
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    url = f"{base_url.rstrip('/')}/api/seckill/{product_id}"
    t0 = time.monotonic()

    async def worker() -> None:
        while not queue.empty() and time.monotonic() - t0 < deadline_s:
            group, user, ip = queue.get_nowait()
            try:
                async with sessions.get(ip).post(url, json={"user_id": user}) as resp:
                    body = await resp.json(content_type=None)
                    answers.append(Answer(group, user, ip, resp.status, body if isinstance(body, dict) else {},
                                          resp.headers.get("Retry-After"), time.monotonic() - t0))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                answers.append(Answer(group, user, ip, 0, {}, None, time.monotonic() - t0))

    sessions = SourceSessions(aiohttp.ClientTimeout(total=min(30.0, deadline_s)))
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await sessions.close()
    return answers


def hammer(base_url: str, product_id: int, bot: list[tuple[str, str]], ordinary: list[tuple[str, str]], *,
           concurrency: int = 50, deadline_s: float = 60.0, seed: int = 7) -> list[Answer]:
    """Send the bot's requests and the shoppers' in one shuffled burst; every answer, in arrival order."""
    plan = [("bot", u, ip) for u, ip in bot] + [("shopper", u, ip) for u, ip in ordinary]
    random.Random(seed).shuffle(plan)
    return run_coroutine(_hammer(base_url, product_id, plan, max(1, min(concurrency, len(plan))), deadline_s))


def outcome(answer: Answer) -> str:
    """200 bought · 409 already_bought / sold_out · 429 by layer (user / ip / global) · other."""
    if answer.status == 200:
        return "bought"
    if answer.status == 409:
        return answer.body.get("error", "409")
    if answer.status == 429:
        return f"429 {answer.body.get('layer', '?')} limit"
    return f"status {answer.status}"


def tally(answers: list[Answer]) -> dict[str, Counter]:
    """Per group ("bot", "shopper"): how many answers of each outcome."""
    groups: dict[str, Counter] = {}
    for answer in answers:
        groups.setdefault(answer.group, Counter())[outcome(answer)] += 1
    return groups


def chart(runs: dict[str, list[Answer]], limits: dict):
    """One bar group per run: what the bot got and what the shoppers got, by outcome."""
    import plotly.graph_objects as go

    names = sorted({outcome(a) for answers in runs.values() for a in answers})
    colours = {"bought": "#2ca02c", "already_bought": "#17becf", "sold_out": "#7f7f7f",
               "429 user limit": "#ff7f0e", "429 ip limit": "#d62728", "429 global limit": "#9467bd"}
    x = [f"{run}<br>{group}" for run in runs for group in ("bot", "shopper")]
    fig = go.Figure()
    for name in names:
        y = [tally(answers).get(group, Counter())[name] for answers in runs.values() for group in ("bot", "shopper")]
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=colours.get(name, "#8c564b"), text=y,
                             textposition="inside"))
    fig.update_layout(barmode="stack", height=440, xaxis_title="run and who sent the requests",
                      yaxis_title="requests", legend_title="answer",
                      title=(f"Bots against the limits (user {limits['user_limit']}, IP {limits['ip_limit']} "
                             f"per {limits['window_s']:g} s): the bots are held, the shoppers all buy"))
    return fig

"""Checks for labs/stock.py, on Redis db 15 (flushed before each check)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ._base import Check, expect

P = 7  # the product the checks sell


def _answer(reply) -> str:
    """'ok' / 'sold_out' / 'already_bought' from an enum member, a str or bytes."""
    reply = getattr(reply, "value", reply)
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def set_and_get(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 10)
    expect(cache.get_stock(P) == 10, "get_stock reads back what set_stock stored, as an int.",
           f"set_stock(10) then get_stock() = {cache.get_stock(P)!r}")
    expect(cache.get_stock(P + 1) is None, "A product never loaded has no stock: get_stock says None.",
           f"get_stock of an unknown product = {cache.get_stock(P + 1)!r}")


def decr_and_incr(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 1)
    seen = [cache.decr_stock(P), cache.decr_stock(P), cache.incr_stock(P), cache.incr_stock(P, 5)]
    expect(seen == [0, -1, 0, 5],
           "decr_stock and incr_stock return the NEW count; decr_stock does not stop at zero (below zero is "
           "how the naive version shows it oversold).",
           f"stock 1: decr, decr, incr, incr(5) returned {seen} (expected [0, -1, 0, 5])")


def try_reserve_rolls_back(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 2)
    answers = [cache.try_reserve(P) for _ in range(4)]
    left = cache.get_stock(P)
    expect(answers == [True, True, False, False],
           "try_reserve says yes while there is stock and no once it is gone.",
           f"stock 2, four attempts: {answers}")
    expect(left == 0,
           "A refused reservation must leave no trace: whatever it took from the counter to find out, it puts "
           "back, so the stock at rest is never below zero.",
           f"stock 2, four attempts: stock afterwards {left} (expected 0)")


def try_reserve_concurrent(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 100)
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: cache.try_reserve(P), range(300)))
    won, left = sum(1 for a in answers if a is True), cache.get_stock(P)
    expect(won == 100 and left == 0,
           "Checking the stock and then taking it are two steps another request can slip between. Let ONE "
           "atomic Redis operation decide who gets an item, and base the answer on what it returned.",
           f"stock 100, 300 attempts from 50 threads: {won} succeeded, stock left {left}")


def reserve_once_answers(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 2)
    seen = [_answer(cache.reserve_once(P, user)) for user in ("ann", "ann", "bob", "cat")]
    expect(seen == ["ok", "already_bought", "ok", "sold_out"],
           "reserve_once tells three outcomes apart: the item is yours, you already have one, none left.",
           f"stock 2; ann, ann, bob, cat got {seen}")
    expect(cache.get_stock(P) == 0 and cache.buyers(P) == {"ann", "bob"},
           "A successful reservation takes one item AND records the buyer; the others change nothing.",
           f"stock afterwards {cache.get_stock(P)}, buyers {sorted(cache.buyers(P))}")
    unknown = _answer(cache.reserve_once(P + 1, "dan"))
    expect(unknown == "sold_out", "A product with no stock loaded has nothing to sell.",
           f"reserve_once on a product never loaded: {unknown!r}")


def reserve_once_concurrent(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 100)
    users = [f"user{n}" for n in range(300)] * 2  # every user tries twice
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda user: (user, _answer(cache.reserve_once(P, user))), users))
    ok = [user for user, answer in answers if answer == "ok"]
    buyers, left = cache.buyers(P), cache.get_stock(P)
    expect(len(ok) == 100 and len(set(ok)) == 100 and len(buyers) == 100 and left == 0,
           "Under concurrency, 'already bought?', 'any left?', 'take one' and 'remember the buyer' must happen "
           "as ONE step inside Redis; done as separate commands from Python, requests interleave between "
           "them.",
           f"stock 100, 300 users x 2 tries, 50 threads: {len(ok)} ok ({len(set(ok))} distinct users), "
           f"{len(buyers)} buyers, stock left {left}")


def release_once(ctx, mod) -> None:
    cache = mod.StockCache(ctx.redis())
    cache.set_stock(P, 1)
    cache.reserve_once(P, "ann")
    first = cache.release(P, "ann")
    expect(first is True and cache.get_stock(P) == 1 and "ann" not in cache.buyers(P),
           "release gives the buyer's item back to stock and forgets the buyer.",
           f"after release: returned {first!r}, stock {cache.get_stock(P)}, buyers {sorted(cache.buyers(P))}")
    again = cache.release(P, "ann")
    stranger = cache.release(P, "zed")
    expect(again is False and stranger is False and cache.get_stock(P) == 1,
           "Only someone who really holds an item can give one back, and only once: otherwise a retried "
           "release creates stock out of nothing.",
           f"second release {again!r}, release by a non-buyer {stranger!r}, stock {cache.get_stock(P)} "
           f"(expected False, False, 1)")


HINT = "Try your StockCache in the notebook against Redis and compare with what it should do."

CHECKS = [
    Check("set_stock / get_stock", set_and_get, HINT),
    Check("decr_stock / incr_stock", decr_and_incr, HINT),
    Check("try_reserve never leaves stock negative", try_reserve_rolls_back, HINT),
    Check("try_reserve under 50 threads", try_reserve_concurrent, HINT, timeout=30.0),
    Check("reserve_once: ok / already_bought / sold_out", reserve_once_answers, HINT),
    Check("reserve_once under 50 threads", reserve_once_concurrent, HINT, timeout=30.0),
    Check("release gives an item back once", release_once, HINT),
]

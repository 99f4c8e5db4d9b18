"""Checks for labs/stock.py, on Redis db 15 (flushed before each check).

The properties StockCache promises, each checked under the schedules and faults that break real systems:

* never oversold: the stock at rest is >= 0 and the items handed out never exceed what was loaded;
* at most one item per buyer, even when the SAME buyer's attempts race each other;
* conservation: stock + number of buyers == loaded + restocked, whatever mix of reserve_once, release,
  try_reserve and incr_stock ran concurrently (every mutating method raced with itself and the others);
* release is idempotent under concurrency: one buyer's concurrent releases give back exactly one item;
* a connection lost after any command of reserve_once / release, followed by the caller's retry, leaves
  the same books (no item lost, none created): the decision is one step inside Redis.
Concurrency checks run several seeded rounds; a failure names the seed to replay.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from seckill.course.graders._base import Check, expect, race, seeded_rounds

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
           ONE_STEP_HINT,
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


ONE_STEP_HINT = ("Under concurrency, 'already bought?', 'any left?', 'take one' and 'remember the buyer' must "
                 "happen as ONE step inside Redis; done as separate commands from Python, requests interleave "
                 "between them.")


def same_buyer_races_itself(ctx, mod) -> None:
    client = ctx.redis()

    def one_round(seed: int) -> None:
        rng = random.Random(seed)
        client.flushdb()
        cache = mod.StockCache(client)
        stock, threads = rng.randint(5, 20), rng.choice([8, 16, 24])
        cache.set_stock(P, stock)
        answers = race(threads, lambda _i: _answer(cache.reserve_once(P, "ann")))
        won, left, buyers = answers.count("ok"), cache.get_stock(P), cache.buyers(P)
        expect(won == 1 and left == stock - 1 and buyers == {"ann"},
               "At most one item per buyer, also when the SAME buyer's requests arrive at the same moment (a "
               "double click, a retrying client): " + ONE_STEP_HINT,
               f"one buyer sending {threads} reserve_once at the same moment, stock {stock}: {won} answered ok, "
               f"stock left {left} (expected 1 ok, stock {stock - 1}) (seed {seed})")

    seeded_rounds(one_round, 5)


def release_races_itself(ctx, mod) -> None:
    client = ctx.redis()

    def one_round(seed: int) -> None:
        rng = random.Random(seed)
        client.flushdb()
        cache = mod.StockCache(client)
        cache.set_stock(P, 1)
        cache.reserve_once(P, "ann")
        threads = rng.choice([8, 16, 24])
        answers = race(threads, lambda _i: cache.release(P, "ann"))
        returned, left = sum(1 for a in answers if a is True), cache.get_stock(P)
        expect(returned == 1 and left == 1,
               "release must give an item back exactly once, also when the same buyer's releases run at the same "
               "moment (a retried cancel): 'does this buyer hold one?' and 'give it back' must be one step, or "
               "two releases both see the buyer and both give an item back.",
               f"{threads} releases of the same buyer at once: {returned} returned True, stock 0 -> {left} "
               f"(expected 1 True, stock 1) (seed {seed})")

    seeded_rounds(one_round, 5)


def mixed_race_conserves(ctx, mod) -> None:
    client = ctx.redis()

    def one_round(seed: int) -> None:
        rng = random.Random(seed)
        client.flushdb()
        cache = mod.StockCache(client)
        stock = rng.randint(3, 12)
        cache.set_stock(P, stock)
        users = [f"u{n}" for n in range(rng.randint(4, 10))]
        threads = 16
        plans = [[(rng.choice(["reserve", "reserve", "release", "restock", "try"]), rng.choice(users))
                  for _ in range(rng.randint(3, 8))] for _ in range(threads)]

        def work(i: int):
            seen = {"ok": 0, "released": 0, "restocked": 0, "taken": 0}
            for op, user in plans[i]:
                if op == "reserve":
                    seen["ok"] += _answer(cache.reserve_once(P, user)) == "ok"
                elif op == "release":
                    seen["released"] += cache.release(P, user) is True
                elif op == "restock":
                    cache.incr_stock(P)
                    seen["restocked"] += 1
                else:
                    seen["taken"] += cache.try_reserve(P) is True
            return seen

        results = race(threads, work)
        tally = {k: sum(r[k] for r in results) for k in ("ok", "released", "restocked", "taken")}
        left, buyers = cache.get_stock(P), cache.buyers(P)
        expected_left = stock + tally["restocked"] + tally["released"] - tally["ok"] - tally["taken"]
        expect(left == expected_left and left >= 0 and len(buyers) == tally["ok"] - tally["released"],
               "Every item is accounted for: stock + items held == loaded + restocked, whatever mix of "
               "reserve_once, release, try_reserve and incr_stock runs at the same time. Each method must "
               "change the count and the buyers together, in one step, and only when it really took or gave "
               "back an item.",
               f"stock {stock}, {threads} threads mixing reserve/release/restock/try_reserve: {tally['ok']} ok, "
               f"{tally['released']} released, {tally['restocked']} restocked, {tally['taken']} taken -> stock "
               f"{left} (expected {expected_left}), {len(buyers)} buyers (expected "
               f"{tally['ok'] - tally['released']}) (seed {seed})")

    seeded_rounds(one_round, 4)


def survives_lost_replies(ctx, mod) -> None:
    """Drop the connection after command k (the command ran, its reply is lost), then retry, for every k."""
    import redis

    client = ctx.redis()
    hint = ("A connection can drop between any two commands your code sends. If reserving or releasing takes "
            "several commands, a drop in between leaves the count and the buyers disagreeing, and the caller's "
            "retry cannot repair it: make each decision one step inside Redis.")
    for op in ("reserve_once", "release"):
        for k in range(1, 8):
            client.flushdb()
            healthy = mod.StockCache(client)
            healthy.set_stock(P, 3)
            if op == "release":
                healthy.reserve_once(P, "ann")
            faulty = ctx.faulty_redis(k)
            cache = mod.StockCache(faulty)
            try:
                getattr(cache, op)(P, "ann")
            except redis.ConnectionError:
                getattr(healthy, op)(P, "ann")  # the caller retries on a fresh connection
            left, buyers = healthy.get_stock(P), healthy.buyers(P)
            held = 1 if op == "reserve_once" else 0
            expect(left == 3 - held and buyers == ({"ann"} if held else set()), hint,
                   f"stock 3, {op} of one buyer whose connection dropped after command {k}, then retried: "
                   f"stock {left}, buyers {sorted(buyers)} (expected stock {3 - held}, "
                   f"buyers {['ann'] if held else []})")
            if not faulty.dropped:
                break  # the call used fewer than k commands: every drop point was tried


HINT = "Try your StockCache in the notebook against Redis and compare with what it should do."

CHECKS = [
    Check("set_stock / get_stock", set_and_get, HINT),
    Check("decr_stock / incr_stock", decr_and_incr, HINT),
    Check("try_reserve never leaves stock negative", try_reserve_rolls_back, HINT),
    Check("try_reserve under 50 threads", try_reserve_concurrent, HINT, timeout=30.0),
    Check("reserve_once: ok / already_bought / sold_out", reserve_once_answers, HINT),
    Check("reserve_once under 50 threads", reserve_once_concurrent, HINT, timeout=30.0),
    Check("release gives an item back once", release_once, HINT),
    Check("reserve_once: one buyer racing itself gets one item", same_buyer_races_itself, ONE_STEP_HINT,
          timeout=30.0, depends=("reserve_once: ok / already_bought / sold_out",)),
    Check("release: one buyer's concurrent releases return one item", release_races_itself, HINT,
          timeout=30.0, depends=("release gives an item back once",)),
    Check("reserve / release / restock / try_reserve raced together keep the books", mixed_race_conserves,
          HINT, timeout=40.0, depends=("reserve_once: ok / already_bought / sold_out",
                                       "release gives an item back once")),
    Check("a connection lost after any command, then a retry: nothing lost or created", survives_lost_replies,
          HINT, timeout=30.0, depends=("reserve_once: ok / already_bought / sold_out",
                                       "release gives an item back once")),
]

"""Checks for labs/rate_limit.py, on Redis db 15 (flushed before each check).

The contract of a limiter, checked from the outside (only allow / retry_after / check are called):

* exactly `limit` allowed per key per window, also when one key is hammered by many threads at once
  (seeded rounds, released by a barrier);
* the window is `window_s` long, counted from the key's first request, and then a fresh window starts;
  the key lives in Redis and expires by itself;
* retry_after tells the truth: a blocked client that waits that long is allowed, and it is never more
  than what is left of the window; 0 when no window runs;
* LayeredLimiter: the user layer counts the USER, whatever address the requests come from; the IP layer
  counts the ADDRESS, whoever the user; a user refused by their own layer spends nothing of the IP's
  budget; a refusal names its layer and a truthful retry_after, an allowed request has neither.
"""

from __future__ import annotations

import random
import time

from seckill.course.graders._base import Check, expect, race, seeded_rounds

ATOMIC_HINT = ("Reading the count and writing it back as separate commands lets concurrent requests read the same "
               "count and all pass. Counting and deciding must be one step that Redis runs without "
               "interleaving anything.")


def exact_limit(ctx, mod) -> None:
    limiter = mod.RedisRateLimiter(ctx.redis(), 5, 10)
    answers = [limiter.allow("alice") for _ in range(8)]
    granted = sum(1 for a in answers if a is True)
    expect(answers[:5] == [True] * 5 and granted == 5,
           "Exactly `limit` requests per window get through: the first `limit` are allowed, the next one is "
           "the first refused. Check what your comparison does exactly at the boundary.",
           f"limit 5: answers {answers}")


def keys_independent(ctx, mod) -> None:
    limiter = mod.RedisRateLimiter(ctx.redis(), 3, 10)
    for _ in range(5):
        limiter.allow("alice")
    bob = [limiter.allow("bob") for _ in range(4)]
    expect(bob == [True, True, True, False],
           "Each key has its own counter: one client using up its limit must not affect another.",
           f"limit 3, 'alice' blocked, then 'bob': {bob}")


def keys_expire(ctx, mod) -> None:
    client = ctx.redis()
    limiter = mod.RedisRateLimiter(client, 3, 10)
    for _ in range(4):
        limiter.allow("alice")
    keys = client.keys("*")
    expect(keys, "The counter must live in Redis (shared by every gateway process).",
           "after 4 requests, Redis db 15 holds no key")
    ttls = {key: client.pttl(key) for key in keys}
    bad = {key: ttl for key, ttl in ttls.items() if not 0 < ttl <= 10_000}
    expect(not bad,
           "A window's counter must disappear by itself when the window ends: give the key a lifetime "
           "(no longer than the window), set when the window starts. Idle keys then clean themselves up.",
           "window 10 s, key TTLs in ms (-1 = never expires): " + ", ".join(f"{k}={v}" for k, v in bad.items()))


def window_resets(ctx, mod) -> None:
    limiter = mod.RedisRateLimiter(ctx.redis(), 2, 0.5)
    before = [limiter.allow("alice") for _ in range(3)]
    time.sleep(0.7)
    after = limiter.allow("alice")
    expect(before == [True, True, False] and after is True,
           "When the window is over, a blocked client starts a fresh window with its full limit.",
           f"limit 2 per 0.5 s: {before}, then 0.7 s later {after}")


def atomic(ctx, mod) -> None:
    client = ctx.redis()

    def one_round(seed: int) -> None:
        rng = random.Random(seed)
        client.flushdb()
        limit, threads, each = rng.randint(20, 60), rng.choice([12, 20]), rng.randint(5, 10)
        limiter = mod.RedisRateLimiter(client, limit, 10)
        allowed = sum(race(threads, lambda _i: sum(1 for _ in range(each) if limiter.allow("hot") is True)))
        expect(allowed == min(limit, threads * each), ATOMIC_HINT,
               f"{threads} threads x {each} requests on one key at the same moment, limit {limit}: {allowed} "
               f"allowed (seed {seed})")

    seeded_rounds(one_round, 3)


def retry_after(ctx, mod) -> None:
    hint = ("A blocked client should learn how long until its window ends (a positive number of seconds, at most "
            "the window), and a key with no window running has nothing to wait for (0).")
    redis = ctx.redis()
    limiter = mod.RedisRateLimiter(redis, 1, 10)
    limiter.allow("alice")
    limiter.allow("alice")
    wait = limiter.retry_after("alice")
    expect(isinstance(wait, (int, float)) and 0 < wait <= 10, hint, f"window 10 s, blocked key: retry_after={wait!r}")
    idle = limiter.retry_after("nobody")
    expect(isinstance(idle, (int, float)) and idle == 0, hint, f"unknown key: retry_after={idle!r}")
    # A counter that lost its expiry (restored from a backup, PERSISTed by an operator) runs no window either.
    limiter.allow("bob")
    redis.persist(limiter._key("bob"))
    stuck = limiter.retry_after("bob")
    expect(isinstance(stuck, (int, float)) and stuck == 0, hint,
           f"a counter key without expiry: retry_after={stuck!r}")


def layered_user(ctx, mod) -> None:
    limiter = mod.LayeredLimiter(ctx.redis(), user_limit=5, ip_limit=100, window_s=10)
    verdicts = [limiter.check("u1", "10.0.0.1") for _ in range(6)]
    allowed = [v.allowed for v in verdicts]
    expect(allowed == [True] * 5 + [False],
           "The user layer allows `user_limit` requests per user per window.",
           f"user_limit 5, one user: allowed {allowed}")
    expect(verdicts[-1].layer == "user",
           "A refusal says which layer refused it, so the gateway can tell the client.",
           f"6th request of one user: layer={verdicts[-1].layer!r} (expected 'user')")


def layered_ip(ctx, mod) -> None:
    limiter = mod.LayeredLimiter(ctx.redis(), user_limit=5, ip_limit=100, window_s=10)
    allowed = sum(1 for n in range(100) if limiter.check(f"u{n}", "10.0.0.2").allowed is True)
    last = limiter.check("u100", "10.0.0.2")
    other_ip = limiter.check("u101", "10.0.0.3")
    expect(allowed == 100 and last.allowed is False and last.layer == "ip",
           "The IP layer counts every request from one address, whoever the user: it stops one machine "
           "that invents many user ids.",
           f"ip_limit 100, 101 users from one IP: {allowed} of the first 100 allowed, 101st "
           f"allowed={last.allowed!r} layer={last.layer!r}")
    expect(other_ip.allowed is True, "Each IP address has its own budget.",
           "another IP was refused after the first IP was blocked")


def user_block_spares_ip(ctx, mod) -> None:
    limiter = mod.LayeredLimiter(ctx.redis(), user_limit=2, ip_limit=10, window_s=10)
    for _ in range(20):
        limiter.check("greedy", "10.0.0.4")
    others = [limiter.check(f"u{n}", "10.0.0.4").allowed for n in range(8)]
    expect(all(a is True for a in others),
           "Think about the order of the layers: a user refused for their own excess must not also use up the "
           "budget of the address they share with others (an office, a campus, a carrier's NAT).",
           f"user_limit 2, ip_limit 10: one user sent 20 (2 allowed), then 8 other users on the same IP got "
           f"{sum(1 for a in others if a is True)} of 8 through")


def window_from_first_request(ctx, mod) -> None:
    limiter = mod.RedisRateLimiter(ctx.redis(), 2, 1.0)
    t0 = time.monotonic()
    first = limiter.allow("ann")
    time.sleep(0.5)
    second, third = limiter.allow("ann"), limiter.allow("ann")
    time.sleep(max(0.0, 1.15 - (time.monotonic() - t0)))
    fresh = limiter.allow("ann")
    expect([first, second, third, fresh] == [True, True, False, True],
           "A window lasts `window_s` from the key's FIRST request and is not stretched by later ones: "
           "requests that arrive inside a window (allowed or refused) must not move its end.",
           f"limit 2 per 1 s: at 0 s {first}, at 0.5 s {second} and {third}, at 1.15 s {fresh} "
           "(expected True, True, False, True)")


def retry_after_truthful(ctx, mod) -> None:
    limiter = mod.RedisRateLimiter(ctx.redis(), 1, 1.5)
    t0 = time.monotonic()
    limiter.allow("ann")
    time.sleep(0.4)
    blocked = limiter.allow("ann")
    wait = limiter.retry_after("ann")
    elapsed = time.monotonic() - t0
    hint = ("retry_after must tell a blocked client the truth: how long is LEFT of its window (not the whole "
            "window, nor a made-up number), so that waiting exactly that long gets it through.")
    expect(blocked is False and isinstance(wait, (int, float)) and 0 < wait <= 1.5 - elapsed + 0.05, hint,
           f"limit 1 per 1.5 s, blocked {elapsed:.2f} s into the window: retry_after={wait!r} "
           f"(expected about {1.5 - elapsed:.2f})")
    time.sleep(wait + 0.05)
    again = limiter.allow("ann")
    expect(again is True, hint, f"waited retry_after ({wait:.2f} s) + 0.05 s, and was refused again")


def layered_user_across_ips(ctx, mod) -> None:
    limiter = mod.LayeredLimiter(ctx.redis(), user_limit=5, ip_limit=100, window_s=10)
    ips = [f"10.0.1.{n}" for n in range(4)]
    allowed = sum(1 for n in range(20) if limiter.check("ann", ips[n % 4]).allowed is True)
    expect(allowed == 5,
           "The user layer counts the USER: the same user spreading requests over several addresses (Wi-Fi, "
           "mobile, a proxy) still gets `user_limit` per window, not `user_limit` per address.",
           f"user_limit 5, one user sending 20 requests over 4 addresses: {allowed} allowed (expected 5)")


def layered_verdict_contract(ctx, mod) -> None:
    hint = ("A verdict is the gateway's whole answer: an allowed request has no layer and nothing to wait for "
            "(0); a refused one names the layer that refused it and how long is left of that layer's window "
            "(more than 0, at most the window).")
    limiter = mod.LayeredLimiter(ctx.redis(), user_limit=1, ip_limit=2, window_s=5)
    ok = limiter.check("ann", "10.0.2.1")
    expect(ok.allowed is True and ok.layer is None and ok.retry_after == 0, hint,
           f"first request: allowed={ok.allowed!r} layer={ok.layer!r} retry_after={ok.retry_after!r}")
    user = limiter.check("ann", "10.0.2.1")
    expect(user.allowed is False and user.layer == "user" and 0 < user.retry_after <= 5, hint,
           f"user over its limit: allowed={user.allowed!r} layer={user.layer!r} retry_after={user.retry_after!r}")
    limiter.check("bob", "10.0.2.1")
    ip = limiter.check("cat", "10.0.2.1")
    expect(ip.allowed is False and ip.layer == "ip" and 0 < ip.retry_after <= 5, hint,
           f"address over its limit: allowed={ip.allowed!r} layer={ip.layer!r} retry_after={ip.retry_after!r}")


def layers_do_not_share_keys(ctx, mod) -> None:
    limiter = mod.LayeredLimiter(ctx.redis(), user_limit=3, ip_limit=3, window_s=10)
    for _ in range(3):
        limiter.check("10.0.3.1", "10.0.3.9")  # a user id that looks like an address
    other = limiter.check("bob", "10.0.3.1")
    expect(other.allowed is True,
           "Each layer counts in its own keys: a user whose id happens to equal an address must not spend "
           "that address's budget (nor a limiter with another purpose share a counter with this one).",
           f"user '10.0.3.1' sent 3 requests from 10.0.3.9, then user 'bob' from 10.0.3.1 was refused "
           f"(layer={other.layer!r})")


HINT = "Try your limiter in the notebook against Redis and compare with what it should do."

CHECKS = [
    Check("exactly `limit` per window", exact_limit, HINT),
    Check("keys are independent", keys_independent, HINT),
    Check("the Redis keys expire", keys_expire, HINT),
    Check("a new window starts after window_s", window_resets, HINT),
    Check("atomic under concurrency", atomic, ATOMIC_HINT, timeout=30.0, depends=("exactly `limit` per window",)),
    Check("retry_after", retry_after, HINT),
    Check("the window is window_s from the first request", window_from_first_request, HINT,
          depends=("a new window starts after window_s",)),
    Check("retry_after tells the truth", retry_after_truthful, HINT, depends=("retry_after",)),
    Check("LayeredLimiter: user layer", layered_user, HINT),
    Check("LayeredLimiter: the user layer counts the user across addresses", layered_user_across_ips, HINT),
    Check("LayeredLimiter: IP layer", layered_ip, HINT),
    Check("LayeredLimiter: a blocked user spares the IP budget", user_block_spares_ip, HINT),
    Check("LayeredLimiter: a verdict's layer and retry_after", layered_verdict_contract, HINT),
    Check("LayeredLimiter: the layers keep separate counters", layers_do_not_share_keys, HINT),
]

"""Checks for labs/rate_limit.py, on Redis db 15 (flushed before each check)."""

from __future__ import annotations

import threading
import time

from ._base import Check, expect

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
    for round_ in range(2):
        client.flushdb()
        limiter = mod.RedisRateLimiter(client, 50, 10)
        allowed, errors = [], []
        start = threading.Barrier(20)

        def worker():
            try:
                start.wait()
                allowed.append(sum(1 for _ in range(10) if limiter.allow("hot") is True))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        expect(sum(allowed) == 50, ATOMIC_HINT,
               f"20 threads x 10 requests, limit 50: {sum(allowed)} allowed (round {round_ + 1})")


def retry_after(ctx, mod) -> None:
    hint = ("A blocked client should learn how long until its window ends (a positive number of seconds, at most "
            "the window), and a key with no window running has nothing to wait for (0).")
    limiter = mod.RedisRateLimiter(ctx.redis(), 1, 10)
    limiter.allow("alice")
    limiter.allow("alice")
    wait = limiter.retry_after("alice")
    expect(isinstance(wait, (int, float)) and 0 < wait <= 10, hint, f"window 10 s, blocked key: retry_after={wait!r}")
    idle = limiter.retry_after("nobody")
    expect(isinstance(idle, (int, float)) and idle == 0, hint, f"unknown key: retry_after={idle!r}")


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


HINT = "Try your limiter in the notebook against Redis and compare with what it should do."

CHECKS = [
    Check("exactly `limit` per window", exact_limit, HINT),
    Check("keys are independent", keys_independent, HINT),
    Check("the Redis keys expire", keys_expire, HINT),
    Check("a new window starts after window_s", window_resets, HINT),
    Check("atomic under concurrency", atomic, ATOMIC_HINT, timeout=30.0),
    Check("retry_after", retry_after, HINT),
    Check("LayeredLimiter: user layer", layered_user, HINT),
    Check("LayeredLimiter: IP layer", layered_ip, HINT),
    Check("LayeredLimiter: a blocked user spares the IP budget", user_block_spares_ip, HINT),
]

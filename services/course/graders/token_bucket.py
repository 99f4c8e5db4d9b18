"""Checks for labs/token_bucket.py. Time is a fake clock the grader moves: nothing sleeps.

The properties a token bucket promises:

* a new bucket holds `capacity` tokens; it never holds more, however long it idles;
* with the clock still, it grants exactly the tokens it holds, then refuses;
* a refusal spends nothing; a request for more tokens than are left (or than the capacity) is refused;
* it refills by elapsed time x rate, read from the injected clock only, and fractions add up
  (ten waits of 0.1 s at 1 token/s make one token); a clock stepping back takes nothing away;
* under concurrent threads released together, the grants never exceed the tokens (seeded rounds).
Checks that need "refuses when empty" and "a refusal spends nothing" say "skipped" when those failed,
instead of blaming their own property.
"""

from __future__ import annotations

import random
import sys
import threading
import time

from seckill.course.graders._base import Check, expect, seeded_rounds


class FakeClock:
    """A clock that only moves when told to. Starts far from 0, like time.monotonic()."""

    def __init__(self, start: float = 1000.0, yield_thread: bool = False) -> None:
        self.now = start
        self.calls = 0
        self.yield_thread = yield_thread

    def __call__(self) -> float:
        self.calls += 1
        if self.yield_thread:
            time.sleep(0)  # let another thread run right here, as a busy server would
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Yielding(float):
    """A token count that lets other threads run whenever the bucket compares or subtracts it.

    A busy server switches threads at any moment; this makes the moments that
    matter (between reading the count and writing it back) happen for sure.
    """

    def _pause(self) -> None:
        time.sleep(0)


def _yielding(name: str):
    method = getattr(float, name)

    def wrapper(self, *args):
        self._pause()
        return method(float(self), *args)

    return wrapper


for _name in ("__lt__", "__le__", "__gt__", "__ge__", "__add__", "__radd__", "__sub__", "__rsub__"):
    setattr(_Yielding, _name, _yielding(_name))


def _grants(bucket, attempts: int, tokens: float = 1) -> int:
    return sum(1 for _ in range(attempts) if bucket.allow_request(tokens) is True)


def starts_full(ctx, mod) -> None:
    clock = FakeClock()
    bucket = mod.TokenBucket(4, 1, clock=clock)
    granted = _grants(bucket, 4)
    expect(granted == 4,
           "A new bucket should let a whole burst through at once: it starts with as many tokens as it can hold.",
           f"new bucket of capacity 4, clock not moving: {granted} of 4 requests granted")


def rejects_when_empty(ctx, mod) -> None:
    clock = FakeClock()
    bucket = mod.TokenBucket(3, 1, clock=clock)
    granted = _grants(bucket, 10)
    expect(granted == 3,
           "When no time passes, a bucket can grant only the tokens it holds; after that it must say no "
           "(return False), until time refills it.",
           f"capacity 3, clock not moving: {granted} of 10 requests granted (expected 3)")


def never_exceeds_capacity(ctx, mod) -> None:
    hint = ("Tokens keep coming while a client is idle, but the bucket has a size: after any pause it holds at "
            "most `capacity` tokens, so the burst that follows is at most `capacity` requests.")
    clock = FakeClock()
    bucket = mod.TokenBucket(3, 10, clock=clock)
    clock.advance(100)
    granted = _grants(bucket, 50)
    expect(granted == 3, hint, f"capacity 3, rate 10/s, idle 100 s from new: {granted} grants in a row (expected 3)")
    clock.advance(1000)
    granted = _grants(bucket, 50)
    expect(granted == 3, hint, f"emptied, then idle 1000 s: {granted} grants in a row (expected 3)")


def refills_at_rate(ctx, mod) -> None:
    hint = ("An empty bucket must fill again as time passes, in proportion to the time elapsed since it was "
            "last topped up and to the rate; nothing runs in between, so bring it up to date when a request "
            "arrives.")
    clock = FakeClock()
    bucket = mod.TokenBucket(10, 2, clock=clock)
    _grants(bucket, 10)
    clock.advance(1.0)
    granted = _grants(bucket, 5)
    expect(granted == 2, hint, f"capacity 10, rate 2/s, emptied, then 1 s later: {granted} grants (expected 2)")
    clock.advance(2.5)
    granted = _grants(bucket, 10)
    expect(granted == 5, hint, f"then 2.5 s later: {granted} grants (expected 5)")


def fractional_refill(ctx, mod) -> None:
    clock = FakeClock()
    bucket = mod.TokenBucket(1, 2, clock=clock)
    _grants(bucket, 1)
    clock.advance(0.25)
    first = bucket.allow_request()
    expect(first is False,
           "Half a token is not a token: a request must wait until a whole one has built up.",
           "rate 2/s, emptied, 0.25 s later (half a token): the request was granted")
    clock.advance(0.25)
    second = bucket.allow_request()
    hint = ("Partial tokens must add up: two quarter-second waits at 2 tokens/s make one whole token. Do not "
            "throw away the part of a token you cannot spend yet (nor the time it stands for).")
    expect(second is True, hint, "rate 2/s, emptied, then 0.25 s + 0.25 s: the request was refused")
    clock = FakeClock(start=0.0)  # from 0, ten steps of 0.1 s reach 0.9999999999999999 s
    bucket = mod.TokenBucket(1, 1, clock=clock)
    _grants(bucket, 1)
    for _ in range(10):
        clock.advance(0.1)
        bucket.allow_request(5)  # refused, but brings the bucket up to date
    tenth = bucket.allow_request()
    expect(tenth is True, hint + " Mind that float sums drift: ten 0.1 s refills add up to 0.9999999999999999.",
           "rate 1/s, emptied, then ten steps of 0.1 s: the request for one token was refused")


def reject_spends_nothing(ctx, mod) -> None:
    clock = FakeClock()
    bucket = mod.TokenBucket(5, 1, clock=clock)
    _grants(bucket, 3)  # 2 tokens left
    big = bucket.allow_request(3)
    expect(big is False, "A request for more tokens than the bucket holds must be refused.",
           "2 tokens left: a request for 3 was granted")
    fits = bucket.allow_request(2)
    expect(fits is True,
           "A refused request must leave the bucket exactly as it was: decide first, and only spend when the "
           "answer is yes. Otherwise a client hammering an empty bucket pushes its own recovery away.",
           "2 tokens left, a request for 3 refused, then a request for 2 was refused too")


def thread_safe(ctx, mod) -> None:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, as a loaded server does
    try:
        def one_round(seed: int) -> None:
            rng = random.Random(seed)
            capacity, threads, each = rng.randint(50, 200), rng.choice([8, 16]), rng.randint(15, 30)
            size = rng.choice([1, 1, 2])
            clock = FakeClock(yield_thread=True)
            bucket = mod.TokenBucket(capacity, 1, clock=clock)
            granted, errors = [], []
            start = threading.Barrier(threads)

            def hammer():
                try:
                    start.wait()
                    granted.append(_grants(bucket, each, _Yielding(size)))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            workers = [threading.Thread(target=hammer, daemon=True) for _ in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            if errors:
                raise errors[0]
            total, expected = sum(granted), min(threads * each, capacity // size)
            expect(total == expected,
                   "Two threads can read the same token count, both decide there is enough, and both spend it. "
                   "Reading, refilling and spending must happen as one step that no other thread can interleave "
                   "with.",
                   f"{threads} threads x {each} requests of {size} token(s) at once on a bucket of {capacity}, "
                   f"clock not moving: {total} granted (expected {expected}) (seed {seed})")

        seeded_rounds(one_round, 4)
    finally:
        sys.setswitchinterval(previous)


def uses_injected_clock(ctx, mod) -> None:
    hint = ("Read the time only through the clock the bucket was given (the `clock` argument), never from the "
            "time module directly: tests and the notebook move that clock by hand.")
    clock = FakeClock()
    bucket = mod.TokenBucket(2, 1, clock=clock)
    _grants(bucket, 2)
    calls = clock.calls
    early = bucket.allow_request()
    expect(early is False, hint, "the given clock did not move, yet the emptied bucket granted a request")
    expect(clock.calls > calls, hint, "allow_request never called the clock it was given")
    clock.advance(1.0)
    later = bucket.allow_request()
    expect(later is True, hint, "the given clock moved 1 s at 1 token/s, yet the bucket refused the request")


def clock_steps_back(ctx, mod) -> None:
    clock = FakeClock()
    bucket = mod.TokenBucket(2, 1, clock=clock)
    clock.advance(-10)  # a clock that is not monotonic (time.time under NTP) can step back
    granted = _grants(bucket, 3)
    expect(granted == 2,
           "Time that goes backwards is no reason to take tokens away: a clock can step back (a wall clock "
           "corrected by NTP), and then no time has passed for the bucket, not a negative amount.",
           f"full bucket of 2, the clock stepped back 10 s: {granted} grants in a row (expected 2)")


HINT = "Run your TokenBucket in the notebook with a hand-moved clock and compare with what it should do."

BASICS = ("rejects when empty", "a rejected request spends nothing")

CHECKS = [
    Check("starts full", starts_full, HINT),
    Check("rejects when empty", rejects_when_empty, HINT),
    Check("a rejected request spends nothing", reject_spends_nothing, HINT),
    Check("never holds more than capacity", never_exceeds_capacity, HINT, depends=BASICS[:1]),
    Check("refills by elapsed time at the rate", refills_at_rate, HINT, depends=BASICS),
    Check("fractional refill adds up", fractional_refill, HINT, depends=BASICS),
    Check("safe under concurrent threads", thread_safe, HINT, timeout=20.0, depends=BASICS[:1]),
    Check("uses the injected clock", uses_injected_clock, HINT, depends=BASICS),
    Check("a clock stepping back takes no tokens away", clock_steps_back, HINT, depends=BASICS),
]

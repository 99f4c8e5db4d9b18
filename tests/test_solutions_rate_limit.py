"""solutions.rate_limit against a real Redis: fixed window, sliding window, layers."""

import dataclasses
import threading
import time

import pytest

from solutions.rate_limit import LayeredLimiter, LimitVerdict, RedisRateLimiter, SlidingWindowLimiter


LIMITERS = [RedisRateLimiter, SlidingWindowLimiter]


@pytest.mark.parametrize("limiter_class", LIMITERS)
def test_allows_up_to_the_limit_then_blocks(any_redis, limiter_class):
    limiter = limiter_class(any_redis, limit=3, window_s=10)
    assert [limiter.allow("alice") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("bob")  # keys are counted separately


@pytest.mark.parametrize("limiter_class", LIMITERS)
def test_allows_again_after_the_window(any_redis, limiter_class):
    limiter = limiter_class(any_redis, limit=2, window_s=0.3)
    assert limiter.allow("k") and limiter.allow("k")
    assert not limiter.allow("k")
    time.sleep(0.35)
    assert limiter.allow("k")


@pytest.mark.parametrize("limiter_class", LIMITERS)
def test_concurrent_requests_never_exceed_the_limit(redis_client, limiter_class):
    limiter = limiter_class(redis_client, limit=50, window_s=30)
    allowed = []
    start = threading.Barrier(20)

    def hammer():
        start.wait()
        allowed.append(sum(limiter.allow("hot") for _ in range(10)))

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 50


def test_fixed_window_key_has_prefix_and_expires_with_the_window(redis_client):
    limiter = RedisRateLimiter(redis_client, limit=5, window_s=2, prefix="test")
    assert limiter.retry_after("carol") == 0.0  # no window running yet
    limiter.allow("carol")
    assert redis_client.get("test:carol") == "1"
    assert 1500 < redis_client.pttl("test:carol") <= 2000
    time.sleep(0.3)
    limiter.allow("carol")
    assert redis_client.get("test:carol") == "2"
    assert 1.0 < limiter.retry_after("carol") < 1.75  # the second request did not restart the window


def test_fixed_window_retry_after_counts_down(redis_client):
    limiter = RedisRateLimiter(redis_client, limit=1, window_s=1)
    limiter.allow("dave")
    first = limiter.retry_after("dave")
    time.sleep(0.2)
    assert 0 < limiter.retry_after("dave") < first


def test_fixed_window_lets_a_double_burst_through_at_the_boundary(redis_client):
    """The weakness the sliding window fixes: 2 x limit within a short time."""
    fixed = RedisRateLimiter(redis_client, limit=3, window_s=0.6, prefix="fixed")
    sliding = SlidingWindowLimiter(redis_client, limit=3, window_s=0.6, prefix="sliding")
    fixed.allow("x")  # opens the fixed window
    time.sleep(0.4)
    burst_start = time.monotonic()
    fixed_burst = [fixed.allow("x") for _ in range(2)]  # the end of window 1
    sliding_burst = [sliding.allow("x") for _ in range(3)]
    time.sleep(max(0.0, 0.25 - (time.monotonic() - burst_start)))  # fixed window 1 is over
    fixed_burst += [fixed.allow("x") for _ in range(3)]  # the start of window 2
    sliding_burst += [sliding.allow("x") for _ in range(3)]
    assert time.monotonic() - burst_start < 0.6  # all inside one window's length
    assert sum(fixed_burst) == 5  # more than the limit of 3
    assert sum(sliding_burst) == 3


def test_sliding_window_retry_after(redis_client):
    limiter = SlidingWindowLimiter(redis_client, limit=2, window_s=1)
    limiter.allow("erin")
    assert limiter.retry_after("erin") == 0.0  # a slot is still free
    limiter.allow("erin")
    assert 0.8 < limiter.retry_after("erin") <= 1.0


def test_sliding_window_counts_same_millisecond_requests_separately(redis_client):
    limiter = SlidingWindowLimiter(redis_client, limit=100, window_s=10, prefix="sw")
    results = [limiter.allow("fast") for _ in range(100)]  # many land in one ms
    assert all(results)
    assert redis_client.zcard("sw:fast") == 100
    assert not limiter.allow("fast")


@pytest.mark.parametrize("limiter_class", LIMITERS)
def test_rejects_invalid_configuration(redis_client, limiter_class):
    with pytest.raises(ValueError):
        limiter_class(redis_client, limit=-1, window_s=1)
    with pytest.raises(ValueError):
        limiter_class(redis_client, limit=1, window_s=0)


def test_verdict_is_a_frozen_dataclass():
    verdict = LimitVerdict(allowed=True, layer=None, retry_after=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.allowed = False


def test_layered_blocks_a_greedy_user_without_spending_the_ip_budget(any_redis):
    limiter = LayeredLimiter(any_redis, user_limit=2, ip_limit=3, window_s=10)
    verdicts = [limiter.check("greedy", "10.0.0.1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, False, False]
    assert verdicts[0] == LimitVerdict(True, None, 0.0)
    assert verdicts[2].layer == "user"
    assert 9 < verdicts[2].retry_after <= 10
    # Only the 2 allowed requests reached the IP layer: 1 slot left for a neighbour.
    assert limiter.check("neighbour", "10.0.0.1").allowed
    blocked = limiter.check("another", "10.0.0.1")
    assert (blocked.allowed, blocked.layer) == (False, "ip")
    assert 9 < blocked.retry_after <= 10


def test_layered_ip_limit_stops_many_user_ids_from_one_ip(redis_client):
    limiter = LayeredLimiter(redis_client, user_limit=5, ip_limit=10, window_s=10)
    verdicts = [limiter.check(f"bot-{i}", "203.0.113.9") for i in range(15)]
    assert sum(v.allowed for v in verdicts) == 10
    assert {v.layer for v in verdicts[10:]} == {"ip"}
    assert limiter.check("human", "198.51.100.7").allowed  # other IPs unaffected
    assert redis_client.get("rl:user:bot-0") == "1"
    assert redis_client.get("rl:ip:203.0.113.9") == "15"

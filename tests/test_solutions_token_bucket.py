"""solutions.token_bucket: burst, refill, no overdraft, thread safety."""

import threading

import pytest

from solutions.token_bucket import TokenBucket


class FakeClock:
    """A clock the test moves by hand, so refill is exact and nothing sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_starts_full_and_allows_a_burst_of_capacity():
    bucket = TokenBucket(capacity=5, refill_rate=1, clock=FakeClock())
    assert [bucket.allow_request() for _ in range(6)] == [True] * 5 + [False]


def test_refills_with_elapsed_time_including_fractions():
    clock = FakeClock()
    bucket = TokenBucket(capacity=2, refill_rate=2, clock=clock)
    assert bucket.allow_request(2)
    clock.advance(0.25)  # +0.5 token
    assert not bucket.allow_request()
    clock.advance(0.25)  # +0.5 more: the first half was kept
    assert bucket.allow_request()
    assert not bucket.allow_request()


def test_many_small_refills_add_up_to_whole_tokens():
    clock = FakeClock()
    bucket = TokenBucket(capacity=1, refill_rate=0.1, clock=clock)
    assert bucket.allow_request()
    for _ in range(10):
        clock.advance(1)  # 10 x 0.1 token: float sums land a hair under 1.0
    assert bucket.allow_request()
    assert not bucket.allow_request()


def test_never_holds_more_than_capacity():
    clock = FakeClock()
    bucket = TokenBucket(capacity=3, refill_rate=10, clock=clock)
    clock.advance(3600)
    assert [bucket.allow_request() for _ in range(4)] == [True, True, True, False]


def test_rejection_consumes_nothing():
    clock = FakeClock()
    bucket = TokenBucket(capacity=4, refill_rate=1, clock=clock)
    assert bucket.allow_request(3)  # 1 left
    assert not bucket.allow_request(2)
    assert not bucket.allow_request(2)
    assert bucket.allow_request(1)  # the failed attempts did not spend it
    assert not bucket.allow_request(5)  # more than capacity: never possible


def test_uses_only_the_injected_clock():
    clock = FakeClock()
    bucket = TokenBucket(capacity=1, refill_rate=1000, clock=clock)
    assert bucket.allow_request()
    # Real time passes between these calls, the fake clock does not.
    assert not any(bucket.allow_request() for _ in range(1000))


def test_clock_going_backwards_does_not_remove_tokens():
    clock = FakeClock()
    bucket = TokenBucket(capacity=2, refill_rate=1, clock=clock)
    clock.advance(-50)
    assert bucket.allow_request(2)


@pytest.mark.parametrize(
    "kwargs",
    [dict(capacity=0, refill_rate=1), dict(capacity=-1, refill_rate=1), dict(capacity=1, refill_rate=-0.1)],
)
def test_rejects_invalid_configuration(kwargs):
    with pytest.raises(ValueError):
        TokenBucket(**kwargs)


@pytest.mark.parametrize("tokens", [0, -1])
def test_rejects_non_positive_requests(tokens):
    with pytest.raises(ValueError):
        TokenBucket(1, 1).allow_request(tokens)


def test_threads_never_get_more_than_capacity_without_refill():
    bucket = TokenBucket(capacity=50, refill_rate=0)
    granted = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def hammer():
        start.wait()
        mine = sum(bucket.allow_request() for _ in range(100))
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 50


def test_threads_never_get_more_than_capacity_plus_refill():
    clock = FakeClock()
    bucket = TokenBucket(capacity=10, refill_rate=100, clock=clock)
    clock_lock = threading.Lock()
    granted = []
    start = threading.Barrier(10)

    def hammer():
        start.wait()
        mine = 0
        for _ in range(200):
            with clock_lock:
                clock.advance(0.001)  # 2000 steps in all: 2 s, 200 tokens of refill
            mine += bucket.allow_request()
        granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) <= 10 + 200
    assert sum(granted) >= 200  # the refill was really used

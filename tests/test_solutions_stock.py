"""solutions.stock against a real Redis: the three reservation strategies, release, races."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from solutions.stock import Reservation, StockCache

PRODUCT = 42


@pytest.fixture
def stock(any_redis):
    return StockCache(any_redis)


def run_concurrently(threads: int, jobs: list):
    """Run zero-argument callables on `threads` threads, released together; return their results in order."""
    go = threading.Event()

    def wait_then(job):
        def run():
            go.wait()
            return job()

        return run

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(wait_then(job)) for job in jobs]
        go.set()
        return [future.result() for future in futures]


def test_set_get_decr_incr(stock, any_redis):
    assert stock.get_stock(PRODUCT) is None
    stock.set_stock(PRODUCT, 3)
    assert stock.get_stock(PRODUCT) == 3
    assert int(any_redis.get(f"stock:{PRODUCT}")) == 3
    assert stock.decr_stock(PRODUCT) == 2
    assert stock.incr_stock(PRODUCT) == 3
    assert stock.incr_stock(PRODUCT, 5) == 8


def test_decr_stock_goes_negative_when_oversold(stock):
    stock.set_stock(PRODUCT, 1)
    assert [stock.decr_stock(PRODUCT) for _ in range(3)] == [0, -1, -2]


def test_try_reserve_stops_at_zero(stock):
    stock.set_stock(PRODUCT, 2)
    assert [stock.try_reserve(PRODUCT) for _ in range(4)] == [True, True, False, False]
    assert stock.get_stock(PRODUCT) == 0


def test_try_reserve_under_concurrency_grants_exactly_the_stock(redis_client):
    stock = StockCache(redis_client)
    stock.set_stock(PRODUCT, 100)
    results = run_concurrently(50, [lambda: stock.try_reserve(PRODUCT)] * 400)
    assert sum(results) == 100
    assert stock.get_stock(PRODUCT) == 0  # dipped below zero meanwhile, but not at the end


def test_reserve_once_outcomes(stock, any_redis):
    stock.set_stock(PRODUCT, 1)
    first = stock.reserve_once(PRODUCT, "u1")
    assert first is Reservation.OK
    assert first == "ok"  # a str enum: compares equal to its value
    assert stock.reserve_once(PRODUCT, "u1") is Reservation.ALREADY_BOUGHT
    assert stock.reserve_once(PRODUCT, "u2") is Reservation.SOLD_OUT
    assert stock.get_stock(PRODUCT) == 0
    assert stock.buyers(PRODUCT) == {"u1"}
    assert any_redis.sismember(f"buyers:{PRODUCT}", "u1")


def test_reserve_once_on_a_product_never_loaded_is_sold_out(stock):
    assert stock.reserve_once(999, "u1") is Reservation.SOLD_OUT
    assert stock.get_stock(999) is None  # the script did not create the key
    assert stock.buyers(999) == set()


def test_reserve_once_under_concurrency(redis_client):
    """50 threads, 300 users (some trying twice), stock 100: exactly 100 winners."""
    stock = StockCache(redis_client)
    stock.set_stock(PRODUCT, 100)
    users = [f"user-{i}" for i in range(300)]
    attempts = users + users[:50]  # the first 50 users try a second time
    results = run_concurrently(50, [lambda u=u: (u, stock.reserve_once(PRODUCT, u)) for u in attempts])
    winners = [user for user, result in results if result is Reservation.OK]
    assert len(winners) == 100
    assert len(set(winners)) == 100  # nobody got two
    assert stock.get_stock(PRODUCT) == 0
    assert stock.buyers(PRODUCT) == set(winners)
    assert {result for _, result in results} <= set(Reservation)


def test_release_returns_the_item_once(stock):
    stock.set_stock(PRODUCT, 1)
    assert stock.reserve_once(PRODUCT, "u1") is Reservation.OK
    assert stock.release(PRODUCT, "u1") is True
    assert stock.get_stock(PRODUCT) == 1
    assert stock.buyers(PRODUCT) == set()
    assert stock.release(PRODUCT, "u1") is False  # a double rollback
    assert stock.release(PRODUCT, "never-bought") is False
    assert stock.get_stock(PRODUCT) == 1
    assert stock.reserve_once(PRODUCT, "u1") is Reservation.OK  # may buy again


def test_concurrent_double_release_cannot_inflate_stock(redis_client):
    stock = StockCache(redis_client)
    stock.set_stock(PRODUCT, 10)
    for i in range(10):
        assert stock.reserve_once(PRODUCT, f"u{i}") is Reservation.OK
    jobs = [lambda i=i: stock.release(PRODUCT, f"u{i}") for i in range(10)] * 5
    assert sum(run_concurrently(20, jobs)) == 10
    assert stock.get_stock(PRODUCT) == 10


def test_clear_buyers(stock):
    stock.set_stock(PRODUCT, 5)
    stock.reserve_once(PRODUCT, "u1")
    stock.reserve_once(PRODUCT, "u2")
    assert stock.buyers(PRODUCT) == {"u1", "u2"}
    stock.clear_buyers(PRODUCT)
    assert stock.buyers(PRODUCT) == set()
    assert stock.get_stock(PRODUCT) == 3  # clearing buyers does not touch stock


def test_products_are_independent(stock):
    stock.set_stock(1, 1)
    stock.set_stock(2, 1)
    assert stock.reserve_once(1, "u") is Reservation.OK
    assert stock.reserve_once(2, "u") is Reservation.OK
    assert (stock.get_stock(1), stock.get_stock(2)) == (0, 0)

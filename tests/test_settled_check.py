"""invariants.settled_check: a sale is checked once it has settled, not while orders still arrive.

The fault it fixes: after an open-loop step that overloaded the tier, the
bench checked the sale as soon as the queue was empty, while the gateway was
still serving requests the generator had given up on. The check found orders
nobody was told about and Redis and PostgreSQL disagreeing, and the bench said
"oversold or lost" of a sound system. Here buyers keep arriving for 1.5 s
after the check starts; the check must see every one of them.
"""

from __future__ import annotations

import threading
import time

import requests

from seckill.measure import invariants
from seckill.system import sale

PRODUCT = 990_610
BUYERS = 30


def _late_buyers(base_url: str, started: threading.Event) -> None:
    """30 buys, one every 50 ms: orders keep reaching PostgreSQL for 1.5 s."""
    with requests.Session() as http:
        for i in range(BUYERS):
            http.post(f"{base_url}/api/seckill/{PRODUCT}", json={"user_id": f"late-{i}"}, timeout=5)
            if i == 2:
                started.set()
            time.sleep(0.05)


def _buying_meanwhile(s, flask_tier, check):
    sale.create_sale(s, PRODUCT, 100, force=True)
    started = threading.Event()
    buyers = threading.Thread(target=_late_buyers, args=(flask_tier["base_url"], started), daemon=True)
    buyers.start()
    assert started.wait(10)
    result = check()
    buyers.join(15)
    return result


def test_the_check_waits_until_orders_stop_arriving(s, flask_tier):
    check, settled = _buying_meanwhile(
        s, flask_tier, lambda: invariants.settled_check(s, PRODUCT, [], timeout_s=30))
    assert settled and check.orders == BUYERS, check
    assert check.oversold == 0 and check.lost == 0 and check.pg_stock == 100 - BUYERS, check


def test_the_test_catches_a_check_taken_when_the_queue_first_empties(s, flask_tier):
    """The old way (wait for an empty queue, check at once) sees only the first few orders."""
    def old_way():
        invariants.wait_for_drain(s, PRODUCT, timeout_s=30)
        return invariants.check_sale(s, PRODUCT, [])
    check = _buying_meanwhile(s, flask_tier, old_way)
    assert check.orders < BUYERS, check


def _check(**numbers) -> invariants.SaleCheck:
    base = dict(product_id=1, initial_stock=100, pg_stock=70, redis_stock=70, orders=30, distinct_users=30,
                rejections=0, confirmed_to_users=30, lost=0, unexpected=0, queue_depth=0)
    return invariants.SaleCheck(**{**base, **numbers})


def test_each_problem_is_named_for_what_it_is():
    assert _check().ok and _check().problems() == []
    (under,) = _check(redis_stock=61).problems()  # reservations whose requests were abandoned: not a loss
    assert under.startswith("undersold 9:") and "reconcile --fix" in under
    (risk,) = _check(redis_stock=75).problems()
    assert "5 more in stock than PostgreSQL (an oversell risk)" in risk
    assert _check(redis_stock=61, held_locally=9).problems() == []  # leased by live T4 instances
    assert _check(orders=101, distinct_users=101, pg_stock=0, redis_stock=0).problems()[0] == "oversold 1"
    assert "lost 2 confirmed order(s)" in _check(lost=2).problems()

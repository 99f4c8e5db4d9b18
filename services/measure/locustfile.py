"""The locust load test of the buy endpoint, run by seckill.measure.loadtest (never imported by it).

Locust monkey-patches the whole interpreter with gevent, so this file only ever
runs inside locust's own processes, started by :func:`seckill.measure.loadtest.run`:

    python -m locust -f services/measure/locustfile.py --headless --processes 2 ...

Each simulated user is a different buyer: its own user id and its own client
IP in X-Forwarded-For. FastHttpUser cannot bind a source address per user, so
the gateway believes that header only with its load-test switch on
(``seckill tier up NAME --load-test``; see gateway.TrustedProxies). Ids are ``lt<run>-w<worker>-<n>``: a per-process counter
plus the worker index, so the worker processes of one run never reuse an id,
and the run tag keeps two runs on one sale apart.

Every user sends ``SECKILL_LT_REQUESTS_PER_USER`` requests with no wait, then
idles; when every user of the run is done, the master stops the test early
(otherwise it ends at --run-time). Responses are named by outcome, so locust's
stats count them apart:

    success · sold_out · already_bought · limited   (200 / 409 / 429: answers, not failures)
    client_error · server_error · failed            (other 4xx, 5xx, no answer: failures)

Each worker process appends the order id of every success to
``$SECKILL_LT_OUT/orders-<pid>.txt``, one a line, so the invariant check can
compare what users were told with what PostgreSQL holds.

Configuration (set by the runner): SECKILL_LT_PRODUCT, SECKILL_LT_REQUESTS_PER_USER,
SECKILL_LT_USERS, SECKILL_LT_OUT, SECKILL_LT_TAG.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import gevent
import locust.runners
import locust.stats
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from seckill.measure.burst import classify

PRODUCT_ID = int(os.environ.get("SECKILL_LT_PRODUCT", "1"))
REQUESTS_PER_USER = max(1, int(os.environ.get("SECKILL_LT_REQUESTS_PER_USER", "4")))
USERS = int(os.environ.get("SECKILL_LT_USERS", "0"))  # 0: never stop early
OUT_DIR = Path(os.environ.get("SECKILL_LT_OUT", "."))
TAG = os.environ.get("SECKILL_LT_TAG", "0")
IDLE_S = 3600.0  # a finished user waits (killable) until the test stops

DONE_MESSAGE = "seckill_user_done"
# 2**20 simulated users per worker process, 16 workers: forwarded_ip spans 2**24 addresses.
USERS_PER_WORKER = 1 << 20

# Finer time resolution for the per-second history (locust's defaults suit long runs):
# workers report every second, not every 3 s, and the "current" percentiles of the
# history are those of the last ~2 s, not 10 s.
locust.runners.WORKER_REPORT_INTERVAL = 1.0
locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = 2

_counter = itertools.count()
_orders_file = None


def _worker_index(environment) -> int:
    runner = environment.runner
    return max(0, getattr(runner, "worker_index", 0) or 0)


def _record_order(order_id: str) -> None:
    global _orders_file
    if _orders_file is None:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        # line-buffered: every confirmed id is on disk even if the run is killed
        _orders_file = open(OUT_DIR / f"orders-{os.getpid()}.txt", "a", buffering=1)
    _orders_file.write(order_id + "\n")


def forwarded_ip(i: int) -> str:
    """The i-th user's address for X-Forwarded-For: 10.x.y.z, never loopback (under the gateway's
    load-test switch every loopback hop is a trusted proxy, so a 127.x address would be skipped)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


class Buyer(FastHttpUser):
    """One buyer: REQUESTS_PER_USER buy requests back to back, then idle."""

    connection_timeout = 10.0
    network_timeout = 30.0

    def wait_time(self) -> float:
        return 0.0 if self.sent < REQUESTS_PER_USER else IDLE_S

    def on_start(self) -> None:
        worker = _worker_index(self.environment)
        n = next(_counter)
        if n >= USERS_PER_WORKER:
            raise RuntimeError(f"more than {USERS_PER_WORKER} users in one locust process")
        self.sent = 0
        self.user_id = f"lt{TAG}-w{worker}-{n}"
        self.ip = forwarded_ip(worker * USERS_PER_WORKER + n)
        self.path = f"/api/seckill/{PRODUCT_ID}"

    @task
    def buy(self) -> None:
        if self.sent >= REQUESTS_PER_USER:
            return
        self.sent += 1
        with self.client.post(self.path, json={"user_id": self.user_id},
                              headers={"X-Forwarded-For": self.ip},
                              name="failed", catch_response=True) as resp:
            status = resp.status_code or 0
            if status == 0:  # no answer at all: refused, reset, timed out
                resp.failure(f"no response: {resp.error!r}")
            else:
                try:
                    body = resp.json()
                except Exception:
                    body = None
                outcome = classify(status, body if isinstance(body, dict) else None)
                resp.request_meta["name"] = outcome
                if outcome in ("client_error", "server_error"):
                    resp.failure(f"HTTP {status}")
                else:
                    resp.success()  # 409 and 429 are answers the system is meant to give
                    if outcome == "success":
                        _record_order(body["order_id"])
        if self.sent >= REQUESTS_PER_USER:
            self.environment.runner.send_message(DONE_MESSAGE, 1)


@events.init.add_listener
def _stop_when_every_user_is_done(environment, **_kwargs) -> None:
    runner = environment.runner
    if USERS <= 0 or isinstance(runner, WorkerRunner) or not isinstance(runner, (LocalRunner, MasterRunner)):
        return
    done = {"users": 0, "quitting": False}

    def quit_soon() -> None:
        gevent.sleep(1.0)  # let the workers' last stats reports arrive
        runner.quit()

    def on_done(msg, **_kw) -> None:
        done["users"] += int(msg.data or 1)
        if done["users"] >= USERS and not done["quitting"]:
            done["quitting"] = True
            gevent.spawn(quit_soon)

    runner.register_message(DONE_MESSAGE, on_done)


@events.quitting.add_listener
def _close_orders_file(**_kwargs) -> None:
    if _orders_file is not None:
        _orders_file.close()

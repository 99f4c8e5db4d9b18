"""mq-down: RabbitMQ stopped in the middle of a sale, then started again.

What must hold (the seed's "RabbitMQ down" row):
  * while the broker is down every buy answers 503 at once, and the Redis
    reservation it made is rolled back: nothing reserved, nothing oversold;
  * the orders users were told about before the stop were in the durable
    queue as persistent messages, so the broker still has every one after
    its restart, and they reach PostgreSQL;
  * nobody restarts the gateway or the order service: both reconnect by
    themselves, and buying works again within seconds of the broker.

To make the durability claim real, the order service is *paused* (SIGSTOP)
while the orders before the stop are taken: otherwise it would have written
them to PostgreSQL already and the queue would have nothing to keep. Paused,
it holds its connection but does nothing, like a frozen VM; resumed after the
broker's restart, it finds its connection dead and must reconnect.

One request at a time keeps trickling through the whole scenario (10 a second)
so the chart shows the answers change: 200, then 503, then 200 again. The
trickle pauses while the broker shuts down: a buy whose confirm is cut off by
the shutdown is the one truly ambiguous case (the broker may have kept the
message after the gateway said 503), and it belongs to the reconcile lab.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg

from seckill.system import broker
from seckill.measure import burst
from seckill import stack
from seckill.measure.clients import post_json
from seckill.measure.invariants import written_order_ids
from seckill.config import settings
from seckill.chaos import ChaosReport
from seckill.chaos.stage import fresh_sale
from seckill.chaos._queue import (buy, buyers, check_books, consumers, pause_order_service, redis_books, tier_for,
                                  wait_until)

TITLE = "RabbitMQ stopped mid-sale, then back"


class Trickle:
    """One buy every ``interval_s`` from a new user, in a thread; bounded in count and time.

    Records (when answered, HTTP status, orders in PostgreSQL) per request for the chart.
    """

    def __init__(self, report: ChaosReport, base_url: str, product_id: int, pg_url: str, *,
                 interval_s: float = 0.1, max_requests: int = 600, max_s: float = 120.0):
        self.report = report
        self.url = f"{base_url}/api/seckill/{product_id}"
        self.product_id = product_id
        self.pg_url = pg_url
        self.interval_s = interval_s
        self.max_requests = max_requests
        self.max_s = max_s
        self.answers: list[tuple[float, int, int | None]] = []  # (answered at, HTTP status, orders in PostgreSQL)
        self.order_ids: list[str] = []
        self.running = threading.Event()
        self.running.set()
        self.done = threading.Event()
        self._busy = threading.Lock()  # held while a request is in flight
        self._thread = threading.Thread(target=self._loop, name="trickle", daemon=True)

    def _post(self, i: int) -> tuple[int, dict]:
        status, body, _headers = post_json(self.url, {"user_id": f"trickle-{i}"},
                                           source=burst.fake_ip(200_000 + i), timeout_s=10)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {}
        except OSError:
            return 0, {}  # no answer at all (connection refused, timeout)

    def _loop(self) -> None:
        pg = None
        started = time.monotonic()
        try:
            for i in range(self.max_requests):
                if self.done.is_set() or time.monotonic() - started > self.max_s:
                    break
                if not self.running.wait(timeout=1):
                    continue
                with self._busy:
                    if not self.running.is_set():
                        continue
                    status, body = self._post(i)
                    answered = round(time.monotonic() - self.report.started, 2)  # before pause() can return
                if status == 200 and body.get("success"):
                    self.order_ids.append(body["order_id"])
                try:
                    if pg is None or pg.closed:
                        pg = psycopg.connect(self.pg_url, autocommit=True, connect_timeout=2)
                    count = pg.execute("SELECT count(*) FROM orders WHERE product_id = %s",
                                       (self.product_id,)).fetchone()[0]
                except psycopg.Error:
                    count = None
                self.answers.append((answered, status, count))  # one append: readers never see half a row
                self.done.wait(self.interval_s)
        finally:
            if pg is not None:
                pg.close()

    def start(self) -> "Trickle":
        self._thread.start()
        return self

    def pause(self) -> None:
        """No new request from now on, and the one in flight (if any) has been answered."""
        self.running.clear()
        with self._busy:
            pass

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        self.done.set()
        self.running.set()
        self._thread.join(timeout=30)

    def statuses_between(self, t0: float, t1: float) -> list[int]:
        return [status for t, status, _ in list(self.answers) if t0 <= t <= t1]

    def first_success_after(self, t: float) -> float | None:
        return next((ti for ti, status, _ in list(self.answers) if ti >= t and status == 200), None)

    def series(self) -> dict[str, list]:
        rows = list(self.answers)
        return {"t": [r[0] for r in rows], "status": [r[1] for r in rows], "pg_orders": [r[2] for r in rows]}


def run(tier: str | None = None, product_id: int = 9301, stock: int = 1000, before: int = 100,
        during: int = 60, after: int = 100, concurrency: int = 50, hold_orders: bool = True) -> ChaosReport:
    """Stop RabbitMQ between two bursts of ``before`` and ``after`` buyers; ``during`` buy while it is down."""
    report = ChaosReport("mq-down", TITLE)
    s = settings()
    state = tier_for(report, tier)
    base_url = state["base_url"]
    fresh_sale(report, s, product_id, stock)
    trickle = Trickle(report, base_url, product_id, s.postgres_url).start()
    confirmed: set[str] = set()
    paused = False
    broker_down = False
    try:
        if hold_orders:
            pause_order_service(s, True)
            paused = True
            report.event("order service paused (SIGSTOP): the orders stay in the queue")

        a = buy(base_url, product_id, buyers("before", before, 0), concurrency)
        confirmed |= set(a.order_ids)
        report.event(f"before the stop: {a.total} buys, {len(a.order_ids)} confirmed")
        time.sleep(0.3)  # let the trickle show a few more 200s

        trickle.pause()
        t_stop = round(time.monotonic() - report.started, 2)
        in_flight = set(confirmed | set(trickle.order_ids))
        report.event("stopping RabbitMQ …")
        stack.stop_service("rabbitmq")
        broker_down = True
        t_down = round(time.monotonic() - report.started, 2)
        report.event(f"RabbitMQ stopped ({t_down - t_stop:.1f} s); {len(in_flight)} confirmed orders "
                     "were waiting in it")
        books_before = redis_books(s, product_id)
        b = buy(base_url, product_id, buyers("during", during, 10_000), concurrency)
        books_after = redis_books(s, product_id)
        trickle.resume()
        time.sleep(0.5)  # the trickle meets the dead broker too
        report.event(f"while down: {b.total} buys → {dict(b.statuses)} in {b.elapsed_s:.2f} s")
        report.check("every burst buy while the broker is down answers 503",
                     b.statuses.get(503, 0) == b.total == during, f"statuses {dict(b.statuses)}")
        report.check("nothing reserved while the broker is down", books_before == books_after,
                     f"Redis units unsold, buyers: {books_before} before → {books_after} after")
        confirmed |= set(b.order_ids)  # empty when the check above holds; kept honest if not

        t_start = round(time.monotonic() - report.started, 2)
        down_answers = trickle.statuses_between(t_down, t_start)
        report.event("starting RabbitMQ …")
        stack.start_service("rabbitmq")
        broker_down = False
        t_back = round(time.monotonic() - report.started, 2)
        report.event(f"RabbitMQ ready again ({t_back - t_start:.1f} s to start; down {t_back - t_stop:.1f} s)")
        report.check("every trickle buy while the broker is down answers 503",
                     bool(down_answers) and set(down_answers) == {503},
                     f"{len(down_answers)} answers: {sorted(set(down_answers))}")
        if paused:
            pause_order_service(s, False)
            paused = False
            report.event("order service resumed (SIGCONT): its connection is dead, it must reconnect")
        consumer_back = wait_until(lambda: consumers(s) > 0, timeout_s=30)
        report.event("order service reconnected by itself" if consumer_back is not None
                     else "order service did NOT reconnect within 30 s")
        report.check("the order service reconnects by itself", consumer_back is not None)

        # The gateway may sell again before our readiness check even returns: count from the start command.
        wait_until(lambda: trickle.first_success_after(t_start) is not None, timeout_s=30)
        first = trickle.first_success_after(t_start)
        report.check("the gateway reconnects by itself", first is not None,
                     "first 200 after the broker came back" if first else "no 200 within 30 s")
        report.event(f"gateway buying again {max(0.0, first - t_back):.2f} s after the broker was ready"
                     if first is not None else "gateway not buying again")

        c = buy(base_url, product_id, buyers("after", after, 20_000), concurrency)
        confirmed |= set(c.order_ids)
        report.event(f"after: {c.total} buys → {dict(c.statuses)}")
        report.check("every buy after the restart is accepted", len(c.order_ids) == c.total == after,
                     f"statuses {dict(c.statuses)}")
        time.sleep(0.5)  # a few more trickle answers for the chart
    finally:
        trickle.stop()
        if broker_down:
            stack.start_service("rabbitmq")
        if paused:
            pause_order_service(s, False)

    confirmed |= set(trickle.order_ids)
    check_books(report, s, product_id, confirmed)
    kept = in_flight & written_order_ids(s, product_id)
    report.check("every order confirmed before the stop reached PostgreSQL", kept == in_flight,
                 f"{len(kept)} of {len(in_flight)}")
    report.metrics.update(
        tier=state["tier"],
        down_s=round(t_back - t_stop, 2),
        answers_503=b.statuses.get(503, 0) + down_answers.count(503),
        reserved_while_down=(books_before[0] or 0) - (books_after[0] or 0),
        down_burst_s=round(b.elapsed_s, 2),
        kept_by_queue=len(kept),
        gateway_reconnect_s=round(max(0.0, first - t_back), 2) if first is not None else None,
        broker_start_s=round(t_back - t_start, 2),
        consumer_reconnect_s=round(consumer_back, 2) if consumer_back is not None else None,
        queue_left=broker.queue_depth(s.amqp_url, s.queue),
        broker_stop_t=t_stop, broker_down_t=t_down, broker_start_t=t_start, broker_back_t=t_back,
    )
    report.series = trickle.series()
    return report


def chart(report):
    """Answers of the trickle over time (top) and orders in PostgreSQL (bottom), the outage shaded."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = report if isinstance(report, dict) else report.as_dict()
    series, m = data["series"], data["metrics"]
    colours = {200: "#2ca02c", 503: "#d62728", 0: "#8c564b"}
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("answer to each trickle buy (HTTP status)", "orders written to PostgreSQL"))
    for status in sorted(set(series["status"])):
        xs = [t for t, st in zip(series["t"], series["status"]) if st == status]
        fig.add_trace(go.Scatter(x=xs, y=[status] * len(xs), mode="markers", name=f"{status or 'no answer'}",
                                 marker={"color": colours.get(status, "#7f7f7f"), "size": 6}), row=1, col=1)
    fig.add_trace(go.Scatter(x=series["t"], y=series["pg_orders"], mode="lines", name="orders in PostgreSQL",
                             line={"color": "#1f77b4"}), row=2, col=1)
    for row in (1, 2):  # dark: stopping and down; light: starting (it may confirm before it is declared ready)
        fig.add_vrect(x0=m["broker_stop_t"], x1=m.get("broker_start_t", m["broker_back_t"]), fillcolor="#d62728",
                      opacity=0.15, line_width=0, row=row, col=1)
        fig.add_vrect(x0=m.get("broker_start_t", m["broker_back_t"]), x1=m["broker_back_t"], fillcolor="#d62728",
                      opacity=0.06, line_width=0, row=row, col=1)
    fig.update_yaxes(title_text="HTTP status", type="category", row=1, col=1)
    fig.update_yaxes(title_text="orders", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time since the scenario started (s)", row=2, col=1)
    fig.update_layout(title=(f"mq-down on {m.get('tier')}: broker down {m.get('down_s')} s (shaded: stopped, "
                             f"then starting), gateway selling {m.get('gateway_reconnect_s')} s after it was ready"),
                      height=520, legend={"orientation": "h", "y": -0.15})
    return fig

"""broker-stall: the broker freezes mid-sale (a paused VM): yes, no, and UNKNOWN.

A remote call has three outcomes, not two (the lesson of Jepsen and Maelstrom):

  * yes      — the publisher confirm came back: the order is queued (200);
  * no       — nothing was sent, or the broker refused it: the order is not
               queued, the reservation is released (503, try again);
  * unknown  — the order was sent and no confirm came back within the timeout.
               The message may well sit in the broker's socket buffer and be
               queued the moment it wakes up. Calling this "failed" (503 and
               releasing the reservation) is how a sale ends with orders for
               the users told 503 and none for users told 200.

Here the broker is frozen with SIGSTOP (kill -STOP of its Erlang VM): its TCP
connections stay open and silent, exactly like a VM paused by its host or a
stop-the-world pause. Buyers on the gateway's open connection wait for their
confirm until the confirm timeout, then get 202 "pending" with their order id
(unknown: the item stays reserved); buyers that need a new connection cannot
even finish the AMQP handshake and get 503 (no: nothing was sent). The broker
is resumed (SIGCONT), the pending orders are queued after all, and the status
endpoint resolves each one.

What must hold:
  * told 200 → an order in PostgreSQL;
  * told 503 → no order, and the reservation was released;
  * told 202 pending → the status endpoint says confirmed (or rejected) after
    the broker is back: never stuck, and the item was kept for them meanwhile.
    A pending order that never reached the broker (cut off before it was
    written to the socket) is found by `seckill reconcile --fix`, which
    returns its item; its status then says rejected;
  * oversold 0, nothing lost, the queue drains, Redis agrees with PostgreSQL.

The learner's own measurement: how long a buyer waited for each kind of
answer during the freeze (report.series: sent at, waited ms, status).
"""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
import urllib.error
import urllib.request

from seckill.stack import processes
from seckill.config import settings
from seckill.measure.invariants import written_order_ids
from seckill.chaos import ChaosReport
from seckill.chaos._queue import buy, buyers, check_books, consumers, tier_for, wait_until
from seckill.chaos.stage import fresh_sale, reconcile_step

TITLE = "RabbitMQ frozen (SIGSTOP) mid-sale: answers yes, no and unknown, then every one honoured"
BROKER = "rabbitmq"


def freeze_broker(frozen: bool) -> int:
    """SIGSTOP / SIGCONT the broker's VM: connections stay open, nothing answers (a paused VM)."""
    s = settings()
    return processes.kill(s.run_dir, BROKER, signal.SIGSTOP if frozen else signal.SIGCONT)


def order_status(base_url: str, order_id: str) -> str | None:
    """What GET /api/orders/{id} says (pending, confirmed, rejected), or None (404, or no answer)."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/orders/{order_id}", timeout=5) as resp:
            return json.loads(resp.read()).get("status")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def orders_of_users(s, product_id: int, users: list[str]) -> set[str]:
    """The users (of ``users``) who hold an order for this product in PostgreSQL."""
    import psycopg

    if not users:
        return set()
    with psycopg.connect(s.postgres_url, autocommit=True, connect_timeout=3) as conn:
        rows = conn.execute("SELECT user_id FROM orders WHERE product_id = %s AND user_id = ANY(%s)",
                            (product_id, users)).fetchall()
    return {r[0] for r in rows}


def run(tier: str | None = None, product_id: int = 9311, stock: int = 1000, before: int = 40,
        during: int = 40, after: int = 40, freeze_s: float = 9.0, concurrency: int = 20) -> ChaosReport:
    """Freeze RabbitMQ for ``freeze_s`` seconds (longer than the 5 s confirm timeout) while ``during`` buy.

    ``before`` and ``after`` buyers come before the freeze and after the resume.
    The broker is always resumed, even when something fails on the way.
    """
    report = ChaosReport("broker-stall", TITLE)
    s = settings()
    frozen_for = 0.0
    by_status: dict[int, list[float]] = {}
    state = tier_for(report, tier)
    base_url = state["base_url"]
    fresh_sale(report, s, product_id, stock)
    told_200: set[str] = set()
    pending: list[tuple[str, str]] = []
    told_503_users: list[str] = []
    frozen = False
    series = {"sent_s": [], "waited_ms": [], "status": []}
    try:
        a = buy(base_url, product_id, buyers("before", before, 0), concurrency)
        told_200 |= set(a.order_ids)
        report.event(f"before the freeze: {a.total} buys → {dict(a.statuses)}")

        freeze_broker(True)
        frozen = True
        t_freeze = time.monotonic()
        report.event("RabbitMQ frozen (SIGSTOP): connections open, no answers")

        # The buyers during the freeze, one thread per buyer (bounded: ``during`` threads,
        # each request bounded by the HTTP timeout), each timing its own answer.
        answers: list[tuple[str, float, float, int, dict]] = []
        lock = threading.Lock()

        def one(user: str, ip: str) -> None:
            sent = time.monotonic()
            status, body = _post(base_url, product_id, user, ip)
            with lock:
                answers.append((user, sent - t_freeze, time.monotonic() - sent, status, body))

        def wave(plan) -> None:
            threads = []
            for i, (user, ip) in enumerate(plan):
                thread = threading.Thread(target=one, args=(user, ip), daemon=True)
                thread.start()
                threads.append(thread)
                if (i + 1) % concurrency == 0:
                    time.sleep(0.05)
            for thread in threads:
                thread.join(timeout=60)

        # Wave 1 rides the gateway's open connections: sent, never confirmed → unknown (202).
        wave(buyers("during", during, 10_000))
        report.event("first wave answered; the gateway dropped its silent connections")
        # Wave 2 needs a new connection: the handshake never completes, nothing is sent → no (503).
        wave(buyers("reconnect", max(1, during // 4), 15_000))
        left = freeze_s - (time.monotonic() - t_freeze)
        if left > 0:
            time.sleep(left)
        freeze_broker(False)
        frozen = False
        frozen_for = time.monotonic() - t_freeze
        report.event(f"RabbitMQ resumed (SIGCONT) after {frozen_for:.1f} s")

        for user, sent_s, waited_s, status, body in sorted(answers, key=lambda r: r[1]):
            series["sent_s"].append(round(sent_s, 3))
            series["waited_ms"].append(round(waited_s * 1000, 1))
            series["status"].append(status)
            by_status.setdefault(status, []).append(waited_s)
            if status == 200 and body.get("success"):
                told_200.add(body["order_id"])
            elif status == 202 and body.get("status") == "pending":
                pending.append((body["order_id"], user))
            elif status == 503:
                told_503_users.append(user)
        summary = {k: f"{len(v)} (waited {min(v):.1f}–{max(v):.1f} s)" for k, v in sorted(by_status.items())}
        report.event(f"during the freeze: {len(answers)} buys → {summary}")
        report.check("no buyer got a 500 or no answer during the freeze",
                     set(by_status) <= {200, 202, 503}, f"statuses {sorted(by_status)}")
        report.check("every buyer answered within 15 s although the broker stayed frozen longer (bounded waits)",
                     all(w < 15.0 for ws in by_status.values() for w in ws),
                     f"longest wait {max((w for ws in by_status.values() for w in ws), default=0):.1f} s")

        back = wait_until(lambda: consumers(s) > 0, timeout_s=30)
        report.event("order service consuming again" if back is not None else "order service NOT back in 30 s")
        c = buy(base_url, product_id, buyers("after", after, 20_000), concurrency)
        told_200 |= set(c.order_ids)
        pending += c.pending
        report.event(f"after the resume: {c.total} buys → {dict(c.statuses)}")
    finally:
        if frozen:
            freeze_broker(False)
            report.event("RabbitMQ resumed (SIGCONT)")

    pending_ids = {order_id for order_id, _ in pending}
    resolved = {}

    def all_resolved() -> bool:
        for order_id in pending_ids - set(resolved):
            status = order_status(base_url, order_id)
            if status in ("confirmed", "rejected"):
                resolved[order_id] = status
        return len(resolved) == len(pending_ids)

    if wait_until(all_resolved, timeout_s=20, interval_s=0.5) is None:
        # Some "unknown" publishes never left the gateway (cut off before they were written
        # to the socket). Their items are still reserved; reconciliation proves them lost
        # (reserved, not in PostgreSQL, not in the queue, twice) and returns them, and the
        # status endpoint then answers rejected.
        report.event(f"{len(pending_ids) - len(resolved)} pending orders not in PostgreSQL after 20 s")
        reconcile_step(report, s, product_id, fix=True, settle_s=2.0)
        wait_until(all_resolved, timeout_s=20, interval_s=0.5)
    confirmed_pending = {o for o, st in resolved.items() if st == "confirmed"}
    report.check("every pending (unknown) buy is resolved by the status endpoint",
                 len(resolved) == len(pending_ids),
                 f"{len(pending_ids)} pending → {len(confirmed_pending)} confirmed, "
                 f"{len(resolved) - len(confirmed_pending)} rejected, {len(pending_ids) - len(resolved)} still pending")
    check = check_books(report, s, product_id, told_200 | confirmed_pending)
    with_order = orders_of_users(s, product_id, told_503_users)
    report.check("told 503 → no order", not with_order,
                 f"{len(told_503_users)} told 503, {len(with_order)} of them hold an order")
    written = written_order_ids(s, product_id)
    report.check("told 200 → an order", told_200 <= written,
                 f"{len(told_200)} told 200, {len(told_200 - written)} without an order")
    report.metrics.update(tier=state["tier"], answers_200=len(told_200), answers_202=len(pending_ids),
                          answers_503=len(told_503_users), pending_confirmed=len(confirmed_pending),
                          pending_rejected=len(resolved) - len(confirmed_pending), frozen_s=round(frozen_for, 1),
                          oversold=check.oversold, lost=check.lost,
                          # the learner's own measurement: how long a buyer waited for each kind of answer
                          median_wait_s={str(k): round(statistics.median(v), 2) for k, v in sorted(by_status.items())})
    report.series = series
    return report


def _post(base_url: str, product_id: int, user: str, ip: str) -> tuple[int, dict]:
    """One buy; (status, body), status 0 when no answer came within 30 s."""
    req = urllib.request.Request(f"{base_url}/api/seckill/{product_id}", method="POST",
                                 data=json.dumps({"user_id": user}).encode(),
                                 headers={"Content-Type": "application/json", "X-Forwarded-For": ip})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read())
        except ValueError:
            return err.code, {}
    except (OSError, ValueError):
        return 0, {}


def chart(report):
    """Each buy during the freeze: when it was sent (x) and how long its buyer waited (y), coloured by answer."""
    import plotly.graph_objects as go

    data = report if isinstance(report, dict) else report.as_dict()
    series, m = data["series"], data["metrics"]
    names = {200: "200 yes: confirmed", 202: "202 unknown: pending, item kept", 503: "503 no: nothing sent",
             0: "no answer"}
    colours = {200: "#2ca02c", 202: "#ff7f0e", 503: "#d62728", 0: "#8c564b"}
    fig = go.Figure()
    for status in sorted(set(series["status"])):
        rows = [(x, y) for x, y, st in zip(series["sent_s"], series["waited_ms"], series["status"]) if st == status]
        fig.add_trace(go.Scatter(x=[r[0] for r in rows], y=[r[1] / 1000 for r in rows], mode="markers",
                                 name=names.get(status, str(status)),
                                 marker={"color": colours.get(status, "#7f7f7f"), "size": 8}))
    fig.add_vrect(x0=0, x1=m.get("frozen_s", 0), fillcolor="#1f77b4", opacity=0.08, line_width=0,
                  annotation_text="broker frozen (SIGSTOP)", annotation_position="top left")
    fig.update_layout(title=(f"broker-stall on {m.get('tier')}: what each buyer got during a {m.get('frozen_s')} s "
                             f"freeze, and how long they waited"),
                      xaxis_title="sent at (s after the freeze began)", yaxis_title="waited for the answer (s)",
                      height=450, legend={"orientation": "h", "y": -0.2})
    return fig

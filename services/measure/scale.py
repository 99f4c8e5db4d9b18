"""``seckill bench --scale``: how the order drain and reconcile grow with the backlog and the sale.

The bench measures the drain on 5,000 orders; a real sale can leave 100 times
that in the queue. Each size is measured in its own Python process, on a queue
of its own; its peak resident memory (VmHWM) is restarted once the setup is done,
so the peak is the step's own, and "baseline" is the memory the step began with:

  * ``drain``: the order service's consumer (``handle_batch``, the service's
    batch size and prefetch) writing ``n`` queued orders into PostgreSQL;
  * ``read``: ``reconcile.read_queue`` reading ``n`` queued orders without
    taking them, window by window into a sink that counts them (reconcile's
    sink COPYs them into PostgreSQL) — then the queue must still hold all
    ``n``, in their order.

  * ``reconcile``: ``seckill reconcile`` of one sold-out sale of 10,000,
    100,000 and 1,000,000 items (orders in PostgreSQL, buyers in Redis), with
    the longest command Redis logged meanwhile (SLOWLOG): how long a live
    sale's buyers would have stood still.

Sizes: 2,000 (the bench's scale), ×10 and ×100 (a 200,000-message backlog).
Time should grow linearly with n; the report prints seconds per 1,000 orders so
a worse-than-linear step shows at a glance. Peak memory should not grow at all:
the drain holds one prefetch window, the read one window of the queue, and
reconcile compares the buyers inside PostgreSQL (TEMP tables, anti-joins), so
it holds a page of them, not the sale (before, 1,000,000 took 411 MB).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika

from seckill.errors import SeckillError

SIZES = (2_000, 20_000, 200_000)
QUICK_SIZES = (500, 5_000)
MAX_SIZE = 500_000
ORDER_CHECK = 2_000  # after a read, the first messages are taken back and must come in publish order


class ScaleError(SeckillError):
    """A scale step could not run or verify itself; the message says what to do."""


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, which ``_restart_peak`` can reset; else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _restart_peak() -> None:
    """Forget the peak so far (Linux: "5" into /proc/self/clear_refs), so a step's peak is its own.

    Without it the step's setup (publishing n orders, writing a sale of n) sets the high-water
    mark, and a step using less than the setup did shows no growth at all: once, under load, a
    setup reached 208 MB and hid a reconcile that held 57 MB of buyers. Elsewhere: a no-op.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _publish(s, queue: str, product_id: int, n: int, run: str) -> None:
    """n persistent orders on a fresh durable ``queue``, bodies in order (i = 0 .. n-1), outside any clock."""
    from seckill.measure import bench

    connection = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    try:
        channel = connection.channel()
        channel.queue_delete(queue=queue)
        channel.queue_declare(queue=queue, durable=True)
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
        for i in range(n):
            channel.basic_publish("", queue, json.dumps(bench._order(product_id, run, i)), persistent)
    finally:
        if connection.is_open:
            connection.close()
    bench._wait_depth(s, queue, n, timeout_s=120)


def _step(kind: str, n: int) -> dict:
    """One measurement in this process: {"kind", "orders", "seconds", "peak_rss_mb", ...}; ScaleError if unverified."""
    from seckill.measure import bench
    from seckill.system import broker, impl, order_service, reconcile
    from seckill.config import settings

    s = settings()
    run = uuid.uuid4().hex[:8]
    queue = f"bench-scale-{kind}-{run}"
    product = bench.DRAIN_PRODUCT
    bench._fresh_product(s, product, stock=n)
    try:
        _publish(s, queue, product, n, run)
        _restart_peak()
        baseline = _peak_rss_mb()
        if kind == "drain":
            consumer = impl.running("consumer").OrderConsumer(s.amqp_url, s.postgres_url, queue=queue,
                                                              **order_service.tuning())
            seconds, handled, written = bench.timed_drain(s, consumer, n, product)
            if handled != n or written != n:
                raise ScaleError(f"the drain handled {handled} and wrote {written} of {n} orders")
            extra = {}
        else:
            seen = 0

            def count(window: list[dict]) -> None:  # as reconcile does, minus the COPY: one window held
                nonlocal seen
                seen += len(window)

            t0 = time.perf_counter()
            _, complete = reconcile.read_queue(dataclasses.replace(s, queue=queue), timeout_s=600, sink=count)
            seconds = time.perf_counter() - t0
            if not complete or seen != n:
                raise ScaleError(f"read_queue saw {seen} of {n} queued orders (complete={complete})")
            bench._wait_depth(s, queue, n, timeout_s=60)  # nothing taken: every message went back
            first = _first_indices(s, queue, min(n, ORDER_CHECK))
            in_order = first == list(range(len(first)))
            if not in_order:
                raise ScaleError(f"after read_queue the queue's first messages came back out of order: {first[:10]} …")
            extra = {"still_queued": broker.queue_depth(s.amqp_url, queue) + len(first), "in_order": in_order}
        return {"kind": kind, "orders": n, "seconds": round(seconds, 3), "peak_rss_mb": _peak_rss_mb(),
                "baseline_rss_mb": baseline, **extra}
    finally:
        bench._delete_queue(s, queue)
        bench._drop_product(s, product)


RECONCILE_PRODUCT = 990_700
RECONCILE_SIZES = (10_000, 100_000, 1_000_000)  # a sale of 1,000,000 items, all sold
QUICK_RECONCILE_SIZES = (2_000,)
MAX_RECONCILE_SIZE = 1_000_000


def _sold_out_sale(s, r, product: int, n: int, run: str) -> None:
    """A sale of ``n`` items, all sold and settled: n orders in PostgreSQL (COPY), n buyers in Redis, stock 0."""
    from seckill.measure import bench
    from seckill.stack import db
    from seckill.system.sale import sale_key

    bench._fresh_product(s, product, stock=n)
    with db.connect(s.postgres_url, autocommit=True) as conn:
        with conn.cursor().copy("COPY orders (order_id, user_id, product_id, created_at) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((f"scale-{run}-{i}", f"u-{run}-{i}", product, "2026-01-01T00:00:00Z"))
        conn.execute("UPDATE products SET stock = 0 WHERE id = %s", (product,))
    r.delete(f"buyers:{product}", f"stock:{product}", sale_key(product))
    for start in range(0, n, 10_000):
        r.sadd(f"buyers:{product}", *(f"u-{run}-{i}" for i in range(start, min(n, start + 10_000))))
    r.set(f"stock:{product}", 0)
    r.hset(sale_key(product), mapping={"starts_at": "", "ends_at": ""})


def _reconcile_step(n: int) -> dict:
    """`seckill reconcile` of one sold-out sale of n items: time, peak memory, Redis's longest command."""
    import redis as redis_lib

    from seckill.measure import bench
    from seckill.system import reconcile
    from seckill.config import settings

    s = settings()
    run = uuid.uuid4().hex[:8]
    s = dataclasses.replace(s, queue=f"bench-scale-reconcile-{run}")  # an empty queue of its own
    r = redis_lib.Redis.from_url(s.redis_url, socket_timeout=30)
    product = RECONCILE_PRODUCT
    try:
        _sold_out_sale(s, r, product, n, run)
        _restart_peak()
        baseline = _peak_rss_mb()
        r.slowlog_reset()
        t0 = time.perf_counter()
        report = reconcile.reconcile(s, product_id=product, redis=r)
        seconds = time.perf_counter() - t0
        # SLOWLOG keeps commands slower than slowlog-log-slower-than (10 ms by default): while
        # one runs, Redis serves nobody else, so this is how long the live sale's buyers stood still
        longest = max((entry["duration"] for entry in r.slowlog_get(128)), default=0) / 1000
        if not report.consistent:
            raise ScaleError(f"reconcile found differences in a settled sale of {n:,}: {report}")
        return {"kind": "reconcile", "orders": n, "seconds": round(seconds, 3), "peak_rss_mb": _peak_rss_mb(),
                "baseline_rss_mb": baseline, "redis_longest_ms": round(longest, 1)}
    finally:
        bench._drop_product(s, product)
        r.unlink(f"buyers:{product}")
        r.delete(f"stock:{product}", f"sale:{product}")
        bench._delete_queue(s, s.queue)


def _first_indices(s, queue: str, k: int) -> list[int]:
    """Take (and ack) the first k messages of ``queue``; their publish indices, in the order they came."""
    connection = pika.BlockingConnection(pika.URLParameters(s.amqp_url))
    out = []
    try:
        channel = connection.channel()
        for _ in range(k):
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            out.append(int(json.loads(body)["order_id"].rsplit("-", 1)[1]))
    finally:
        if connection.is_open:
            connection.close()
    return out


def run(quick: bool = False, progress=True) -> dict:
    """Every size, drain then read, then reconcile of a sold-out sale, each in its own process; the record (saved)."""
    from seckill.measure import bench, results
    from seckill import stack

    if not stack.healthy():
        stack.up(out=None)
    rows = []
    plan = [(n, kind) for n in (QUICK_SIZES if quick else SIZES) for kind in ("drain", "read")]
    plan += [(n, "reconcile") for n in (QUICK_RECONCILE_SIZES if quick else RECONCILE_SIZES)]
    for n, kind in plan:
        load = os.getloadavg()[0]  # a busy machine, not the code, is the usual cause of a step out of line
        bench._say(progress, f"scale: {kind} of a sold-out sale of {n:,} items …" if kind == "reconcile"
                   else f"scale: {kind} of {n:,} queued orders …")
        done = subprocess.run([sys.executable, "-m", "seckill.measure.scale", kind, str(n)], capture_output=True,
                              text=True, timeout=1800)
        if done.returncode != 0:
            raise ScaleError(f"the {kind} step at {n:,} orders failed: "
                             f"{(done.stderr.strip().splitlines() or ['(no message)'])[-1][:200]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["seconds_per_1000"] = round(1000 * row["seconds"] / n, 4)
        row["load_avg"] = round(load, 1)
        bench._say(progress, f"scale: {kind} {n:,}: {row['seconds']:.1f} s, peak {row['peak_rss_mb']} MB"
                   + (f", Redis's longest command {row['redis_longest_ms']} ms" if "redis_longest_ms" in row else ""))
        rows.append(row)
    record = {"rows": rows, "quick": quick}
    path = results.save("scale", "", record)
    return {**json.loads(path.read_text()), "path": str(path)}


def _fmt_load(load: float | None) -> str:
    return "" if load is None else f"{load:.1f}"


def table(record: dict) -> str:
    """Time and peak memory per size, with the growth against the smallest size."""
    lines = [f"{'step':<9} {'orders':>9} {'seconds':>8} {'s / 1,000':>9} {'peak RSS MB':>11} {'vs smallest':>17} "
             f"{'Redis longest ms':>16} {'load':>5}"]
    smallest = {}
    for row in record["rows"]:
        base = smallest.setdefault(row["kind"], row)
        growth = (row["seconds_per_1000"] / base["seconds_per_1000"]) if base["seconds_per_1000"] else None
        longest = row.get("redis_longest_ms")
        lines.append(f"{row['kind']:<9} {row['orders']:>9,} {row['seconds']:>8.2f} {row['seconds_per_1000']:>9.3f} "
                     f"{row['peak_rss_mb']:>11.1f} {'' if growth is None else f'×{growth:.2f} per order':>17} "
                     f"{'' if longest is None else f'{longest:.1f}':>16} "
                     f"{_fmt_load(row.get('load_avg')):>5}")
    lines += ["",
              "time per order should stay flat (linear growth) and peak memory flat whatever the size: the drain",
              "holds one prefetch window, read one window of the queue (1,000 messages, counted as they come), and",
              "reconcile of a sold-out sale compares PostgreSQL's buyers with Redis's inside PostgreSQL (TEMP",
              "tables, anti-joins), holding one page of 1,000 at a time. Every read left the queue whole and in",
              "order. reconcile reads the Redis set in SSCAN pages, so no single command stalls Redis (and a live",
              "sale's buyers) for long: 'Redis longest ms' is the slowest command Redis logged meanwhile (SLOWLOG,",
              "commands over 10 ms; blank: none). 'load' is the machine's load average when the step began: on",
              "2 cores, a step that ran at load 8 and one at load 1 are not comparable."]
    if record.get("path"):
        lines.append(f"saved: {record['path']}")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    if kind == "reconcile" and 1 <= n <= MAX_RECONCILE_SIZE:
        print(json.dumps(_reconcile_step(n)))
    elif kind in ("drain", "read") and 1 <= n <= MAX_SIZE:
        print(json.dumps(_step(kind, n)))
    else:
        sys.exit(f"usage: python -m seckill.measure.scale drain|read N (1 <= N <= {MAX_SIZE:,}) "
                 f"or reconcile N (1 <= N <= {MAX_RECONCILE_SIZE:,})")

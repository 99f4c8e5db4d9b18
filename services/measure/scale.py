"""``seckill bench --scale``: how the order drain and reconcile's queue read grow with the backlog.

The bench measures the drain on 5,000 orders; a real sale can leave 100 times
that in the queue. Each size is measured in its own Python process (so its peak
resident memory, ``ru_maxrss``, is its own), on a queue of its own:

  * ``drain``: the order service's consumer (``handle_batch``, the service's
    batch size and prefetch) writing ``n`` queued orders into PostgreSQL;
  * ``read``: ``reconcile.read_queue`` reading ``n`` queued orders without
    taking them — then the queue must still hold all ``n``, in their order.

Sizes: 2,000 (the bench's scale), ×10 and ×100 (a 200,000-message backlog).
Time should grow linearly with n; the report prints seconds per 1,000 orders so
a worse-than-linear step shows at a glance. ``read_queue`` keeps every queued
order in memory (reconcile needs each one's buyer and product), so its memory
grows linearly too; the report says so rather than hiding it.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import time
import uuid

import pika

from seckill.errors import SeckillError

SIZES = (2_000, 20_000, 200_000)
QUICK_SIZES = (500, 5_000)
MAX_SIZE = 500_000
ORDER_CHECK = 2_000  # after a read, the first messages are taken back and must come in publish order


class ScaleError(SeckillError):
    """A scale step could not run or verify itself; the message says what to do."""


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


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
        baseline = _peak_rss_mb()
        if kind == "drain":
            consumer = impl.running("consumer").OrderConsumer(s.amqp_url, s.postgres_url, queue=queue,
                                                              **order_service.tuning())
            seconds, handled, written = bench.timed_drain(s, consumer, n, product)
            if handled != n or written != n:
                raise ScaleError(f"the drain handled {handled} and wrote {written} of {n} orders")
            extra = {}
        else:
            t0 = time.perf_counter()
            orders, complete = reconcile.read_queue(dataclasses.replace(s, queue=queue), timeout_s=600)
            seconds = time.perf_counter() - t0
            if not complete or len(orders) != n:
                raise ScaleError(f"read_queue saw {len(orders)} of {n} queued orders (complete={complete})")
            del orders
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
    """Every size, drain then read, each in its own process; the record (also saved under results/)."""
    from seckill.measure import bench, results
    from seckill import stack

    if not stack.healthy():
        stack.up(out=None)
    rows = []
    for n in (QUICK_SIZES if quick else SIZES):
        for kind in ("drain", "read"):
            bench._say(progress, f"scale: {kind} of {n:,} queued orders …")
            done = subprocess.run([sys.executable, "-m", "seckill.measure.scale", kind, str(n)], capture_output=True,
                                  text=True, timeout=1800)
            if done.returncode != 0:
                raise ScaleError(f"the {kind} step at {n:,} orders failed: "
                                 f"{(done.stderr.strip().splitlines() or ['(no message)'])[-1][:200]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["seconds_per_1000"] = round(1000 * row["seconds"] / n, 4)
            bench._say(progress, f"scale: {kind} {n:,}: {row['seconds']:.1f} s, peak {row['peak_rss_mb']} MB")
            rows.append(row)
    record = {"rows": rows, "quick": quick}
    path = results.save("scale", "", record)
    return {**json.loads(path.read_text()), "path": str(path)}


def table(record: dict) -> str:
    """Time and peak memory per size, with the growth against the smallest size."""
    lines = [f"{'step':<6} {'orders':>8} {'seconds':>8} {'s / 1,000':>9} {'peak RSS MB':>11} {'vs smallest':>11}"]
    smallest = {}
    for row in record["rows"]:
        base = smallest.setdefault(row["kind"], row)
        growth = (row["seconds_per_1000"] / base["seconds_per_1000"]) if base["seconds_per_1000"] else None
        lines.append(f"{row['kind']:<6} {row['orders']:>8,} {row['seconds']:>8.2f} {row['seconds_per_1000']:>9.3f} "
                     f"{row['peak_rss_mb']:>11.1f} {'' if growth is None else f'×{growth:.2f} per order':>11}")
    lines += ["",
              "time per order should stay flat (linear growth); read keeps every queued order in memory",
              "(reconcile needs each one's buyer), so its peak memory grows with the backlog — by design;",
              "the drain's stays flat (it holds one prefetch window). Every read left the queue whole and in order."]
    if record.get("path"):
        lines.append(f"saved: {record['path']}")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    if kind not in ("drain", "read") or not 1 <= n <= MAX_SIZE:
        sys.exit(f"usage: python -m seckill.measure.scale drain|read N (1 <= N <= {MAX_SIZE:,})")
    print(json.dumps(_step(kind, n)))

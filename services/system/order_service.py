"""The order service: the seed's "订单服务 (consume MQ + real decrement in the DB)".

It runs the chosen implementation's ``OrderConsumer`` (solutions/ or labs/)
and keeps it running: when RabbitMQ or PostgreSQL goes away, it waits and
reconnects by itself (bounded back-off), because an order service that needs a
human after every broker restart is an outage waiting to happen. Messages are
acked only after their transaction commits, so whatever was in flight when it
died is redelivered and the idempotent insert absorbs the repeat.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from seckill.system import impl
from seckill.config import settings
from seckill.errors import SeckillError

log = logging.getLogger("seckill.system.order_service")


def tuning() -> dict[str, int]:
    """Batch size and prefetch, from SECKILL_CONSUMER_BATCH / SECKILL_CONSUMER_PREFETCH if set.

    The service's defaults: batches of 200 with five batches (1,000 messages) prefetched. The
    consume loop writes a batch when it is full *or* when no message is waiting,
    so with prefetch equal to the batch size a busy queue still yields half-full
    batches (the broker refills the window only after each ack); five batches'
    worth in flight keeps them full. Failure labs shrink the batch to slow the
    drain down enough to kill it mid-way.
    """
    chosen = {}
    for key, env in (("batch_size", "SECKILL_CONSUMER_BATCH"), ("prefetch", "SECKILL_CONSUMER_PREFETCH")):
        raw = os.environ.get(env)
        if raw:
            chosen[key] = max(1, int(raw))
    chosen.setdefault("batch_size", 200)
    chosen.setdefault("prefetch", 5 * chosen["batch_size"])
    return chosen


# -- failure-lab injection point (off unless SECKILL_INJECT names it) -----------------------

INJECT_ENV = "SECKILL_INJECT"
CRASH_POINTS = ("after-commit", "before-commit")
CRASH_EXIT_CODE = 86


def crash_report_path() -> Path:
    """Where an injected crash writes which orders its batch held (the consumer-crash lab reads it)."""
    return settings().run_dir / "consumer-crash.json"


def inject_faults(consumer):
    """Arm the crash the consumer-crash lab asks for; without SECKILL_INJECT, change nothing.

    ``SECKILL_INJECT=consumer-crash:after-commit``: the process dies right after
    its first batch's transaction committed and before the batch is acked, the
    window where only the idempotent insert stands between a redelivery and a
    duplicate. ``consumer-crash:before-commit``: it dies with the batch written
    but not committed, so PostgreSQL rolls it back and the redelivery must write
    it once. Either way it dies like a kill -9 would: no cleanup, no ack.
    """
    spec = os.environ.get(INJECT_ENV, "")
    if not spec:
        return consumer
    kind, _, point = spec.partition(":")
    if kind != "consumer-crash" or point not in CRASH_POINTS:
        raise SeckillError(f"{INJECT_ENV}={spec!r}: use consumer-crash:after-commit or "
                           "consumer-crash:before-commit, or unset it")
    original = consumer.handle_batch

    def crash(orders: list[dict]) -> None:
        crash_report_path().write_text(json.dumps(
            {"point": point, "pid": os.getpid(), "order_ids": [o["order_id"] for o in orders]}))
        log.error("injected crash %s: %d orders handled, not acked; dying now", point, len(orders))
        os._exit(CRASH_EXIT_CODE)

    def after_commit(orders):
        original(orders)  # committed when it returns
        crash(orders)

    def before_commit(orders):
        conn = consumer._db()
        with conn.transaction():  # an outer transaction: the batch's own becomes a savepoint in it
            original(orders)
            crash(orders)  # the process dies inside the open transaction: PostgreSQL rolls it back

    consumer.handle_batch = after_commit if point == "after-commit" else before_commit
    log.warning("failure lab armed: the order service will crash %s its first batch", point)
    return consumer


def run_forever(max_backoff: float = 5.0) -> None:
    s = settings()
    consumer_mod = impl.running("consumer")
    stop = {"now": False}

    def on_term(signum, frame):
        stop["now"] = True
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    backoff = 0.2
    log.info("order service starting (impl=%s: %s, queue=%s)", impl.current(), impl.describe(), s.queue)
    while not stop["now"]:
        consumer = inject_faults(consumer_mod.OrderConsumer(s.amqp_url, s.postgres_url, queue=s.queue, **tuning()))
        started = time.monotonic()
        try:
            consumer.run()
            backoff = 0.2
        except (KeyboardInterrupt, SystemExit):
            break
        except Exception as exc:  # broker or database gone: wait, then reconnect
            if time.monotonic() - started > max_backoff:
                backoff = 0.2  # it had been running: an outage starts the back-off afresh
            log.warning("order service lost a dependency (%s: %s); reconnecting in %.1f s",
                        type(exc).__name__, exc, backoff)
            time.sleep(backoff)
            backoff = min(max_backoff, backoff * 2)
        finally:
            close = getattr(consumer, "close", None)
            if close:
                try:
                    close()
                except Exception:
                    pass
    log.info("order service stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pika logs every failed connection attempt as an ERROR with a traceback; while the
    # broker is down that buries the log, and run_forever says the same in one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    run_forever()


if __name__ == "__main__":
    main()

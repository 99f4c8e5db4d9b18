"""The order service: the seed's "订单服务 (consume MQ + real decrement in the DB)".

It runs the chosen implementation's ``OrderConsumer`` (solutions/ or labs/)
and keeps it running: when RabbitMQ or PostgreSQL goes away, it waits and
reconnects by itself (bounded back-off), because an order service that needs a
human after every broker restart is an outage waiting to happen. Messages are
acked only after their transaction commits, so whatever was in flight when it
died is redelivered and the idempotent insert absorbs the repeat.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from . import impl
from .config import settings

log = logging.getLogger("seckill.order_service")


def tuning() -> dict[str, int]:
    """Batch size and prefetch, from SECKILL_CONSUMER_BATCH / SECKILL_CONSUMER_PREFETCH if set.

    Failure labs shrink the batch to slow the drain down enough to kill it mid-way.
    """
    chosen = {}
    for key, env in (("batch_size", "SECKILL_CONSUMER_BATCH"), ("prefetch", "SECKILL_CONSUMER_PREFETCH")):
        raw = os.environ.get(env)
        if raw:
            chosen[key] = max(1, int(raw))
    return chosen


def run_forever(max_backoff: float = 5.0) -> None:
    s = settings()
    consumer_mod = impl.load("consumer")
    stop = {"now": False}

    def on_term(signum, frame):
        stop["now"] = True
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    backoff = 0.2
    log.info("order service starting (impl=%s, queue=%s)", impl.current(), s.queue)
    while not stop["now"]:
        consumer = consumer_mod.OrderConsumer(s.amqp_url, s.postgres_url, queue=s.queue, **tuning())
        try:
            consumer.run()
            backoff = 0.2
        except (KeyboardInterrupt, SystemExit):
            break
        except Exception as exc:  # broker or database gone: wait, then reconnect
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
    logging.getLogger("pika").setLevel(logging.WARNING)  # one line per order batch is enough
    run_forever()


if __name__ == "__main__":
    main()

"""The backlog alert: watch the order queue's depth and say so when it grows past a threshold.

Why the queue is the thing to watch: in this design a user hears "success" as
soon as the order is in RabbitMQ, so a stopped or slow order service hurts
nobody at first. The orders just wait. The only sign is a queue that keeps
growing, and the longer nobody notices, the longer users wait for their order
to turn "confirmed" (and the longer the drain takes once it is fixed). An
operator wants one line the moment the depth crosses a threshold, not a
dashboard they have to stare at.

    watcher = QueueWatcher(threshold=500, on_alert=print)   # samples in a thread
    watcher.start(); ...; watcher.stop()
    watcher.samples    # [(t, depth, consumers), ...] for a chart
    watcher.alerts     # [Alert(t, "fired", depth, threshold), Alert(..., "cleared", ...)]

``seckill watch-queue --threshold 500`` runs the same watcher beside a sale.

The rule (:class:`ThresholdAlert`) fires once when the depth goes *above* the
threshold and clears when it falls back to half of it. The gap (hysteresis)
keeps a depth hovering around the threshold from paging someone every second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, TextIO

import pika
import pika.exceptions


@dataclass(frozen=True)
class Alert:
    t: float          # seconds since the watcher started
    state: str        # "fired" or "cleared"
    depth: int
    threshold: int
    at: str = ""      # wall-clock time, for the printed line

    def line(self, queue: str = "orders") -> str:
        if self.state == "fired":
            return (f"ALERT {self.at} queue {queue!r} holds {self.depth} orders, above the threshold "
                    f"{self.threshold}: is the order service running? (`seckill tier status`)")
        return f"ok    {self.at} queue {queue!r} back to {self.depth} orders (alert cleared)"


class ThresholdAlert:
    """Fires when depth > threshold; clears when depth <= clear_at (half the threshold by default)."""

    def __init__(self, threshold: int, clear_at: int | None = None):
        if threshold < 1:
            raise ValueError("the threshold must be at least 1 order")
        self.threshold = threshold
        self.clear_at = threshold // 2 if clear_at is None else clear_at
        self.firing = False

    def observe(self, t: float, depth: int) -> Alert | None:
        """Feed one sample; returns an Alert when the state changes, else None."""
        at = datetime.now().strftime("%H:%M:%S")
        if not self.firing and depth > self.threshold:
            self.firing = True
            return Alert(round(t, 3), "fired", depth, self.threshold, at)
        if self.firing and depth <= self.clear_at:
            self.firing = False
            return Alert(round(t, 3), "cleared", depth, self.threshold, at)
        return None


class QueueDepthProbe:
    """Ready messages and consumers of a queue, over one long-lived connection.

    Opening a connection per sample would cost more than the sample; after a
    broker restart the next call reconnects. Returns None while the broker
    cannot be reached (a watcher must keep watching through an outage).
    """

    def __init__(self, amqp_url: str, queue: str):
        self.queue = queue
        self._parameters = pika.URLParameters(amqp_url)
        self._connection = None
        self._channel = None

    def __call__(self) -> tuple[int, int] | None:
        try:
            if self._channel is None or not self._channel.is_open:
                self.close()
                self._connection = pika.BlockingConnection(self._parameters)
                self._channel = self._connection.channel()
            ok = self._channel.queue_declare(self.queue, durable=True, passive=True).method
            return ok.message_count, ok.consumer_count
        except pika.exceptions.ChannelClosedByBroker:  # 404: the queue does not exist yet
            self._channel = None
            return 0, 0
        except (pika.exceptions.AMQPError, OSError):
            self.close()
            return None

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass


class QueueWatcher:
    """Samples a queue's depth every ``interval_s`` in a background thread, alerting on a threshold.

    Bounded: it stops by itself after ``max_s`` seconds even if nobody calls stop().
    """

    def __init__(self, probe: Callable[[], tuple[int, int] | None], threshold: int, *, interval_s: float = 0.1,
                 max_s: float = 300.0, on_alert: Callable[[Alert], None] | None = None,
                 clear_at: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.probe = probe
        self.rule = ThresholdAlert(threshold, clear_at)
        self.interval_s = interval_s
        self.max_s = max_s
        self.on_alert = on_alert
        self.clock = clock
        self.samples: list[tuple[float, int | None, int | None]] = []  # (t, depth, consumers)
        self.alerts: list[Alert] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = clock()

    def sample_once(self) -> tuple[int, int] | None:
        """Take one sample now (the thread calls this; tests and the CLI may too)."""
        got = self.probe()
        t = round(self.clock() - self.t0, 3)
        depth, consumers = got if got is not None else (None, None)
        self.samples.append((t, depth, consumers))
        if depth is not None:
            alert = self.rule.observe(t, depth)
            if alert:
                self.alerts.append(alert)
                if self.on_alert:
                    self.on_alert(alert)
        return got

    def _loop(self) -> None:
        deadline = self.t0 + self.max_s
        while not self._stop.is_set() and self.clock() < deadline:
            self.sample_once()
            self._stop.wait(self.interval_s)

    def start(self) -> "QueueWatcher":
        self._thread = threading.Thread(target=self._loop, name="queue-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def fired(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == "fired"]

    def __enter__(self) -> "QueueWatcher":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def watch(amqp_url: str, queue: str, threshold: int, *, interval_s: float = 1.0, duration_s: float = 600.0,
          out: TextIO, every: int = 1) -> QueueWatcher:
    """Watch in the foreground: one line per ``every`` samples, and the alert lines (``seckill watch-queue``)."""
    probe = QueueDepthProbe(amqp_url, queue)
    watcher = QueueWatcher(probe, threshold, interval_s=interval_s, max_s=duration_s,
                           on_alert=lambda a: print(a.line(queue), file=out, flush=True))
    deadline = watcher.t0 + duration_s
    n = 0
    try:
        while watcher.clock() < deadline:
            got = watcher.sample_once()
            if n % every == 0:
                stamp = datetime.now().strftime("%H:%M:%S")
                if got is None:
                    print(f"{stamp}  broker unreachable", file=out, flush=True)
                else:
                    print(f"{stamp}  depth {got[0]:>7}  consumers {got[1]}"
                          + ("  (ALERT)" if watcher.rule.firing else ""), file=out, flush=True)
            n += 1
            time.sleep(interval_s)
    finally:
        probe.close()
    return watcher

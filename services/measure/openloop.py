"""Open-loop load: requests sent on a fixed arrival schedule, latency measured from the intended send time.

wrk is a *closed-loop* generator: each connection sends its next request only
after the previous answer arrived. When the server stalls for 200 ms, the
requests that real users would have sent during those 200 ms are never sent,
so they are never counted as slow — the stall shows up as ONE slow request
instead of hundreds. That is *coordinated omission*: the generator coordinates
with the server it measures, and its p99 looks far better than what users saw.

An open-loop generator fixes the arrival rate instead: request ``i`` is due at
``t0 + i / rate`` whether or not earlier requests were answered, and its
latency runs from that *intended* send time to its answer. A request that had
to wait for the generator (a connection, a turn of the event loop) is counted
with that wait, as a user would feel it.

Why this tool: wrk2 (wrk corrected for coordinated omission) and vegeta are not
packaged in Debian bookworm; ``hey -q`` limits each worker's rate but every
worker still waits for its answer (closed per worker), and so do locust's
``constant_throughput`` users. So this is a small asyncio client on uvloop,
with keep-alive connections and httptools (the parser uvicorn uses) instead
of aiohttp — aiohttp's client cost several times more CPU per request, CPU
the two shared cores would take from the server being measured — split over
``processes`` OS processes so both cores can send.
Its own limit is measured in the same bench run against nginx's ``return
200`` (``send_lag`` — how late the generator itself sent — tells whether a
figure is the server's or the generator's).

Shapes and units: rates in requests/s, durations in s, latencies in ms.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from seckill.errors import SeckillError

MAX_REQUESTS = 1_000_000   # per run: every load loop here is bounded in count ...
REQUEST_TIMEOUT_S = 5.0    # ... and in time (an unanswered request counts as an error, status 0)
MAX_IN_FLIGHT = 512        # connections per process; a request waiting for one still counts that wait
PERCENTILES = (50.0, 99.0, 99.9)


class OpenLoopError(SeckillError):
    """The open-loop generator cannot run as asked; the message says what to do."""


# -- the arithmetic: schedule and percentiles (pure, unit-tested) ---------------------------

def intended_offsets(rate: float, duration_s: float, part: int = 0, parts: int = 1) -> list[float]:
    """Seconds after t0 at which each request of this part is due: request i at i / rate.

    The whole schedule has ``round(rate * duration_s)`` requests, evenly spaced;
    part ``k`` of ``parts`` takes every ``parts``-th request starting at ``k``,
    so parts running in separate processes together send the same schedule.
    """
    if not (isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate)):
        raise OpenLoopError(f"the arrival rate must be a positive number of requests/s, not {rate!r}")
    if not (isinstance(duration_s, (int, float)) and duration_s > 0 and math.isfinite(duration_s)):
        raise OpenLoopError(f"the duration must be a positive number of seconds, not {duration_s!r}")
    if not (isinstance(parts, int) and parts >= 1 and isinstance(part, int) and 0 <= part < parts):
        raise OpenLoopError(f"part {part!r} of {parts!r}: need 0 <= part < parts")
    total = round(rate * duration_s)
    if total > MAX_REQUESTS:
        raise OpenLoopError(f"{rate:g} requests/s for {duration_s:g} s is {total:,} requests; "
                            f"at most {MAX_REQUESTS:,} per run")
    return [i / rate for i in range(part, total, parts)]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of an ascending list; None when it is empty.

    Nearest rank never interpolates: the p99.9 of 1,000 values is the slowest one,
    a value some request really had.
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(round(q / 100.0 * len(sorted_values), 9)))  # 99.9 % of 1000 is 999, not 999.0000001
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Sample:
    """One request: when it was due, when the generator sent it, when its answer came (s), its status.

    status 0: no answer within REQUEST_TIMEOUT_S, or the connection failed.
    """

    intended: float
    sent: float
    done: float
    status: int


@dataclass
class Step:
    """The summary of one open-loop run at one arrival rate (what the bench reports per step)."""

    rate: float
    duration_s: float
    requests: int
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    service_p99_ms: float | None   # from the ACTUAL send: what a closed-loop tool would have reported
    send_lag_p99_ms: float | None  # how late the generator itself sent: large means the generator is the limit
    answered_per_s: float
    error_rate: float
    statuses: dict[int, int] = field(default_factory=dict)
    order_ids: list[str] = field(default_factory=list)
    started_at: float | None = None  # epoch s at which the first request was due (set by run())

    def as_record(self) -> dict:
        record = dict(self.__dict__)
        record.pop("order_ids")
        record["statuses"] = {str(k): v for k, v in self.statuses.items()}
        return record


def summarize(samples: list[Sample], rate: float, duration_s: float, order_ids: list[str] | None = None,
              ok_statuses: tuple[int, ...] = (200, 409)) -> Step:
    """Percentiles of latency from the intended send time, plus what a closed-loop tool would have seen.

    Errors are answers outside ``ok_statuses`` and requests without an answer;
    their latency still counts (a timeout is a slow answer, not a missing one).
    """
    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 2)

    latency = sorted(s.done - s.intended for s in samples)
    service = sorted(s.done - s.sent for s in samples)
    lag = sorted(s.sent - s.intended for s in samples)
    statuses: dict[int, int] = {}
    for s in samples:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    errors = sum(count for status, count in statuses.items() if status not in ok_statuses)
    answered = len(samples) - statuses.get(0, 0)
    span = (max(s.done for s in samples) - min(s.intended for s in samples)) if samples else 0.0
    return Step(rate=rate, duration_s=duration_s, requests=len(samples),
                p50_ms=ms(latency, 50), p99_ms=ms(latency, 99), p999_ms=ms(latency, 99.9),
                service_p99_ms=ms(service, 99), send_lag_p99_ms=ms(lag, 99),
                answered_per_s=round(answered / span, 1) if span > 0 else 0.0,
                error_rate=round(errors / len(samples), 5) if samples else 0.0,
                statuses=statuses, order_ids=list(order_ids or []))


# -- the generator: one process sends its part of the schedule -------------------------------

def _forwarded_for(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time (httptools parses the answer).

    Lean on purpose: aiohttp's client costs several times more CPU per request,
    and on two shared cores the generator's CPU is taken from the server it measures.
    """

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a malformed answer fails this request, never the generator
            self._fail(exc)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.answer and not self.answer.done():
            self.answer.set_result((self.parser.get_status_code(), b"".join(self.body)))
        if not self.parser.should_keep_alive():
            self.closed = True

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("closed by the server"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self.answer and not self.answer.done():
            self.answer.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))

    def request(self, raw: bytes) -> asyncio.Future:
        self.body = []
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.answer


async def _send_part(url: str, offsets: list[float], start_at: float, run: str, part: int) -> tuple[list, list]:
    from urllib.parse import urlsplit

    loop = asyncio.get_running_loop()
    clock = time.monotonic  # CLOCK_MONOTONIC: one clock for every process (uvloop's loop.time() has ms steps)
    target = urlsplit(url)
    host, port, path = target.hostname, target.port or 80, target.path or "/"
    samples: list[Sample] = []
    order_ids: list[str] = []
    idle: list[_Connection] = []
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)  # a request waiting for a slot still counts that wait

    async def one(i: int, intended: float) -> None:
        status = 0
        body = f'{{"user_id": "{run}-{part}-{i}"}}'.encode()
        raw = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"X-Forwarded-For: {_forwarded_for(i)}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        deadline = intended + REQUEST_TIMEOUT_S  # no answer within 5 s of its intended time: an error
        try:
            await asyncio.wait_for(slots.acquire(), max(0.0, deadline - clock()))
        except asyncio.TimeoutError:  # never got a connection: counted, not sent (keeps the run bounded)
            samples.append(Sample(intended, clock(), clock(), 0))
            return
        try:
            sent = clock()
            conn = None
            try:
                while idle and conn is None:
                    candidate = idle.pop()
                    conn = None if candidate.closed else candidate
                if conn is None:
                    _, conn = await loop.create_connection(_Connection, host, port)
                status, answer = await asyncio.wait_for(conn.request(raw), max(0.001, deadline - clock()))
                if status == 200 and answer.startswith(b"{"):
                    order_id = json.loads(answer).get("order_id")
                    if order_id:
                        order_ids.append(str(order_id))
                if not conn.closed:
                    idle.append(conn)
            except (asyncio.TimeoutError, OSError, ValueError, ConnectionError):
                status = status if status and status != 200 else 0
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
        finally:
            slots.release()
        samples.append(Sample(intended, sent, clock(), status))

    t0 = clock() + (start_at - time.time())  # every part's schedule starts on the same instant
    tasks = []
    for i, offset in enumerate(offsets):
        due = t0 + offset
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))  # fired whether or not earlier ones answered
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.transport.close()
    return samples, order_ids


def _part_main(argv: list[str]) -> None:
    """``python -m seckill.measure.openloop URL RATE DURATION PART PARTS RUN``: one part of the schedule.

    Prints "ready" once its imports are done, reads the start instant (epoch s) from
    stdin, sends, then prints its samples as one JSON line.
    """
    url, rate, duration_s, part, parts, run = argv
    offsets = intended_offsets(float(rate), float(duration_s), int(part), int(parts))
    import httptools  # noqa: F401  (imported before "ready": a slow start must not make requests late)
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a course dependency
        pass
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    samples, order_ids = asyncio.run(_send_part(url, offsets, start_at, run, int(part)))
    json.dump({"samples": [[s.intended, s.sent, s.done, s.status] for s in samples], "order_ids": order_ids},
              sys.stdout)


def run(url: str, rate: float, duration_s: float, *, processes: int = 2) -> Step:
    """Send ``rate`` requests/s for ``duration_s`` to ``url`` (loopback only), open loop; the Step it measured.

    Every request is a new user (``user_id`` distinct, ``X-Forwarded-For`` 10.x.y.z)
    POSTing to the buy URL. ``processes`` OS processes each send every
    ``processes``-th request of one schedule, all starting on the same instant.
    """
    if not url.startswith("http://127.0.0.1:"):
        raise OpenLoopError(f"the generator only loads this machine (127.0.0.1), not {url}")
    intended_offsets(rate, duration_s)  # checks the arguments before any process starts
    run_tag = uuid.uuid4().hex[:10]
    children = [subprocess.Popen([sys.executable, "-m", "seckill.measure.openloop", url, repr(float(rate)),
                                  repr(float(duration_s)), str(k), str(processes), run_tag],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for k in range(processes)]
    limit = duration_s + REQUEST_TIMEOUT_S + 60
    outputs = []
    try:
        for child in children:  # bounded: a child that cannot start exits, and readline returns ""
            if child.stdout.readline().strip() != "ready":
                child.wait(timeout=30)
                raise OpenLoopError(f"an open-loop process did not start: {child.stderr.read().strip()[-200:]}")
        start_at = time.time() + 0.05  # every part's schedule starts on this instant
        for child in children:
            child.stdin.write(f"{start_at!r}\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=limit)
            if child.returncode != 0:
                raise OpenLoopError(f"an open-loop process failed (exit {child.returncode}): "
                                    f"{err.strip().splitlines()[-1][:200] if err.strip() else '(no message)'}")
            outputs.append(json.loads(out))
    except subprocess.TimeoutExpired:
        raise OpenLoopError(f"the open-loop generator did not finish within {limit:.0f} s") from None
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    samples = [Sample(*row) for out in outputs for row in out["samples"]]
    step = summarize(samples, rate, duration_s, [i for out in outputs for i in out["order_ids"]])
    step.started_at = start_at
    return step


if __name__ == "__main__":
    _part_main(sys.argv[1:])

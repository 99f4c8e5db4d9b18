"""seckill.measure.openloop: the open-loop schedule and its latency arithmetic (no stack, no timing asserted)."""

from __future__ import annotations

import pytest

from seckill.measure import openloop
from seckill.measure.openloop import Sample


def test_the_schedule_is_evenly_spaced_at_the_rate():
    offsets = openloop.intended_offsets(4, 2.0)
    assert offsets == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert len(openloop.intended_offsets(1000, 3.0)) == 3000


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_parts_together_send_exactly_the_whole_schedule(parts):
    whole = openloop.intended_offsets(333, 1.5)
    split = [openloop.intended_offsets(333, 1.5, k, parts) for k in range(parts)]
    assert sorted(x for part in split for x in part) == whole
    assert max(len(p) for p in split) - min(len(p) for p in split) <= 1  # each process gets its share


@pytest.mark.parametrize("args", [(0, 1.0), (-5, 1.0), (float("nan"), 1.0), (10, 0), (10, float("inf")),
                                  (10, 1.0, 2, 2), (2_000_000, 1.0)])
def test_bad_schedules_are_one_line_errors(args):
    with pytest.raises(openloop.OpenLoopError) as caught:
        openloop.intended_offsets(*args)
    assert "\n" not in str(caught.value)


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 1001)]  # 1 .. 1000
    assert openloop.percentile(values, 50) == 500
    assert openloop.percentile(values, 99) == 990
    assert openloop.percentile(values, 99.9) == 999
    assert openloop.percentile(values, 100) == 1000
    assert openloop.percentile([7.0], 99.9) == 7.0
    assert openloop.percentile([], 50) is None


def test_a_stall_counts_for_every_request_that_was_due_during_it():
    # 1,000 requests due every 1 ms; the server answers in 1 ms, except that it stalls 200 ms at
    # t = 0.5 s: requests due during the stall are sent on time (open loop) but answered only when it ends.
    samples = []
    for i in range(1000):
        due = i / 1000
        done = max(due, 0.7) + 0.001 if 0.5 <= due < 0.7 else due + 0.001
        samples.append(Sample(intended=due, sent=due, done=done, status=200))
    step = openloop.summarize(samples, rate=1000, duration_s=1.0)
    assert step.p50_ms == 1.0
    assert step.p99_ms > 150 and step.p999_ms > 190  # 20 % of requests waited: p99 sees the stall
    assert step.error_rate == 0 and step.requests == 1000


def test_latency_runs_from_the_intended_time_not_from_the_late_send():
    # the generator itself fell behind by 50 ms: the server answered fast, the user still waited
    samples = [Sample(intended=i / 100, sent=i / 100 + 0.05, done=i / 100 + 0.051, status=409) for i in range(100)]
    step = openloop.summarize(samples, rate=100, duration_s=1.0)
    assert step.p50_ms == pytest.approx(51.0) and step.service_p99_ms == pytest.approx(1.0)
    assert step.send_lag_p99_ms == pytest.approx(50.0)


def test_errors_and_timeouts_count_in_the_error_rate_and_in_latency():
    samples = [Sample(0.0, 0.0, 0.002, 200), Sample(0.01, 0.01, 0.012, 409),
               Sample(0.02, 0.02, 0.025, 503), Sample(0.03, 0.03, 5.03, 0)]
    step = openloop.summarize(samples, rate=100, duration_s=0.04, order_ids=["a"])
    assert step.error_rate == 0.5 and step.statuses == {200: 1, 409: 1, 503: 1, 0: 1}
    assert step.p999_ms == pytest.approx(5000.0)
    record = step.as_record()
    assert "order_ids" not in record and record["statuses"] == {"200": 1, "409": 1, "503": 1, "0": 1}


def test_only_loopback_is_loaded():
    with pytest.raises(openloop.OpenLoopError, match="127.0.0.1"):
        openloop.run("http://example.com/api/seckill/1", 10, 1.0)

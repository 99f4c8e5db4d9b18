"""The queue failure labs on the real stack: mq-down, consumer-crash, backlog, and the backlog alert.

Each scenario really stops RabbitMQ, really kills the order service, really
lets the queue grow; the test asserts its invariants held (oversold 0, no
duplicate, nothing confirmed lost, Redis = PostgreSQL) plus the figures that
prove the fault happened (503s were answered, a batch was in PostgreSQL when
the consumer died, the alert fired).
"""

from __future__ import annotations

import json

import pika
import pytest
from click.testing import CliRunner

from seckill.measure import alerts
from seckill import chaos, stack
from seckill.system import order_service, tiers
from seckill.stack import processes
from seckill.cli import main
from seckill.errors import SeckillError

from conftest import BURST_LIMITS


@pytest.fixture(scope="module")
def queue_tiers(stack_urls):
    """Scenarios start the tier they are given; stop whatever ran at the end of the module."""
    yield
    tiers.down(out=None)


def held(report) -> dict[str, bool]:
    return {c.name: c.held for c in report.checks}


def assert_ok(report) -> None:
    assert report.ok, str(report)
    assert stack.healthy(), "the scenario must leave every service running"
    assert tiers.current() is not None, "the scenario must leave the tier (order service included) running"


# -- the injection point -------------------------------------------------------------------

def test_crash_injection_is_off_by_default(monkeypatch, stack_urls):
    from solutions.consumer import OrderConsumer

    monkeypatch.delenv(order_service.INJECT_ENV, raising=False)
    consumer = OrderConsumer("amqp://127.0.0.1:1/", "postgresql://127.0.0.1:1/x")
    assert order_service.inject_faults(consumer) is consumer
    assert consumer.handle_batch.__func__ is OrderConsumer.handle_batch, "nothing may be wrapped"

    monkeypatch.setenv(order_service.INJECT_ENV, "consumer-crash:after-commit")
    armed = order_service.inject_faults(OrderConsumer("amqp://127.0.0.1:1/", "postgresql://127.0.0.1:1/x"))
    assert getattr(armed.handle_batch, "__func__", None) is not OrderConsumer.handle_batch

    monkeypatch.setenv(order_service.INJECT_ENV, "consumer-crash:sometimes")
    with pytest.raises(SeckillError, match="after-commit or"):
        order_service.inject_faults(OrderConsumer("amqp://127.0.0.1:1/", "postgresql://127.0.0.1:1/x"))


# -- the scenarios ---------------------------------------------------------------------------

def test_mq_down_on_flask(queue_tiers):
    tiers.up("flask", limits=BURST_LIMITS, out=None)
    report = chaos.run("mq-down", save=False, tier="flask", before=60, during=40, after=60)
    assert_ok(report)
    m = report.metrics
    assert m["answers_503"] >= 40, "every buy while the broker was down is a 503"
    assert m["reserved_while_down"] == 0
    assert m["kept_by_queue"] >= 60, "the orders confirmed before the stop waited in the broker"
    assert m["gateway_reconnect_s"] is not None and m["consumer_reconnect_s"] is not None
    assert 503 in report.series["status"] and 200 in report.series["status"]


def test_consumer_crash_after_commit_and_before_commit(queue_tiers):
    report = chaos.run("consumer-crash", save=False, tier="flask", orders=80)
    assert_ok(report)
    rounds = report.metrics["rounds"]
    after, before = rounds["after-commit"], rounds["before-commit"]
    assert after["batch"] > 0 and after["in_pg_after_crash"] == after["batch"], after
    assert before["batch"] > 0 and before["in_pg_after_crash"] == 0, before
    for figures in (after, before):
        assert figures["queue_after_crash"] == figures["confirmed"], "nothing was acked before the crash"
        assert figures["written_after_restart"] == figures["confirmed"]
        assert figures["refused_as_repeats"] == 0
    assert report.metrics["duplicate_users"] == 0 and report.metrics["lost"] == 0
    assert order_service.crash_report_path().exists() is False


def test_backlog_alert_fires_and_the_queue_drains(queue_tiers, capsys):
    report = chaos.run("backlog", save=False, tier="flask", requests=500, threshold=150)
    assert_ok(report)
    m = report.metrics
    assert m["peak_depth"] > 150 and m["alert_depth"] > 150
    assert [a["state"] for a in report.series["alerts"]] == ["fired", "cleared"]
    assert m["drain_per_s"] > 0 and m["drain_s"] > 0
    assert "ALERT" in capsys.readouterr().out, "the alert is printed where the learner sees it (stdout: in a lab it is the lesson, not an error)"


def test_mq_down_on_fastapi(queue_tiers):
    report = chaos.run("mq-down", save=False, tier="fastapi", before=40, during=30, after=40)
    assert_ok(report)
    assert report.metrics["tier"] == "fastapi"


def test_a_chaos_report_is_saved_and_charted(queue_tiers, tmp_path, monkeypatch):
    from seckill.measure import results
    from seckill.chaos import backlog

    monkeypatch.setenv("SECKILL_RESULTS_DIR", str(tmp_path))
    chaos.run("backlog", tier="fastapi", requests=120, threshold=60)
    saved = results.newest("chaos", scenario="backlog")
    assert saved and saved["ok"] and saved["metrics"]["peak_depth"] >= 60
    fig = backlog.chart(saved)
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


# -- the alert on its own: a real queue with a known depth ---------------------------------------

def publish(amqp_url: str, queue: str, n: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        for i in range(n):
            channel.basic_publish("", queue, json.dumps({"n": i}).encode())
    finally:
        connection.close()


def test_alert_fires_above_the_threshold_and_not_at_or_below(amqp_url, fresh_queue):
    publish(amqp_url, fresh_queue, 30)
    probe = alerts.QueueDepthProbe(amqp_url, fresh_queue)
    try:
        assert processes.wait_until(lambda: (probe() or (0, 0))[0] == 30, timeout=10), "30 messages not seen"
        quiet = alerts.QueueWatcher(probe, threshold=30)
        for _ in range(3):
            quiet.sample_once()
        assert quiet.alerts == [] and [d for _, d, _ in quiet.samples] == [30, 30, 30]

        loud = alerts.QueueWatcher(probe, threshold=29)
        for _ in range(3):
            loud.sample_once()
        assert [(a.state, a.depth) for a in loud.alerts] == [("fired", 30)], "one alert, not one per sample"
    finally:
        probe.close()


def test_alert_clears_only_well_below_the_threshold():
    rule = alerts.ThresholdAlert(100)
    seen = [rule.observe(t, depth) for t, depth in enumerate([50, 101, 99, 120, 60, 51, 50, 101])]
    assert [(a.state, a.depth) if a else None for a in seen] == [
        None, ("fired", 101), None, None, None, None, ("cleared", 50), ("fired", 101)]
    with pytest.raises(ValueError):
        alerts.ThresholdAlert(0)


def test_watcher_keeps_watching_through_a_broker_outage():
    probe = alerts.QueueDepthProbe("amqp://guest:guest@127.0.0.1:1/%2F?connection_attempts=1", "nowhere")
    watcher = alerts.QueueWatcher(probe, threshold=1)
    assert watcher.sample_once() is None
    assert watcher.samples[-1][1:] == (None, None) and watcher.alerts == []


def test_watch_queue_command_prints_depth_and_the_alert(amqp_url, fresh_queue, monkeypatch):
    publish(amqp_url, fresh_queue, 12)
    monkeypatch.setenv("SECKILL_QUEUE", fresh_queue)
    result = CliRunner().invoke(main, ["watch-queue", "--threshold", "10", "--interval", "0.1", "--duration", "1"])
    assert result.exit_code == 0, result.output
    assert "depth      12" in result.output
    assert "ALERT" in result.output and "above the threshold 10" in result.output

    result = CliRunner().invoke(main, ["watch-queue", "--threshold", "0"])
    assert result.exit_code == 2 and "threshold" in result.output

"""seckill.measure.loadtest: a short, real locust run against the Flask tier; the sale's promises hold.

Only invariants are asserted, never a speed: the numbers depend on the machine.
Results go to a temporary SECKILL_RESULTS_DIR, never into the learner's results/.
"""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import pytest
from click.testing import CliRunner

from seckill.measure import charts, loadtest
from seckill.system import tiers
from seckill.cli import main

from conftest import BURST_LIMITS

USERS, SPAWN_RATE, DURATION_S, STOCK, PER_USER = 800, 200, 8, 300, 4


@pytest.fixture(scope="module")
def load_test_tier(stack_urls):
    """Locust's FastHttpUser cannot connect from an address per user: the tier runs with its
    load-test switch (X-Forwarded-For believed from loopback), as `seckill tier up flask --load-test`."""
    state = tiers.up("flask", limits=BURST_LIMITS, out=None, extra_env={"SECKILL_LOADTEST_FORWARDED": "1"})
    yield state
    tiers.down(out=None)


@pytest.fixture(scope="module")
def result(load_test_tier, results_dir):
    return loadtest.run("flask", product_id=301, users=USERS, spawn_rate=SPAWN_RATE, duration_s=DURATION_S,
                        stock=STOCK, requests_per_user=PER_USER, label="test run", progress=False)


def test_the_sale_keeps_its_promises_under_locust(result):
    inv, s = result.invariants, result.summary
    print("\nlocust:", {k: s[k] for k in ("requests", "requests_per_s", "p50_ms", "p95_ms", "p99_ms",
                                          "processes", "elapsed_s")})
    assert inv["drained"], inv
    assert inv["oversold"] == 0 and inv["lost"] == 0 and inv["unexpected"] == 0, inv
    assert inv["duplicate_users"] == 0 and inv["distinct_users"] == inv["orders"], inv
    # more requests than stock: exactly the stock is sold, and every sale was confirmed to a user
    assert USERS * PER_USER > STOCK
    assert inv["orders"] == inv["confirmed_to_users"] == inv["successes"] == s["success"] == STOCK, (s, inv)
    assert inv["pg_stock"] == 0 and inv["redis_stock"] == 0 and inv["ok"], inv


def test_outcomes_are_counted_apart_and_409_is_no_failure(result):
    s = result.summary
    counts = {k: s[k] for k in loadtest.OUTCOMES}
    assert sum(counts.values()) == s["requests"] <= USERS * PER_USER, s
    assert counts["sold_out"] > 0, s
    assert counts["server_error"] == counts["client_error"] == counts["failed"] == 0, s
    assert s["failures"] == 0, "409 sold_out / already_bought must not count as failures"
    assert s["generator"] == "locust FastHttpUser" and s["tier"] == "flask" and s["label"] == "test run"
    assert s["processes"] == loadtest.default_processes()


def test_history_is_one_row_per_second(result):
    h = result.history
    assert isinstance(h, pd.DataFrame) and len(h) >= 1
    assert list(h.columns) == list(loadtest.HISTORY_COLUMNS)
    assert h["time_s"].is_monotonic_increasing and h["users"].max() > 0
    assert h["requests_per_s"].sum() > 0


def test_the_stores_are_sampled_through_the_run_and_the_drain(result):
    st = result.stores
    assert list(st.columns) == ["time_s", "redis_stock", "held_locally", "queue_depth", "pg_orders", "pg_stock"]
    assert len(st) >= 3 and st["time_s"].is_monotonic_increasing
    assert st["redis_stock"].iloc[0] > st["redis_stock"].iloc[-1] == 0  # the stock ran out during the run
    last = st.iloc[-1]  # sampled after the drain: everything sold is in PostgreSQL
    assert last["pg_orders"] == STOCK and last["pg_stock"] == 0 and last["queue_depth"] == 0


def test_the_run_is_saved_and_reads_back(result, results_dir):
    assert result.path.parent == results_dir and result.path.name.endswith("-flask.json")
    saved = json.loads(result.path.read_text())
    assert saved["summary"]["requests"] == result.summary["requests"]
    assert saved["invariants"]["oversold"] == 0 and saved["machine"]["cpu_count"]
    runs = loadtest.load_results()
    assert runs and runs[0]["summary"]["name"] == result.summary["name"]
    assert len(runs[0]["history"]) == len(result.history)
    assert len(runs[0]["stores"]) == len(result.stores)


def test_every_chart_is_a_figure_with_data(result):
    saved = loadtest.load_results()[0]
    for fig in (charts.throughput_latency(result), charts.outcomes(result), charts.throughput_latency(saved),
                charts.compare_tiers([result, saved]), charts.stores(result), charts.stores(saved)):
        assert isinstance(fig, go.Figure) and len(fig.data) > 0 and fig.layout.title.text


def test_cli_runs_a_small_load_and_prints_the_invariants(load_test_tier, results_dir):
    out = CliRunner().invoke(main, ["load", "flask", "--users", "60", "--spawn-rate", "60", "--duration", "4",
                                    "--product", "302", "--stock", "20", "--processes", "1", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["summary"]["success"] == data["invariants"]["orders"] == 20, data
    assert data["invariants"]["oversold"] == 0 and data["invariants"]["lost"] == 0
    assert data["summary"]["processes"] == 1


def test_cli_unknown_tier_is_one_line():
    out = CliRunner().invoke(main, ["load", "nosuch", "--users", "5", "--spawn-rate", "5", "--duration", "2"])
    assert out.exit_code != 0
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "nosuch" in lines[0] and "Traceback" not in out.output


def test_cli_without_duration_is_a_usage_error():
    out = CliRunner().invoke(main, ["load", "flask", "--users", "5", "--spawn-rate", "5"])
    assert out.exit_code == 2 and "--duration" in out.output

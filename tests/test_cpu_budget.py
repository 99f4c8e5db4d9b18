"""cpu_budget: CPU per item by server, read from the kernel's counters of the stack's own processes."""

from __future__ import annotations

import time

import psycopg
import pytest

from seckill.measure import cpu_budget

BURN_LUA = "local i = 0 while i < 20000000 do i = i + 1 end return i"


def test_the_server_that_burned_the_cpu_is_named(s, redis_client, pg_dsn):
    before = cpu_budget.snapshot(s.run_dir)
    redis_client.eval(BURN_LUA, 0)  # Redis busy in its own process
    with psycopg.connect(pg_dsn) as conn:  # PostgreSQL busy in a backend, a child of the postmaster
        conn.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()
        after = cpu_budget.snapshot(s.run_dir)  # while the backend lives: its counters end with it
    spent = cpu_budget.per_item(before, after, items=1)
    assert spent["redis"] >= 100 and spent["postgres"] >= 100, spent
    assert spent["total"] >= spent["redis"] + spent["postgres"], spent
    servers = [name for name in spent if name not in ("other", "generator", "total")]  # largest first
    assert list(spent)[-1] == "total" and set(servers[:2]) == {"redis", "postgres"}, spent


def test_the_generator_is_this_process_and_its_children(s):
    before = cpu_budget.snapshot(s.run_dir)
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    spent = cpu_budget.per_item(before, cpu_budget.snapshot(s.run_dir), items=2)
    assert spent["generator"] >= 80, spent  # 200 ms over 2 items


def test_per_item_needs_an_item_and_cores_follow_the_rate():
    with pytest.raises(ValueError, match="at least 1"):
        cpu_budget.per_item(cpu_budget.Snapshot(), cpu_budget.Snapshot(), 0)
    assert cpu_budget.cores_needed(4.0, 10_000) == 40.0

"""Reconcile stays bounded in memory, whatever the size of the sale (issue 16, real stores).

`seckill reconcile` of a sold-out sale of 200,000 items, in a process of its own
(``seckill.measure.scale``'s reconcile step: its peak RSS is its own): the peak may
rise at most BOUND_MB above the process's baseline. The set-based reconcile it
replaced held PostgreSQL's and Redis's buyers in Python sets (+55 MB here, 411 MB
for a sale of 1,000,000); that wrong version is in WRONG below, and the test of
the test watches it break the bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seckill.stack import db
from seckill.system import reconcile

SALE = 200_000
BOUND_MB = 20.0  # a page of 1,000 buyers is a few hundred kB; 200,000 in sets take about 55 MB
TESTS = Path(__file__).resolve().parent


def holds_the_sets(s, r, product_id=None, queue_timeout_s=30.0, conn=None) -> dict:
    """Wrong: reconcile's snapshot before issue 16 — every buyer of PostgreSQL, of the queue and of
    Redis in Python sets, compared in Python (right answers, memory linear in the sale). Report only:
    it fills none of the TEMP tables the fixes read."""
    from seckill.system.reconcile import SAMPLE, Snapshot, Users

    with db.connect(s.postgres_url) as pg:
        rows = pg.execute("SELECT id, stock, initial_stock, starts_at, ends_at FROM products WHERE "
                          "(%(pid)s::bigint IS NULL OR id = %(pid)s) ORDER BY id", {"pid": product_id}).fetchall()
        users: dict[int, set[str]] = {row[0]: set() for row in rows}
        for pid, user in pg.execute("SELECT product_id, user_id FROM orders WHERE product_id = ANY(%s)",
                                    (list(users),)):
            users[pid].add(user)
    queued, complete = reconcile.read_queue(s, timeout_s=queue_timeout_s)
    pending: dict[int, set[str]] = {pid: set() for pid in users}
    for order in queued:
        pid = reconcile._as_int(order["product_id"])
        if pid in users and str(order["user_id"]) not in users[pid]:
            pending[pid].add(str(order["user_id"]))
    out = {}
    for pid, stock, initial, starts, ends in rows:
        held, stranded = reconcile._leases(r, pid)
        raw = r.get(f"stock:{pid}")
        in_redis = {m.decode() if isinstance(m, bytes) else m for m in r.sscan_iter(f"buyers:{pid}", count=1000)}
        expected = users[pid] | pending[pid]
        missing, extra = expected - in_redis, in_redis - expected
        out[pid] = Snapshot(pid, stock, initial, len(users[pid]), len(pending[pid]), complete, held, stranded,
                            None if raw is None else int(raw), len(in_redis),
                            Users(len(missing), set(sorted(missing)[:SAMPLE])),
                            Users(len(extra), set(sorted(extra)[:SAMPLE])),
                            bool(r.exists(f"sale:{pid}")), (starts, ends))
    return out


WRONG = {"holds-the-sets": holds_the_sets}


def reconcile_in_its_own_process(n: int, wrong: str | None = None) -> dict:
    """The scale bench's reconcile step of a sold-out sale of n (optionally with a WRONG snapshot): its row."""
    code = ("import json, sys\n"
            f"sys.path.insert(0, {str(TESTS)!r})\n"
            "from seckill.measure import scale\n"
            "from seckill.system import reconcile\n"
            + (f"import test_reconcile_memory as t\nreconcile.snapshot = t.WRONG[{wrong!r}]\n" if wrong else "")
            + f"print(json.dumps(scale._reconcile_step({n})))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_reconcile_of_a_sale_of_200000_stays_within_its_memory_bound(stack_urls):
    row = reconcile_in_its_own_process(SALE)
    print(f"\nreconcile of {SALE:,}: {row}")
    assert row["orders"] == SALE and row["seconds"] > 0, row
    assert row["peak_rss_mb"] - row["baseline_rss_mb"] < BOUND_MB, row


@pytest.mark.parametrize("wrong", sorted(WRONG))
def test_the_test_catches_a_reconcile_that_holds_the_sets(stack_urls, wrong):
    row = reconcile_in_its_own_process(SALE, wrong)
    print(f"\n{wrong} reconcile of {SALE:,}: {row}")
    assert row["peak_rss_mb"] - row["baseline_rss_mb"] >= BOUND_MB, row

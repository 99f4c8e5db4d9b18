"""The drain bench's third variant: each batch by COPY into a staging table, then INSERT … SELECT.

Against the real PostgreSQL and RabbitMQ of the test stack. The variant is only a
fair comparison if it writes what handle_batch writes: the same orders, stock,
refusals and answers, batch after batch on one connection; and the bench must
refuse a figure from a variant that loses rows. Speeds are never asserted.
"""

from __future__ import annotations

import psycopg
import pytest

import solutions.consumer as reference
from seckill.measure import bench

from test_solutions_consumer import add_products, order, snapshot, tricky_batch


@pytest.fixture
def copy_consumer(amqp_url, pg_dsn, fresh_queue):
    consumer = bench._copy_staged(reference)(amqp_url, pg_dsn, queue=fresh_queue, prefetch=50, batch_size=20)
    yield consumer
    consumer.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # products 1-3 left behind would be sales without
        conn.execute("TRUNCATE orders, order_rejections, products")  # Redis stock to later tests (503)


def fresh(pg_dsn: str, **stock: int) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE orders, order_rejections, products")
    add_products(pg_dsn, **stock)


def test_copy_variant_writes_what_handle_batch_writes(copy_consumer, amqp_url, pg_dsn, fresh_queue):
    batched = reference.OrderConsumer(amqp_url, pg_dsn, queue=fresh_queue, prefetch=50, batch_size=20)
    batch = tricky_batch() + [order(100, user="earlier", product=1), order(101, product=404)]
    results = {}
    try:
        for name, consumer in (("batched", batched), ("copy", copy_consumer)):
            fresh(pg_dsn, p1=10, p2=12, p3=1)
            batched.handle(order(100, user="earlier", product=1))  # a pre-existing order and rejection
            batched.handle(order(101, product=404))
            answers = [consumer.handle_batch(batch), consumer.handle_batch(batch)]  # then the whole batch again
            results[name] = (answers, snapshot(pg_dsn))
    finally:
        batched.close()
    assert results["copy"] == results["batched"]
    answers, state = results["copy"]
    assert sum(answers[0]) == 9 + 12 and answers[1] == [False] * len(batch)  # the copy changes nothing
    assert state["stock"] == {1: 0, 2: 0, 3: 1} and len(state["orders"]) == 1 + 9 + 12


def test_copy_variant_keeps_the_earliest_and_empties_its_staging_table(copy_consumer, pg_dsn):
    fresh(pg_dsn, p1=3, p2=2)
    assert copy_consumer.handle_batch([order(n, seconds=10 - n) for n in range(1, 7)]) == [False] * 3 + [True] * 3
    assert copy_consumer.handle_batch([order(n, product=2) for n in range(7, 9)]) == [True, True]
    state = snapshot(pg_dsn)
    assert [row[0] for row in state["orders"]] == ["o-4", "o-5", "o-6", "o-7", "o-8"]
    assert state["stock"] == {1: 0, 2: 0}
    staged = copy_consumer._db().execute(f"SELECT count(*) FROM {bench.STAGING}").fetchone()[0]
    copy_consumer._db().rollback()
    assert staged == 0, "each commit must leave the staging table empty"


def test_the_drain_reports_copy_beside_batched(stack_urls):
    record = bench.drain(300, progress=False)
    assert record["orders"] == 300
    assert record["batched_orders_per_s"] > 0 and record["one_per_tx_orders_per_s"] > 0
    assert record["copy_orders_per_s"] > 0
    assert record["copy_ratio"] == pytest.approx(record["copy_orders_per_s"] / record["batched_orders_per_s"], abs=0.006)


def test_a_copy_variant_that_drops_rows_gets_no_figure(stack_urls, monkeypatch):
    real = bench._copy_staged

    def lossy(consumer_mod):
        class Lossy(real(consumer_mod)):
            def insert_orders(self, cur, orders):
                return super().insert_orders(cur, orders[:-1])  # the last order of every batch never written
        return Lossy

    monkeypatch.setattr(bench, "_copy_staged", lossy)
    with pytest.raises(bench.BenchError, match=r"wrote \d+ of 300 orders"):
        bench.drain(300, progress=False)

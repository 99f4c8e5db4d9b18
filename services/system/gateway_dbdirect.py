"""Tier 0, the baseline the seed rejects: every buy is one PostgreSQL transaction.

    BEGIN
      SELECT ... FROM products WHERE id = $1 FOR UPDATE    -- every buyer queues on this one row lock
      INSERT INTO orders ... ON CONFLICT DO NOTHING         -- one per user
      UPDATE products SET stock = stock - 1 WHERE id = $1 AND stock > 0
    COMMIT                                                  -- and waits for the disk

It is correct: it never oversells and never loses an order, because the
database does all the deciding. What it cannot do is go fast: the row lock
serialises every buyer of the product, and each one holds it through a commit.
That is the seed's "10000 QPS 打数据库 → DB 只能 1000 QPS". There is no Redis
and no queue here, so no limits either: the load goes straight to the database.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import psycopg
from flask import Flask, request

from seckill.stack import db
from seckill.config import Settings, settings as load_settings
from seckill.system.gateway_flask import json_errors, respond
from seckill.system.gateway import (MAX_BODY, Reply, accepted, error, health_reply, new_order, order_reply,
                                    parse_request, sale_problem, unavailable)
from seckill.system.sale import SaleWindow

log = logging.getLogger("seckill.system.gateway")


class DirectSale:
    """The whole buy decision inside one PostgreSQL transaction."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._local = threading.local()

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = db.connect(self.dsn, connect_timeout=3)
        return conn

    def buy(self, product_id_raw: str, body: bytes) -> Reply:
        product_id, user_id, problem = parse_request(product_id_raw, body)
        if problem:
            return problem
        # A connection kept from before a PostgreSQL restart fails on its first statement; that
        # says nothing about PostgreSQL now, so such a buy is tried once more on a fresh one. Only
        # then: once the first statement was answered, a failure may be in COMMIT (an unknown
        # outcome), and trying again could tell a buyer who got the item "already bought".
        for attempt in (1, 2):
            kept = getattr(self._local, "conn", None) is not None
            reply, answered = self._buy_once(product_id, user_id)
            if reply is not None:
                return reply
            if answered or not kept or attempt == 2:
                return unavailable("database")
        return unavailable("database")  # not reached

    def _buy_once(self, product_id: int, user_id: str) -> tuple[Reply | None, bool]:
        """One transaction: (reply, True) or, when PostgreSQL failed, (None, whether it had answered yet)."""
        conn = None
        answered = False
        try:
            conn = self._conn()  # (re)connecting is inside the handling: PostgreSQL down is a 503, every time
            with conn.transaction():
                row = conn.execute("SELECT stock, starts_at, ends_at FROM products WHERE id = %s FOR UPDATE",
                                   (product_id,)).fetchone()
                answered = True
                window = None if row is None else SaleWindow(
                    row[1].timestamp() if row[1] else None, row[2].timestamp() if row[2] else None)
                problem = sale_problem(product_id, window, datetime.now(timezone.utc).timestamp())
                if problem:
                    return problem, True
                if row[0] <= 0:
                    return error(409, "sold_out", "sold out"), True
                order = new_order(user_id, product_id)
                inserted = conn.execute(
                    "INSERT INTO orders (order_id, user_id, product_id, created_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING order_id",
                    (order["order_id"], user_id, product_id, order["created_at"])).fetchone()
                if inserted is None:
                    return error(409, "already_bought", "you have already bought this product"), True
                conn.execute("UPDATE products SET stock = stock - 1 WHERE id = %s AND stock > 0", (product_id,))
            return accepted(order), True
        except psycopg.OperationalError as exc:
            log.warning("postgres unavailable: %s", exc)
            self._drop(conn)
            return None, answered

    def _drop(self, conn) -> None:
        """Forget a connection that failed: the next request connects afresh."""
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        self._local.conn = None

    def order_status(self, order_id: str) -> Reply:
        conn = None
        try:
            conn = self._conn()
            written = db.order_status(conn, order_id)
            conn.rollback()  # end the read's transaction: no idle-in-transaction
        except psycopg.OperationalError:
            self._drop(conn)
            return unavailable("database")
        return order_reply(order_id, written)

    def health(self) -> Reply:
        """200 when PostgreSQL answers, else 503 naming it (the only dependency of this tier)."""
        conn = None
        try:
            conn = self._conn()
            conn.execute("SELECT 1")
            conn.rollback()
        except psycopg.Error as exc:
            log.warning("health: postgres unavailable: %s", exc)
            self._drop(conn)
            return health_reply({"postgres": False}, tier="db-direct")
        return health_reply({"postgres": True}, tier="db-direct")


def create_app(s: Settings | None = None) -> Flask:
    s = s or load_settings()
    sale = DirectSale(s.postgres_url)
    app = Flask("seckill.system.gateway_dbdirect")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.post("/api/seckill/<product_id>")
    def buy(product_id: str):
        return respond(sale.buy(product_id, request.get_data(cache=False)))

    @app.get("/api/orders/<order_id>")
    def order(order_id: str):
        return respond(sale.order_status(order_id))

    @app.get("/healthz")
    def healthz():
        return respond(sale.health())

    json_errors(app)
    return app

"""PostgreSQL helpers: connect, create the schema, read back what the order service wrote."""

from __future__ import annotations

from importlib import resources

import psycopg

SCHEMA_SQL = resources.files("seckill.stack").joinpath("schema.sql").read_text()


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    kwargs.setdefault("connect_timeout", 5)
    return psycopg.connect(dsn, **kwargs)


def apply_schema(dsn: str) -> None:
    """Create the tables if they are missing (idempotent)."""
    with connect(dsn, autocommit=True) as conn:
        # an advisory lock: two `seckill up` at once must not race on CREATE TABLE
        conn.execute("SELECT pg_advisory_lock(4242)")
        try:
            conn.execute(SCHEMA_SQL)
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")


ORDER_STATUS_SQL = (
    "SELECT 'confirmed' FROM orders WHERE order_id = %(id)s "
    "UNION ALL SELECT 'rejected' FROM order_rejections WHERE order_id = %(id)s LIMIT 1"
)


def order_status(conn: psycopg.Connection, order_id: str) -> str | None:
    """'confirmed' when written, 'rejected' when the database refused it, else None."""
    row = conn.execute(ORDER_STATUS_SQL, {"id": order_id}).fetchone()
    return row[0] if row else None


def sale_numbers(conn: psycopg.Connection, product_id: int) -> dict | None:
    """Stock and order counts of one product, as PostgreSQL sees them."""
    row = conn.execute(
        "SELECT p.stock, p.initial_stock, "
        "       (SELECT count(*) FROM orders o WHERE o.product_id = p.id), "
        "       (SELECT count(DISTINCT user_id) FROM orders o WHERE o.product_id = p.id), "
        "       (SELECT count(*) FROM order_rejections r WHERE r.product_id = p.id) "
        "FROM products p WHERE p.id = %s",
        (product_id,),
    ).fetchone()
    if row is None:
        return None
    stock, initial, orders, users, rejected = row
    return {"stock": stock, "initial_stock": initial, "orders": orders,
            "distinct_users": users, "rejections": rejected}

-- The flash-sale schema. PostgreSQL is the final guard: whatever Redis or the
-- queue get wrong, these constraints keep the books right.
--   * orders.order_id is the primary key: a redelivered message inserts nothing.
--   * (user_id, product_id) is unique: one purchase per user per product.
--   * products.stock has CHECK (stock >= 0) and every decrement is guarded,
--     so the database can never hold more orders than it had stock.
CREATE TABLE IF NOT EXISTS products (
    id            BIGINT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    stock         INTEGER NOT NULL CHECK (stock >= 0),
    initial_stock INTEGER NOT NULL CHECK (initial_stock >= 0),
    starts_at     TIMESTAMPTZ,
    ends_at       TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    order_id   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    product_id BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,              -- when the gateway accepted it
    written_at TIMESTAMPTZ NOT NULL DEFAULT now(), -- when the order service committed it
    UNIQUE (user_id, product_id)
);

-- Orders the database refused although Redis had reserved them: a second
-- purchase by the same user, or no stock left in PostgreSQL. Kept so that
-- nothing the gateway confirmed disappears without a trace.
CREATE TABLE IF NOT EXISTS order_rejections (
    order_id    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    product_id  BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

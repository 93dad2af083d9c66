-- The primary's write ceiling: what psycopg2 sends for the service's POST /products (no
-- Idempotency-Key), as PostgreSQL's log_statement = all shows it: BEGIN, the INSERT with the
-- transaction's SET LOCALs in the same message, COMMIT; three round trips, values inline
-- (pgbench -M simple). The same body as bench/wrk/post.lua.
\set n random(1, 1000000000)
BEGIN;
SET LOCAL timezone = 'UTC'\; SET LOCAL statement_timeout = 5000\; SET LOCAL lock_timeout = 2000\; INSERT INTO products (sku, name, description, price, quantity, created_at, updated_at, version, category_id) VALUES (NULL, 'Bench product :n', NULL, 19.99, 5, '2026-12-01T12:00:00.000000+00:00'::timestamptz, '2026-12-01T12:00:00.000000+00:00'::timestamptz, 1, NULL) RETURNING products.id, products.sku, products.name, products.description, products.price, products.quantity, products.created_at, products.updated_at, products.version, products.category_id;
COMMIT;

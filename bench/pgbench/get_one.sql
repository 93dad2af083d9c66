-- A server's read ceiling: what psycopg2 sends for the service's GET /products/{id}, as
-- PostgreSQL's log_statement = all shows it: the SET LOCALs and the SELECT in one message, in
-- autocommit (one round trip), the id inline (pgbench -M simple). Random ids of the loaded
-- products (pgbench -D products=N), as bench/wrk/get_one.lua.
\set id random(1, :products)
SET LOCAL timezone = 'UTC'\; SET LOCAL statement_timeout = 5000\; SET LOCAL lock_timeout = 2000\; SELECT products.id, products.sku, products.name, products.description, products.price, products.quantity, products.created_at, products.updated_at, products.version, products.category_id FROM products WHERE products.id = :id;

"""Load N products (default 1,000,000) into the database at DATABASE_URL, set-based, in seconds.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/catalog_bench \
        .venv/bin/python bench/load_catalog.py

Creates the database if it is missing, applies the migrations, empties `products` and
`categories`, then inserts with one INSERT ... SELECT over generate_series each (PostgreSQL
only). Every 100,000th product mentions "zanzibar" in its description: the rare word of the
search benchmark. There are 50 categories; nine products in ten name one, the tenth none, so
`expand=category` embeds both kinds on every page.
"""

import argparse
import sys
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from config import get_settings  # noqa: E402

CATEGORIES = 50
LOAD_CATEGORIES = """
INSERT INTO categories (name, description)
SELECT 'Category ' || g, 'Category number ' || g FROM generate_series(1, :count) AS g
"""
LOAD = """
INSERT INTO products (
    sku, name, description, price, quantity, created_at, updated_at, version, category_id
)
SELECT
    'SKU-' || g,
    (ARRAY['Red','Blue','Green','Black','White','Small','Large','Classic','Premium','Eco'])
        [1 + g % 10]
    || ' ' ||
    (ARRAY['T-shirt','Mug','Lamp','Chair','Desk','Pen','Notebook','Bag','Bottle','Cap'])
        [1 + (g / 10) % 10]
    || ' ' || g,
    'Product number ' || g || CASE WHEN g % 100000 = 0 THEN ' from zanzibar' ELSE '' END,
    ((g::bigint * 7919) % 999900 + 100) / 100.0,
    (g * 31) % 50,
    TIMESTAMPTZ '2026-01-01' + g * INTERVAL '1 second',
    TIMESTAMPTZ '2026-01-01' + g * INTERVAL '1 second',
    1,
    CASE WHEN g % 10 = 0 THEN NULL ELSE 1 + (g / 10) % :categories END
FROM generate_series(1, :count) AS g
"""


def ensure_database(database_url: str) -> None:
    """Create the database of `database_url` if it does not exist yet (a fresh machine)."""
    url = make_url(database_url)
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
        ).first()
        if exists is None:
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    server.dispose()


def load(database_url: str, count: int) -> float:
    """Migrate, empty and fill `categories` and `products`; return the seconds it took."""
    engine = create_engine(database_url)
    if engine.dialect.name != "postgresql":
        sys.exit("load_catalog.py needs a PostgreSQL DATABASE_URL")
    ensure_database(database_url)
    started = time.perf_counter()
    with engine.begin() as connection:
        config = Config(str(PROJECT_DIR / "alembic.ini"))
        config.attributes["connection"] = connection
        config.attributes["configure_logging"] = False
        command.upgrade(config, "head")
        connection.execute(text("TRUNCATE products, categories RESTART IDENTITY"))
        connection.execute(text(LOAD_CATEGORIES), {"count": CATEGORIES})
        connection.execute(text(LOAD), {"count": count, "categories": CATEGORIES})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE products"))
        connection.execute(text("VACUUM ANALYZE categories"))
    engine.dispose()
    return time.perf_counter() - started


def trim(database_url: str, count: int) -> None:
    """Back to the `count` loaded products: drop what POSTs added, vacuum what PATCHes left.

    Without it the table grows with every write scenario (by ~170,000 rows over a `make
    bench`), and a later list run would count a table many times the size it says.
    """
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DELETE FROM products WHERE id > :count"), {"count": count})
        connection.execute(text("TRUNCATE idempotency_keys"))  # what POST idempotent kept
        connection.execute(text("VACUUM ANALYZE products"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    args = parser.parse_args()
    seconds = load(get_settings().database_url, args.count)
    print(f"loaded {args.count:,} products in {seconds:.1f} s")


if __name__ == "__main__":
    main()

"""Listing at catalog scale: latency of GET /products scenarios on 1,000,000 products.

    make bench-listing        # or: .venv/bin/python bench/listing.py [--requests 200] [--load]

Loads the catalog into BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/
catalog_bench) when it does not hold --products rows, starts the service as a real uvicorn
process against it, measures each scenario with --requests sequential requests over one
keep-alive connection, prints a markdown table and the PostgreSQL plans of each scenario's
queries, and writes them to bench/results/ (listing.md, listing-plans.txt, listing.png).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import crud.products as crud  # noqa: E402
from bench.load_catalog import ensure_database, load  # noqa: E402
from config import normalize_database_url  # noqa: E402
from models import Product  # noqa: E402
from tests.server import running_service  # noqa: E402

RESULTS = PROJECT_DIR / "bench" / "results"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/catalog_bench"


def _deep_cursor(client: httpx.Client, depth: int) -> str:
    """The cursor a client holds after walking to `depth` (taken from a Link header)."""
    response = client.get("/products", params={"limit": 100, "skip": depth - 100})
    next_url = response.headers["link"].split(">", 1)[0].lstrip("<")
    return parse_qs(urlsplit(next_url).query)["cursor"][0]


def _scenarios(client: httpx.Client, depth: int) -> dict[str, dict[str, Any]]:
    return {
        "first page": {"limit": 100},
        f"offset page (skip={depth:,})": {"limit": 100, "skip": depth},
        f"cursor page (depth {depth:,})": {"limit": 100, "cursor": _deep_cursor(client, depth)},
        "q = rare word": {"q": "zanzibar"},
        "price 100-200, sort -price": {"min_price": 100, "max_price": 200, "sort": "-price"},
        "count, filtered (in_stock=false)": {"in_stock": "false", "limit": 1},
    }


def _measure(client: httpx.Client, params: dict[str, Any], requests: int) -> list[float]:
    for _ in range(5):  # warm-up: connection, caches, prepared plans
        client.get("/products", params=params).raise_for_status()
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get("/products", params=params).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _plans(database_url: str, params: dict[str, Any]) -> list[str]:
    """EXPLAIN ANALYZE of the exact statements the listing runs for these parameters."""
    from starlette.requests import Request

    from api.pagination import cursor_binding, decode_cursor
    from crud.shared import Paging
    from schemas.listing import ProductQuery

    # What the route does (api/pagination.page_response) before it asks crud for the page.
    query = ProductQuery.model_validate(params)
    keys = crud.sort_keys(query.sort_order)
    request = Request({"type": "http", "path": "/products", "query_string": b"", "headers": []})
    binding = cursor_binding(request, query)
    after = decode_cursor(query.cursor, binding, keys) if query.cursor else None
    paging = Paging(keys, after=after, skip=query.skip, limit=query.limit + 1)
    engine = create_engine(database_url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(_c: Connection, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    with Session(engine) as session:
        crud.list_products(session, filters=crud.ProductFilters(**query.filters()), paging=paging)
    plans = []
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters in captured:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    engine.dispose()
    return plans


def _chart(rows: list[tuple[str, float, float]], path: Path, products: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _, _ in rows]
    medians = [median for _, median, _ in rows]
    p99s = [p99 for _, _, p99 in rows]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    positions = range(len(rows))
    axes.barh([p + 0.2 for p in positions], medians, height=0.4, label="median")
    axes.barh([p - 0.2 for p in positions], p99s, height=0.4, label="p99")
    axes.set_yticks(list(positions), names)
    axes.invert_yaxis()
    axes.set_xlabel("latency per request, ms (lower is better)")
    axes.set_title(f"GET /products on {products:,} products (PostgreSQL, 1 uvicorn worker)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--load", action="store_true", help="reload even if the count matches")
    args = parser.parse_args()
    url = normalize_database_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    ensure_database(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        exists = connection.execute(text("SELECT to_regclass('products')")).scalar()
        count = connection.scalar(select(func.count()).select_from(Product)) if exists else 0
    engine.dispose()
    if args.load or count != args.products:
        print(f"loading {args.products:,} products ...", flush=True)
        print(f"loaded in {load(url, args.products):.1f} s", flush=True)
    depth = args.products * 9 // 10

    rows: list[tuple[str, float, float]] = []
    with running_service(url) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        scenarios = _scenarios(client, depth)
        for name, params in scenarios.items():
            timings = _measure(client, params, args.requests)
            rows.append((name, statistics.median(timings), _percentile(timings, 0.99)))
            print(
                f"{name:<36} median {rows[-1][1]:8.2f} ms   p99 {rows[-1][2]:8.2f} ms", flush=True
            )

    RESULTS.mkdir(parents=True, exist_ok=True)
    table = [
        f"GET /products on {args.products:,} products, {args.requests} sequential requests per "
        "scenario, one keep-alive connection, 1 uvicorn worker, PostgreSQL 15 on the same host.",
        "",
        "| scenario | median ms | p99 ms |",
        "|---|---:|---:|",
        *(f"| {name} | {median:.2f} | {p99:.2f} |" for name, median, p99 in rows),
    ]
    (RESULTS / "listing.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    _chart(rows, RESULTS / "listing.png", args.products)
    print("\n".join(table))

    plans = ["EXPLAIN ANALYZE of each statement a scenario runs (page with count, or page, count)."]
    for name, params in scenarios.items():
        plans += [f"\n### {name}\n", *(plan + "\n" for plan in _plans(url, params))]
    (RESULTS / "listing-plans.txt").write_text("\n".join(plans), encoding="utf-8")
    print("\n".join(plans))


if __name__ == "__main__":
    main()

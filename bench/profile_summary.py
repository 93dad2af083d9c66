"""Where a request's GIL time goes: py-spy's raw stacks, grouped by the innermost frame.

    uvicorn main:app --port 8100 --no-access-log --log-level warning &   # DATABASE_URL set
    wrk -t2 -c32 -d14s -s bench/wrk/get_one.lua http://127.0.0.1:8100 &
    py-spy record -p <uvicorn pid> -d 10 -r 400 --gil --format raw -o stacks.txt
    .venv/bin/python bench/profile_summary.py stacks.txt

Each sample counts once, for the package of the frame that was running (self time), so the
shares add up to 100%. The groups are the ones bench/README.md reports.
"""

import re
import sys
from collections import Counter

GROUPS = [
    (
        "waiting for PostgreSQL (psycopg2's wait callback, database/timeouts.py)",
        r"database/timeouts",
    ),
    (
        "database: SQLAlchemy engine/pool/session + psycopg2",
        r"sqlalchemy/|psycopg2|crud/|database/",
    ),
    (
        "FastAPI dependencies (session slot, yield-dependency machinery, headers)",
        r"fastapi/dependencies/|fastapi/concurrency|contextlib|dependencies/",
    ),
    (
        "task and cancel-scope bookkeeping (anyio, sniffio, current_task, weakrefs; threads)",
        r"anyio/|sniffio|threading\.py|queue\.py|starlette/concurrency|asyncio/tasks|weakref",
    ),
    (
        "this service's middleware (request id, access log, metrics, limits)",
        r"api/(context|limits|routing|cors)|logging/|api/logs|prometheus_client|uuid|posixpath",
    ),
    ("route body and serialising the response (pydantic)", r"pydantic|schemas/|api/routes/"),
    ("routing and the framework (Starlette/FastAPI)", r"starlette/|fastapi/"),
    (
        "HTTP server and event loop (uvicorn, uvloop)",
        r"uvicorn/|uvloop|httptools|asyncio/|selectors",
    ),
]


def group(frame: str) -> str:
    for name, pattern in GROUPS:
        if re.search(pattern, frame):
            return name
    return "other (typing, inspect, abc: FastAPI's per-request introspection)"


def main() -> None:
    shares: Counter[str] = Counter()
    with open(sys.argv[1], encoding="utf-8") as stacks:
        for line in stacks:
            stack, samples = line.rsplit(" ", 1)
            shares[group(stack.split(";")[-1])] += int(samples)
    total = sum(shares.values())
    for name, count in shares.most_common():
        print(f"{100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()

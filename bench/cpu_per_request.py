"""CPU milliseconds per request of an ASGI app, driven in-process: no network, no wrk.

    .venv/bin/python bench/cpu_per_request.py main:app get
    .venv/bin/python bench/cpu_per_request.py psycopg2_app:app list --app-dir bench/reference
    .venv/bin/python bench/cpu_per_request.py main:app get --instructions   # needs valgrind

wrk's req/s on a shared 2-core machine moves by 10-20% from run to run; the process CPU time
per request (all threads) of the same app on the same data moves by a few percent, so it tells
whether one change helps. It is the figure bench/README.md quotes. The app talks
to BENCH_DATABASE_URL (default: the catalog_perf database `make bench` loads); the requests are
the ones of bench/wrk/: GET one (random ids), list 100, POST (post-keyed: each with an
Idempotency-Key of its own) and PATCH, 16 at a time.

`--instructions` counts CPU instructions instead, under valgrind's callgrind: the same figure
(to ~0.5%) whatever else the machine is doing, so that a change worth 3% can be seen on a
machine whose timings move by 10-20%. It runs the app twice (200 and 1,200 requests, ~2
minutes) and divides the difference by 1,000: start-up and warm-up cancel out. Instructions
are user-space only: a thread hand-off's system calls and wake-ups do not show, so compare
the service with itself (or with another checkout), not with an app built another way.
"""

import argparse
import ast
import asyncio
import importlib
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/catalog_perf"
PRODUCTS = 10_000
CONCURRENCY = 16


# post-keyed's keys: unique across requests (warm-up included) and across runs.
_KEYS = (f"cpu-{os.getpid()}-{time.time_ns()}-{n}".encode() for n in itertools.count())


def _request(kind: str, number: int) -> tuple[str, str, bytes, bytes]:
    """Method, path, query string and JSON body of one request of `kind`."""
    if kind == "get":
        return "GET", f"/products/{random.randint(1, PRODUCTS)}", b"", b""
    if kind == "list":
        return "GET", "/products", b"limit=100", b""
    if kind in ("post", "post-keyed"):
        body = {"name": f"CPU product {number}", "price": 19.99, "quantity": 5}
        return "POST", "/products", b"", json.dumps(body).encode()
    body = {"quantity": random.randint(0, 1000)}
    return "PATCH", f"/products/{random.randint(1, PRODUCTS)}", b"", json.dumps(body).encode()


async def _call(app: Any, kind: str, number: int, statuses: Counter[int]) -> None:
    method, path, query, body = _request(kind, number)
    headers = [(b"host", b"127.0.0.1")]
    if kind == "post-keyed":
        headers.append((b"idempotency-key", next(_KEYS)))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    await app(scope, receive, send)


async def _measure(app: Any, kind: str, requests: int) -> tuple[float, Counter[int]]:
    """Run lifespan start-up, warm up, then `requests` requests; CPU ms per request."""
    events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.get_running_loop().create_task(app(lifespan, events.get, lifespan_send))
    await asyncio.wait_for(started.wait(), 10)

    statuses: Counter[int] = Counter()
    for number in range(200):
        await _call(app, kind, number, statuses)
    statuses.clear()
    numbers = iter(range(requests))

    async def client() -> None:
        for number in numbers:
            await _call(app, kind, number, statuses)

    before = time.process_time()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return (time.process_time() - before) * 1000 / requests, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", help="module:attribute, e.g. main:app")
    parser.add_argument("kind", choices=["get", "list", "post", "post-keyed", "patch"])
    parser.add_argument("--app-dir", default=".", help="directory to import the app from")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=1, help="separate processes; prints each")
    parser.add_argument(
        "--instructions", action="store_true", help="instructions per request (valgrind)"
    )
    args = parser.parse_args()
    if os.environ.get("CPU_PER_REQUEST_CHILD"):
        module, attribute = args.app.split(":")
        sys.path.insert(0, str(Path(args.app_dir).resolve()))
        app = getattr(importlib.import_module(module), attribute)
        cpu_ms, statuses = asyncio.run(_measure(app, args.kind, args.requests))
        print(f"{cpu_ms:.3f} {dict(statuses)}", flush=True)
        os._exit(0)  # the pool's connections and worker threads need no orderly goodbye
    env = {
        **os.environ,
        "CPU_PER_REQUEST_CHILD": "1",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "info"),
    }
    if args.instructions:
        if args.runs != 1:
            parser.error("--instructions is one measurement: it takes no --runs")
        counts = [_instructions(args, env, requests) for requests in (200, 1200)]
        per_request = (counts[1] - counts[0]) / 1000
        print(f"{args.app} {args.kind}: {per_request:,.0f} instructions per request")
        return
    figures = []
    for _ in range(args.runs):
        output = subprocess.run(
            [sys.executable, *sys.argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the access log, one line per request
            text=True,
            check=True,
        ).stdout.split(maxsplit=1)
        figures.append(float(output[0]))
        printed = output[1].strip()  # the child's status counts, as it printed them
        print(f"{args.app} {args.kind}: {output[0]} ms CPU per request, statuses {printed}")
    if args.runs > 1:
        print(f"min {min(figures):.3f}, median {statistics.median(figures):.3f} ms")


def _instructions(args: argparse.Namespace, env: dict[str, str], requests: int) -> int:
    """Instructions the child process ran, start-up included, for `requests` requests."""
    child = [sys.executable, __file__, args.app, args.kind, "--app-dir", args.app_dir]
    child += ["--requests", str(requests)]
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *child],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # The child prints its CPU time and the statuses it got: a count of failed requests (no
    # database, an empty table) is no figure for the requests the scenario means.
    statuses = ast.literal_eval(result.stdout.split(maxsplit=1)[1])
    if set(statuses) - {200, 201}:
        raise RuntimeError(f"{args.app} {args.kind}: not every request succeeded: {statuses}")
    collected = re.search(r"Collected : (\d+)", result.stderr)
    if collected is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{result.stderr[-2000:]}")
    return int(collected.group(1))


if __name__ == "__main__":
    main()

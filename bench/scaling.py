"""One instance of the service direct to PostgreSQL, through PgBouncer, behind HAProxy and
reading from a streaming replica, measured with wrk; and what the primary and the replica do
with the service's statements when no service stands in between, measured with pgbench.

    .venv/bin/python bench/scaling.py            # 3 rounds of 15 s per run (~10 min)
    .venv/bin/python bench/scaling.py --quick    # 1 round of 3 s: a smoke test (~2 min)
    .venv/bin/python bench/scaling.py [--duration S] [--rounds N] [--pgbench-clients C]

Everything runs on private servers on free ports of 127.0.0.1, started here and stopped at the
end, their data directories removed: a PostgreSQL primary with 10,000 products
(bench/load_catalog.py) and one asynchronous streaming replica made from it with
`pg_basebackup -R` (tests/scale/replication.py); PgBouncer and HAProxy from the project's own
deploy/pgbouncer.ini and deploy/haproxy.cfg (tests/scale/proxies.py); three instances of the
service, each with 2 uvicorn workers, the README's production flags and default settings
(bench/throughput.py's `serve`): one on the primary (measured directly, and as HAProxy's one
server), one with DATABASE_URL through PgBouncer, one with DATABASE_READ_URL on the replica.

Each round runs wrk (2 threads, 32 connections; bench/wrk/get_one.lua and post.lua) on every
path in turn, each round starting with another path, so that the ratios come from the same
moment; then pgbench in simple protocol (psycopg2's) with bench/pgbench/post.sql on the
primary and get_one.sql on the primary and on the replica: the servers' ceilings for the
statements the service sends. Every run starts on
the same 10,000 products with the replica caught up. Medians of the rounds with min-max, the
share of the replica path's transactions that the replica ran, and the machine's load average
seen during the run go to bench/results/scaling.md; the raw runs to scaling-runs.json. On one
2-core machine these are overheads, not scale (bench/README.md, "Scaling out"). A non-2xx
answer, a socket error or a failed transaction makes the command exit with status 1.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.load_catalog import load, trim  # noqa: E402
from bench.throughput import PRODUCTS, PROJECT_DIR, Run, serve, wrk  # noqa: E402
from tests.scale.proxies import HAProxy, haproxy, pgbouncer  # noqa: E402
from tests.scale.replication import Node, replication  # noqa: E402

WORKERS = 2
DATABASE = "catalog"
# PgBouncer lets the instance in with this password (its auth_file); the private cluster
# behind it trusts every connection from 127.0.0.1.
PASSWORD = "bench-pgbouncer"
# Three instances' pools (2 workers x 2 pools x 10 each), PgBouncer's 25 and pgbench's clients
# on one primary: more than PostgreSQL's default of 100.
MAX_CONNECTIONS = "300"

# A backend reports its transaction counts when it goes idle, or up to 10 s later
# (PostgreSQL 15's PGSTAT_IDLE_INTERVAL): after this long, every count is in.
STATS_DELAY_S = 11

DIRECT = "direct to PostgreSQL"
PGBOUNCER = "DATABASE_URL through PgBouncer (transaction mode)"
HAPROXY = "behind HAProxy (deploy/haproxy.cfg)"
REPLICA = "reads from the replica (DATABASE_READ_URL)"
SCENARIOS = {
    "GET one": ("get_one.lua", [DIRECT, PGBOUNCER, HAPROXY, REPLICA]),
    "POST": ("post.lua", [DIRECT, PGBOUNCER, HAPROXY]),
}
WRITES = "writes: POST's INSERT ... RETURNING, in a transaction"
READS = "reads: GET one's SELECT by id"
CEILINGS = [(WRITES, "post.sql", "primary"), (READS, "get_one.sql", "primary")]
CEILINGS += [(READS, "get_one.sql", "replica")]


def pgbench(node: Node, script: str, duration: int, clients: int) -> Run:
    """One pgbench run of bench/pgbench/`script` on `node`; p50 and p99 from its
    per-transaction log."""
    with tempfile.TemporaryDirectory(prefix="catalog-pgbench-") as directory:
        command = ["pgbench", "--no-vacuum", "--protocol=simple", f"--client={clients}"]
        command += ["--jobs=2", f"--time={duration}", f"--define=products={PRODUCTS}"]
        command += ["--file", str(BENCH / "pgbench" / script)]
        command += ["--log", f"--log-prefix={directory}/transactions"]
        command += ["--host=127.0.0.1", f"--port={node.port}", "--username=postgres", DATABASE]
        result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        output = result.stdout + result.stderr
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
        if result.returncode != 0 or tps is None:
            raise RuntimeError(f"pgbench failed:\n{output}")
        # Each line: client, transaction number, latency in microseconds, ...
        latencies = [
            int(fields[2]) / 1000
            for log in Path(directory).glob("transactions.*")
            for fields in (line.split() for line in log.read_text().splitlines())
            if fields[2].isdigit()
        ]
    failed = re.search(r"number of failed transactions: (\d+)", output)
    cuts = statistics.quantiles(latencies, n=100)
    return Run(
        rps=float(tps.group(1)),
        p50_ms=cuts[49],
        p99_ms=cuts[98],
        errors=int(failed.group(1)) if failed else 0,
    )


def catch_up(primary: Node, replica: Node) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = primary.query("SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + 60
    while not replica.query(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replica did not catch up:\n{replica.log()}")
        time.sleep(0.1)


def committed(node: Node) -> int:
    """Transactions `node` has counted in the bench's database so far."""
    query = f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{DATABASE}'"
    return int(str(node.query(query)))


def _times_down(balancer: HAProxy) -> int:
    """How many times HAProxy has taken its server out so far (its log line for each; the
    same words also go to stderr with a `[WARNING]` prefix)."""
    return sum(
        line.startswith("Server ") and " is DOWN" in line for line in balancer.output().splitlines()
    )


def _wait_for_ready(base_url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base_url}/health/ready did not answer 200")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 round of 3 s")
    parser.add_argument("--pgbench-clients", type=int, default=16)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 3, 1
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y {tool} (pgbench: postgresql-contrib)")

    load_before = os.getloadavg()[0]
    loads: list[float] = []
    served: dict[tuple[str, str], list[Run]] = defaultdict(list)
    ceilings: dict[tuple[str, str], list[Run]] = defaultdict(list)
    replica_share: list[float] = []
    marked_down: list[str] = []
    with replication() as cluster, ExitStack() as stack:
        primary = cluster.primary
        primary.query(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
        primary.stop()
        primary.start()
        url = make_url(primary.url).set(database=DATABASE).render_as_string(hide_password=False)
        print(f"loading {PRODUCTS:,} products ...", flush=True)
        load(url, PRODUCTS)
        # The base backup carries the primary's settings (max_connections) and its products.
        replica = cluster.replica("bench")
        replica_url = make_url(replica.url).set(database=DATABASE)
        nodes = {"primary": primary, "replica": replica}

        bouncer = stack.enter_context(
            pgbouncer(server_port=primary.port, database=DATABASE, users={"postgres": PASSWORD})
        )
        direct, _ = stack.enter_context(serve("main:app", PROJECT_DIR, WORKERS, url))
        pooled_url = bouncer.url(DATABASE, "postgres", PASSWORD)
        pooled, _ = stack.enter_context(serve("main:app", PROJECT_DIR, WORKERS, pooled_url))
        replicated, _ = stack.enter_context(
            serve(
                "main:app",
                PROJECT_DIR,
                WORKERS,
                url,
                database_read_url=replica_url.render_as_string(hide_password=False),
            )
        )
        balancer = stack.enter_context(haproxy({"app1": int(direct.rsplit(":", 1)[1])}))
        _wait_for_ready(balancer.base_url)
        base_urls = {DIRECT: direct, PGBOUNCER: pooled, HAPROXY: balancer.base_url}
        base_urls[REPLICA] = replicated

        def ready_state() -> str:
            answer = httpx.get(f"{replicated}/health/ready", timeout=5).json()
            return str(answer.get("replica", {}).get("state"))

        for round_ in range(args.rounds):
            for scenario, (script, paths) in SCENARIOS.items():
                # Each path first in another round: no path always follows the same one.
                shift = round_ % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    trim(url, PRODUCTS)  # every run starts on the same 10,000 products
                    catch_up(primary, replica)
                    if path == REPLICA:
                        if (state := ready_state()) != "streaming":
                            raise RuntimeError(f"the instance sees the replica {state}")
                        time.sleep(STATS_DELAY_S)  # the previous runs' counts are all in
                        before = committed(primary), committed(replica)
                    taken_out = _times_down(balancer)
                    loads.append(os.getloadavg()[0])
                    run = wrk(base_urls[path], script, args.duration)
                    served[(scenario, path)].append(run)
                    note = ""
                    if path == HAPROXY and (downs := _times_down(balancer) - taken_out):
                        # Its health check failed: HAProxy answered 503 itself until it passed.
                        marked_down.append(f"{scenario}, round {round_ + 1}: {downs}")
                        note = f"  HAProxy marked the instance DOWN {downs} times"
                    if path == REPLICA:
                        time.sleep(STATS_DELAY_S)
                        on_primary = committed(primary) - before[0]
                        on_replica = committed(replica) - before[1]
                        share = on_replica / (on_primary + on_replica)
                        replica_share.append(share)
                        note = f"  transactions on the replica {share:.1%}"
                    print(
                        f"r{round_ + 1} {scenario:<8} {path:<50} {run.rps:8.0f} req/s  "
                        f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
                        f"errors {run.errors}{note}",
                        flush=True,
                    )
            for ceiling, sql, server in CEILINGS:
                trim(url, PRODUCTS)
                catch_up(primary, replica)
                loads.append(os.getloadavg()[0])
                run = pgbench(nodes[server], sql, args.duration, args.pgbench_clients)
                ceilings[(ceiling, server)].append(run)
                print(
                    f"r{round_ + 1} pgbench {ceiling:<52} on the {server:<7} {run.rps:8.0f} tps  "
                    f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  failed {run.errors}",
                    flush=True,
                )
            _save_raw(served, ceilings, loads, replica_share)
        loads.append(os.getloadavg()[0])
    load_average = (load_before, min(loads), max(loads))
    report(served, ceilings, args, load_average, replica_share, marked_down)
    failed = [
        f"{a} {b}: {sum(r.errors for r in runs)}"
        for results in (served, ceilings)
        for (a, b), runs in results.items()
        if any(r.errors for r in runs)
    ]
    if failed:
        sys.exit("non-2xx answers, socket errors or failed transactions:\n" + "\n".join(failed))


def _save_raw(
    served: dict[tuple[str, str], list[Run]],
    ceilings: dict[tuple[str, str], list[Run]],
    loads: list[float],
    replica_share: list[float],
) -> None:
    """Every run so far, so that a crash late in the benchmark keeps what it measured."""
    raw = {
        "wrk": [
            {"scenario": s, "path": p, "runs": [vars(r) for r in runs]}
            for (s, p), runs in served.items()
        ],
        "pgbench": [
            {"ceiling": c, "server": s, "runs": [vars(r) for r in runs]}
            for (c, s), runs in ceilings.items()
        ],
        "load_average_1min": loads,
        "replica_share": replica_share,
    }
    (BENCH / "results" / "scaling-runs.json").write_text(json.dumps(raw, indent=1))


def _median(runs: list[Run]) -> tuple[float, str, float, float, int]:
    rps = [r.rps for r in runs]
    return (
        statistics.median(rps),
        f"{statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f})",
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
    )


def report(
    served: dict[tuple[str, str], list[Run]],
    ceilings: dict[tuple[str, str], list[Run]],
    args: argparse.Namespace,
    load: tuple[float, float, float],
    replica_share: list[float],
    marked_down: list[str],
) -> None:
    cpu = re.search(r"model name\s+:\s+(.*)", Path("/proc/cpuinfo").read_text())
    lines = [
        f"`bench/scaling.py`: wrk -t2 -c32 -d{args.duration}s and pgbench "
        f"-c{args.pgbench_clients} -j2 -T{args.duration} -M simple, {args.rounds} rounds "
        f"(median, min-max), {PRODUCTS:,} products; one instance of {WORKERS} uvicorn workers "
        "(the README's production command, default settings), PostgreSQL 15 primary and one "
        f"asynchronous streaming replica, PgBouncer and HAProxy, all on one machine of "
        f"{os.cpu_count()} cores ({cpu.group(1) if cpu else 'unknown CPU'}). Load average "
        f"(1 min): {load[0]:.2f} before the run, {load[1]:.2f}-{load[2]:.2f} during it. "
        "vs direct: req/s over the same instance's direct to PostgreSQL, in the same rounds.",
        "",
        "| scenario | path | req/s (min-max) | p50 ms | p99 ms | errors | vs direct |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (scenario, path), runs in served.items():
        rps, spread, p50, p99, errors = _median(runs)
        direct = statistics.median(r.rps for r in served[(scenario, DIRECT)])
        lines.append(
            f"| {scenario} | {path} | {spread} | {p50:.2f} | {p99:.2f} | {errors} "
            f"| {rps / direct:.2f} |"
        )
    if marked_down:
        lines += [
            "",
            "HAProxy marked the instance DOWN during a run (its health check, `/health/ready`, "
            "failed; HAProxy then answered 503 itself): " + "; ".join(marked_down) + ".",
        ]
    if replica_share:
        lines += [
            "",
            "On the replica path, the replica counted "
            f"{min(replica_share):.1%}-{max(replica_share):.1%} of the transactions the two "
            "servers counted (`pg_stat_database`) from just before each run to after it; "
            "the rest include the instances' WAL position samples and HAProxy's readiness "
            "checks.",
        ]
    lines += [
        "",
        "The servers' ceilings for the service's statements (`bench/pgbench/`), with no "
        "service in between:",
        "",
        "| ceiling | server | transactions/s (min-max) | p50 ms | p99 ms | failed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (ceiling, server), runs in ceilings.items():
        _, spread, p50, p99, errors = _median(runs)
        lines.append(f"| {ceiling} | {server} | {spread} | {p50:.2f} | {p99:.2f} | {errors} |")
    post = statistics.median(r.rps for r in served[("POST", DIRECT)])
    get = statistics.median(r.rps for r in served[("GET one", DIRECT)])
    writes = statistics.median(r.rps for r in ceilings[(WRITES, "primary")])
    reads = statistics.median(r.rps for r in ceilings[(READS, "replica")])
    lines += [
        "",
        'The arithmetic, from these figures (bench/README.md, "Scaling out"):',
        "",
        f"- writes: the primary's ceiling, {writes:,.0f}/s, over one instance's POST, "
        f"{post:,.0f}/s: {writes / post:.1f} instances' worth of writes;",
        f"- reads: a replica's ceiling, {reads:,.0f}/s, over one instance's GET one, "
        f"{get:,.0f}/s: {reads / get:.1f} instances' worth of reads per replica.",
    ]
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "scaling.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Throughput and tail latency of the service beside two reference apps, measured with wrk.

    make bench      # 1 and 2 workers, 3 rounds of 15 s, then a 5-minute soak (~30 min)
    .venv/bin/python bench/throughput.py --quick    # 1 and 2 workers, 2 rounds of 10 s, no soak
    .venv/bin/python bench/throughput.py [--duration S] [--rounds N] [--workers 1 2]
        [--apps ...] [--scenarios ...] [--soak S]

Loads 10,000 products into BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/
catalog_perf) and trims the table back to them before every wrk run. Then, for 1 and 2
uvicorn workers, it starts three apps against it on 127.0.0.1 — the service (main:app, default
settings), the yardstick bench/reference/psycopg2_app.py (hand-written FastAPI + psycopg2 doing
the same work with the same guarantees: see its docstring) and bench/reference/starlette_app.py
(bare Starlette, constants) — and runs wrk (2 threads, 32 connections) on each scenario,
interleaving the apps so that every ratio comes from the same moment. Medians of the rounds,
with min-max, and each app's ratio to the yardstick go to bench/results/throughput.md and
throughput.png. Every answer must be a 2xx: a run with non-2xx answers or socket errors is
reported at the end and the command exits with status 1. `--soak 300` adds a 5-minute mixed
run of the service and reports each worker's RSS at its start and end.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
PROJECT_DIR = BENCH.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.load_catalog import load, trim  # noqa: E402
from config import normalize_database_url  # noqa: E402
from tests.server import free_port  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/catalog_perf"
PRODUCTS = 10_000
# The yardstick: every ratio in the table is an app's req/s over this one's.
REFERENCE = "hand-written app (same work)"
APPS = {
    "catalog": ("main:app", PROJECT_DIR),
    REFERENCE: ("psycopg2_app:app", BENCH / "reference"),
    "starlette (constant)": ("starlette_app:app", BENCH / "reference"),
}
SCENARIOS = {
    "GET one": "get_one.lua",
    "list 100": "list_100.lua",
    "list 100 expand": "list_100_expand.lua",
    "POST": "post.lua",
    "POST idempotent": "post_idempotent.lua",
    "PATCH": "patch.lua",
    "mixed 80/20": "mixed.lua",
}
# Keyed scenarios, and the unkeyed one each is also compared with (the same app, the same
# round): the bare Starlette app keeps no answers, so it does not run them.
KEYED = {"POST idempotent": "POST"}
KEEPS_ANSWERS = {"catalog", REFERENCE}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@contextmanager
def serve(
    app: str, cwd: Path, workers: int, database_url: str, **settings: str
) -> Iterator[tuple[str, int]]:
    """`app` under uvicorn on a free port, until the block ends; `settings` go to its
    environment (`database_read_url="..."`: DATABASE_READ_URL)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PRODUCTS": str(PRODUCTS)}
    env.update({name.upper(): value for name, value in settings.items()})
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    # Every app runs under the server settings the service ships with (README, "Running in
    # production"): the h11 protocol with its bound on a request's head.
    command += ["--http", "h11", "--h11-max-incomplete-event-size", "65536"]
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base_url}/products/1", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield base_url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def wrk(base_url: str, script: str, duration: int, connections: int = 32) -> Run:
    """One wrk run; a run whose output has no latency distribution is repeated once."""
    for attempt in (1, 2):
        output = _wrk_output(base_url, script, duration, connections)
        if re.search(r"^\s+99%", output, re.MULTILINE):
            return _parse(output)
        print(f"wrk gave no latency distribution (attempt {attempt}):\n{output}", flush=True)
    raise RuntimeError(f"wrk failed twice on {base_url} {script}")


def _wrk_output(base_url: str, script: str, duration: int, connections: int) -> str:
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(BENCH / "wrk" / script),
            base_url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PRODUCTS": str(PRODUCTS)},
    )
    return result.stdout + result.stderr


def _parse(output: str) -> Run:
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        errors=errors,
    )


def _save_raw(results: dict[tuple[int, str, str], list[Run]]) -> None:
    """Every run so far, so that a crash late in a long benchmark keeps what it measured."""
    raw = [
        {"workers": w, "scenario": s, "app": a, "runs": [vars(run) for run in runs]}
        for (w, s, a), runs in results.items()
    ]
    (BENCH / "results" / "throughput-runs.json").write_text(json.dumps(raw, indent=1))


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def soak(database_url: str, seconds: int) -> list[tuple[int, float, float]]:
    trim(database_url, PRODUCTS)
    with serve("main:app", PROJECT_DIR, 2, database_url) as (base_url, master):
        wrk(base_url, "mixed.lua", 20)  # warm-up: pools full, caches hot
        workers = _workers_of(master)
        start = {pid: _rss_mib(pid) for pid in workers}
        wrk(base_url, "mixed.lua", seconds)
        return [(pid, start[pid], _rss_mib(pid)) for pid in workers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="a shorter comparison: --duration 10 --rounds 2"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--apps", nargs="+", default=list(APPS))
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--soak", type=int, default=0, help="seconds of the RSS soak run")
    parser.add_argument(
        "--replot", action="store_true", help="redraw the chart from throughput-runs.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 10, 2
    if args.replot:
        raw = json.loads((BENCH / "results" / "throughput-runs.json").read_text())
        saved = {
            (r["workers"], r["scenario"], r["app"]): [Run(**x) for x in r["runs"]] for r in raw
        }
        args.apps = list(dict.fromkeys(app for _, _, app in saved))
        _chart(saved, BENCH / "results" / "throughput.png", args)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    url = normalize_database_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    print(f"loading {PRODUCTS:,} products ...", flush=True)
    load(url, PRODUCTS)

    results: dict[tuple[int, str, str], list[Run]] = defaultdict(list)
    for workers in args.workers:
        with ExitStack() as stack:
            servers = {
                name: stack.enter_context(serve(*APPS[name], workers, url))[0] for name in args.apps
            }
            for round_ in range(args.rounds):
                for scenario in args.scenarios:
                    for name, base_url in servers.items():
                        if scenario in KEYED and name not in KEEPS_ANSWERS:
                            continue
                        trim(url, PRODUCTS)  # every run starts on the same 10,000 products
                        run = wrk(base_url, SCENARIOS[scenario], args.duration)
                        results[(workers, scenario, name)].append(run)
                        _save_raw(results)
                        print(
                            f"{workers}w r{round_ + 1} {scenario:<12} {name:<28} "
                            f"{run.rps:9.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
                            f"p99 {run.p99_ms:7.2f} ms  errors {run.errors}",
                            flush=True,
                        )
    report(results, args)
    if args.soak:
        lines = [
            "",
            f"Soak: 2 workers, mixed 80/20 for {args.soak} s at 32 connections.",
            "",
            "| worker | RSS at start MiB | RSS at end MiB |",
            "|---|---:|---:|",
        ]
        lines += [f"| {pid} | {a:.1f} | {b:.1f} |" for pid, a, b in soak(url, args.soak)]
        with (BENCH / "results" / "throughput.md").open("a") as file:
            file.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    failed = [
        f"{w}w {s} {a}: {sum(r.errors for r in runs)}"
        for (w, s, a), runs in results.items()
        if any(r.errors for r in runs)
    ]
    if failed:
        sys.exit(
            "non-2xx answers or socket errors (the table's errors column):\n" + "\n".join(failed)
        )


def report(results: dict[tuple[int, str, str], list[Run]], args: argparse.Namespace) -> None:
    cpu = re.search(r"model name\s+:\s+(.*)", Path("/proc/cpuinfo").read_text())
    lines = [
        f"`bench/throughput.py`: wrk -t2 -c32 -d{args.duration}s, {args.rounds} rounds "
        f"(median, min-max), "
        f"{PRODUCTS:,} products, PostgreSQL on the same host; {os.cpu_count()} cores "
        f"({cpu.group(1) if cpu else 'unknown CPU'}). vs hand-written: req/s over the "
        "yardstick's, bench/reference/psycopg2_app.py (the same work, by hand) in the same run. "
        "POST idempotent: each request with its own `Idempotency-Key`.",
        "",
        "| workers | scenario | app | req/s (min-max) | p50 ms | p99 ms | p99/p50 | errors "
        "| vs hand-written |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (workers, scenario, name), runs in results.items():
        rps = [run.rps for run in runs]
        p50 = statistics.median(run.p50_ms for run in runs)
        p99 = statistics.median(run.p99_ms for run in runs)
        base = results.get((workers, scenario, REFERENCE))
        ratio = statistics.median(rps) / statistics.median(r.rps for r in base) if base else 0
        lines.append(
            f"| {workers} | {scenario} | {name} | {statistics.median(rps):,.0f} "
            f"({min(rps):,.0f}-{max(rps):,.0f}) | {p50:.2f} | {p99:.2f} | {p99 / p50:.1f} "
            f"| {sum(run.errors for run in runs)} | {ratio:.2f} |"
        )
    lines += _keyed_over_unkeyed(results)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "throughput.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    _chart(results, out / "throughput.png", args)


def _keyed_over_unkeyed(results: dict[tuple[int, str, str], list[Run]]) -> list[str]:
    """Each keyed scenario's req/s over the same app's unkeyed one: what keeping answers costs.

    One ratio per round (the two runs of a pair are minutes apart at most, where two rounds
    can be far apart on a shared machine), and their median and range.
    """
    lines = []
    for (workers, scenario, name), runs in results.items():
        unkeyed = results.get((workers, KEYED.get(scenario, ""), name))
        if unkeyed:
            pairs = [run.rps / base.rps for run, base in zip(runs, unkeyed, strict=True)]
            plural = "s" if workers > 1 else ""
            label = f"{scenario} / {KEYED[scenario]}"
            lines.append(
                f"- {workers} worker{plural}, {name}: {label} {statistics.median(pairs):.2f} "
                f"({min(pairs):.2f}-{max(pairs):.2f}, {len(pairs)} rounds)"
            )
    return ["", "Keyed over unkeyed, same app, round by round:", *lines] if lines else []


def _chart(
    results: dict[tuple[int, str, str], list[Run]], path: Path, args: argparse.Namespace
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(args.workers), figsize=(6 * len(args.workers), 4.5), squeeze=False
    )
    width = 0.8 / len(args.apps)
    for column, workers in enumerate(args.workers):
        axis = axes[0][column]
        for index, name in enumerate(args.apps):
            medians = [
                statistics.median(r.rps for r in runs)
                if (runs := results.get((workers, s, name)))
                else 0
                for s in args.scenarios
            ]
            axis.bar(
                [x + index * width for x in range(len(args.scenarios))], medians, width, label=name
            )
        axis.set_xticks(
            [x + width * (len(args.apps) - 1) / 2 for x in range(len(args.scenarios))],
            args.scenarios,
        )
        axis.set_title(f"{workers} uvicorn worker{'s' if workers > 1 else ''}")
        axis.set_yscale("log")  # the constant-returning Starlette app is 10-50x the others
        axis.set_ylabel("requests per second, log scale (median of rounds)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

"""Throughput and tail latency of the service beside its previous version and reference apps,
measured with wrk.

    make bench      # 1 and 2 workers, 3 rounds of 15 s, then a 5-minute soak
    .venv/bin/python bench/throughput.py --quick    # 1 and 2 workers, 2 rounds of 10 s, no soak
    .venv/bin/python bench/throughput.py [--old-dir ../old] [--duration S] [--rounds N]
        [--workers 1 2] [--apps ...] [--scenarios ...] [--warmup S] [--soak S] [--results DIR]

Loads 10,000 products into BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/
catalog_perf) with this checkout's bench/load_catalog.py (the previous version's migrations
are the same schema, so both versions run against the same table). An app is a launch recipe
(`App`: a command with {port} and {workers}, a working directory, extra environment), so each
runs as it is deployed, on 127.0.0.1:

- catalog: the service as shipped, `python main.py` (granian, server.py), LOG_LEVEL=warning;
- catalog (uvicorn main:app): the same code under uvicorn (httptools);
- old main (h11, as shipped) and old main (uvicorn main:app): the previous version, in
  `--old-dir` (only with it), under its production command (uvicorn with h11 and its 64 KiB
  head bound) and under plain uvicorn; every uvicorn run of either version gets a fresh
  PROMETHEUS_MULTIPROC_DIR, as their production does, and LOG_LEVEL=warning;
- textbook: reference/textbook_app.py (the guide's template as FastAPI's full-stack template
  writes it) under uvicorn, as a tutorial user runs it;
- hand-written app (same work): the yardstick, reference/psycopg2_app.py (FastAPI and psycopg2
  doing the service's work with its guarantees: see its docstring), under uvicorn; hand-written
  on granian: the same app under granian;
- starlette (constant): reference/starlette_app.py, no database (not in the default set).

Every wrk run (2 threads, 32 connections) starts its app afresh (all of them up at once would
hold more connections than PostgreSQL's default max_connections of 100), warms it up with
`--warmup` seconds of the same script, trims the table back to the 10,000 products, then
measures. Within a round every app runs a scenario back to back, the order rotating from round
to round, so that each ratio comes from the same moment: ratios are taken round by round and
reported as median (min-max). Medians of the rounds, with min-max, go to RESULTS/throughput.md,
the raw runs to throughput-runs.json, the chart to throughput.png (RESULTS: bench/results unless
`--results`); the apps' output to log files in a temporary directory named at the start. Every
answer must be a 2xx: a run with non-2xx answers or socket errors is reported at the end and
the command exits with status 1. `--soak 300` adds a 5-minute mixed run of the service (2
workers) and reports each worker's RSS at its start and end.
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
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
PROJECT_DIR = BENCH.parent
REFERENCE_DIR = BENCH / "reference"
sys.path.insert(0, str(PROJECT_DIR))

from bench.load_catalog import load, trim  # noqa: E402
from config import normalize_database_url  # noqa: E402
from tests.server import free_port  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/catalog_perf"
PRODUCTS = 10_000
HOST = "127.0.0.1"
PYTHON = sys.executable

CATALOG = "catalog"
CATALOG_UVICORN = "catalog (uvicorn main:app)"
OLD = "old main (h11, as shipped)"
OLD_UVICORN = "old main (uvicorn main:app)"
TEXTBOOK = "textbook"
# The yardstick: the table's "vs hand-written" column is an app's req/s over this one's.
REFERENCE = "hand-written app (same work)"
REFERENCE_GRANIAN = "hand-written on granian"
STARLETTE = "starlette (constant)"
OLD_APPS = (OLD, OLD_UVICORN)
NOT_BY_DEFAULT = (STARLETTE,)
# The ratios the goals are stated in: (label, numerator, denominator), each taken round by
# round. In "POST idempotent", catalog / hand-written is the keyed POST over the yardstick's.
RATIOS = (
    ("catalog / old (h11, as shipped)", CATALOG, OLD),
    ("catalog / textbook", CATALOG, TEXTBOOK),
    ("catalog / hand-written (uvicorn)", CATALOG, REFERENCE),
    ("catalog / hand-written on granian", CATALOG, REFERENCE_GRANIAN),
    ("catalog (uvicorn) / old (uvicorn)", CATALOG_UVICORN, OLD_UVICORN),
)
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
# round): only the apps that keep answers (`App.keeps_answers`) run them.
KEYED = {"POST idempotent": "POST"}
TAIL_LIMIT = 3.0  # p99 over p50 above this is listed after the tables


@dataclass(frozen=True)
class App:
    """How an app is started: `command` in `cwd`, with `env` added to the environment (the
    benchmark's DATABASE_URL and PRODUCTS always); "{port}" and "{workers}" in either are
    filled in. `metrics_dir`: a fresh, empty PROMETHEUS_MULTIPROC_DIR for every start."""

    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    keeps_answers: bool = False  # serves `Idempotency-Key`: runs the keyed scenarios
    metrics_dir: bool = False
    skips: frozenset[str] = frozenset()  # scenarios it does not serve as the service does

    def runs(self, scenario: str) -> bool:
        return scenario not in self.skips and (scenario not in KEYED or self.keeps_answers)


def _uvicorn(module: str, *flags: str) -> tuple[str, ...]:
    """`python -m uvicorn module` with its defaults (httptools, uvloop) unless `flags` say."""
    return (
        *(PYTHON, "-m", "uvicorn", module, "--host", HOST, "--port", "{port}"),
        *("--workers", "{workers}", "--no-access-log", "--log-level", "warning", *flags),
    )


# The previous version's production protocol (its README, "Running in production").
H11 = ("--http", "h11", "--h11-max-incomplete-event-size", "65536")
QUIET = {"LOG_LEVEL": "warning"}  # the service's own access line off, in every version


def recipes(old_dir: Path | None) -> dict[str, App]:
    """Every app this benchmark can start; the previous version's only with `old_dir`."""
    apps = {
        CATALOG: App(
            (PYTHON, "main.py"),
            PROJECT_DIR,
            {"HOST": HOST, "PORT": "{port}", "WEB_CONCURRENCY": "{workers}", **QUIET},
            keeps_answers=True,
        ),
        CATALOG_UVICORN: App(_uvicorn("main:app"), PROJECT_DIR, QUIET, True, metrics_dir=True),
    }
    if old_dir is not None:
        apps[OLD] = App(_uvicorn("main:app", *H11), old_dir, QUIET, True, metrics_dir=True)
        apps[OLD_UVICORN] = App(_uvicorn("main:app"), old_dir, QUIET, True, metrics_dir=True)
    granian = (PYTHON, "-m", "granian", "--interface", "asgi", "--workers", "{workers}")
    apps |= {
        # The textbook's list ignores `expand`: it embeds no category.
        TEXTBOOK: App(
            _uvicorn("textbook_app:app"), REFERENCE_DIR, skips=frozenset({"list 100 expand"})
        ),
        REFERENCE: App(_uvicorn("psycopg2_app:app"), REFERENCE_DIR, keeps_answers=True),
        REFERENCE_GRANIAN: App(
            (*granian, "--host", HOST, "--port", "{port}", "psycopg2_app:app"),
            REFERENCE_DIR,
            keeps_answers=True,
        ),
        STARLETTE: App(_uvicorn("starlette_app:app"), REFERENCE_DIR),
    }
    return apps


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@contextmanager
def start(
    app: App,
    workers: int,
    database_url: str,
    log: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    """`app` on a free port until the block ends: its base URL and process id. Its output goes
    to `log` (appended) if given; `settings` go to its environment (`database_read_url="..."`:
    DATABASE_READ_URL)."""
    port = free_port()
    fill = {"port": str(port), "workers": str(workers)}
    env = {**os.environ, "DATABASE_URL": database_url, "PRODUCTS": str(PRODUCTS)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({name: value.format(**fill) for name, value in app.env.items()})
    env.update({name.upper(): value for name, value in (settings or {}).items()})
    command = [part.format(**fill) for part in app.command]
    with ExitStack() as stack:
        if app.metrics_dir:
            metrics = tempfile.TemporaryDirectory(prefix="throughput-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(metrics)
        output = stack.enter_context(log.open("ab")) if log else None
        process = subprocess.Popen(
            command,
            cwd=app.cwd,
            env=env,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
        stack.callback(_stop, process)
        base_url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                where = f"; its output: {log}" if log else ""
                raise RuntimeError(f"{command} exited with {process.returncode}{where}")
            try:
                httpx.get(f"{base_url}/products/1", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base_url, process.pid


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the app's process group (server and workers), SIGKILL after 30 s."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sent)
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def serve(
    app: str, cwd: Path, workers: int, database_url: str, **settings: str
) -> Iterator[tuple[str, int]]:
    """`app` (a module:attribute) under uvicorn with h11 and its 64 KiB head bound, the
    previous version's production server (bench/scaling.py's servers)."""
    with start(App(_uvicorn(app, *H11), cwd), workers, database_url, None, settings) as served:
        yield served


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
# wrk's latency distribution: "    50%   12.34ms" (trailing blanks and minutes seen too).
_PERCENTILES = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def _percentiles(output: str) -> dict[str, float]:
    return {p: float(value) * _UNITS[unit] for p, value, unit in _PERCENTILES.findall(output)}


def wrk(base_url: str, script: str, duration: int, connections: int = 32) -> Run:
    """One wrk run; a run whose output has no latency distribution is repeated once."""
    for attempt in (1, 2):
        output = _wrk_output(base_url, script, duration, connections)
        if len(_percentiles(output)) == 2:
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
    percentiles = _percentiles(output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
    )


def _save_raw(results: dict[tuple[int, str, str], list[Run]], directory: Path) -> None:
    """Every run so far, so that a crash late in a long benchmark keeps what it measured."""
    raw = [
        {"workers": w, "scenario": s, "app": a, "runs": [vars(run) for run in runs]}
        for (w, s, a), runs in results.items()
    ]
    (directory / "throughput-runs.json").write_text(json.dumps(raw, indent=1))


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def soak(app: App, database_url: str, seconds: int, log: Path) -> list[tuple[int, float, float]]:
    trim(database_url, PRODUCTS)
    with start(app, 2, database_url, log) as (base_url, master):
        wrk(base_url, "mixed.lua", 20)  # warm-up: pools full, caches hot
        workers = _workers_of(master)
        start_rss = {pid: _rss_mib(pid) for pid in workers}
        wrk(base_url, "mixed.lua", seconds)
        return [(pid, start_rss[pid], _rss_mib(pid)) for pid in workers]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="a shorter comparison: --duration 10 --rounds 2"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--old-dir", type=Path, help="a checkout of the previous version: adds its two apps"
    )
    parser.add_argument("--apps", nargs="+", help="default: all available but starlette")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--soak", type=int, default=0, help="seconds of the RSS soak run")
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="output folder")
    parser.add_argument(
        "--replot", action="store_true", help="redraw the chart from throughput-runs.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 10, 2
    if args.replot:
        raw = json.loads((args.results / "throughput-runs.json").read_text())
        saved = {
            (r["workers"], r["scenario"], r["app"]): [Run(**x) for x in r["runs"]] for r in raw
        }
        args.apps = list(dict.fromkeys(app for _, _, app in saved))
        args.workers = sorted({w for w, _, _ in saved})
        args.scenarios = list(dict.fromkeys(s for _, s, _ in saved))
        _chart(saved, args.results / "throughput.png", args)
        return
    if args.old_dir is not None:
        args.old_dir = args.old_dir.resolve()
        if not (args.old_dir / "main.py").is_file():
            parser.error(f"--old-dir {args.old_dir} has no main.py")
    apps = recipes(args.old_dir)
    if args.apps is None:
        args.apps = [name for name in apps if name not in NOT_BY_DEFAULT]
    unknown = [name for name in args.apps if name not in apps]
    if unknown:
        known = ", ".join(repr(name) for name in recipes(Path("old")))
        parser.error(f"unknown apps {unknown} (the old ones need --old-dir); known: {known}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    args.results.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="throughput-logs-"))
    url = normalize_database_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    print(f"loading {PRODUCTS:,} products ...; the apps' output goes to {logs}", flush=True)
    load(url, PRODUCTS)

    results: dict[tuple[int, str, str], list[Run]] = defaultdict(list)
    for workers in args.workers:
        for round_ in range(args.rounds):
            shift = round_ % len(args.apps)
            order = args.apps[shift:] + args.apps[:shift]
            for scenario in args.scenarios:
                script = SCENARIOS[scenario]
                for name in order:
                    app = apps[name]
                    if not app.runs(scenario):
                        continue
                    with start(app, workers, url, logs / f"{_slug(name)}.log") as (base_url, _):
                        if args.warmup:  # pools full, caches hot
                            warm = wrk(base_url, script, args.warmup)
                            if warm.errors:
                                print(f"warm-up: {warm.errors} errors ({name})", flush=True)
                            # Requests wrk left in flight finish first: a POST's refresh
                            # after the trim's DELETE would fail.
                            time.sleep(1)
                        trim(url, PRODUCTS)  # every run starts on the same 10,000 products
                        run = wrk(base_url, script, args.duration)
                    results[(workers, scenario, name)].append(run)
                    _save_raw(results, args.results)
                    print(
                        f"{workers}w r{round_ + 1} {scenario:<15} {name:<29} "
                        f"{run.rps:9.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
                        f"p99 {run.p99_ms:7.2f} ms  errors {run.errors}",
                        flush=True,
                    )
    report(results, args)
    if args.soak:
        lines = [
            "",
            f"Soak: {CATALOG}, 2 workers, mixed 80/20 for {args.soak} s at 32 connections.",
            "",
            "| worker | RSS at start MiB | RSS at end MiB |",
            "|---|---:|---:|",
        ]
        rss = soak(apps[CATALOG], url, args.soak, logs / "soak.log")
        lines += [f"| {pid} | {a:.1f} | {b:.1f} |" for pid, a, b in rss]
        with (args.results / "throughput.md").open("a") as file:
            file.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    failed = [
        f"{w}w {s} {a}: {sum(r.errors for r in runs)}"
        for (w, s, a), runs in results.items()
        if any(r.errors for r in runs)
    ]
    if failed:
        sys.exit(
            "non-2xx answers or socket errors (the table's errors column; the apps' output is "
            f"in {logs}):\n" + "\n".join(failed)
        )


def _ordered(
    results: dict[tuple[int, str, str], list[Run]], args: argparse.Namespace
) -> Iterator[tuple[int, str, str, list[Run]]]:
    """The results by workers, scenario and app, in the order the options named them."""
    for workers in args.workers:
        for scenario in args.scenarios:
            for name in args.apps:
                if runs := results.get((workers, scenario, name)):
                    yield workers, scenario, name, runs


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(results: dict[tuple[int, str, str], list[Run]], args: argparse.Namespace) -> None:
    cpu = re.search(r"model name\s+:\s+(.*)", Path("/proc/cpuinfo").read_text())
    lines = [
        f"`bench/throughput.py`: wrk -t2 -c32 -d{args.duration}s after a {args.warmup}-s "
        f"warm-up, {args.rounds} rounds (median, min-max), {PRODUCTS:,} products, PostgreSQL on "
        f"the same host; {os.cpu_count()} cores ({cpu.group(1) if cpu else 'unknown CPU'}). "
        "vs hand-written: req/s over the yardstick's, bench/reference/psycopg2_app.py under "
        "uvicorn (the same work, by hand) in the same round. POST idempotent: each request with "
        "its own `Idempotency-Key`.",
        "",
        "| workers | scenario | app | req/s (min-max) | p50 ms | p99 ms | p99/p50 | errors "
        "| vs hand-written |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    tails = []
    for workers, scenario, name, runs in _ordered(results, args):
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
        if p99 / p50 > TAIL_LIMIT:
            tails.append(
                f"- {workers}w {scenario}, {name}: p99 {p99:.1f} ms = {p99 / p50:.1f}x p50"
            )
    lines += _ratios(results, args)
    lines += _keyed_over_unkeyed(results, args)
    if tails:
        lines += ["", f"p99 above {TAIL_LIMIT:g}x p50 (medians of the rounds):", *tails]
    (args.results / "throughput.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    _chart(results, args.results / "throughput.png", args)


def _ratios(results: dict[tuple[int, str, str], list[Run]], args: argparse.Namespace) -> list[str]:
    """The goals' ratios, round by round (the two runs of a pair are back to back), and the
    catalog's p99/p50 run by run: median (min-max) of the rounds."""
    columns = [(label, a, b) for label, a, b in RATIOS if a in args.apps and b in args.apps]
    if not columns and CATALOG not in args.apps:
        return []
    lines = [
        "",
        "Ratios of req/s, round by round (median, min-max); in POST idempotent, catalog / "
        "hand-written is the keyed POST over the yardstick's keyed POST:",
        "",
        "| workers | scenario | "
        + " | ".join(label for label, _, _ in columns)
        + " | catalog p99/p50 |",
        "|---:|---|" + "---:|" * (len(columns) + 1),
    ]
    for workers in args.workers:
        for scenario in args.scenarios:
            cells = []
            for _, a, b in columns:
                top, bottom = (
                    results.get((workers, scenario, a)),
                    results.get((workers, scenario, b)),
                )
                pairs = [x.rps / y.rps for x, y in zip(top or [], bottom or [], strict=False)]
                cells.append(_spread(pairs) if pairs else "-")
            catalog = results.get((workers, scenario, CATALOG), [])
            tail = [run.p99_ms / run.p50_ms for run in catalog]
            cells.append(_spread(tail) if tail else "-")
            if any(cell != "-" for cell in cells):
                lines.append(f"| {workers} | {scenario} | " + " | ".join(cells) + " |")
    return lines


def _keyed_over_unkeyed(
    results: dict[tuple[int, str, str], list[Run]], args: argparse.Namespace
) -> list[str]:
    """Each keyed scenario's req/s over the same app's unkeyed one: what keeping answers costs.

    One ratio per round (the two runs of a pair are minutes apart at most, where two rounds
    can be far apart on a shared machine), and their median and range.
    """
    lines = []
    for workers, scenario, name, runs in _ordered(results, args):
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
    try:
        import matplotlib
    except ImportError:  # bench/requirements.txt has it
        print(f"matplotlib is missing: no chart ({path})", flush=True)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(args.workers), figsize=(7 * len(args.workers), 5), squeeze=False
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
        axis.set_title(f"{workers} worker{'s' if workers > 1 else ''}")
        axis.set_yscale("log")  # the constant-returning Starlette app is 10-50x the others
        axis.set_ylabel("requests per second, log scale (median of rounds)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

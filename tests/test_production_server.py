"""The production entry point, `python main.py`, as a real server: attacked over raw sockets.

A request whose framing is ambiguous (Content-Length and Transfer-Encoding, two lengths,
obsolete line folding, bare LF) is where a proxy and the server may disagree on where a
request ends; the request hidden in its body must never run, and the connection must close
(RFC 9112 §6.3, §11.2). And the entry point itself: the header bound, its workers, and the
metrics directory it makes and removes. bench/README.md, "Choosing the HTTP server", has the
same attacks against the servers that were not chosen (bench/http_attacks.py).
"""

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Service, migrated_database, service_process

CRLF = b"\r\n"
CL, TE = "Content-Length: {n}", "Transfer-Encoding: chunked"
# (framing header lines, body: "cl.te" = an empty chunked body, then the hidden request;
# "hidden" = the hidden request alone; "te.cl" = the hidden request as one chunk, end of line)
AMBIGUOUS = {
    "CL before TE": ((CL, TE), "cl.te", CRLF),
    "TE before CL": ((TE, CL), "cl.te", CRLF),
    "TE upper-case": ((CL, "Transfer-Encoding: CHUNKED"), "cl.te", CRLF),
    "TE after a tab": ((CL, "Transfer-Encoding:\tchunked"), "cl.te", CRLF),
    "TE chunked, identity": ((CL, "Transfer-Encoding: chunked, identity"), "cl.te", CRLF),
    "TE identity, chunked": ((CL, "Transfer-Encoding: identity, chunked"), "cl.te", CRLF),
    "space before the colon": ((CL, "Transfer-Encoding : chunked"), "cl.te", CRLF),
    "two TE headers": ((CL, "Transfer-Encoding: identity", TE), "cl.te", CRLF),
    "two different lengths": (("Content-Length: 0", CL), "hidden", CRLF),
    "two different lengths, other order": ((CL, "Content-Length: 0"), "hidden", CRLF),
    "obsolete line folding": ((CL, "Transfer-Encoding:\r\n chunked"), "cl.te", CRLF),
    "bare LF hides TE": ((CL, "X-Pad: a\nTransfer-Encoding: chunked"), "cl.te", CRLF),
    "bare LF head, CL and TE": ((CL, TE), "cl.te", b"\n"),
    "TE.CL": ((TE, "Content-Length: {first}"), "te.cl", CRLF),
}


@pytest.fixture(scope="module")
def run_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's TMPDIR: where it makes its run directory (and its workers' metrics)."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, run_directory: Path) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("production")
    with (
        migrated_database("production", directory) as url,
        service_process(url, web_concurrency="2", tmpdir=str(run_directory)) as service,
    ):
        yield service


def _address(service: Service) -> tuple[str, int]:
    host, port = service.base_url.removeprefix("http://").split(":")
    return host, int(port)


def _hidden_post(marker: str) -> bytes:
    body = json.dumps({"name": marker, "price": 1}).encode()
    head = (
        "POST /products HTTP/1.1\r\nHost: catalog\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _attack(framing: tuple[str, ...], body_kind: str, eol: bytes, marker: str) -> bytes:
    hidden = _hidden_post(marker)
    if body_kind == "cl.te":
        body = b"0\r\n\r\n" + hidden
    elif body_kind == "te.cl":
        body = f"{len(hidden):x}\r\n".encode() + hidden + b"\r\n0\r\n\r\n"
    else:
        body = hidden
    first = body.find(CRLF) + 2
    lines = ["POST /products HTTP/1.1", "Host: catalog", "Content-Type: application/json"]
    lines += [line.format(n=len(body), first=first) for line in framing]
    return eol.join(line.encode() for line in lines) + eol + eol + body


def _exchange(service: Service, request: bytes, quiet: float = 3.0) -> tuple[bytes, bool]:
    """What the server answers, and whether it closed the connection (within `quiet` s of
    silence after its last bytes)."""
    with socket.create_connection(_address(service)) as connection:
        connection.sendall(request)
        connection.settimeout(quiet)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            pass
    return received, True


def _product_named(service: Service, marker: str) -> list[object]:
    found: list[object] = httpx.get(f"{service.base_url}/products", params={"q": marker}).json()
    return found


@pytest.mark.parametrize("case", list(AMBIGUOUS))
def test_a_request_hidden_behind_ambiguous_framing_never_runs_and_the_connection_closes(
    service: Service, case: str
) -> None:
    marker = f"smuggled-{uuid.uuid4().hex}"
    framing, body_kind, eol = AMBIGUOUS[case]

    answer, closed = _exchange(service, _attack(framing, body_kind, eol, marker))

    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]  # refused: 400, 415 or 422
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # one answer: nothing else ran
    assert closed, answer[:200]
    assert _product_named(service, marker) == []


def test_a_head_over_64_kib_is_431_and_the_connection_closed(service: Service) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: catalog\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"

    answer, closed = _exchange(service, head)

    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert closed


def test_an_endless_header_is_refused_and_its_connection_closed(service: Service) -> None:
    """The server stops reading at 64 KiB: it answers (431) and closes, rather than waiting
    for the end of a head that never comes (a timeout here)."""
    with socket.create_connection(_address(service)) as connection:
        connection.settimeout(10)
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: catalog\r\nX-Huge: ")
        try:
            for _ in range(256):  # 4 MiB
                connection.sendall(b"a" * 16384)
            answer = connection.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""  # closed, with our unread bytes in its buffer: a reset

    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_a_long_request_target_is_414(service: Service) -> None:
    answer, _closed = _exchange(
        service, b"GET /products?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: catalog\r\n\r\n"
    )

    assert answer.startswith(b"HTTP/1.1 414"), answer[:200]


def test_a_head_that_never_ends_is_cut_off(service: Service) -> None:
    started = time.monotonic()
    answer, closed = _exchange(service, b"GET /health HTTP/1.1\r\nHost: catalog\r\n", quiet=30)

    assert closed and answer == b""
    assert time.monotonic() - started < 20  # the header read timeout (server.py), not forever


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def test_web_concurrency_workers_report_their_metrics_together(
    service: Service, run_directory: Path
) -> None:
    before = _served(service)
    for _ in range(40):
        assert httpx.get(f"{service.base_url}/products").status_code == 200
    after = _served(service)

    assert len(_children(service.process.pid)) == 2
    assert after - before >= 40  # whichever worker answered the scrape counts both
    metrics = list(run_directory.glob("catalog-*/metrics"))
    assert len(metrics) == 1 and any(metrics[0].iterdir())


def _served(service: Service) -> float:
    text = httpx.get(f"{service.base_url}/metrics").text
    line = 'catalog_http_requests_total{method="GET",route="/products",status="200"} '
    return sum(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))


def test_the_run_directory_is_removed_at_exit(tmp_path: Path) -> None:
    run_directory = tmp_path / "run"
    run_directory.mkdir()
    with (
        migrated_database("exit", tmp_path) as url,
        service_process(url, tmpdir=str(run_directory)) as service,
    ):
        assert httpx.get(f"{service.base_url}/products").status_code == 200
        assert list(run_directory.glob("catalog-*/metrics"))
        service.process.terminate()
        exit_code = service.process.wait(timeout=30)

    assert exit_code == 0
    assert list(run_directory.iterdir()) == []

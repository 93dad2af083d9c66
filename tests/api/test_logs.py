"""LOG_FORMAT=json: every line a real server writes is one JSON object, uvicorn's own too."""

import json
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server import migrate, migrated_database, service_process


def _parsed(line: str) -> dict[str, Any]:
    try:
        entry: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        pytest.fail(f"a line that is not JSON: {line!r}")
    return entry


@pytest.mark.parametrize("command", ["uvicorn main:app", "python main.py"])
def test_every_line_is_json_however_the_server_is_started(tmp_path: Path, command: str) -> None:
    database_url = f"sqlite:///{tmp_path / 'logs.db'}"
    migrate(database_url)

    settings = {"log_format": "json", "log_level": "info"}
    with service_process(database_url, command=command, **settings) as service:
        assert httpx.get(f"{service.base_url}/products").status_code == 200
        address = urlsplit(service.base_url)
        with socket.create_connection((address.hostname, address.port)) as connection:
            connection.sendall(b"NOT HTTP\r\n\r\n")  # uvicorn logs a warning of its own
            connection.recv(1024)
        service.process.send_signal(signal.SIGTERM)
        service.process.wait(timeout=30)
        output = service.output()

    entries = [_parsed(line) for line in output.splitlines()]
    messages = [entry["message"] for entry in entries]
    assert any(message.startswith("Started server process") for message in messages), output
    assert "Application startup complete." in messages, output
    assert "Invalid HTTP request received." in messages, output
    assert "Application shutdown complete." in messages, output
    assert {"uvicorn.error", "catalog.access"} <= {entry["logger"] for entry in entries}
    assert not any("color_message" in entry for entry in entries)


def test_a_readiness_check_logs_its_access_line_and_nothing_else(tmp_path: Path) -> None:
    settings = {"log_format": "json", "log_level": "info"}
    with (
        migrated_database("ready_logs", tmp_path) as database_url,
        service_process(database_url, **settings) as service,
    ):
        for _ in range(3):  # a load balancer asks every second or so
            assert httpx.get(f"{service.base_url}/health/ready").status_code == 200
        service.process.send_signal(signal.SIGTERM)
        service.process.wait(timeout=30)
        output = service.output()

    entries = [_parsed(line) for line in output.splitlines()]
    ready = [entry for entry in entries if "/health/ready" in entry["message"]]
    assert len(ready) == 3 and {entry["logger"] for entry in ready} == {"catalog.access"}, output
    assert not [entry for entry in entries if entry["logger"].startswith("alembic")], output

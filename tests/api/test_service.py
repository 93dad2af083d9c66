"""The index, liveness and readiness endpoints."""

import gc
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

import main  # importing main is start-up: it freezes what was loaded
from api.draining import DRAIN_FILE_VARIABLE
from crud.health import required_revision
from database.replica import ReplicaStatus


def test_index_names_the_service_and_links_onwards(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Catalog"
    assert body["version"]
    assert body["links"] == {
        "docs": "/docs",
        "redoc": "/redoc",
        "openapi": "/openapi.json",
        "products": "/products",
        "categories": "/categories",
        "health": "/health",
    }
    for link in body["links"].values():
        assert client.get(link).status_code == 200, link


def test_health_is_healthy(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_ready_is_200_when_database_answers(client: TestClient) -> None:
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_ready_reports_the_replica_and_stays_200_while_it_lags(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = SimpleNamespace(status=lambda: ReplicaStatus("lagging", 12.5))
    monkeypatch.setattr(main.app.state, "replica_monitor", monitor, raising=False)

    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "replica": {"state": "lagging", "lag_s": 12.5}}


def test_ready_is_503_naming_both_revisions_while_the_schema_is_behind(
    client: TestClient, db: Session
) -> None:
    # The test's transaction is rolled back afterwards: the revision is back at head then.
    db.execute(text("UPDATE alembic_version SET version_num = '0001'"))

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    body = response.json()
    assert (body["current_revision"], body["required_revision"]) == ("0001", required_revision())
    assert "0001" in body["detail"] and str(required_revision()) in body["detail"]
    assert "run migrations" in body["detail"]


def test_ready_is_503_while_the_instance_drains_and_the_rest_is_served(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What server.py does on SIGTERM with SHUTDOWN_DRAIN_S (api.draining).
    drain_file = tmp_path / "draining"
    monkeypatch.setenv(DRAIN_FILE_VARIABLE, str(drain_file))
    assert client.get("/health/ready").status_code == 200
    drain_file.touch()

    ready = client.get("/health/ready")
    served = client.get("/products")

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"] == "1"
    assert ready.json()["detail"] == "This instance is shutting down"
    assert served.status_code == 200


def test_start_up_warns_in_one_line_when_the_database_was_never_migrated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The app's own engine in the tests is an empty in-memory database (tests/conftest.py).
    with caplog.at_level(logging.WARNING, logger="catalog"), TestClient(main.app):
        pass

    warnings = [r.getMessage() for r in caplog.records if "never migrated" in r.getMessage()]
    assert len(warnings) == 1
    assert "make migrate" in warnings[0] and str(required_revision()) in warnings[0]


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_redoc_asks_no_other_host_for_its_logo(client: TestClient) -> None:
    page = client.get("/redoc")
    script = re.search(r'<script src="([^"]+)"', page.text)
    assert script is not None, page.text
    bundle = client.get(script.group(1))

    assert bundle.status_code == 200
    assert "cdn.redoc.ly" not in bundle.text
    assert "static/docs/favicon.png" in bundle.text  # the service's own icon instead
    assert client.get("/static/docs/favicon.png").status_code == 200


def test_the_objects_of_start_up_are_out_of_the_garbage_collectors_sight() -> None:
    # Full collections under load then scan only what requests allocate (docs/design.md).
    assert gc.get_freeze_count() > 0

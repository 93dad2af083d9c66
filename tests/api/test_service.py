"""The index, liveness and readiness endpoints."""

import gc

from fastapi.testclient import TestClient

import main  # noqa: F401  (importing main is start-up: it freezes what was loaded)


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


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_the_objects_of_start_up_are_out_of_the_garbage_collectors_sight() -> None:
    # Full collections under load then scan only what requests allocate (README, Design).
    assert gc.get_freeze_count() > 0

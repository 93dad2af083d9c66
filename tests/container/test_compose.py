"""compose.yaml, as a user brings it up with one command: PostgreSQL, the one-off migration,
then the service; `down` and `up` again keep the data in the named volume. Run by
podman-compose with tests/container/compose.test.yaml naming the images built here."""

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.container.conftest import wait_for
from tests.container.podman import Podman
from tests.server import free_port


@pytest.fixture
def project(podman: Podman, app_image: str, postgres_image: str) -> Iterator[str]:
    """A compose project of its own; taken down with its volume and network at the end."""
    name = f"catalog-test-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        podman.compose(name, "down", "--volumes", check=False)
        podman("volume", "rm", "--force", f"{name}_pgdata", check=False)


def test_the_stack_comes_up_with_one_command_and_keeps_its_data_across_down_and_up(
    podman: Podman, project: str
) -> None:
    port = free_port()
    settings = {"CATALOG_PORT": str(port)}
    base_url = f"http://127.0.0.1:{port}"

    podman.compose(project, "up", "--detach", "--no-build", environment=settings)
    # Ready: the database answers and the migration ran before the service started.
    wait_for(f"{base_url}/health/ready", timeout=180)
    migrate = podman(
        "ps",
        "--all",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--filter",
        "label=com.docker.compose.service=migrate",
        "--format",
        "{{.Status}}",
    ).stdout
    assert "Exited (0)" in migrate, migrate
    body = {"sku": "KEPT-1", "name": "Kept across down and up", "price": 12.5}
    created = httpx.post(f"{base_url}/products", json=body, timeout=10)
    assert created.status_code == 201, created.text

    podman.compose(project, "down", environment=settings)
    assert podman("volume", "exists", f"{project}_pgdata", check=False).returncode == 0
    podman.compose(project, "up", "--detach", "--no-build", environment=settings)
    wait_for(f"{base_url}/health/ready", timeout=180)

    read = httpx.get(f"{base_url}{created.headers['location']}", timeout=10)
    assert read.status_code == 200, read.text
    assert read.json() == created.json()

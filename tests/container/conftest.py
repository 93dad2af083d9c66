"""Fixtures for the container tests: podman set up for this machine, and the images, built once
per run (their layers stay cached in podman's storage between runs).

These tests run only when named, `pytest tests/container` (`make test-container`, which installs
the tools first): the suite's own runs (`pytest`, `make test-sqlite`, `make test-postgres`)
leave them out. Without podman they skip, except under CI=true, where they fail.
"""

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from config import PROJECT_DIR
from tests.container.podman import (
    APP_IMAGE,
    CONTAINERS_CONF,
    HERE,
    POSTGRES_IMAGE,
    Podman,
    build_base_image,
    codename,
    missing_tools,
    podman_compose,
)
from tests.databases import IN_CI, ON_POSTGRES, fresh_postgres_database

# Figures measured by this run, printed at its end (bench/README.md, "Container image").
MEASURED: dict[str, str] = {}


def _named_on_the_command_line(config: pytest.Config) -> bool:
    for argument in config.args:
        path = Path(config.invocation_params.dir, argument.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collected only when this directory (or a file in it) is named on the command line."""
    return None if _named_on_the_command_line(config) else True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.section("container image")
        for name, value in MEASURED.items():
            terminalreporter.write_line(f"{name}: {value}")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the container tests are required, never skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    missing = missing_tools()
    if missing:
        _unavailable(f"{', '.join(missing)} missing: `make test-container` installs them")
    compose_command = podman_compose()
    assert compose_command is not None
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(env={**os.environ, "CONTAINERS_CONF": str(conf)}, compose_command=compose_command)


@pytest.fixture(scope="session")
def base_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Debian with python3, made here once and kept (`podman rmi` it to make it anew)."""
    image = f"localhost/debian-python:{codename()}"
    if not podman.image_exists(image):
        started = time.monotonic()
        build_base_image(podman, image, tmp_path_factory.mktemp("base"))
        MEASURED["base image made in"] = f"{time.monotonic() - started:.0f} s"
    return image


@pytest.fixture(scope="session")
def app_image(podman: Podman, base_image: str) -> str:
    """The service's image from the repository's Containerfile, on the local base."""
    started = time.monotonic()
    podman.build(APP_IMAGE, PROJECT_DIR, base_image=base_image)
    MEASURED["service image built in"] = f"{time.monotonic() - started:.1f} s"
    size = int(podman("image", "inspect", "--format", "{{.Size}}", APP_IMAGE).stdout)
    MEASURED["service image size"] = f"{size / 1e6:.0f} MB ({base_image} base)"
    return APP_IMAGE


@pytest.fixture(scope="session")
def postgres_image(podman: Podman, base_image: str) -> str:
    """PostgreSQL for the compose test, standing in for the official image compose.yaml names."""
    podman.build(POSTGRES_IMAGE, HERE / "postgres", base_image=base_image)
    return POSTGRES_IMAGE


@pytest.fixture(scope="module")
def host_database() -> Iterator[str]:
    """A fresh database on the host's PostgreSQL (TEST_DATABASE_URL's server), dropped after."""
    if not ON_POSTGRES:
        _unavailable("TEST_DATABASE_URL is not set: `make test-container` sets it")
    with fresh_postgres_database("catalog_container") as url:
        yield url


def wait_for(
    url: str, *, status: int = 200, timeout: float = 60, alive: Callable[[], None] | None = None
) -> float:
    """Seconds until `url` answers `status`; fails after `timeout`. `alive`, when given, is
    called between tries and may fail first (a container that has exited)."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == status:
                return time.monotonic() - started
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if alive is not None:
            alive()
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s; last: {last}")

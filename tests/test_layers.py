"""Every production layer is wired into the app by one line of main.py, and the guide's flow
stands without it: with that line deleted, the core tests (crud, and the routes of products and
categories) still pass (docs/design.md, "Each production layer, in a room of its own")."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config import PROJECT_DIR
from tests.databases import TEST_DATABASE_URL

LAYERS = {
    "routing conventions": "app.add_middleware(RoutingMiddleware)",
    "replica routing": "install_replica(app, settings)",
    "CORS": "install_cors(app, settings)",
    "limits": "app.add_middleware(LimitsMiddleware)",
    "request context, logs, metrics": "app.add_middleware(RequestContextMiddleware)",
    "idempotency": "install_idempotency(app)",
    "metrics endpoint": "app.include_router(metrics_router)",
    "offline docs": "install_offline_docs(app)",
    "OpenAPI document": "install_openapi(app)",
    "pool metrics": 'register_pool_metrics(engine, pool="write")',
}
CORE_TESTS = [
    "tests/crud",
    "tests/api/test_products.py",
    "tests/api/test_categories.py",
    "tests/api/test_stock.py",
    "tests/api/test_product_categories.py",
]

# What the layers do is the rest of the suite's business, on both databases; whether the core
# stands without them needs one of them.
pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL is not None, reason="checked in the SQLite run: it is about the code"
)


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("layers") / "project"
    shutil.copytree(
        PROJECT_DIR,
        copy,
        ignore=shutil.ignore_patterns(".*", "__pycache__", "bench", "catalog.db*"),
    )
    return copy


@pytest.mark.parametrize("wiring", LAYERS.values(), ids=LAYERS.keys())
def test_the_core_tests_pass_with_a_layers_wiring_line_deleted(
    project_copy: Path, wiring: str
) -> None:
    main = (PROJECT_DIR / "main.py").read_text()
    lines = main.splitlines(keepends=True)
    assert sum(line.strip().startswith(wiring) for line in lines) == 1, wiring
    (project_copy / "main.py").write_text(
        "".join(line for line in lines if not line.strip().startswith(wiring))
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *CORE_TESTS],
        cwd=project_copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:]

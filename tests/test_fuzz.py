"""Schemathesis against the live service: every check, hundreds of examples per operation.

The service runs as shipped (`python main.py`), with API keys on (so the authentication checks
have something to check), against this run's database: a SQLite file, or a fresh PostgreSQL
database.
The allowances in schemathesis.toml are the only configuration; the seed is fixed.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import PROJECT_DIR
from tests.databases import ON_POSTGRES, fresh_postgres_database
from tests.server import migrate, running_service

API_KEY = "fuzz-key-2f9c"
EXAMPLES_PER_OPERATION = 300
SEED = 20261125


@pytest.fixture
def fuzz_database(tmp_path: Path) -> Iterator[str]:
    if ON_POSTGRES:
        with fresh_postgres_database("catalog_fuzz") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'fuzz.db'}"


def test_schemathesis_finds_nothing(fuzz_database: str) -> None:
    migrate(fuzz_database)
    with running_service(fuzz_database, api_keys=API_KEY) as base_url:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{base_url}/openapi.json",
                "--checks=all",
                "--phases=examples,coverage,fuzzing,stateful",
                f"--max-examples={EXAMPLES_PER_OPERATION}",
                f"--seed={SEED}",
                f"--header=X-API-Key: {API_KEY}",
                "--no-color",
            ],
            cwd=PROJECT_DIR,  # where schemathesis.toml is
            capture_output=True,
            text=True,
            timeout=900,
        )

    summary = result.stdout[result.stdout.rfind("SUMMARY") :]
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert "No issues found" in summary, summary

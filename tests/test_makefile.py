"""The Makefile's housekeeping targets, run on a copy of it in an empty directory."""

import shutil
import subprocess
from pathlib import Path

from config import PROJECT_DIR


def make(directory: Path, *arguments: str) -> str:
    shutil.copy(PROJECT_DIR / "Makefile", directory / "Makefile")
    done = subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_make_clean_removes_the_local_database_and_caches_but_not_the_venv(tmp_path: Path) -> None:
    removed = ["catalog.db", "catalog.db-wal", "catalog.db-shm", "api/__pycache__/x.pyc"]
    removed += [".pytest_cache/v", ".mypy_cache/x", ".ruff_cache/x"]
    kept = [".venv/lib/__pycache__/x.pyc", ".env", "api/routes.py", "other.db"]
    for name in removed + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    make(tmp_path, "clean")

    assert [name for name in removed if (tmp_path / name).exists()] == []
    assert not (tmp_path / "api/__pycache__").exists()
    assert [name for name in kept if not (tmp_path / name).exists()] == []


def test_make_test_says_first_what_it_installs_and_which_database_it_recreates(
    tmp_path: Path,
) -> None:
    url = "postgresql://postgres@db.example:5432/catalog_check"
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        (tmp_path / requirements).touch()
    # -n: print what would run, run nothing.
    planned = make(tmp_path, "-n", "test", f"PG_TEST_URL={url}").splitlines()
    notice = make(tmp_path, "test-notice", f"PG_TEST_URL={url}")

    said = next(i for i, line in enumerate(planned) if "make test:" in line)
    done = next(i for i, line in enumerate(planned) if "pip install" in line or "pytest" in line)
    assert said < done
    assert "Debian's packages" in notice and "apt-get" in notice
    assert f"re-creates the database of PG_TEST_URL ({url})" in notice

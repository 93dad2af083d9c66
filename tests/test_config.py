"""Settings: environment and `.env`, URL normalisation, and a clear stop on bad values."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from config import DEFAULT_DATABASE_URL, PROJECT_DIR, Settings, normalize_database_url
from database.engine import build_engine
from tests.databases import ON_POSTGRES, TEST_DATABASE_URL
from tests.server import free_port


@pytest.mark.parametrize(
    "url",
    [
        "postgres://user:pw@db.example.com:5432/shop",
        "postgresql://user:pw@db.example.com:5432/shop",
        "postgresql+psycopg2://user:pw@db.example.com:5432/shop",
    ],
)
def test_postgres_urls_are_pinned_to_psycopg2(url: str) -> None:
    settings = Settings(database_url=url)

    assert settings.database_url == "postgresql+psycopg2://user:pw@db.example.com:5432/shop"
    engine = build_engine(settings.database_url, settings)
    assert engine.dialect.driver == "psycopg2"
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "query"),
    [
        (
            "postgresql://u@db1:5442,10.0.0.2:5443/shop?target_session_attrs=read-write",
            {"host": "db1,10.0.0.2", "port": "5442,5443", "target_session_attrs": "read-write"},
        ),
        ("postgres://u@db1,db2/shop", {"host": "db1,db2"}),
        ("postgresql://u@db1:5442,db2/shop", {"host": "db1,db2", "port": "5442,"}),
        (
            "postgresql://u@[::1]:5442,[2001:db8::7]:5443/shop?connect_timeout=3",
            {"host": "::1,2001:db8::7", "port": "5442,5443", "connect_timeout": "3"},
        ),
    ],
)
def test_a_libpq_multi_host_url_becomes_sqlalchemys_host_and_port_lists(
    url: str, query: dict[str, str]
) -> None:
    normalized = make_url(Settings(database_url=url).database_url)

    assert normalized.drivername == "postgresql+psycopg2"
    assert (normalized.username, normalized.database) == ("u", "shop")
    assert (normalized.host, normalized.port) == (None, None)
    assert dict(normalized.query) == query


def test_a_multi_host_url_keeps_its_password() -> None:
    url = "postgresql://u:p%40ss%2Fword@db1:5442,db2:5443/shop"

    normalized = make_url(normalize_database_url(url))

    assert normalized.password == "p@ss/word"
    assert dict(normalized.query) == {"host": "db1,db2", "port": "5442,5443"}


def test_sqlalchemys_own_multi_host_form_is_left_as_it_is() -> None:
    url = "postgresql://u@/shop?host=db1:5442&host=db2:5443&target_session_attrs=primary"

    normalized = make_url(normalize_database_url(url))

    assert (normalized.host, normalized.database) == (None, "shop")
    assert dict(normalized.query) == {
        "host": ("db1:5442", "db2:5443"),
        "target_session_attrs": "primary",
    }


@pytest.mark.postgres_only
def test_a_multi_host_url_connects_to_the_first_host_that_answers(database_url: str) -> None:
    """Nothing listens on the first host's port: libpq goes on to the next, as in a failover."""
    server = make_url(database_url)
    user = quote(server.username or "", safe="") + (
        f":{quote(server.password, safe='')}" if server.password else ""
    )
    second = f"{server.host}:{server.port or 5432}"
    url = (
        f"postgresql://{user}@127.0.0.1:{free_port()},{second}/{server.database}"
        "?target_session_attrs=read-write"
    )
    settings = Settings(database_url=url, db_connect_timeout=2)

    engine = build_engine(settings.database_url, settings)
    try:
        with engine.connect() as connection:
            port = connection.exec_driver_sql("SELECT inet_server_port()").scalar_one()
            read_only = connection.exec_driver_sql("SHOW transaction_read_only").scalar_one()
    finally:
        engine.dispose()

    assert port == (server.port or 5432)
    assert read_only == "off"


def test_default_database_is_a_sqlite_file_in_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)

    settings = Settings(_env_file=None)

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url == f"sqlite:///{PROJECT_DIR / 'catalog.db'}"
    assert settings.db_echo is False


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "DB_POOL_SIZE": "7",
        "DB_MAX_OVERFLOW": "3",
        "DB_POOL_TIMEOUT": "2.5",
        "DB_POOL_RECYCLE": "60",
        "DB_ECHO": "true",
        "HOST": "0.0.0.0",
        "PORT": "9000",
        "LOG_LEVEL": "WARNING",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    settings = Settings(_env_file=None)

    assert (settings.db_pool_size, settings.db_max_overflow) == (7, 3)
    assert (settings.db_pool_timeout, settings.db_pool_recycle) == (2.5, 60)
    assert settings.db_echo is True
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9000, "warning")


def test_settings_come_from_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgres://app@localhost/appdb\nDB_POOL_SIZE=4\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)

    settings = Settings()

    assert settings.database_url == "postgresql+psycopg2://app@localhost/appdb"
    assert settings.db_pool_size == 4


def test_env_example_documents_every_setting() -> None:
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")

    for name in Settings.model_fields:
        assert f"{name.upper()}=" in example, name


def test_engine_pool_follows_the_settings() -> None:
    settings = Settings(
        database_url="postgresql://u@localhost/db",
        db_pool_size=3,
        db_max_overflow=2,
        db_pool_timeout=1.5,
    )

    engine = build_engine(settings.database_url, settings)

    assert engine.pool.size() == 3  # type: ignore[attr-defined]
    assert engine.pool._max_overflow == 2  # type: ignore[attr-defined]
    assert engine.pool._timeout == 1.5  # type: ignore[attr-defined]
    engine.dispose()


def test_a_sqlite_file_waits_for_a_free_connection_as_long_as_the_settings_say(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"

    engine = build_engine(url, Settings(database_url=url, db_pool_timeout=1.5))

    assert engine.pool._timeout == 1.5  # type: ignore[attr-defined]
    engine.dispose()


def _run(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """`python <arguments>` in the project, with `environment` added to this one's."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=PROJECT_DIR,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "DATABASE_URL"),
        ("postgresql://user@host:notaport/db", "has a port that is not a number"),
        ("postgresql://user@host:99999/db", "has port 99999, outside 1-65535"),
        ("sqlite:////no/such/directory/catalog.db", "not a writable directory"),
        ("postgresql://user@db1:5442,db2:x/db", "host list entry 'db2:x'"),
        ("mysteriousdb://host/db", "unknown database driver"),
        ("mysql://user@host/db", "needs the driver module 'MySQLdb'"),
    ],
)
def test_malformed_database_url_stops_startup_with_one_clear_line(url: str, message: str) -> None:
    result = _run("main.py", DATABASE_URL=url)  # the production entry point

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("catalog: invalid configuration: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def _postgres_url(**parts: Any) -> str:
    assert TEST_DATABASE_URL
    return (
        make_url(normalize_database_url(TEST_DATABASE_URL))
        .set(**parts)
        .render_as_string(hide_password=False)
    )


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    ("parts", "reason"),
    [({"port": 5999}, "Connection refused"), ({"database": "no_such_db"}, "does not exist")],
)
def test_an_unreachable_database_is_one_line_at_migration_and_at_start_up(
    parts: dict[str, Any], reason: str
) -> None:
    env = {"DATABASE_URL": _postgres_url(**parts), "DB_CONNECT_TIMEOUT": "2"}
    migrate = _run("-m", "alembic", "upgrade", "head", **env)
    start = _run("-c", "import main; main.report_database()", **env)

    assert migrate.returncode == 1
    assert migrate.stderr.strip().count("\n") == 0, migrate.stderr
    assert reason in migrate.stderr and "Traceback" not in migrate.stderr
    errors = [line for line in start.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, start.stderr
    assert reason in errors[0] and "Traceback" not in start.stderr


@pytest.mark.postgres_only
def test_psycopg2_is_the_driver_that_runs(engine: Engine) -> None:
    with engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        server_version = connection.execute(text("SHOW server_version")).scalar_one()

    assert ON_POSTGRES
    assert engine.dialect.driver == "psycopg2"
    # psycopg2's connection, or the engine's subclass of it (ConfirmedCommitConnection).
    assert isinstance(dbapi_connection, psycopg2.extensions.connection)
    assert server_version


def test_a_misspelt_key_in_dotenv_is_named_at_start_up(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABSE_URL=postgresql://db.example/shop\nEDITOR=vi\n")

    result = subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR), "DATABASE_URL": "sqlite://"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "no setting" in line]
    assert len(warnings) == 1, result.stderr  # EDITOR looks like no setting of ours
    assert "DATABSE_URL" in warnings[0] and "did you mean DATABASE_URL?" in warnings[0]


def test_a_missing_metrics_directory_stops_the_server_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory"
    result = _run("main.py", DATABASE_URL="sqlite://", PROMETHEUS_MULTIPROC_DIR=str(missing))

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"catalog: PROMETHEUS_MULTIPROC_DIR={missing} is not a directory"]
    assert "Traceback" not in result.stderr

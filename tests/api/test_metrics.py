"""The pool's gauges: what their names say, on the pool each database really gets."""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from api.metrics import register_pool_metrics
from config import Settings
from database.engine import build_engine
from tests.databases import ON_POSTGRES

POOL_SIZE = 2  # PostgreSQL's, from the settings; a SQLite file gets SQLAlchemy's default, 5


@pytest.fixture
def pooled_engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """The service's engine for this run's database: PostgreSQL, or a SQLite file."""
    url = database_url if ON_POSTGRES else f"sqlite:///{tmp_path / 'pool.db'}"
    engine = build_engine(
        url, Settings(database_url=url, db_pool_size=POOL_SIZE, db_max_overflow=3)
    )
    yield engine
    engine.dispose()


def _gauges(engine: Engine) -> dict[str, float | None]:
    registry = CollectorRegistry()
    register_pool_metrics(engine, registry)
    names = ["size", "checked_out", "idle", "overflow"]
    return {
        name: registry.get_sample_value(f"catalog_database_pool_{name}", {"pool": "write"})
        for name in names
    }


def _expected_size() -> int:
    return POOL_SIZE if ON_POSTGRES else 5


def test_an_unused_pool_has_no_overflow(pooled_engine: Engine) -> None:
    assert _gauges(pooled_engine) == {
        "size": _expected_size(),
        "checked_out": 0,
        "idle": 0,
        "overflow": 0,
    }


def test_overflow_counts_connections_beyond_the_pool_size(pooled_engine: Engine) -> None:
    size = _expected_size()
    with ExitStack() as held:
        for _ in range(size + 1):
            held.enter_context(pooled_engine.connect())

        assert _gauges(pooled_engine) == {
            "size": size,
            "checked_out": size + 1,
            "idle": 0,
            "overflow": 1,
        }

    # Back in the pool: the overflow connection is closed, the others wait for requests.
    assert _gauges(pooled_engine) == {"size": size, "checked_out": 0, "idle": size, "overflow": 0}


def test_a_pool_only_partly_open_has_no_overflow(pooled_engine: Engine) -> None:
    with pooled_engine.connect():
        assert _gauges(pooled_engine) == {
            "size": _expected_size(),
            "checked_out": 1,
            "idle": 0,
            "overflow": 0,
        }


def test_the_gauges_follow_the_pool_a_dispose_makes(pooled_engine: Engine) -> None:
    registry = CollectorRegistry()
    register_pool_metrics(pooled_engine, registry)
    pooled_engine.dispose()  # what every lifespan does at its end: a new pool

    with pooled_engine.connect():
        assert (
            registry.get_sample_value("catalog_database_pool_checked_out", {"pool": "write"}) == 1
        )


def test_each_pool_has_its_own_series(pooled_engine: Engine, tmp_path: Path) -> None:
    other_url = f"sqlite:///{tmp_path / 'reads.db'}"
    reads = build_engine(other_url, Settings(database_url=other_url))
    registry = CollectorRegistry()
    register_pool_metrics(pooled_engine, registry, pool="write")
    register_pool_metrics(reads, registry, pool="read")

    with reads.connect():
        assert registry.get_sample_value("catalog_database_pool_checked_out", {"pool": "read"}) == 1
        assert (
            registry.get_sample_value("catalog_database_pool_checked_out", {"pool": "write"}) == 0
        )
    reads.dispose()


def test_an_in_memory_sqlite_pool_has_no_gauges() -> None:
    engine = build_engine("sqlite://", Settings(database_url="sqlite://"))
    registry = CollectorRegistry()

    register_pool_metrics(engine, registry)

    assert not [
        metric.name for metric in registry.collect() if metric.name.startswith("catalog_database")
    ]
    engine.dispose()

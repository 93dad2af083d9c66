"""`make seed`: the demo catalog is added once; a second run adds nothing."""

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

import seed
from config import Settings
from database.engine import build_engine
from models import Category, Product
from tests.server import migrated_database


def test_seed_adds_the_demo_catalog_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with migrated_database("seed", tmp_path) as url:
        engine = build_engine(url, Settings(database_url=url))
        monkeypatch.setattr(seed, "SessionLocal", sessionmaker(bind=engine))

        first, second = seed.seed(), seed.seed()
        with engine.connect() as connection:
            products = connection.scalar(select(func.count()).select_from(Product))
            categories = connection.scalar(select(func.count()).select_from(Category))
            uncategorised = connection.scalar(
                select(func.count()).select_from(Product).where(Product.category_id.is_(None))
            )
        engine.dispose()

    expected = sum(len(items) for items in seed.CATALOG.values())
    assert first == (len(seed.CATALOG), expected)
    assert second == (0, 0)
    assert (categories, products, uncategorised) == (len(seed.CATALOG), expected, 0)

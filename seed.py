"""`make seed`: a small demo catalog (categories and products), added once: run again, it adds
nothing. Runs on DATABASE_URL (migrated first: `make migrate`)."""

from decimal import Decimal

from sqlalchemy import func, select

import crud.categories
import crud.products
from database.session import SessionLocal
from models import Category, Product

FIELDS = ("sku", "name", "description", "price", "quantity")
# Category name: its products, as FIELDS.
CATALOG: dict[str, list[tuple[str, str, str | None, Decimal, int]]] = {
    "Shirts": [
        ("TEE-RED-M", "Red T-shirt", "Cotton, medium", Decimal("19.99"), 25),
        ("TEE-BLU-L", "Blue T-shirt", "Cotton, large", Decimal("19.99"), 12),
        ("OXF-WHT-M", "White oxford shirt", "Button-down collar", Decimal("49.50"), 8),
    ],
    "Mugs": [
        ("MUG-CLASSIC", "Classic mug", "Stoneware, 330 ml", Decimal("7.50"), 40),
        ("MUG-TRAVEL", "Travel mug", "Steel, keeps coffee hot for 6 hours", Decimal("24.00"), 0),
    ],
    "Caps": [
        ("CAP-BLK", "Black cap", None, Decimal("12.00"), 15),
    ],
}


def seed() -> tuple[int, int]:
    """Add what is missing of CATALOG; how many categories and products were added."""
    added_categories = added_products = 0
    with SessionLocal() as session, session.begin():
        for name, products in CATALOG.items():
            category = session.scalar(
                select(Category).where(func.lower(Category.name) == name.lower())
            )
            if category is None:
                category = crud.categories.create_category(session, values={"name": name})
                added_categories += 1
            for product in products:
                values = dict(zip(FIELDS, product, strict=True), category_id=category.id)
                if session.scalar(select(Product.id).where(Product.sku == values["sku"])) is None:
                    crud.products.create_product(session, values=values)
                    added_products += 1
    return added_categories, added_products


if __name__ == "__main__":
    categories, products = seed()
    print(f"seed: added {categories} categories and {products} products")

"""The guide's steps 2 and 3: the declarative `Base` and the tables that inherit from it."""

from models.base import Base
from models.category import Category
from models.idempotency import IdempotencyKey
from models.product import Product

__all__ = ["Base", "Category", "IdempotencyKey", "Product"]

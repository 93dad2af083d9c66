"""Assembles the app: settings, logging, routers, middleware and error handlers."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from api.middleware import TrailingSlashMiddleware
from api.problems import install_problem_handlers
from api.routes import products, service
from config import get_settings
from database.engine import engine

__version__ = "0.1.0"

settings = get_settings()
logging.basicConfig(
    level=settings.log_level.upper(),
    format="%(asctime)s %(levelname)s %(name)s %(message)s",
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    engine.dispose()


app = FastAPI(
    title="Catalog",
    version=__version__,
    summary="A product catalog: CRUD on /products, backed by SQLAlchemy and PostgreSQL.",
    lifespan=lifespan,
    redirect_slashes=False,
)
app.add_middleware(TrailingSlashMiddleware)
install_problem_handlers(app)
app.include_router(service.router)
app.include_router(products.router)


if __name__ == "__main__":
    uvicorn.run("main:app", host=settings.host, port=settings.port, log_level=settings.log_level)

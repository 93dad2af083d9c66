"""Service-level endpoints: the index, liveness and readiness."""

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from api.openapi import problem_responses
from api.routing import SessionRoute
from dependencies.database import SessionDep

router = APIRouter(tags=["service"], route_class=SessionRoute)


@router.get("/")
def index(request: Request) -> dict[str, Any]:
    """Name, version and where to go next."""
    return {
        "name": request.app.title,
        "version": request.app.version,
        "links": {
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/openapi.json",
            "products": "/products",
            "health": "/health",
        },
    }


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches the database."""
    return {"status": "healthy"}


@router.get("/health/ready", responses=problem_responses(503))
def ready(db: SessionDep) -> dict[str, str]:
    """Readiness: 200 only when the database answers, 503 otherwise."""
    db.execute(text("SELECT 1"))
    return {"status": "ready"}

"""Service-level endpoints: the index, liveness and readiness."""

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from api.draining import is_draining
from api.openapi import problem_responses
from crud.errors import SchemaNotReady
from crud.health import required_revision, schema_revision
from database.replica import ReplicaMonitor
from dependencies.database import SessionDep
from schemas.health import Readiness

router = APIRouter(tags=["service"])


@router.get("/")
async def index(request: Request) -> dict[str, Any]:
    """Name, version and where to go next."""
    return {
        "name": request.app.title,
        "version": request.app.version,
        "links": {
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/openapi.json",
            "products": "/products",
            "categories": "/categories",
            "health": "/health",
        },
    }


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches the database."""
    return {"status": "healthy"}


@router.get(
    "/health/ready",
    response_model_exclude_unset=True,
    responses=problem_responses(503),
)
def ready(request: Request, db: SessionDep) -> Readiness:
    """Readiness: 200 only when the database answers and its schema is the one needed."""
    if is_draining():
        # SIGTERM came: the load balancer should send requests elsewhere (api.draining).
        raise HTTPException(503, "This instance is shutting down", {"Retry-After": "1"})
    current, required = schema_revision(db), required_revision()
    if current != required:
        raise SchemaNotReady(current, required)
    replica: ReplicaMonitor | None = getattr(request.app.state, "replica_monitor", None)
    if replica is None:
        return Readiness(status="ready")
    # Reported, never failing readiness: reads go to the primary while the replica cannot serve.
    return Readiness(status="ready", replica=replica.status())

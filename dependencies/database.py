"""Step 6 of the guide: one short session per request, always closed, rolled back on error."""

from collections.abc import Generator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from database.session import SessionLocal


def get_database_session() -> Generator[Session, None, None]:
    """Yield a new session for this request; the tests swap it via `app.dependency_overrides`."""
    session = SessionLocal()
    try:
        yield session
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the session closes (its connection goes back to the pool) as soon as the
# route returns, not after the response has been sent. Writes commit inside the route (crud).
SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]

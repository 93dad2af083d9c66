"""Step 6 of the guide: one short session per request, always closed, rolled back on error.

A write's session (`SessionDep`) is one transaction: committed when the request succeeded,
rolled back on any error, closed always. Declared with `scope="function"`, its exit runs as
soon as the route returns, before the response is sent: a commit that fails is a 503, never a
2xx. crud never commits; it may `flush()` to learn what the database generated.

A read's session (`ReadSessionDep`) is on the read engine (`database.engine`): one round trip
per statement, nothing to commit. It is typed `ReadSession`, apart from `Session`, so a route
cannot hand it to a function that writes (polar's read session). The tests swap both through
`app.dependency_overrides`.
"""

from collections.abc import Generator, Iterator
from typing import Annotated, NewType

from fastapi import Depends
from sqlalchemy.orm import Session

from database.session import ReadSessionLocal, SessionLocal

ReadSession = NewType("ReadSession", Session)


def get_database_session() -> Generator[Session]:
    """The guide's generator: a session for a write, one transaction for the whole request."""
    session = SessionLocal()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def get_read_session() -> Iterator[ReadSession]:
    """A session for a request that only reads (on the replica, if api/replica.py is installed)."""
    with ReadSessionLocal() as session:
        yield ReadSession(session)


SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]
ReadSessionDep = Annotated[ReadSession, Depends(get_read_session, scope="function")]

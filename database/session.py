"""Step 4 of the guide: `SessionLocal`, the factory of per-request sessions."""

from sqlalchemy.orm import Session, sessionmaker

from database.engine import engine

SessionLocal = sessionmaker(
    bind=engine,
    class_=Session,
    autoflush=False,
    # Responses are built from the row a write returned (INSERT/UPDATE ... RETURNING), so
    # expiring it on commit would only cost a second round trip to read back the same values.
    expire_on_commit=False,
)

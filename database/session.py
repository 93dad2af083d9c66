"""Step 4 of the guide: `SessionLocal`, the factory of per-request sessions (and its twin for
requests that only read, on the read engine)."""

from sqlalchemy.orm import sessionmaker

from database.engine import engine, read_engine

# expire_on_commit=False: the answer is built from what the write returned, with no second
# round trip, and stays usable once the session is closed (the guide's "detached instances").
SessionLocal = sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)
ReadSessionLocal = sessionmaker(bind=read_engine, autoflush=False, expire_on_commit=False)

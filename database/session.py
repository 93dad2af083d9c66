"""Step 4 of the guide: `SessionLocal`, the factory of per-request sessions (and its twin for
requests that only read, on the read engine)."""

from sqlalchemy.orm import sessionmaker

from database.engine import engine, read_engine

# expire_on_commit=False: the answer is built from what the write returned; expiring it on
# commit would only cost a second round trip to read back the same values (the guide's
# "detached instances" lesson: the objects stay usable once the session is closed).
SessionLocal = sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)
ReadSessionLocal = sessionmaker(bind=read_engine, autoflush=False, expire_on_commit=False)

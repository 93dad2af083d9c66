"""FastAPI dependencies: how a request gets its database session and its preconditions."""

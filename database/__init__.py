"""The guide's steps 1 and 4: the one engine and the one `SessionLocal` factory."""
